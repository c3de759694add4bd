package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
)

// BenchmarkDNS: what domain rules cost, in the DNS tests' namespace, with
// and without Vigil in interleaved rounds (compare in bench_test.go):
//
//   - resolve_go, resolve_glibc: one resolution of an allowed name (A query
//     over UDP, answer learned), in a loop; Go's own resolver (godial) and
//     glibc's (getaddrinfo from Python).
//   - first_connect_go, first_connect_glibc: a connect to an address that
//     was learned just before (each iteration resolves a name of its own,
//     with an address of its own, then connects to it); only the connect
//     is timed.
//
// Each reports the medians, vigil/native and the latency Vigil adds per
// operation (added_us/op). Until Vigil learns addresses from DNS answers,
// the Vigil runs fail (the queries are denied).
func BenchmarkDNS(b *testing.B) {
	env := getDNSEnv(b)
	py, gd := pythonDNS(b), goDNS(b)
	const resolves, fresh = 300, 200
	api := "api-bench.example.test"
	env.add(api, 300, apiAddr)
	suffix := "-bench.bench.test"
	for i := range fresh {
		env.add(fmt.Sprintf("n%d%s", i, suffix), 300, netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)}))
	}
	port := strconv.Itoa(env.port)
	lang := dnsLang{exec: append(append([]string{}, py.exec...), gd.exec...), read: append(append([]string{}, py.read...), gd.read...)}
	pol := writePolicy(b, lang.policy([]string{api + ":" + port, "*.bench.test:" + port}, policyOpts{}))
	netns := []string{env.ipBin, "netns", "exec", env.ns}
	vs := []variant{
		{"native", func(a []string) []string { return append(append([]string{}, netns...), a...) }},
		{"vigil", func(a []string) []string {
			return append(append(append([]string{}, netns...), bootstrapBin, "--rules", pol, "--"), a...)
		}},
	}
	bench := func(name, what string, argv ...string) {
		b.Run(name, func(b *testing.B) {
			med := compare(b, "ns/op", vs, func(a []string) float64 { return nsPerOp(b, a...) }, argv...)
			added := (med["vigil"] - med["native"]) / 1000
			b.ReportMetric(added, "added_us/op")
			fmt.Fprintf(os.Stdout, "%s: Vigil adds %.1f us per %s\n", b.Name(), added, what)
		})
	}
	argv := func(cmd []string, args ...string) []string { return append(append([]string{}, cmd...), args...) }
	bench("resolve_go", "resolution", argv(gd.cmd, "resolve-loop", port, api, strconv.Itoa(resolves))...)
	bench("resolve_glibc", "resolution", argv(py.cmd, "resolve-loop", port, api, strconv.Itoa(resolves))...)
	bench("first_connect_go", "first connect", argv(gd.cmd, "connect-fresh", port, suffix, strconv.Itoa(fresh))...)
	bench("first_connect_glibc", "first connect", argv(py.cmd, "connect-fresh", port, suffix, strconv.Itoa(fresh))...)
}
