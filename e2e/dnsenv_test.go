package e2e

// The DNS tests' environment: a network namespace of their own, with a DNS
// server and a TCP listener in it that the test process serves itself.
//
// One namespace serves the whole test binary run. It is created on first use
// (ip netns add vigil-e2e-<pid>, lo up, /etc/netns/<name>/resolv.conf naming
// 127.0.0.1), and removed when the test binary exits, however it exits: a
// watchdog shell started beside it holds the read end of a pipe whose write
// end only this process has, and deletes the namespace when the pipe reports
// EOF (the process exited, was killed or panicked). Namespaces left by a run
// whose watchdog could not do its job (the machine rebooted mid-run, say) are
// removed at the next run's start.
//
// The sockets are made in the namespace by a goroutine that locks its thread,
// setns(2)es it into /run/netns/<name> and never unlocks it: the thread dies
// with the goroutine, and the sockets keep their namespace whichever thread
// uses them afterwards. The served names are registered per test (distinct
// names per test, so that parallel tests can ask the server which queries
// reached it without seeing each other's).

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// dnsEnv is the namespace and what serves in it.
type dnsEnv struct {
	ns     string       // the ip netns name
	ipBin  string       // ip(8)
	port   int          // the banner listener's port (0.0.0.0:port in the namespace)
	syncMu sync.Mutex   // serialises sync's use of synced
	synced *net.UDPConn // a client socket in the namespace, for sync

	mu      sync.Mutex
	records map[string]dnsRecord // lower case, no trailing dot
	queries []dnsQuery
	tcpOpen int // server-side DNS-over-TCP connections not yet closed
	nextTag map[string]int
}

// dnsRecord is what the server answers for a name's A query.
type dnsRecord struct {
	ttl   uint32
	addrs []netip.Addr
}

// dnsQuery is one query the server received.
type dnsQuery struct {
	name      string // lower case, no trailing dot
	qtype     dnsmessage.Type
	transport string // "udp" or "tcp"
}

// The DNS server's own sentinel name, used to flush its queue (sync).
const dnsSyncName = "sync.vigil-e2e.invalid"

// udpAnswerLimit: a UDP answer longer than this is sent truncated (TC, no
// records), whatever size the query's EDNS option offers, so that clients
// retry over TCP.
const udpAnswerLimit = 512

var (
	dnsEnvOnce = sync.OnceValues(newDNSEnv)
	// dnsWatchdog is the write end of the watchdog's pipe. Kept referenced
	// for the life of the process: if it were collected, its finalizer
	// would close it and the watchdog would remove the namespace early.
	dnsWatchdog *os.File
)

// getDNSEnv returns the shared environment, creating it on first use, or
// skips the test where it cannot exist.
func getDNSEnv(t testing.TB) *dnsEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the DNS tests need root: they create a network namespace (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the DNS tests need ip(8) from iproute2 to create a network namespace: ", err)
	}
	env, err := dnsEnvOnce()
	if err != nil {
		t.Fatalf("DNS test environment: %v", err)
	}
	return env
}

func newDNSEnv() (*dnsEnv, error) {
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		return nil, err
	}
	e := &dnsEnv{
		ns:      fmt.Sprintf("vigil-e2e-%d", os.Getpid()),
		ipBin:   ipBin,
		records: map[string]dnsRecord{},
		nextTag: map[string]int{},
	}
	removeStaleNamespaces(ipBin)
	if err := e.startWatchdog(); err != nil {
		return nil, err
	}
	if err := e.create(); err != nil {
		e.remove()
		return nil, err
	}
	if err := e.listen(); err != nil {
		e.remove()
		return nil, err
	}
	return e, nil
}

// startWatchdog starts the shell that removes the namespace once this
// process is gone. It has a session of its own (an interrupt of the go test
// process group does not stop it) and no stdout or stderr (go test waits for
// those to close).
func (e *dnsEnv) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", `read _; "$0" netns del "$1" 2>/dev/null; rm -rf "/etc/netns/$1"`, e.ipBin, e.ns)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the namespace watchdog: %v", err)
	}
	go cmd.Wait() // reaps it if this process outlives it
	dnsWatchdog = w
	return nil
}

// create makes the namespace: loopback up, and its resolv.conf (which ip
// netns exec bind-mounts over /etc/resolv.conf).
func (e *dnsEnv) create() error {
	for _, argv := range [][]string{{"netns", "add", e.ns}, {"-n", e.ns, "link", "set", "lo", "up"}} {
		if out, err := exec.Command(e.ipBin, argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	dir := filepath.Join("/etc/netns", e.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n"), 0o644)
}

// remove deletes the namespace and its /etc/netns directory (the watchdog
// does the same at exit; a second removal is harmless).
func (e *dnsEnv) remove() {
	exec.Command(e.ipBin, "netns", "del", e.ns).Run()
	os.RemoveAll(filepath.Join("/etc/netns", e.ns))
}

// removeStaleNamespaces deletes the vigil-e2e-PID namespaces of test runs
// that are no longer running.
func removeStaleNamespaces(ipBin string) {
	out, err := exec.Command(ipBin, "netns", "list").Output()
	if err != nil {
		return
	}
	for _, ln := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(ln), " ")
		pid, ok := strings.CutPrefix(name, "vigil-e2e-")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(pid); err != nil || n == os.Getpid() || syscall.Kill(n, 0) == nil {
			continue
		}
		exec.Command(ipBin, "netns", "del", name).Run()
		os.RemoveAll(filepath.Join("/etc/netns", name))
	}
}

// inNetns runs fn on a thread of its own that has joined the namespace.
// Sockets fn makes belong to the namespace. The thread is never unlocked, so
// it ends with the goroutine instead of serving others in the wrong
// namespace.
func (e *dnsEnv) inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", e.ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %v", e.ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// listen starts the DNS server (127.0.0.1:53, UDP and TCP) and the banner
// listener (0.0.0.0:port) in the namespace, and the client socket sync uses.
func (e *dnsEnv) listen() error {
	var udp *net.UDPConn
	var tcp, banner *net.TCPListener
	err := e.inNetns(func() error {
		var err error
		dns := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
		if udp, err = net.ListenUDP("udp4", dns); err != nil {
			return err
		}
		if tcp, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: dns.IP, Port: 53}); err != nil {
			return err
		}
		if banner, err = net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4zero}); err != nil {
			return err
		}
		e.synced, err = net.DialUDP("udp4", nil, dns)
		return err
	})
	if err != nil {
		return fmt.Errorf("sockets in the namespace: %v", err)
	}
	e.port = banner.Addr().(*net.TCPAddr).Port
	go e.serveUDP(udp)
	go e.serveTCP(tcp)
	go serveBanner(banner)
	return nil
}

// ---- the names ----

// dnsNames are the names of one test, all with a tag of its own ("py3":
// api-py3.example.test, ...).
type dnsNames struct {
	tag     string
	api     string // -> 127.0.0.2, allowed exactly
	wild    string // x-TAG.wild.test -> 127.0.0.3, allowed by *.wild.test
	deep    string // a.b-TAG.wild.test -> 127.0.0.3, allowed by *.wild.test
	blocked string // blocked-TAG.test -> 127.0.0.4, never allowed
	short   string // -> 127.0.0.5, TTL 1 s
	many    string // -> 127.0.1.1 .. 127.0.1.40: truncated over UDP
}

// The addresses of the names (the same for every tag).
var (
	apiAddr     = netip.MustParseAddr("127.0.0.2")
	wildAddr    = netip.MustParseAddr("127.0.0.3")
	blockedAddr = netip.MustParseAddr("127.0.0.4")
	shortAddr   = netip.MustParseAddr("127.0.0.5")
	manyPrefix  = netip.MustParsePrefix("127.0.1.0/24")
)

const manyCount = 40

// newNames registers a fresh set of names for one test; prefix names the
// language ("py", "go", ...).
func (e *dnsEnv) newNames(prefix string) dnsNames {
	e.mu.Lock()
	e.nextTag[prefix]++
	tag := fmt.Sprintf("%s%d", prefix, e.nextTag[prefix])
	e.mu.Unlock()
	n := dnsNames{
		tag:     tag,
		api:     "api-" + tag + ".example.test",
		wild:    "x-" + tag + ".wild.test",
		deep:    "a.b-" + tag + ".wild.test",
		blocked: "blocked-" + tag + ".test",
		short:   "short-" + tag + ".example.test",
		many:    "many-" + tag + ".example.test",
	}
	many := make([]netip.Addr, manyCount)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)})
	}
	e.add(n.api, 300, apiAddr)
	e.add(n.wild, 300, wildAddr)
	e.add(n.deep, 300, wildAddr)
	e.add(n.blocked, 300, blockedAddr)
	e.add(n.short, 1, shortAddr)
	e.add(n.many, 300, many...)
	return n
}

// add serves name with these A records.
func (e *dnsEnv) add(name string, ttl uint32, addrs ...netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[strings.ToLower(name)] = dnsRecord{ttl, addrs}
}

// queriesFor returns the queries for name the server received so far.
func (e *dnsEnv) queriesFor(name string) []dnsQuery {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []dnsQuery
	for _, q := range e.queries {
		if q.name == name {
			out = append(out, q)
		}
	}
	return out
}

// sync returns once the server has recorded every query sent to it before
// the call: a query of its own over UDP is answered after those queued
// before it, and the DNS-over-TCP connections of programs that have exited
// are read to their end (waited for up to 2 s, as a concurrent test may
// hold one open).
func (e *dnsEnv) sync(t testing.TB) {
	t.Helper()
	e.syncMu.Lock()
	q := dnsQueryBytes(t, dnsSyncName, dnsmessage.TypeA)
	e.synced.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := e.synced.Write(q)
	buf := make([]byte, 1500)
	for err == nil {
		var n int
		if n, err = e.synced.Read(buf); err == nil && n >= 2 && binary.BigEndian.Uint16(buf) == binary.BigEndian.Uint16(q) {
			break
		}
	}
	e.syncMu.Unlock()
	if err != nil {
		t.Fatalf("DNS server sync: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		e.mu.Lock()
		open := e.tcpOpen
		e.mu.Unlock()
		if open == 0 {
			return
		}
	}
}

var dnsQueryID atomic.Uint32

// dnsQueryBytes packs a query for name.
func dnsQueryBytes(t testing.TB, name string, qtype dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: uint16(dnsQueryID.Add(1)), RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: qtype, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// ---- the DNS server ----

func (e *dnsEnv) serveUDP(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if resp := e.answer(buf[:n], "udp"); resp != nil {
			c.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (e *dnsEnv) serveTCP(l *net.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		e.tcpOpen++
		e.mu.Unlock()
		go e.serveTCPConn(c)
	}
}

// serveTCPConn answers length-prefixed queries until the client closes.
func (e *dnsEnv) serveTCPConn(c net.Conn) {
	defer func() {
		c.Close()
		e.mu.Lock()
		e.tcpOpen--
		e.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		resp := e.answer(msg, "tcp")
		if resp == nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
			return
		}
	}
}

// answer records the query and builds its answer: A records for a known
// name, NOERROR without records for its other types, NXDOMAIN for unknown
// names; over UDP, an answer longer than udpAnswerLimit is sent truncated.
// A message that is not a query gets nothing.
func (e *dnsEnv) answer(msg []byte, transport string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	e.mu.Lock()
	if name != dnsSyncName {
		e.queries = append(e.queries, dnsQuery{name, q.Type, transport})
	}
	rec, known := e.records[name]
	e.mu.Unlock()

	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	var answers []netip.Addr
	switch {
	case name == dnsSyncName:
	case !known:
		rh.RCode = dnsmessage.RCodeNameError
	case q.Type == dnsmessage.TypeA:
		answers = rec.addrs
	}
	resp, err := buildAnswer(rh, q, rec.ttl, answers)
	if err == nil && transport == "udp" && len(resp) > udpAnswerLimit {
		rh.Truncated = true
		resp, err = buildAnswer(rh, q, 0, nil)
	}
	if err != nil {
		return nil
	}
	return resp
}

func buildAnswer(h dnsmessage.Header, q dnsmessage.Question, ttl uint32, addrs []netip.Addr) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl}
		if err := b.AResource(rh, dnsmessage.AResource{A: a.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// ---- the banner listener ----

// bannerLine is the body of the listener's answer: the local address the
// connection arrived at.
func bannerLine(local string) string { return "local=" + local }

// serveBanner answers each connection at once, before reading anything, with
// a minimal HTTP response whose body is one line naming the local address
// the connection reached. Plain clients read to EOF and take the last line;
// HTTP clients (urllib) send their request and read the response that is
// already there. The server then reads until the client closes, so that
// closing never resets a connection with a request unread.
func serveBanner(l *net.TCPListener) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			body := bannerLine(c.LocalAddr().String()) + "\n"
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			c.CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c)
		}()
	}
}

// ---- running programs in the namespace ----

// dnsRun is what one run in the namespace printed, parsed.
type dnsRun struct {
	result
	attempts []attempt
}

// runNS runs argv in the namespace (ip netns exec), under Vigil with the
// policy file when policy != "" (with --backend $VIGIL_TEST_BACKEND, as
// run() does), natively otherwise. It is run() (clean environment, timeout,
// exit status) with the command put inside ip netns exec, which bind-mounts
// the namespace's resolv.conf; Vigil must run inside it, not around ip.
func (e *dnsEnv) runNS(t testing.TB, policy string, argv ...string) dnsRun {
	t.Helper()
	full := []string{e.ipBin, "netns", "exec", e.ns}
	if policy != "" {
		full = append(full, bootstrapBin, "--rules", policy)
		if b := os.Getenv("VIGIL_TEST_BACKEND"); b != "" {
			full = append(full, "--backend", b)
		}
		full = append(full, "--")
	}
	r := run(t, "", nil, "", append(full, argv...)...)
	return dnsRun{r, parseAttempts(r.stdout)}
}

// attempt is one line a fixture printed: "STEP TARGET ok|error DETAIL
// ms=MS". DETAIL is, on success, "local=ADDR:PORT" (the banner: where the
// connection arrived) or "addr=IP" (a resolution); on failure
// "resolve:CODE" (the name did not resolve), "errno:NAME" (a system call
// failed: errno:EACCES) or "other:WHAT".
type attempt struct {
	step, target, status, detail string
	ms                           float64
}

func (a attempt) ok() bool { return a.status == "ok" }
func (a attempt) resolveFailed() bool {
	return a.status == "error" && strings.HasPrefix(a.detail, "resolve:")
}
func (a attempt) errno(name string) bool { return a.status == "error" && a.detail == "errno:"+name }
func (a attempt) String() string {
	return fmt.Sprintf("%s %s %s %s ms=%.1f", a.step, a.target, a.status, a.detail, a.ms)
}

// local returns the address the banner named ("127.0.0.2"), or an invalid
// address.
func (a attempt) local() netip.Addr {
	v, ok := strings.CutPrefix(a.detail, "local=")
	if !a.ok() || !ok {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// addr returns the address a resolution printed, or an invalid address.
func (a attempt) addr() netip.Addr {
	v, _ := strings.CutPrefix(a.detail, "addr=")
	ip, err := netip.ParseAddr(v)
	if !a.ok() || err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// parseAttempts reads the attempt lines of a fixture's stdout (other lines,
// such as "done", are not attempts).
func parseAttempts(stdout string) []attempt {
	var out []attempt
	for _, ln := range strings.Split(stdout, "\n") {
		f := strings.Fields(ln)
		if len(f) != 5 || (f[2] != "ok" && f[2] != "error") || !strings.HasPrefix(f[4], "ms=") {
			continue
		}
		ms, err := strconv.ParseFloat(strings.TrimPrefix(f[4], "ms="), 64)
		if err != nil {
			continue
		}
		out = append(out, attempt{f[0], f[1], f[2], f[3], ms})
	}
	return out
}

// finished reports whether the fixture ran to its end ("done", exit 0).
func (r dnsRun) finished() bool {
	return r.code == 0 && strings.HasSuffix(r.stdout, "done\n")
}

// TestDNSHarness checks the DNS tests' environment itself: the server's
// answers over UDP and TCP, its query log, the banner listener and the
// namespace's resolv.conf.
func TestDNSHarness(t *testing.T) {
	env := getDNSEnv(t)
	n := env.newNames("harness")
	var udp, tcp, banner net.Conn
	err := env.inNetns(func() error {
		var err error
		if udp, err = net.Dial("udp4", "127.0.0.1:53"); err != nil {
			return err
		}
		if tcp, err = net.Dial("tcp4", "127.0.0.1:53"); err != nil {
			return err
		}
		banner, err = net.Dial("tcp4", netip.AddrPortFrom(wildAddr, uint16(env.port)).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	defer tcp.Close()
	defer banner.Close()

	ask := func(c net.Conn, name string, qtype dnsmessage.Type) dnsmessage.Message {
		t.Helper()
		q := dnsQueryBytes(t, name, qtype)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 65536)
		var resp []byte
		if _, ok := c.(*net.TCPConn); ok {
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf[:2]); err != nil {
				t.Fatal(err)
			}
			resp = buf[2 : 2+binary.BigEndian.Uint16(buf)]
			if _, err := io.ReadFull(c, resp); err != nil {
				t.Fatal(err)
			}
		} else {
			if _, err := c.Write(q); err != nil {
				t.Fatal(err)
			}
			k, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			resp = buf[:k]
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("%s %v: %v", name, qtype, err)
		}
		if m.ID != binary.BigEndian.Uint16(q) || !m.Response || len(m.Questions) != 1 {
			t.Fatalf("%s %v: not the answer to the query: %+v", name, qtype, m.Header)
		}
		return m
	}
	addrs := func(m dnsmessage.Message) (out []netip.Addr) {
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok {
				out = append(out, netip.AddrFrom4(r.A))
			}
		}
		return out
	}

	if m := ask(udp, n.api, dnsmessage.TypeA); m.RCode != dnsmessage.RCodeSuccess || m.Truncated ||
		len(m.Answers) != 1 || addrs(m)[0] != apiAddr || m.Answers[0].Header.TTL != 300 {
		t.Fatalf("A %s over UDP: %+v", n.api, m)
	}
	if m := ask(udp, n.short, dnsmessage.TypeA); len(m.Answers) != 1 || m.Answers[0].Header.TTL != 1 {
		t.Fatalf("A %s: want TTL 1: %+v", n.short, m)
	}
	if m := ask(udp, n.api, dnsmessage.TypeAAAA); m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Fatalf("AAAA %s: want NOERROR without records: %+v", n.api, m)
	}
	if m := ask(udp, "unknown-"+n.tag+".test", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Fatalf("an unknown name: want NXDOMAIN: %+v", m)
	}
	if m := ask(udp, n.many, dnsmessage.TypeA); !m.Truncated || len(m.Answers) != 0 {
		t.Fatalf("A %s over UDP: want TC without records: %+v", n.many, m)
	}
	// Over TCP: full answers, several queries on one connection.
	if m := ask(tcp, n.many, dnsmessage.TypeA); m.Truncated || len(addrs(m)) != manyCount {
		t.Fatalf("A %s over TCP: want %d records: %+v", n.many, manyCount, m.Header)
	}
	if m := ask(tcp, n.many, dnsmessage.TypeAAAA); m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Fatalf("AAAA %s over TCP (second query on the connection): %+v", n.many, m)
	}
	if m := ask(tcp, n.api, dnsmessage.TypeA); len(addrs(m)) != 1 {
		t.Fatalf("A %s over TCP (third query on the connection): %+v", n.api, m)
	}
	tcp.Close()
	env.sync(t)
	want := []dnsQuery{{n.many, dnsmessage.TypeA, "udp"}, {n.many, dnsmessage.TypeA, "tcp"}, {n.many, dnsmessage.TypeAAAA, "tcp"}}
	if got := env.queriesFor(n.many); !reflect.DeepEqual(got, want) {
		t.Fatalf("the query log for %s: want %v, got %v", n.many, want, got)
	}

	banner.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(banner)
	wantBody := bannerLine(netip.AddrPortFrom(wildAddr, uint16(env.port)).String()) + "\n"
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(string(b), "\r\n\r\n"+wantBody) {
		t.Fatalf("banner: %q %v; want an HTTP response with body %q", b, err, wantBody)
	}

	r := env.runNS(t, "", "/bin/cat", "/etc/resolv.conf")
	if !strings.HasPrefix(r.stdout, "nameserver 127.0.0.1\n") {
		t.Fatalf("resolv.conf in the namespace: %q %s", r.stdout, r.stderr)
	}
}
