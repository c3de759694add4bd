//go:build linux

package supervisor

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpListen starts a UDP listener owned by the test that counts datagrams.
func udpListen(t *testing.T, network, addr string) (port string, got *atomic.Int32) {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got = new(atomic.Int32)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	_, p, _ := net.SplitHostPort(c.LocalAddr().String())
	return p, got
}

// settle gives in-flight datagrams time to arrive before counting.
func settle() { time.Sleep(100 * time.Millisecond) }

func TestSendUDP(t *testing.T) {
	okPort, okGot := udpListen(t, "udp4", "127.0.0.1:0")
	badPort, badGot := udpListen(t, "udp4", "127.0.0.1:0")
	pol := newPolicy()
	pol.connect = []string{"127.0.0.1:" + okPort}
	nd := fixture("netdoor")
	for _, mode := range []string{"sendto", "sendmsg", "sendmmsg"} {
		t.Run(mode, func(t *testing.T) {
			before := okGot.Load()
			r := supervise(t, pol, nd, "udp", mode, "127.0.0.1", okPort)
			expectOK(t, r)
			if mode == "sendmmsg" && !strings.Contains(r.stdout, "n=2 len0=5 len1=5") {
				t.Fatalf("sendmmsg: %q", r.stdout)
			} else if mode != "sendmmsg" && !strings.Contains(r.stdout, "n=5") {
				t.Fatalf("%s: %q", mode, r.stdout)
			}
			r = supervise(t, pol, nd, "udp", mode, "127.0.0.1", badPort)
			expectErr(t, r, "EACCES")
			e := findEvent(auditEvents(t, r), "deny", "send", "127.0.0.1:"+badPort)
			if e == nil || e.Family != "inet" || e.Rule == "" {
				t.Fatalf("bad audit: %s", r.audit)
			}
			settle()
			want := int32(1)
			if mode == "sendmmsg" {
				want = 2
			}
			if okGot.Load()-before != want {
				t.Fatalf("allowed port got %d datagrams, want %d", okGot.Load()-before, want)
			}
		})
	}
	t.Run("sendmmsg stops at the first denied message", func(t *testing.T) {
		before := okGot.Load()
		r := supervise(t, pol, nd, "mmsg2", "127.0.0.1", okPort, badPort)
		expectOK(t, r)
		if !strings.Contains(r.stdout, "n=1 len0=5 len1=77") {
			t.Fatal(r.stdout)
		}
		if findEvent(auditEvents(t, r), "deny", "send", "127.0.0.1:"+badPort) == nil {
			t.Fatal(r.audit)
		}
		settle()
		if okGot.Load()-before != 1 {
			t.Fatal("message 0 did not arrive")
		}
	})
	t.Run("ipv4-mapped ipv6 is judged as ipv4", func(t *testing.T) {
		r := supervise(t, pol, nd, "udp", "sendto", "::ffff:127.0.0.1", badPort)
		expectErr(t, r, "EACCES")
		before := okGot.Load()
		pol2 := newPolicy()
		pol2.connect = []string{"127.0.0.1:" + okPort, "[::ffff:127.0.0.1]:" + okPort}
		expectOK(t, supervise(t, pol2, nd, "udp", "sendmsg", "::ffff:127.0.0.1", okPort))
		settle()
		if okGot.Load()-before != 1 {
			t.Fatal("mapped send did not arrive")
		}
	})
	t.Run("unreadable message parts are EFAULT", func(t *testing.T) {
		pol2 := newPolicy()
		pol2.connect = []string{"*"}
		for _, what := range []string{"iov", "iovarray", "control", "name", "msghdr"} {
			expectErr(t, supervise(t, pol2, nd, "efault", what), "EFAULT")
		}
	})
	settle()
	if badGot.Load() != 0 {
		t.Fatalf("%d datagrams reached the denied port", badGot.Load())
	}
}

func TestTCPFastOpen(t *testing.T) {
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_fastopen"); len(b) == 0 || (b[0]-'0')&1 == 0 {
		t.Fatalf("net.ipv4.tcp_fastopen has no client bit: %q", b)
	}
	okPort, okCount := listen(t)
	badPort, badCount := listen(t)
	pol := newPolicy()
	pol.connect = []string{"127.0.0.1:" + okPort}
	nd := fixture("netdoor")
	r := supervise(t, pol, nd, "tfo", "127.0.0.1", badPort)
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "send", "127.0.0.1:"+badPort) == nil {
		t.Fatal(r.audit)
	}
	expectOK(t, supervise(t, pol, nd, "tfo", "127.0.0.1", okPort))
	settle()
	if badCount.Load() != 0 || okCount.Load() != 1 {
		t.Fatalf("denied port: %d connections, allowed: %d", badCount.Load(), okCount.Load())
	}
}

// unixListener accepts on a path or abstract ("@name") socket and counts
// connections that sent something.
func unixListener(t *testing.T, name string) *atomic.Int32 {
	t.Helper()
	l, err := net.Listen("unix", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n := new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				b := make([]byte, 4)
				if m, _ := c.Read(b); m > 0 {
					n.Add(1)
				}
				c.Close()
			}()
		}
	}()
	return n
}

func unixgram(t *testing.T, path string) *atomic.Int32 {
	t.Helper()
	c, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	n := new(atomic.Int32)
	go func() {
		b := make([]byte, 64)
		for {
			if _, _, err := c.ReadFrom(b); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return n
}

func TestUnixPathSockets(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Mkdir(dir+"/in", 0o755))
	must(t, os.Mkdir(dir+"/out", 0o755))
	inN := unixListener(t, dir+"/in/s")
	outN := unixListener(t, dir+"/out/s")
	inG := unixgram(t, dir+"/in/g")
	outG := unixgram(t, dir+"/out/g")
	pol := newPolicy()
	pol.write = []string{dir + "/in/"}
	nd := fixture("netdoor")

	r := supervise(t, pol, nd, "uconnect", dir+"/out/s")
	expectErr(t, r, "EACCES")
	if e := findEvent(auditEvents(t, r), "deny", "connect", dir+"/out/s"); e == nil || e.Family != "unix" {
		t.Fatal(r.audit)
	}
	expectOK(t, supervise(t, pol, nd, "uconnect", dir+"/in/s"))
	// Relative to the caller's cwd, and through a symlink: the resolved
	// path is judged.
	r = superviseIn(t, pol, dir+"/out", nil, nd, "uconnect", "s")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "connect", dir+"/out/s") == nil {
		t.Fatal(r.audit)
	}
	expectOK(t, superviseIn(t, pol, dir+"/in", nil, nd, "uconnect", "s"))
	must(t, os.Symlink(dir+"/out/s", dir+"/in/link"))
	expectErr(t, supervise(t, pol, nd, "uconnect", dir+"/in/link"), "EACCES")

	expectErr(t, supervise(t, pol, nd, "usendto", dir+"/out/g"), "EACCES")
	expectOK(t, supervise(t, pol, nd, "usendto", dir+"/in/g"))

	// The caller's permission on the socket file counts: a root-only
	// socket refuses nobody even where the policy allows.
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	must(t, os.Chmod(dir+"/in/s", 0o700))
	expectErr(t, supervise(t, pol, nd, "asuser", "65534", "65534", "uconnect", dir+"/in/s"), "EACCES")
	must(t, os.Chmod(dir+"/in/s", 0o777))
	expectOK(t, supervise(t, pol, nd, "asuser", "65534", "65534", "uconnect", dir+"/in/s"))

	settle()
	if outN.Load() != 0 || outG.Load() != 0 {
		t.Fatalf("denied sockets reached: %d stream, %d datagram", outN.Load(), outG.Load())
	}
	if inN.Load() != 3 || inG.Load() != 1 {
		t.Fatalf("allowed sockets: %d stream (want 3), %d datagram (want 1)", inN.Load(), inG.Load())
	}
}

func TestUnixBind(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Mkdir(dir+"/in", 0o777))
	must(t, os.Chmod(dir+"/in", 0o777))
	must(t, os.Mkdir(dir+"/out", 0o777))
	pol := newPolicy()
	pol.write = []string{dir + "/in/"}
	nd := fixture("netdoor")
	r := supervise(t, pol, nd, "ubind", dir+"/out/s")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "bind", dir+"/out/s") == nil {
		t.Fatal(r.audit)
	}
	if _, err := os.Lstat(dir + "/out/s"); err == nil {
		t.Fatal("denied bind created the socket")
	}
	expectOK(t, supervise(t, pol, nd, "ubind", dir+"/in/s"))
	if st, err := os.Lstat(dir + "/in/s"); err != nil || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket not created: %v", err)
	}
	expectErr(t, supervise(t, pol, nd, "ubind", dir+"/in/s"), "EADDRINUSE")
	// Created as the caller.
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	r = supervise(t, pol, nd, "asuser", "65534", "65534", "ubind", dir+"/in/mine")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "uid=65534 sock=1") {
		t.Fatal(r.stdout)
	}
	// Autobind (only sun_family) is allowed; abstract names need a rule.
	expectOK(t, supervise(t, pol, nd, "ubind", "-"))
}

func TestAbstractSockets(t *testing.T) {
	name := "vigil-test-" + strconv.Itoa(os.Getpid())
	listed := unixListener(t, "@"+name+"-ok")
	unlisted := unixListener(t, "@"+name+"-no")
	pol := newPolicy()
	pol.abstract = []string{name + "-ok"}
	pol.abstractL = []string{name + "-mine"}
	nd := fixture("netdoor")
	r := supervise(t, pol, nd, "uconnect", "@"+name+"-no")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "connect", "@"+name+"-no") == nil {
		t.Fatal(r.audit)
	}
	expectOK(t, supervise(t, pol, nd, "uconnect", "@"+name+"-ok"))
	expectErr(t, supervise(t, pol, nd, "ubind", "@"+name+"-other"), "EACCES")
	expectOK(t, supervise(t, pol, nd, "ubind", "@"+name+"-mine"))
	settle()
	if unlisted.Load() != 0 || listed.Load() != 1 {
		t.Fatalf("unlisted got %d, listed %d", unlisted.Load(), listed.Load())
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestBindListen(t *testing.T) {
	okPort, badPort := freePort(t), freePort(t)
	pol := newPolicy()
	pol.listen = []string{"127.0.0.1:" + okPort}
	nd := fixture("netdoor")
	r := supervise(t, pol, nd, "bind", "127.0.0.1", badPort, "tcp")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "bind", "127.0.0.1:"+badPort) == nil {
		t.Fatal(r.audit)
	}
	expectOK(t, supervise(t, pol, nd, "bind", "127.0.0.1", okPort, "tcp", "listen"))
	expectErr(t, supervise(t, pol, nd, "bind", "::ffff:127.0.0.1", badPort, "udp"), "EACCES")
	// Port 0 binds; listen decides on the address it got.
	expectOK(t, supervise(t, pol, nd, "bind", "127.0.0.1", "0", "udp"))
	r = supervise(t, pol, nd, "bind", "127.0.0.1", "0", "tcp", "listen")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "listen", "") == nil {
		t.Fatal(r.audit)
	}
	r = supervise(t, pol, nd, "listen0")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "listen", "0.0.0.0:0") == nil {
		t.Fatal(r.audit)
	}
	pol2 := newPolicy()
	pol2.listen = []string{"0.0.0.0:0", "127.0.0.1:80"}
	expectOK(t, supervise(t, pol2, nd, "listen0"))
	// A privileged port needs the caller's CAP_NET_BIND_SERVICE.
	expectOK(t, supervise(t, pol2, nd, "bind", "127.0.0.1", "80", "udp"))
	expectErr(t, supervise(t, pol2, nd, "asuser", "65534", "65534", "bind", "127.0.0.1", "80", "udp"), "EACCES")
}

func TestSCMRights(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(dir+"/f", []byte("passed"), 0o644))
	pol := newPolicy()
	pol.read = append(pol.read, dir+"/")
	r := supervise(t, pol, fixture("netdoor"), "rights", dir+"/f")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "read=passed") {
		t.Fatal(r.stdout)
	}
}

func TestSCMCredentials(t *testing.T) {
	pol := newPolicy()
	nd := fixture("netdoor")
	// Forged: pid 1, or uid 0 for a caller that is nobody.
	expectErr(t, supervise(t, pol, nd, "asuser", "65534", "65534", "creds", "1", "65534", "65534"), "EPERM")
	expectErr(t, supervise(t, pol, nd, "asuser", "65534", "65534", "creds", "self", "0", "0"), "EPERM")
	r := supervise(t, pol, nd, "asuser", "65534", "65534", "creds", "self", "65534", "65534")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "pid=self uid=65534 gid=65534") {
		t.Fatal(r.stdout)
	}
	// Without SCM_CREDENTIALS the receiver sees the caller, not the
	// supervisor.
	r = supervise(t, pol, nd, "asuser", "65534", "65534", "creds")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "pid=self uid=65534 gid=65534") {
		t.Fatal(r.stdout)
	}
}

func TestSendFlipRace(t *testing.T) {
	okPort, okGot := udpListen(t, "udp4", "127.0.0.1:0")
	badPort, badGot := udpListen(t, "udp4", "127.0.0.1:0")
	pol := newPolicy()
	pol.connect = []string{"127.0.0.1:" + okPort}
	r := supervise(t, pol, fixture("netdoor"), "flip", "127.0.0.1", okPort, badPort, "3000")
	expectOK(t, r)
	t.Log(r.stdout)
	settle()
	if badGot.Load() != 0 {
		t.Fatalf("%d datagrams reached the denied port (%s)", badGot.Load(), r.stdout)
	}
	if okGot.Load() == 0 || !strings.Contains(r.stdout, "other=0") {
		t.Fatalf("allowed got %d: %s", okGot.Load(), r.stdout)
	}
}

func TestNetlinkAndOtherFamilies(t *testing.T) {
	pol := newPolicy()
	nd := fixture("netdoor")
	r := supervise(t, pol, nd, "ifaddrs")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "lo=1") {
		t.Fatal(r.stdout)
	}
	r = supervise(t, pol, nd, "nlpeer", "4242")
	expectErr(t, r, "EACCES")
	if findEvent(auditEvents(t, r), "deny", "send", "netlink:4242") == nil {
		t.Fatal(r.audit)
	}
	r = supervise(t, pol, nd, "packet")
	expectErr(t, r, "EACCES")
	if !strings.Contains(r.audit, "address family packet is not supported") {
		t.Fatal(r.audit)
	}
}

// FuzzMsghdr feeds hostile bytes to the socket ABI decoders: they must
// never panic, and what they accept must be consistent.
func FuzzMsghdr(f *testing.F) {
	var mh [sizeofMsghdr]byte
	binary.NativeEndian.PutUint64(mh[0:], 0x1000)
	binary.NativeEndian.PutUint32(mh[8:], 16)
	binary.NativeEndian.PutUint64(mh[24:], 2)
	f.Add(mh[:], buildCmsgs([]cmsg{{unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{1, 0, 0, 0}}}), []byte{2, 0, 0, 80, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 64), bytes.Repeat([]byte{0xff}, 40), []byte{1, 0, 0, 'a', 'b'})
	f.Add([]byte{}, []byte{17, 0, 0, 0, 0, 0, 0, 0}, []byte{16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(make([]byte, 56), buildCmsgs([]cmsg{{unix.SOL_SOCKET, unix.SCM_CREDENTIALS, encodeUcred(ucred{1, 2, 3})}, {0, 1, nil}}), []byte{10, 0})
	f.Fuzz(func(t *testing.T, hdr, control, addr []byte) {
		if h, e := parseMsghdr(hdr); e == 0 {
			if h.namelen < 0 || h.namelen > sockaddrStorageSize || h.iovlen > uioMaxIov || h.controllen > maxControl {
				t.Fatalf("accepted %+v", h)
			}
			if segs, total, full, e := parseIovecs(hdr, len(hdr)/sizeofIovec, 64); e == 0 {
				var sum uint64
				for _, s := range segs {
					sum += s.len
				}
				if sum != total || total > 64 || total > full {
					t.Fatalf("segments %v total %d full %d", segs, total, full)
				}
			}
		}
		ms, e := parseCmsgs(control)
		if e == 0 {
			again, e2 := parseCmsgs(buildCmsgs(ms))
			if e2 != 0 || len(again) != len(ms) {
				t.Fatalf("rebuilt control does not parse back: %v %d/%d", e2, len(again), len(ms))
			}
			for i := range ms {
				if again[i].level != ms[i].level || again[i].typ != ms[i].typ || !bytes.Equal(again[i].data, ms[i].data) {
					t.Fatalf("cmsg %d changed", i)
				}
				rightsFDs(ms[i].data)
				parseUcred(ms[i].data)
			}
		}
		if sa, e := decodeSockaddr(addr); e == 0 {
			if sa.family == unix.AF_UNIX && len(sa.name) > len(addr) {
				t.Fatal("unix name longer than the address")
			}
		}
	})
}
