package rules

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// equivalent reports whether two policies give the same answers: the same
// mode, switches and lists (each in order), ignoring sources.
func equivalent(p, q *Policy) (bool, string) {
	if p.mode != q.mode || p.c.logAllowed != q.c.logAllowed || p.c.allowWritableExec != q.c.allowWritableExec {
		return false, "mode or switches differ"
	}
	// Order matters only within a list (the first matching rule of a list
	// is the one reported), so compare list by list.
	for k := listKind(0); k < nKinds; k++ {
		var a, b []string
		for _, e := range p.c.entries {
			if e.kind == k {
				a = append(a, e.text)
			}
		}
		for _, e := range q.c.entries {
			if e.kind == k {
				b = append(b, e.text)
			}
		}
		if strings.Join(a, "\x00") != strings.Join(b, "\x00") {
			return false, listNames[k] + " differs"
		}
	}
	return true, ""
}

func roundTrip(t testing.TB, p *Policy) *Policy {
	t.Helper()
	var buf bytes.Buffer
	if err := p.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	q, err := Parse("effective.toml", buf.Bytes(), Options{Function: p.Function()})
	if err != nil {
		t.Fatalf("WriteTOML output does not re-parse: %v\n%s", err, buf.String())
	}
	if ok, why := equivalent(p, q); !ok {
		t.Fatalf("round trip not equivalent: %s\n%s", why, buf.String())
	}
	return q
}

func fixtureFiles(t *testing.T) []string {
	files, err := filepath.Glob("../fixtures/rules/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return append(files, "../rules.example.toml")
}

func TestWriteTOMLRoundTrip(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		for _, fn := range []string{"", "orders-api", "etl-7", "x-debug", "reports"} {
			p, err := Load(f, Options{Function: fn, RuntimeAPI: "127.0.0.1:9001"})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			q := roundTrip(t, p)
			// Same answers on a sample of queries.
			me := Caller{Pid: 9, Tid: 10}
			for _, path := range []string{"/var/task/a", "/tmp/x", "/tmp/secrets/k", "/opt/bin/tool", "/tmp/orders/1",
				"/proc/9/maps", "/proc/10/comm", "/etc/shadow", "/usr/bin/git", "/tmp/etl/x", "/tmp/bin/x"} {
				for _, acc := range []Access{Read, Write} {
					a, b := p.Open(path, acc, me), q.Open(path, acc, me)
					if a.Allow != b.Allow || a.Rule != b.Rule {
						t.Errorf("%s %s: Open(%s) %+v vs %+v", f, fn, path, a, b)
					}
				}
				if a, b := p.Exec(path, me), q.Exec(path, me); a.Allow != b.Allow || a.Rule != b.Rule {
					t.Errorf("%s %s: Exec(%s) %+v vs %+v", f, fn, path, a, b)
				}
			}
			for _, ap := range []string{"127.0.0.1:9001", "10.1.1.1:5432", "[::ffff:10.30.0.1]:443", "127.0.0.1:8080"} {
				a := netip.MustParseAddrPort(ap)
				if x, y := p.Connect(a), q.Connect(a); x.Allow != y.Allow || x.Rule != y.Rule {
					t.Errorf("%s %s: Connect(%s) %+v vs %+v", f, fn, ap, x, y)
				}
				if x, y := p.Listen(a), q.Listen(a); x.Allow != y.Allow || x.Rule != y.Rule {
					t.Errorf("%s %s: Listen(%s) %+v vs %+v", f, fn, ap, x, y)
				}
			}
		}
	}
}

func TestWriteTOMLOutput(t *testing.T) {
	src := `mode = "audit"
log_allowed = true
[process]
exec = ["/usr/bin/git"]
[filesystem]
read = ["/usr/bin/git"]
deny = ["/tmp/s\"q/**"]
[network]
listen = ["127.0.0.1:8080"]
[functions."orders-*"]
network.connect = ["api.stripe.com:443"]
`
	p := mustParse(t, src, Options{Function: "orders-api", RuntimeAPI: "127.0.0.1:9001"})
	var buf bytes.Buffer
	if err := p.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"# Effective Vigil policy from rules.toml for function \"orders-api\".\n",
		"\nmode = \"audit\"\nbaseline = false # the baseline's rules are written out below\nlog_allowed = true\n",
		"[process]\nexec = [\n  \"/usr/bin/git\", # rules.toml:4\n]\n",
		"  \"/var/task/**\", # baseline\n",
		"  \"/usr/bin/git\", # rules.toml:6\n]\nwrite = [\n  \"/tmp/**\", # baseline\n",
		"deny = [\n  \"/tmp/s\\\"q/**\", # rules.toml:7\n]\n",
		"[network]\nconnect = [\n  \"127.0.0.1:9001\", # baseline\n  \"api.stripe.com:443\", # rules.toml:11 functions.\"orders-*\"\n]\nlisten = [\n  \"127.0.0.1:8080\", # rules.toml:9\n]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Deterministic.
	var again bytes.Buffer
	p.WriteTOML(&again)
	if again.String() != out {
		t.Errorf("WriteTOML is not deterministic")
	}
	// Empty lists are written as [].
	q := mustParse(t, "baseline = false", Options{})
	buf.Reset()
	q.WriteTOML(&buf)
	if !strings.Contains(buf.String(), "[process]\nexec = []\n") {
		t.Errorf("empty policy:\n%s", buf.String())
	}
	roundTrip(t, q)
	// The warning of allow_writable_exec is carried along.
	w := mustParse(t, "process.exec = [\"/tmp/x\"]\nprocess.allow_writable_exec = true\n", Options{})
	buf.Reset()
	w.WriteTOML(&buf)
	if !strings.Contains(buf.String(), "# WARNING: process.allow_writable_exec = true: process.exec \"/tmp/x\"") ||
		!strings.Contains(buf.String(), "allow_writable_exec = true # WARNING") {
		t.Errorf("writable exec output:\n%s", buf.String())
	}
	roundTrip(t, w)
}

func TestExampleFileLoads(t *testing.T) {
	data, err := os.ReadFile("../rules.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("rules.example.toml", data, Options{Function: "orders-api", RuntimeAPI: "127.0.0.1:9001"})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Exec("/usr/bin/git", Caller{}); !d.Allow {
		t.Errorf("example: git: %+v", d)
	}
	if d := p.Open("/tmp/orders/x", Write, Caller{}); !d.Allow {
		t.Errorf("example: orders write: %+v", d)
	}
	if d := p.Open("/tmp/secrets/x", Read, Caller{}); d.Allow {
		t.Errorf("example: secrets: %+v", d)
	}
}
