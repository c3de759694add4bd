package rules

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func mustParse(t testing.TB, src string, opt Options) *Policy {
	t.Helper()
	p, err := Parse("rules.toml", []byte(src), opt)
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return p
}

type openCase struct {
	path  string
	acc   Access
	c     Caller
	allow bool
	rule  string
	src   string
}

func checkOpen(t *testing.T, p *Policy, cases []openCase) {
	t.Helper()
	for _, c := range cases {
		d := p.Open(c.path, c.acc, c.c)
		if d.Allow != c.allow || d.Rule != c.rule || d.Source != c.src {
			t.Errorf("Open(%q, %d, %+v) = %+v; want {%v %s %s}", c.path, c.acc, c.c, d, c.allow, c.rule, c.src)
		}
	}
}

const fsRules = `baseline = false
[filesystem]
read  = ["/var/task/**", "/etc/app.conf", "/srv/*/pub/*.txt"]
write = ["/tmp/**"]
deny  = [
  "/tmp/secrets/**",
  "/var/task/.env",
]
`

func TestOpenDenyWinsWriteImpliesRead(t *testing.T) {
	p := mustParse(t, fsRules, Options{})
	none := Caller{}
	checkOpen(t, p, []openCase{
		{"/var/task/app.py", Read, none, true, `filesystem.read "/var/task/**"`, "rules.toml:3"},
		{"/var/task", Read, none, true, `filesystem.read "/var/task/**"`, "rules.toml:3"}, // dir/** matches dir
		{"/var/task/a/b/c", Read, none, true, `filesystem.read "/var/task/**"`, "rules.toml:3"},
		{"/var/taskx", Read, none, false, "no filesystem.read pattern matches", ""},
		{"/var/task/app.py", Write, none, false, "no filesystem.write pattern matches", ""},
		{"/var/task/app.py", Read | Write, none, false, "no filesystem.write pattern matches", ""},
		{"/etc/app.conf", Read, none, true, `filesystem.read "/etc/app.conf"`, "rules.toml:3"},
		{"/etc/app.conf2", Read, none, false, "no filesystem.read pattern matches", ""},
		{"/srv/a/pub/x.txt", Read, none, true, `filesystem.read "/srv/*/pub/*.txt"`, "rules.toml:3"},
		{"/srv/a/b/pub/x.txt", Read, none, false, "no filesystem.read pattern matches", ""},
		{"/srv/a/pub/x.txt2", Read, none, false, "no filesystem.read pattern matches", ""},
		// write implies read
		{"/tmp/out", Read, none, true, `filesystem.write "/tmp/**"`, "rules.toml:4"},
		{"/tmp/out", Write, none, true, `filesystem.write "/tmp/**"`, "rules.toml:4"},
		{"/tmp/out", Read | Write, none, true, `filesystem.write "/tmp/**"`, "rules.toml:4"},
		{"/tmp/out", 0, none, true, `filesystem.write "/tmp/**"`, "rules.toml:4"},
		// deny wins over write and read, and names the line of its element
		{"/tmp/secrets/k", Read, none, false, `filesystem.deny "/tmp/secrets/**"`, "rules.toml:6"},
		{"/tmp/secrets", Write, none, false, `filesystem.deny "/tmp/secrets/**"`, "rules.toml:6"},
		{"/var/task/.env", Read, none, false, `filesystem.deny "/var/task/.env"`, "rules.toml:7"},
		// malformed queries are denied, never allowed
		{"var/task/x", Read, none, false, "not an absolute, clean path", ""},
		{"/var/task/../../etc/shadow", Read, none, false, "not an absolute, clean path", ""},
		{"/var/task/./x", Read, none, false, "not an absolute, clean path", ""},
		{"/var/task//x", Read, none, false, "not an absolute, clean path", ""},
		{"/var/task/", Read, none, false, "not an absolute, clean path", ""},
		{"/var/task/x\x00", Read, none, false, "not an absolute, clean path", ""},
		{"", Read, none, false, "not an absolute, clean path", ""},
		{"/", Read, none, false, "no filesystem.read pattern matches", ""},
	})
}

func TestOpenFirstRuleReported(t *testing.T) {
	p := mustParse(t, "baseline = false\nfilesystem.read = [\"/a/**\", \"/a/b/*\", \"/a/b/c\"]\n", Options{})
	if d := p.Open("/a/b/c", Read, Caller{}); d.Rule != `filesystem.read "/a/**"` {
		t.Errorf("got %+v", d)
	}
}

func TestExecNeedsReadAndPattern(t *testing.T) {
	p := mustParse(t, `baseline = false
[process]
exec = ["/usr/bin/git", "/var/lang/bin/python3*", "/opt/tools/*"]
[filesystem]
read = ["/usr/bin/git", "/var/lang/**", "/usr/bin/curl"]
deny = ["/opt/tools/evil"]
`, Options{})
	cases := []struct {
		path      string
		allow     bool
		rule, src string
	}{
		{"/usr/bin/git", true, `process.exec "/usr/bin/git"`, "rules.toml:3"},
		{"/var/lang/bin/python3.12", true, `process.exec "/var/lang/bin/python3*"`, "rules.toml:3"},
		{"/var/lang/bin/node", false, "no process.exec pattern matches", ""},
		{"/usr/bin/curl", false, "no process.exec pattern matches", ""}, // readable, not executable
		{"/opt/tools/x", false, `process.exec "/opt/tools/*" matches, but no filesystem.read pattern does`, "rules.toml:3"},
		{"/opt/tools/evil", false, `filesystem.deny "/opt/tools/evil"`, "rules.toml:6"},
		{"usr/bin/git", false, "not an absolute, clean path", ""},
	}
	for _, c := range cases {
		d := p.Exec(c.path, Caller{Pid: 10})
		if d.Allow != c.allow || d.Rule != c.rule || d.Source != c.src {
			t.Errorf("Exec(%q) = %+v; want {%v %s %s}", c.path, d, c.allow, c.rule, c.src)
		}
	}
}

func TestProcSelf(t *testing.T) {
	p := mustParse(t, `baseline = false
filesystem.read = ["/proc/self/status", "/proc/self/fd/**", "/proc/thread-self/comm", "/proc/self/task/*/stat", "/proc/cpuinfo"]
filesystem.deny = ["/proc/self/environ", "/proc/thread-self/mem"]
`, Options{})
	me := Caller{Pid: 100, Tid: 105}
	main := Caller{Pid: 100}
	checkOpen(t, p, []openCase{
		{"/proc/100/status", Read, me, true, `filesystem.read "/proc/self/status"`, "rules.toml:2"},
		{"/proc/100/status", Read, main, true, `filesystem.read "/proc/self/status"`, "rules.toml:2"},
		{"/proc/100/fd", Read, me, true, `filesystem.read "/proc/self/fd/**"`, "rules.toml:2"},
		{"/proc/100/fd/3", Read, me, true, `filesystem.read "/proc/self/fd/**"`, "rules.toml:2"},
		// another process never matches a /proc/self pattern
		{"/proc/101/status", Read, me, false, "no filesystem.read pattern matches", ""},
		{"/proc/1/status", Read, me, false, "no filesystem.read pattern matches", ""},
		{"/proc/1000/status", Read, me, false, "no filesystem.read pattern matches", ""},
		{"/proc/0100/status", Read, me, false, "no filesystem.read pattern matches", ""},
		// nor does anything when the caller is unknown
		{"/proc/100/status", Read, Caller{}, false, "no filesystem.read pattern matches", ""},
		// the literal /proc/self (not substituted) is the caller
		{"/proc/self/status", Read, me, true, `filesystem.read "/proc/self/status"`, "rules.toml:2"},
		// thread-self: the calling thread's task directory
		{"/proc/100/task/105/comm", Read, me, true, `filesystem.read "/proc/thread-self/comm"`, "rules.toml:2"},
		{"/proc/105/comm", Read, me, true, `filesystem.read "/proc/thread-self/comm"`, "rules.toml:2"},
		{"/proc/thread-self/comm", Read, me, true, `filesystem.read "/proc/thread-self/comm"`, "rules.toml:2"},
		{"/proc/100/task/100/comm", Read, main, true, `filesystem.read "/proc/thread-self/comm"`, "rules.toml:2"},
		{"/proc/100/task/106/comm", Read, me, false, "no filesystem.read pattern matches", ""},
		{"/proc/100/task/106/stat", Read, me, true, `filesystem.read "/proc/self/task/*/stat"`, "rules.toml:2"},
		{"/proc/105/stat", Read, me, true, `filesystem.read "/proc/self/task/*/stat"`, "rules.toml:2"},
		{"/proc/101/task/106/stat", Read, me, false, "no filesystem.read pattern matches", ""},
		// denies apply through every alias
		{"/proc/100/environ", Read, me, false, `filesystem.deny "/proc/self/environ"`, "rules.toml:3"},
		{"/proc/self/environ", Read, me, false, `filesystem.deny "/proc/self/environ"`, "rules.toml:3"},
		{"/proc/105/mem", Read, me, false, `filesystem.deny "/proc/thread-self/mem"`, "rules.toml:3"},
		{"/proc/100/task/105/mem", Read, me, false, `filesystem.deny "/proc/thread-self/mem"`, "rules.toml:3"},
		{"/proc/cpuinfo", Read, me, true, `filesystem.read "/proc/cpuinfo"`, "rules.toml:2"},
	})
}

func TestProcWildcardMatchesOthersLiterally(t *testing.T) {
	p := mustParse(t, "baseline = false\nfilesystem.read = [\"/proc/[0-9]*/stat\"]\n", Options{})
	me := Caller{Pid: 7}
	if d := p.Open("/proc/8/stat", Read, me); !d.Allow {
		t.Errorf("explicit wildcard over other pids: %+v", d)
	}
	// The caller's own entry is /proc/self/stat, which [0-9]* does not match.
	if d := p.Open("/proc/7/stat", Read, me); d.Allow {
		t.Errorf("own entry matched a digits-only pattern: %+v", d)
	}
}

func TestBaseline(t *testing.T) {
	on := mustParse(t, "", Options{RuntimeAPI: "127.0.0.1:9001"})
	off := mustParse(t, "baseline = false", Options{RuntimeAPI: "127.0.0.1:9001"})
	me := Caller{Pid: 42}
	reads := []string{"/var/lang/bin/python3.12", "/var/runtime/bootstrap", "/var/task/app.py", "/opt/layer/x",
		"/usr/lib64/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/etc/ld.so.cache", "/etc/ssl/certs/ca-bundle.crt",
		"/etc/pki/tls/certs/ca-bundle.crt", "/usr/share/zoneinfo/UTC", "/etc/resolv.conf", "/proc/42/maps",
		"/proc/42/status", "/proc/42/fd/1", "/proc/42/task/43/comm", "/proc/cpuinfo", "/sys/fs/cgroup/memory.max",
		"/sys/devices/system/cpu/online", "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"}
	writes := []string{"/tmp", "/tmp/x/y", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/stdout", "/proc/42/fd/1", "/proc/42/task/43/comm"}
	denied := []string{"/etc/shadow", "/root/.ssh/id_rsa", "/proc/42/environ", "/proc/42/mem", "/proc/1/status",
		"/proc/1/maps", "/var/task", "/home/x", "/usr/bin/python3", "/var/lang", "/"}
	for _, r := range reads {
		if d := on.Open(r, Read, me); !d.Allow || d.Source != "baseline" {
			t.Errorf("baseline on: read %s: %+v", r, d)
		}
		if d := off.Open(r, Read, me); d.Allow {
			t.Errorf("baseline off: read %s: %+v", r, d)
		}
	}
	for _, w := range writes {
		if d := on.Open(w, Write, me); !d.Allow || d.Source != "baseline" {
			t.Errorf("baseline on: write %s: %+v", w, d)
		}
		if d := off.Open(w, Write, me); d.Allow {
			t.Errorf("baseline off: write %s: %+v", w, d)
		}
	}
	for _, r := range reads[:12] {
		if d := on.Open(r, Write, me); d.Allow {
			t.Errorf("baseline: write to read-only %s allowed: %+v", r, d)
		}
	}
	for _, x := range denied {
		if x == "/var/task" || x == "/var/lang" {
			continue // directories themselves are readable
		}
		if d := on.Open(x, Read, me); d.Allow {
			t.Errorf("baseline allows %s: %+v", x, d)
		}
	}
	for _, x := range []string{"/var/lang/bin/python3.12", "/bin/sh", "/tmp/x"} {
		if d := on.Exec(x, me); d.Allow {
			t.Errorf("baseline allows exec of %s", x)
		}
	}
	rt := netip.MustParseAddrPort("127.0.0.1:9001")
	if d := on.Connect(rt); !d.Allow || d.Rule != `network.connect "127.0.0.1:9001"` || d.Source != "baseline" {
		t.Errorf("runtime API: %+v", d)
	}
	if d := on.Connect(netip.MustParseAddrPort("[::ffff:127.0.0.1]:9001")); !d.Allow {
		t.Errorf("runtime API 4in6: %+v", d)
	}
	if d := on.Connect(netip.MustParseAddrPort("127.0.0.1:9002")); d.Allow {
		t.Errorf("other port: %+v", d)
	}
	if d := off.Connect(rt); d.Allow {
		t.Errorf("baseline off allows runtime API: %+v", d)
	}
	if d := on.Listen(netip.MustParseAddrPort("127.0.0.1:9001")); d.Allow {
		t.Errorf("baseline allows listen: %+v", d)
	}
	// localhost means both loopbacks.
	lh := mustParse(t, "", Options{RuntimeAPI: "localhost:9001"})
	for _, a := range []string{"127.0.0.1:9001", "[::1]:9001"} {
		if d := lh.Connect(netip.MustParseAddrPort(a)); !d.Allow {
			t.Errorf("localhost runtime API %s: %+v", a, d)
		}
	}
	// No runtime API given: nothing to connect to.
	if d := mustParse(t, "", Options{}).Connect(rt); d.Allow {
		t.Errorf("no runtime API: %+v", d)
	}
}

func TestFunctionSections(t *testing.T) {
	src := `baseline = false
filesystem.read = ["/var/task/**"]
network.connect = ["10.0.0.0/8:5432"]

[functions."orders-*"]
filesystem.write = ["/tmp/orders/**"]
network.connect = ["api.stripe.com:443", "192.0.2.1"]

[functions."orders-api"]
[functions."orders-api".filesystem]
read = ["/srv/api/**"]

[functions.billing]
network = { connect = ["198.51.100.0/24:443"], listen = ["127.0.0.1:8080"] }
process = { exec = ["/srv/bin/tool"] }
filesystem.read = ["/srv/bin/tool"]
`
	api := mustParse(t, src, Options{Function: "orders-api"})
	other := mustParse(t, src, Options{Function: "orders-worker"})
	billing := mustParse(t, src, Options{Function: "billing"})
	none := mustParse(t, src, Options{})
	c := Caller{}
	if d := api.Open("/tmp/orders/1", Write, c); !d.Allow || d.Rule != `functions."orders-*".filesystem.write "/tmp/orders/**"` || d.Source != "rules.toml:6" {
		t.Errorf("orders-api write: %+v", d)
	}
	if d := api.Open("/srv/api/x", Read, c); !d.Allow || d.Rule != `functions.orders-api.filesystem.read "/srv/api/**"` || d.Source != "rules.toml:11" {
		t.Errorf("orders-api read (both sections apply): %+v", d)
	}
	if d := api.Open("/var/task/x", Read, c); !d.Allow || d.Rule != `filesystem.read "/var/task/**"` {
		t.Errorf("base still applies: %+v", d)
	}
	if d := other.Open("/tmp/orders/1", Write, c); !d.Allow {
		t.Errorf("orders-worker write: %+v", d)
	}
	if d := other.Open("/srv/api/x", Read, c); d.Allow {
		t.Errorf("orders-worker got orders-api's read: %+v", d)
	}
	for _, p := range []*Policy{billing, none} {
		if d := p.Open("/tmp/orders/1", Write, c); d.Allow {
			t.Errorf("%q got orders-* write: %+v", p.Function(), d)
		}
	}
	if got := api.DomainsFor("api.stripe.com"); len(got) != 1 || got[0] != (DomainRule{"api.stripe.com", 443, "rules.toml:7"}) {
		t.Errorf("DomainsFor: %+v", got)
	}
	if got := billing.DomainsFor("api.stripe.com"); got != nil {
		t.Errorf("billing DomainsFor: %+v", got)
	}
	if d := api.Connect(netip.MustParseAddrPort("192.0.2.1:1234")); !d.Allow || d.Source != "rules.toml:7" {
		t.Errorf("section connect: %+v", d)
	}
	if d := billing.Connect(netip.MustParseAddrPort("198.51.100.7:443")); !d.Allow || d.Rule != `functions.billing.network.connect "198.51.100.0/24:443"` || d.Source != "rules.toml:14" {
		t.Errorf("inline table connect: %+v", d)
	}
	if d := billing.Listen(netip.MustParseAddrPort("127.0.0.1:8080")); !d.Allow || d.Source != "rules.toml:14" {
		t.Errorf("inline listen: %+v", d)
	}
	if d := billing.Exec("/srv/bin/tool", c); !d.Allow || d.Source != "rules.toml:15" {
		t.Errorf("section exec: %+v", d)
	}
	if d := api.Exec("/srv/bin/tool", c); d.Allow {
		t.Errorf("exec leaked to another function: %+v", d)
	}
	if d := api.Connect(netip.MustParseAddrPort("10.1.1.1:5432")); !d.Allow || d.Source != "rules.toml:3" {
		t.Errorf("base connect: %+v", d)
	}
}

func TestFunctionSectionOverlapAcrossSelectedSections(t *testing.T) {
	src := `baseline = false
[functions."a-*"]
process.exec = ["/opt/x"]
filesystem.read = ["/opt/x"]
[functions."*-b"]
filesystem.write = ["/opt/*"]
`
	if _, err := Parse("rules.toml", []byte(src), Options{Function: "a-c"}); err != nil {
		t.Errorf("sections that never meet: %v", err)
	}
	_, err := Parse("rules.toml", []byte(src), Options{Function: "a-b"})
	if err == nil || !strings.Contains(err.Error(), `rules.toml:3: functions."a-*".process.exec[0]: "/opt/x" overlaps functions."*-b".filesystem.write "/opt/*" (rules.toml:6)`) {
		t.Errorf("a-b: %v", err)
	}
}

func TestAllowWritableExec(t *testing.T) {
	p := mustParse(t, `[process]
exec = ["/tmp/bin/tool"]
allow_writable_exec = true
[filesystem]
read = ["/usr/bin/env"]
`, Options{})
	w := p.Warnings()
	if len(w) != 1 || w[0] != `process.allow_writable_exec = true: process.exec "/tmp/bin/tool" (rules.toml:2) overlaps filesystem.write "/tmp/**" (baseline): both match "/tmp/bin/tool", so the function can write a program there and run it` {
		t.Errorf("warnings: %q", w)
	}
	if d := p.Exec("/tmp/bin/tool", Caller{}); !d.Allow {
		t.Errorf("exec: %+v", d)
	}
	if len(mustParse(t, "", Options{}).Warnings()) != 0 {
		t.Errorf("warnings without opt-out")
	}
}

func TestModeAndLogAllowed(t *testing.T) {
	p := mustParse(t, "", Options{})
	if p.Mode() != Enforce || p.LogAllowed() {
		t.Errorf("defaults: %v %v", p.Mode(), p.LogAllowed())
	}
	p = mustParse(t, "mode = \"audit\"\nlog_allowed = true\n", Options{})
	if p.Mode() != Audit || !p.LogAllowed() {
		t.Errorf("set: %v %v", p.Mode(), p.LogAllowed())
	}
	q := p.WithMode(Enforce)
	if q.Mode() != Enforce || p.Mode() != Audit || !q.LogAllowed() {
		t.Errorf("WithMode: %v %v", q.Mode(), p.Mode())
	}
	if d := q.Open("/var/task/x", Read, Caller{}); !d.Allow {
		t.Errorf("WithMode copy lost rules")
	}
	if m, ok := ParseMode("audit"); !ok || m != Audit || m.String() != "audit" || Enforce.String() != "enforce" {
		t.Errorf("ParseMode")
	}
}

func TestNilPolicyDenies(t *testing.T) {
	var p *Policy
	if p.Open("/tmp", Read, Caller{}).Allow || p.Exec("/bin/sh", Caller{}).Allow ||
		p.Connect(netip.MustParseAddrPort("1.1.1.1:53")).Allow || p.Listen(netip.MustParseAddrPort("0.0.0.0:1")).Allow ||
		p.DomainsFor("a.com") != nil || p.LogAllowed() || p.Mode() != Enforce || p.WriteTOML(&strings.Builder{}) == nil {
		t.Errorf("nil policy allowed something")
	}
	z := &Policy{}
	if z.Open("/tmp", Read, Caller{}).Allow || z.Exec("/bin/sh", Caller{}).Allow || z.Connect(netip.MustParseAddrPort("1.1.1.1:53")).Allow ||
		z.Listen(netip.MustParseAddrPort("0.0.0.0:1")).Allow || z.DomainsFor("a.com") != nil || z.LogAllowed() || z.Warnings() != nil ||
		z.Function() != "" || z.WriteTOML(&strings.Builder{}) == nil || z.WithMode(Audit).Open("/tmp", Read, Caller{}).Allow {
		t.Errorf("zero policy allowed something")
	}
}

func TestConcurrentQueries(t *testing.T) {
	p := mustParse(t, fsRules, Options{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if !p.Open("/var/task/a", Read, Caller{Pid: 3}).Allow || p.Open("/tmp/secrets/x", Read, Caller{}).Allow {
					t.Error("wrong answer under concurrency")
					return
				}
				p.Open("/proc/3/status", Read, Caller{Pid: 3})
			}
		}()
	}
	wg.Wait()
}

func TestCleanPath(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/a": true, "/a/b.c/..d": true, "": false, "a": false, "/a/": false,
		"//": false, "/a//b": false, "/./a": false, "/a/.": false, "/a/..": false, "/a\x00": false} {
		if CleanPath(p) != want {
			t.Errorf("CleanPath(%q) != %v", p, want)
		}
	}
}

func TestExecOverlapNegative(t *testing.T) {
	for _, src := range []string{
		"process.exec = [\"/opt/bin/*\"]\nfilesystem.write = [\"/opt/data/**\"]\nfilesystem.read = [\"/opt/bin/*\"]\n",
		"process.exec = [\"/var/lang/bin/python3*\"]\n",                            // baseline /tmp/** does not reach it
		"process.exec = [\"/srv/[a-c]*\"]\nfilesystem.write = [\"/srv/[d-f]*\"]\n", // disjoint classes
		"process.exec = [\"/srv/*/bin/x\"]\nfilesystem.write = [\"/srv/**/data\"]\n",
		"process.exec = [\"/srv/tmp\"]\n", // /tmp/** is not /srv/tmp
	} {
		if _, err := Parse("rules.toml", []byte(src), Options{}); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestLoadSourceIsPathAsGiven(t *testing.T) {
	p, err := Load("../fixtures/rules/no-baseline.toml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Exec("/var/lang/bin/node", Caller{}); !d.Allow || d.Source != "../fixtures/rules/no-baseline.toml:7" {
		t.Errorf("%+v", d)
	}
	if !p.LogAllowed() {
		t.Errorf("log_allowed")
	}
}

func TestWarningsOnlyForEffectivePolicy(t *testing.T) {
	src := "process.allow_writable_exec = true\n[functions.a]\nprocess.exec = [\"/tmp/a\"]\n[functions.b]\nprocess.exec = [\"/tmp/b\"]\n"
	if w := mustParse(t, src, Options{Function: "a"}).Warnings(); len(w) != 1 || !strings.Contains(w[0], `"/tmp/a"`) {
		t.Errorf("a: %q", w)
	}
	if w := mustParse(t, src, Options{Function: "c"}).Warnings(); len(w) != 0 {
		t.Errorf("c: %q", w)
	}
}

func TestAbstractSockets(t *testing.T) {
	p := mustParse(t, `baseline = false
[network]
connect = ["10.0.0.1:80", "@dbus-*", "@exact"]
listen  = ["@mine", "127.0.0.1:8080"]
`, Options{})
	for _, c := range []struct {
		name  string
		allow bool
		rule  string
	}{
		{"dbus-123", true, `network.connect "@dbus-*"`},
		{"dbus-", true, `network.connect "@dbus-*"`},
		{"exact", true, `network.connect "@exact"`},
		{"exact\x00", false, "no network.connect rule matches the abstract socket"},
		{"mine", false, "no network.connect rule matches the abstract socket"},
	} {
		d := p.ConnectAbstract(c.name)
		if d.Allow != c.allow || d.Rule != c.rule || (c.allow && d.Source == "") {
			t.Errorf("ConnectAbstract(%q) = %+v", c.name, d)
		}
	}
	if d := p.ListenAbstract("mine"); !d.Allow || d.Rule != `network.listen "@mine"` || d.Source != "rules.toml:4" {
		t.Errorf("ListenAbstract(mine) = %+v", d)
	}
	if d := p.ListenAbstract("dbus-1"); d.Allow {
		t.Errorf("ListenAbstract(dbus-1) = %+v", d)
	}
	// Abstract entries do not leak into address decisions and vice versa.
	if d := p.Connect(netip.MustParseAddrPort("10.0.0.1:80")); !d.Allow {
		t.Errorf("Connect = %+v", d)
	}
	if d := p.ConnectAbstract("10.0.0.1:80"); d.Allow {
		t.Errorf("ConnectAbstract(addr) = %+v", d)
	}
	var nilP *Policy
	if nilP.ConnectAbstract("x").Allow || nilP.ListenAbstract("x").Allow {
		t.Error("nil policy allows")
	}
	// Errors name file:line:key.
	_, err := Parse("rules.toml", []byte("[network]\nconnect = [\"@\"]\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), `rules.toml:2: network.connect[0]: "@" is "@" alone`) {
		t.Errorf("error = %v", err)
	}
}

// TestScanBaseline: the line scanner reads the same baseline entries as
// the TOML decoder, and gives up (ok false: the decoder is used) on what
// it does not know.
func TestScanBaseline(t *testing.T) {
	got, ok := scanBaseline(BaselineTOML)
	if !ok {
		t.Fatal("scanBaseline does not read BaselineTOML: the cold start decodes it as TOML")
	}
	raw, errs := decode("baseline", []byte(BaselineTOML))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	n := 0
	for k := listKind(0); k < nKinds; k++ {
		if len(got[k]) != len(raw.lists[k]) {
			t.Fatalf("%s: scanned %d entries, decoded %d", listNames[k], len(got[k]), len(raw.lists[k]))
		}
		for i, r := range raw.lists[k] {
			if got[k][i].text != r.text || got[k][i].index != r.index {
				t.Fatalf("%s[%d]: scanned %q (index %d), decoded %q (index %d)", listNames[k], i, got[k][i].text, got[k][i].index, r.text, r.index)
			}
			n++
		}
	}
	if n < 50 {
		t.Fatalf("only %d baseline entries", n)
	}
	for _, src := range []string{
		"[filesystem]\nread = [\n  \"/a\\\\b\",\n]\n",              // an escape
		"[filesystem]\nread = [\"/a\", \"/b\"]\n",                  // one-line array
		"[filesystem]\nread = [\n  \"/a\", # note\n]\n",            // trailing comment
		"[filesystem]\nread = [\n  \"/a\",\n",                      // unclosed
		"[network]\nconnect = [\n  \"10.0.0.0/8\",\n]\n",           // another table
		"read = [\n  \"/a\",\n]\n",                                 // no table
		"[filesystem]\nread = [\n  '/a',\n]\n",                     // literal string
		"[filesystem]\nread = [\n  \"/a\",\n]\nmode = \"audit\"\n", // another key
	} {
		if _, ok := scanBaseline(src); ok {
			t.Errorf("scanBaseline took %q", src)
		}
	}
}
