package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. On a shared machine the
// wall-clock ns/op of a benchmark includes time other processes ran;
// "cpu-ns/decision" does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds ns/decision (wall) and cpu-ns/decision figures.
func report(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/decision")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/decision")
}

// benchPolicy builds a policy of 200 file patterns (literals, "*", "**",
// character classes, deep trees) and 200 network rules, on top of the
// baseline (about 65 more patterns).
func benchPolicy(tb testing.TB) *Policy {
	var read, write, deny, connect []string
	for i := 0; i < 50; i++ {
		read = append(read, fmt.Sprintf("/etc/app/conf-%d.json", i))               // literal
		read = append(read, fmt.Sprintf("/srv/app-%d/*.py", i))                    // *
		read = append(read, fmt.Sprintf("/srv/vendor/pkg-%d/lib/**/[a-m]*.so", i)) // deep tree, class
		write = append(write, fmt.Sprintf("/data/tenant-%d/**", i))                // **
	}
	for i := 0; i < 20; i++ {
		deny = append(deny, fmt.Sprintf("/data/tenant-%d/secrets/**", i))
	}
	for i := 0; i < 100; i++ {
		connect = append(connect, fmt.Sprintf("10.%d.0.0/16:%d", i, 5000+i))
		connect = append(connect, fmt.Sprintf("[2001:db8:%x::/48]:443", i))
	}
	q := func(ss []string) string { return `["` + strings.Join(ss, `", "`) + `"]` }
	src := fmt.Sprintf("[filesystem]\nread = %s\nwrite = %s\ndeny = %s\n[network]\nconnect = %s\n",
		q(read), q(write[:30]), q(deny), q(connect))
	p, err := Parse("bench.toml", []byte(src), Options{RuntimeAPI: "127.0.0.1:9001"})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

var sink Decision

func BenchmarkOpenDecision(b *testing.B) {
	p := benchPolicy(b)
	me := Caller{Pid: 4242, Tid: 4243}
	paths := []struct {
		path  string
		acc   Access
		allow bool
	}{
		{"/etc/app/conf-37.json", Read, true},
		{"/etc/app/conf-99.json", Read, false},
		{"/srv/app-12/handler.py", Read, true},
		{"/srv/app-12/handler.pyc", Read, false},
		{"/srv/vendor/pkg-40/lib/x86_64/deep/er/libfoo.so", Read, true},
		{"/srv/vendor/pkg-40/lib/x86_64/deep/er/zlib.so", Read, false},
		{"/data/tenant-7/a/b/c.parquet", Write, true},
		{"/data/tenant-7/secrets/key", Read, false},
		{"/var/task/lambda_function.py", Read, true},
		{"/var/lang/lib/python3.12/site-packages/boto3/session.py", Read, true},
		{"/tmp/work/out.json", Write, true},
		{"/usr/lib64/libssl.so.3", Read, true},
		{"/etc/shadow", Read, false},
		{"/home/user/.aws/credentials", Read, false},
		{"/proc/4242/status", Read, true},
		{"/proc/1/environ", Read, false},
	}
	for _, c := range paths {
		if d := p.Open(c.path, c.acc, me); d.Allow != c.allow {
			b.Fatalf("%s: %+v", c.path, d)
		}
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		c := &paths[i%len(paths)]
		sink = p.Open(c.path, c.acc, me)
	}
	report(b, cpu0)
}

func BenchmarkOpenDecisionNoProc(b *testing.B) {
	p := benchPolicy(b)
	paths := []string{"/etc/app/conf-37.json", "/srv/app-12/handler.py", "/srv/vendor/pkg-40/lib/x86_64/deep/er/libfoo.so",
		"/data/tenant-7/a/b/c.parquet", "/var/task/lambda_function.py", "/usr/lib64/libssl.so.3", "/etc/shadow"}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		sink = p.Open(paths[i%len(paths)], Read, Caller{Pid: 1})
	}
	report(b, cpu0)
}

func BenchmarkExecDecision(b *testing.B) {
	p := mustParse(b, "process.exec = [\"/var/lang/bin/python3*\", \"/usr/bin/git\"]\nfilesystem.read = [\"/usr/bin/git\"]\n", Options{})
	paths := []string{"/var/lang/bin/python3.12", "/usr/bin/git", "/bin/sh"}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		sink = p.Exec(paths[i%len(paths)], Caller{Pid: 1})
	}
	report(b, cpu0)
}

func BenchmarkConnectDecision(b *testing.B) {
	p := benchPolicy(b)
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("10.42.7.9:5042"),
		netip.MustParseAddrPort("10.42.7.9:5043"),
		netip.MustParseAddrPort("10.200.7.9:5042"),
		netip.MustParseAddrPort("[::ffff:10.99.1.1]:5099"),
		netip.MustParseAddrPort("[2001:db8:2a:1::1]:443"),
		netip.MustParseAddrPort("[2001:db8:2a:1::1]:80"),
		netip.MustParseAddrPort("[2001:db9::1]:443"),
		netip.MustParseAddrPort("[64:ff9b::a07:101]:5007"),
		netip.MustParseAddrPort("127.0.0.1:9001"),
		netip.MustParseAddrPort("8.8.8.8:53"),
	}
	want := []bool{true, false, false, true, true, false, false, true, true, false}
	for i, a := range addrs {
		if d := p.Connect(a); d.Allow != want[i] {
			b.Fatalf("%s: %+v", a, d)
		}
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		sink = p.Connect(addrs[i%len(addrs)])
	}
	report(b, cpu0)
}

func BenchmarkParse(b *testing.B) {
	data := []byte(benchSource())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.toml", data, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSource() string {
	var sb strings.Builder
	sb.WriteString("[filesystem]\nread = [\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&sb, "  \"/srv/app-%d/**/*.py\",\n", i)
	}
	sb.WriteString("]\n")
	return sb.String()
}
