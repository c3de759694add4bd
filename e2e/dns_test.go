package e2e

// End-to-end tests of domain rules in network.connect: Vigil judges the DNS
// queries a function sends to its resolv.conf's nameservers, and allows a
// connect to an address that an allowed name resolved to. Each language's
// fixture (fixtures/dns/) runs in the DNS tests' namespace (dnsenv_test.go)
// natively, where everything resolves and connects (that validates the
// fixtures, the server and the names), and under Vigil, where the spec
// applies:
//
//   - a name no domain rule matches fails to resolve quickly, its query never
//     reaches the server, and an audit line (op "dns", domain NAME) says so;
//   - an allowed name (exact or *.wild.test) resolves and connects;
//   - an address no name resolved to is denied (EACCES) with an audit line;
//   - an answer truncated over UDP is fetched over TCP;
//   - a learned address expires with its TTL (floored at dns_min_ttl);
//   - log_allowed logs an allowed connect with its domain and address.
//
// Every case holds alike under each backend (make test runs e2e again with
// VIGIL_TEST_BACKEND=ptrace-seccomp and ptrace-alone).

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// quickMs: a refused query must fail well before the resolver's 5 s timeout.
const quickMs = 1500

// dnsLang is one language's fixture and what a policy needs to run it.
type dnsLang struct {
	prefix     string   // of its names' tags: "py", "go", ...
	goResolver bool     // it resolves with Go's own resolver, not glibc's
	full       bool     // every case, not only allowed, wildcard and blocked
	cmd        []string // the fixture's argv before MODE PORT ...
	exec, read []string // the policy's process.exec and filesystem.read
	write      []string // and filesystem.write
}

func TestDNSPython(t *testing.T) { testDNS(t, pythonDNS(t)) }
func TestDNSGo(t *testing.T)     { testDNS(t, goDNS(t)) }
func TestDNSNode(t *testing.T)   { testDNS(t, nodeDNS(t)) }
func TestDNSJava(t *testing.T)   { testDNS(t, javaDNS(t)) }

func dnsFixture(name string) string { return filepath.Join(repoRoot, "fixtures", "dns", name) }

func pythonDNS(t testing.TB) dnsLang {
	py := realPython(t)
	script := dnsFixture("dnsclient.py")
	return dnsLang{prefix: "py", full: true, cmd: []string{py, script},
		exec: []string{py}, read: []string{filepath.Dir(filepath.Dir(py)) + "/**", filepath.Dir(script), script}}
}

func nodeDNS(t testing.TB) dnsLang {
	node := realNode(t)
	script := dnsFixture("dnsclient.js")
	return dnsLang{prefix: "node", full: true, cmd: []string{node, script}, exec: []string{node}, read: []string{node, script}}
}

func goDNS(t testing.TB) dnsLang {
	bin, err := buildGoDial()
	if err != nil {
		t.Fatal(err)
	}
	return dnsLang{prefix: "go", goResolver: true, full: true, cmd: []string{bin}, exec: []string{bin}, read: []string{bin}}
}

func javaDNS(t testing.TB) dnsLang {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java is not installed")
	}
	if java, err = filepath.EvalSymlinks(java); err != nil {
		t.Skip("java: ", err)
	}
	// Fewer JIT and GC threads: a quicker start, natively and under Vigil.
	cmd := []string{java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"}
	// What the JVM reads beyond the baseline: its home (conf/ links to
	// /etc/java-17-openjdk), cgroup and huge page facts, IPv6 interfaces
	// (/proc/net is a link into /proc/self), the working directory; and it
	// writes its coredump_filter.
	wd, _ := os.Getwd()
	home := filepath.Dir(filepath.Dir(java))
	read := []string{home + "/**", "/etc/java-*/**", "/proc/cgroups", "/sys/kernel/mm/hugepages", "/proc/self/net/if_inet6", wd}
	classes, err := buildJavaClient(filepath.Join(filepath.Dir(java), "javac"))
	switch {
	case err == nil:
		cmd = append(cmd, "-cp", classes, "DnsClient")
		read = append(read, classes+"/**")
	case os.IsNotExist(err): // no javac: the single-file source launcher
		cmd = append(cmd, dnsFixture("DnsClient.java"))
		read = append(read, dnsFixture("DnsClient.java"))
	default:
		t.Fatal(err)
	}
	return dnsLang{prefix: "java", full: true, cmd: cmd, exec: []string{java}, read: read, write: []string{"/proc/self/coredump_filter"}}
}

// dnsBuildDir holds what the DNS tests build: beside the C fixtures (not
// under /tmp, which the baseline makes writable, so no policy may run
// programs there), removed with them.
func dnsBuildDir() string { return filepath.Join(filepath.Dir(fixtureBin), "dns") }

var buildGoDial = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(dnsBuildDir(), "godial")
	cmd := exec.Command("go", "build", "-o", bin, "./fixtures/dns/godial")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // Go's own resolver
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./fixtures/dns/godial: %v\n%s", err, out)
	}
	return bin, nil
})

// buildJavaClient compiles DnsClient.java once; an os.IsNotExist error
// means there is no javac.
var buildJavaClient = func() func(javac string) (string, error) {
	var once sync.Once
	var dir string
	var err error
	return func(javac string) (string, error) {
		once.Do(func() {
			if _, err = os.Stat(javac); err != nil {
				return
			}
			dir = filepath.Join(dnsBuildDir(), "java")
			out, cerr := exec.Command(javac, "-d", dir, dnsFixture("DnsClient.java")).CombinedOutput()
			if cerr != nil {
				err = fmt.Errorf("javac DnsClient.java: %v\n%s", cerr, out)
			}
		})
		return dir, err
	}
}()

// policyOpts are what a case adds to the language's policy.
type policyOpts struct {
	logAllowed bool
	minTTL     int // network.dns_min_ttl; 0: the default
}

// connectRules are the network.connect entries of a test's policy: at the
// listener's port, its api, short and many names exactly and *.wild.test;
// blocked-TAG.test and every address are left out.
func (n dnsNames) connectRules(port int) []string {
	var out []string
	for _, d := range []string{n.api, n.short, n.many, "*.wild.test"} {
		out = append(out, fmt.Sprintf("%s:%d", d, port))
	}
	return out
}

// policy allows the language's runtime and connects to connect.
func (l dnsLang) policy(connect []string, o policyOpts) string {
	var top, net string
	if o.logAllowed {
		top = "log_allowed = true\n"
	}
	if o.minTTL > 0 {
		net = fmt.Sprintf("dns_min_ttl = %d\n", o.minTTL)
	}
	return fmt.Sprintf(`mode = "enforce"
%s[process]
exec = %s
[filesystem]
read = %s
write = %s
[network]
connect = %s
%s`, top, tomlList(l.exec), tomlList(append(append([]string{}, l.exec...), l.read...)), tomlList(l.write), tomlList(connect), net)
}

func tomlList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ---- the cases ----

// dnsCtx is one case run for one language, natively or under Vigil.
type dnsCtx struct {
	*testing.T
	env    *dnsEnv
	lang   dnsLang
	n      dnsNames
	native bool
}

type dnsCase struct {
	name      string
	full      bool   // only for the languages that run every case
	only      string // only for the language of this tag prefix
	vigilOnly bool   // natively the same as another case
	check     func(c *dnsCtx)
}

var dnsCases = []dnsCase{
	{name: "allowed_exact", check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "connect", c.n.api)
		c.expectConnected(r, c.n.api, apiAddr)
		c.expectNoDenials(r, nil)
	}},
	{name: "allowed_wildcard", check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "connect", c.n.wild, c.n.deep)
		for _, name := range []string{c.n.wild, c.n.deep} {
			c.expectConnected(r, name, wildAddr)
		}
		c.expectNoDenials(r, nil)
	}},
	{name: "blocked", check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "connect", c.n.blocked)
		c.expectRefusedName(r, c.n.blocked)
	}},
	{name: "blocked_address", check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "address", blockedAddr.String())
		target := netip.AddrPortFrom(blockedAddr, uint16(c.env.port))
		if c.native {
			c.expectConnected(r, target.String(), blockedAddr)
			return
		}
		a := c.attempt(r, target.String())
		if !a.errno("EACCES") {
			c.Fatalf("connect to %s (no name resolved to it): want errno:EACCES, got %v\nstderr: %s", target, a, r.stderr)
		}
		c.expectAudit(r, "deny", "connect", target, "")
	}},
	{name: "many_over_tcp", full: true, check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "connect", c.n.many)
		a := c.attempt(r, c.n.many)
		if l := a.local(); !a.ok() || !manyPrefix.Contains(l) || l.As4()[3] < 1 || l.As4()[3] > manyCount {
			c.Fatalf("connect %s: want one of its %d addresses, got %v\nstderr: %s", c.n.many, manyCount, a, r.stderr)
		}
		if !c.sawQuery(c.n.many, "tcp") {
			c.Fatalf("%s: the server saw no query over TCP (its UDP answer is truncated): %v", c.n.many, c.env.queriesFor(c.n.many))
		}
		if !c.native {
			// Go sorts several answers by RFC 6724, connecting a UDP
			// socket to each at port 53 (sending nothing) to learn its
			// source address: Vigil lets those connects through with the
			// socket shut for sending, so they are no denials.
			c.expectNoDenials(r, nil)
		}
	}},
	{name: "short_ttl_expires", full: true, check: func(c *dnsCtx) {
		r := c.run(policyOpts{minTTL: 1}, "resolve-then-address", c.n.short, "2.5")
		if a := c.attempt(r, c.n.short); a.step != "resolve" || a.addr() != shortAddr {
			c.Fatalf("resolve %s: want %v, got %v\nstderr: %s", c.n.short, shortAddr, a, r.stderr)
		}
		target := netip.AddrPortFrom(shortAddr, uint16(c.env.port))
		var connects []attempt
		for _, a := range r.attempts {
			if a.step == "connect" && a.target == target.String() {
				connects = append(connects, a)
			}
		}
		if len(connects) != 2 || !connects[0].ok() || connects[0].local() != shortAddr {
			c.Fatalf("the first connect to %s (just resolved) must reach it: %v\nstderr: %s", target, connects, r.stderr)
		}
		if c.native {
			if !connects[1].ok() {
				c.Fatalf("natively the second connect must work too: %v", connects[1])
			}
			return
		}
		if !connects[1].errno("EACCES") {
			c.Fatalf("the connect to %s 2.5 s after its 1 s TTL ran out (dns_min_ttl = 1): want errno:EACCES, got %v\nstderr: %s", target, connects[1], r.stderr)
		}
		c.expectAudit(r, "deny", "connect", target, "")
	}},
	{name: "log_allowed", full: true, vigilOnly: true, check: func(c *dnsCtx) {
		r := c.run(policyOpts{logAllowed: true}, "connect", c.n.api)
		c.expectConnected(r, c.n.api, apiAddr)
		c.expectAudit(r, "allow", "connect", netip.AddrPortFrom(apiAddr, uint16(c.env.port)), c.n.api)
	}},
	{name: "urllib", only: "py", check: func(c *dnsCtx) {
		r := c.run(policyOpts{}, "urllib", c.n.api, c.n.blocked)
		c.expectConnected(r, c.n.api, apiAddr)
		c.expectRefusedName(r, c.n.blocked)
	}},
}

// testDNS runs the cases for one language natively (the harness and the
// fixture must give what the case expects when nothing is enforced) and under
// Vigil. The cases use names of their own and run in parallel.
func testDNS(t *testing.T, lang dnsLang) {
	env := getDNSEnv(t)
	for _, native := range []bool{true, false} {
		kind := map[bool]string{true: "native", false: "vigil"}[native]
		t.Run(kind, func(t *testing.T) {
			t.Parallel() // the native and the Vigil runs side by side
			for _, tc := range dnsCases {
				if (tc.full && !lang.full) || (tc.only != "" && tc.only != lang.prefix) || (native && tc.vigilOnly) {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.check(&dnsCtx{T: t, env: env, lang: lang, n: env.newNames(lang.prefix), native: native})
				})
			}
		})
	}
}

// run runs the fixture in MODE with the listener's port and args, under a
// policy built with o unless the case runs natively; the fixture must run to
// its end.
func (c *dnsCtx) run(o policyOpts, mode string, args ...string) dnsRun {
	c.Helper()
	argv := append(append(append([]string{}, c.lang.cmd...), mode, strconv.Itoa(c.env.port)), args...)
	pol := ""
	if !c.native {
		pol = writePolicy(c, c.lang.policy(c.n.connectRules(c.env.port), o))
	}
	r := c.env.runNS(c, pol, argv...)
	c.env.sync(c)
	c.Logf("%s\n%s", strings.Join(argv, " "), r.stdout)
	if !r.finished() {
		c.Fatalf("%v did not run to its end: exit %d\nstdout: %s\nstderr: %s", argv, r.code, r.stdout, r.stderr)
	}
	return r
}

// attempt returns the fixture's attempt on target.
func (c *dnsCtx) attempt(r dnsRun, target string) attempt {
	c.Helper()
	for _, a := range r.attempts {
		if a.target == target {
			return a
		}
	}
	c.Fatalf("no attempt on %s in the output:\n%s\nstderr: %s", target, r.stdout, r.stderr)
	return attempt{}
}

// expectConnected: the attempt on target connected and reached want.
func (c *dnsCtx) expectConnected(r dnsRun, target string, want netip.Addr) {
	c.Helper()
	if a := c.attempt(r, target); a.local() != want {
		c.Fatalf("%s %s: want to reach %v, got %v\nstderr: %s", a.step, target, want, a, r.stderr)
	}
	if _, err := netip.ParseAddrPort(target); err != nil && len(c.env.queriesFor(target)) == 0 {
		c.Fatalf("%s connected, but no query for it reached the DNS server", target)
	}
}

// expectRefusedName: natively name resolves and connects (to blockedAddr);
// under Vigil it fails to resolve (quickly, except where Go's resolver fails
// closed), no query for it reaches the server, and a deny audit line with op
// "dns" names it.
func (c *dnsCtx) expectRefusedName(r dnsRun, name string) {
	c.Helper()
	if c.native {
		c.expectConnected(r, name, blockedAddr)
		return
	}
	a := c.attempt(r, name)
	if !a.resolveFailed() {
		c.Fatalf("%s (no rule names it): want a resolution failure, got %v\nstderr: %s", name, a, r.stderr)
	}
	if a.ms >= quickMs {
		c.Fatalf("%s: the resolution failure took %.0f ms; a refused query must fail at once, not time out", name, a.ms)
	}
	c.expectNoQueries(name)
	c.expectAudit(r, "deny", "dns", netip.AddrPort{}, name)
}

// expectFailClosed: the name did not resolve, nothing reached the server for
// it, and nothing connected.
func (c *dnsCtx) expectFailClosed(r dnsRun, name string) {
	c.Helper()
	for _, a := range r.attempts {
		if a.ok() && a.step != "resolve" {
			c.Fatalf("under %s Go's resolver must fail closed, but %v connected", os.Getenv("VIGIL_TEST_BACKEND"), a)
		}
	}
	if a := c.attempt(r, name); !a.resolveFailed() {
		c.Fatalf("under %s Go's resolver must fail closed: want a resolution failure for %s, got %v\nstderr: %s", os.Getenv("VIGIL_TEST_BACKEND"), name, a, r.stderr)
	}
	c.expectNoQueries(name)
}

func (c *dnsCtx) expectNoQueries(name string) {
	c.Helper()
	if q := c.env.queriesFor(name); len(q) != 0 {
		c.Fatalf("queries for %s reached the DNS server: %+v", name, q)
	}
}

// sawQuery reports whether a query for name over transport reached the
// server.
func (c *dnsCtx) sawQuery(name, transport string) bool {
	for _, q := range c.env.queriesFor(name) {
		if q.transport == transport {
			return true
		}
	}
	return false
}

// dnsAudit is an audit line with the fields these tests read, domain
// included (auditLine predates it).
type dnsAudit struct {
	Level string `json:"level"`
	Vigil struct {
		Decision string `json:"decision"`
		Op       string `json:"op"`
		Path     string `json:"path"`
		Address  string `json:"address"`
		Domain   string `json:"domain"`
		Rule     string `json:"rule"`
		Mode     string `json:"mode"`
	} `json:"vigil"`
}

func (a dnsAudit) String() string {
	v := a.Vigil
	return fmt.Sprintf("%s %s path=%q address=%q domain=%q rule=%q", v.Decision, v.Op, v.Path, v.Address, v.Domain, v.Rule)
}

func (r dnsRun) dnsAudits() []dnsAudit {
	var out []dnsAudit
	for _, ln := range strings.Split(r.stderr, "\n") {
		var a dnsAudit
		if strings.HasPrefix(ln, "{") && json.Unmarshal([]byte(ln), &a) == nil && a.Vigil.Decision != "" {
			out = append(out, a)
		}
	}
	return out
}

// expectAudit: an audit line with this decision and op, at address (when
// valid; IPv4-mapped forms count as the IPv4 address) and naming domain
// (when not empty).
func (c *dnsCtx) expectAudit(r dnsRun, decision, op string, address netip.AddrPort, domain string) {
	c.Helper()
	for _, a := range r.dnsAudits() {
		v := a.Vigil
		if v.Decision != decision || v.Op != op || (domain != "" && v.Domain != domain) {
			continue
		}
		if address.IsValid() {
			got, err := netip.ParseAddrPort(v.Address)
			if err != nil || got.Addr().Unmap() != address.Addr() || got.Port() != address.Port() {
				continue
			}
		}
		return
	}
	want := fmt.Sprintf("decision %q op %q", decision, op)
	if address.IsValid() {
		want += fmt.Sprintf(" address %q", address)
	}
	if domain != "" {
		want += fmt.Sprintf(" domain %q", domain)
	}
	c.Fatalf("no audit line with %s; stderr:\n%s", want, r.stderr)
}

// expectNoDenials: the policy allowed everything the run did, but for the
// denials except accepts (when not nil).
func (c *dnsCtx) expectNoDenials(r dnsRun, except func(dnsAudit) bool) {
	c.Helper()
	for _, a := range r.dnsAudits() {
		if a.Vigil.Decision == "deny" && (except == nil || !except(a)) {
			c.Fatalf("unexpected denial: %v\nstderr: %s", a, r.stderr)
		}
	}
}
