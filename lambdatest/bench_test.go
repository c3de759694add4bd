package lambdatest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxyOverhead measures, in one run, what the Runtime API proxy
// (proxyrun: the proxy without Vigil's supervisor) and the whole of Vigil
// (the bootstrap as exec wrapper: proxy, supervisor, filter) add to Lambda
// invocations under RIE. For each fixture, each round starts four RIEs
// side by side: the runtime directly, behind tcprelay (a plain TCP relay:
// the floor of any extra process in the path), behind the proxy, and under
// Vigil with a policy that allows the fixture. It
// times the first invocation of each (cold start: RIE starts the runtime),
// then cycles warm invocations through the three; the order rotates every
// round. It prints medians and ratios to direct; b.N is ignored (run it
// with -benchtime 1x).
//
// Vigil is the layer's bootstrap (`make layer`: static, what Lambda runs;
// the dynamically linked bin/bootstrap starts 0.3-0.7 ms later, in the
// dynamic loader). The python and node fixtures run twice: through their
// bootstrap shell script (a custom runtime's entry point: sh, dirname and
// the interpreter are three execs), and as Lambda's exec wrapper gets a
// managed runtime, the interpreter itself ("python-interp", "node-interp":
// `/usr/bin/python3 runtime.py`, one exec); every variant runs the same
// command.
//
// VIGIL_BENCH_ROUNDS (default 5) and VIGIL_BENCH_WARM (default 40) set
// the counts.
func BenchmarkProxyOverhead(b *testing.B) {
	rounds, warm := envInt("VIGIL_BENCH_ROUNDS", 5), envInt("VIGIL_BENCH_WARM", 40)
	variants := []string{"direct", "tcprelay", "proxy", "vigil"}
	boot := buildLayerBootstrap(b)
	fns := filepath.Join(repoRoot, "fixtures", "functions")
	interp := map[string][]string{
		"python-interp": {"/usr/bin/python3", filepath.Join(fns, "python", "runtime.py")},
		"node-interp":   {"/usr/bin/node", filepath.Join(fns, "node", "runtime.js")},
	}
	for _, name := range []string{"go", "python", "node", "python-interp", "node-interp"} {
		f := fixtureNamed(b, strings.TrimSuffix(name, "-interp"))
		if cmd, ok := interp[name]; ok {
			f.command = cmd
		}
		b.Run(name, func(b *testing.B) {
			needFixture(b, f)
			// Everything readable, the fixture and the interpreters
			// executable: the cost measured is Vigil's, not a denial's.
			rules := writeRules(b, b.TempDir(), fmt.Sprintf(`
[process]
exec = [%q, "/usr/bin/*", "/usr/local/bin/*", "/root/.pyenv/**"]
allow_writable_exec = true
[filesystem]
read = ["/**"]
`, f.command[0]))
			cold := make([][]time.Duration, len(variants))
			hot := make([][]time.Duration, len(variants))
			event := []byte(`{"action":"echo","payload":"0123456789abcdef"}`)
			for round := range rounds {
				commands := [][]string{
					f.command,
					append([]string{tcprelayBin}, f.command...),
					through(f.command, "-log-level", "warn"),
					append([]string{boot}, f.command...),
				}
				rs := make([]*RIE, len(variants))
				for i, cmd := range commands {
					var env []string
					if variants[i] == "vigil" {
						env = []string{"VIGIL_RULES=" + rules}
					}
					r, err := Start(Options{RIE: rieBin, Command: cmd, Dir: b.TempDir(), Env: env})
					if err != nil {
						b.Fatal(err)
					}
					defer r.Stop()
					rs[i] = r
				}
				order := make([]int, len(variants))
				for i := range order {
					order[i] = (i + round) % len(variants)
				}
				for _, i := range order {
					res, err := rs[i].Invoke(context.Background(), fmt.Sprintf("cold-%d", round), event)
					if err != nil || res.Status != 200 {
						b.Fatalf("%s: cold invoke: %v %+v", variants[i], err, res)
					}
					cold[i] = append(cold[i], res.Duration)
				}
				for n := range warm {
					for _, i := range order {
						res, err := rs[i].Invoke(context.Background(), fmt.Sprintf("warm-%d-%d", round, n), event)
						if err != nil || res.Status != 200 {
							b.Fatalf("%s: warm invoke: %v %+v", variants[i], err, res)
						}
						hot[i] = append(hot[i], res.Duration)
					}
				}
				for _, r := range rs {
					r.Stop()
				}
			}
			var line strings.Builder
			fmt.Fprintf(&line, "%s (%d rounds x %d warm):", name, rounds, warm)
			cd, wd := median(cold[0]), median(hot[0])
			fmt.Fprintf(&line, " direct cold %v warm %v;", cd.Round(10*time.Microsecond), wd.Round(time.Microsecond))
			for i := 1; i < len(variants); i++ {
				c, w := median(cold[i]), median(hot[i])
				fmt.Fprintf(&line, " %s cold %v (%.2fx, %+v) warm %v (%.2fx, %+v);", variants[i],
					c.Round(10*time.Microsecond), ratio(c, cd), (c - cd).Round(10*time.Microsecond),
					w.Round(time.Microsecond), ratio(w, wd), (w - wd).Round(time.Microsecond))
			}
			fmt.Println(strings.TrimSuffix(line.String(), ";"))
			wp, cp := median(hot[2]), median(cold[2])
			b.ReportMetric(float64(wp-wd)/1e3, "warm-overhead-us")
			b.ReportMetric(ratio(wp, wd), "warm-ratio")
			b.ReportMetric(ratio(cp, cd), "cold-ratio")
			wv, cv := median(hot[3]), median(cold[3])
			b.ReportMetric(float64(wv-wd)/1e3, "vigil-warm-overhead-us")
			b.ReportMetric(ratio(cv, cd), "vigil-cold-ratio")
		})
	}
}

// buildLayerBootstrap builds the layer's bootstrap (`make layer` into a
// temporary DIST: statically linked, as Lambda runs it) and returns its
// path.
func buildLayerBootstrap(b *testing.B) string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("the supervisor's tests here run as root")
	}
	dist := b.TempDir()
	cmd := exec.Command("make", "-C", repoRoot, "-s", "layer", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("make layer: %v\n%s", err, out)
	}
	return filepath.Join(dist, "layer-x86_64", "bootstrap")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func envInt(key string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(key), &n); err == nil && n > 0 {
		return n
	}
	return def
}
