//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestADDFDStress proves the fix for trap 9 (ADDFD|SEND interrupted by the
// supervisor's own signals hands the caller 0 instead of its fd): 100,000
// emulated opens from several threads, each checked by the caller (fd != 0,
// fstat inode is the file it asked for), zero errors allowed.
func TestADDFDStress(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "target")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	pol := newPolicy()
	pol.read = append(pol.read, dir+"/")
	per, threads := 25000, 4
	if testing.Short() {
		per = 2500
	}
	// A storm of process-directed signals at the supervisor (SIGWINCH, which
	// Go ignores): without the receivers' signal mask, some land on a
	// receiver thread inside ADDFD|SEND.
	stop := make(chan struct{})
	storm := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				storm <- n
				return
			default:
			}
			_ = unix.Kill(os.Getpid(), unix.SIGWINCH)
			n++
			time.Sleep(20 * time.Microsecond)
		}
	}()
	r := supervise(t, pol, fixture("vtool"), "stress", f, strconv.Itoa(per), strconv.Itoa(threads))
	close(stop)
	sent := <-storm
	t.Logf("ADDFD stress: %s (signals sent to the supervisor meanwhile: %d)", strings.TrimSpace(r.stdout), sent)
	want := fmt.Sprintf("OK opens=%d bad=0 zero=0 errors=0 ", per*threads)
	if r.status != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
}

var benchRE = regexp.MustCompile(`open_ns=([0-9.]+) getppid_ns=([0-9.]+)`)

func parseBench(s string) (open, other float64, ok bool) {
	m := benchRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	open, _ = strconv.ParseFloat(m[1], 64)
	other, _ = strconv.ParseFloat(m[2], 64)
	return open, other, true
}

// measureOpen runs the vtool bench loop natively, under the minimal C
// notify supervisor (fixtures/c/cnotify.c: RECV + CONTINUE, the reference)
// and under Vigil, interleaved, and returns the medians (ns per open).
func measureOpen(t testing.TB, n, rounds int) (native, cref, vigil, nativeOther, vigilOther float64) {
	dir := t.TempDir()
	f := filepath.Join(dir, "target")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	pol := newPolicy()
	pol.read = append(pol.read, dir+"/")
	var ns, cs, vs, no, vo []float64
	run := func(args ...string) (float64, float64) {
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatal(err)
		}
		a, b, ok := parseBench(string(out))
		if !ok {
			t.Fatalf("bad bench output %q", out)
		}
		return a, b
	}
	for i := 0; i < rounds; i++ {
		a, b := run(fixture("vtool"), "bench", f, strconv.Itoa(n))
		ns, no = append(ns, a), append(no, b)
		a, _ = run(fixture("cnotify"), fixture("vtool"), "bench", f, strconv.Itoa(n))
		cs = append(cs, a)
		r := supervise(t, pol, fixture("vtool"), "bench", f, strconv.Itoa(n))
		a, b, ok := parseBench(r.stdout)
		if !ok {
			t.Fatalf("bad bench output %q %q", r.stdout, r.stderr)
		}
		vs, vo = append(vs, a), append(vo, b)
	}
	return median(ns), median(cs), median(vs), median(no), median(vo)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// BenchmarkVettedOpen is what `make bench` prints: ratios against the same
// workload without Vigil and under the minimal C supervisor, in the same run.
func BenchmarkVettedOpen(b *testing.B) {
	native, cref, vigil, no, vo := measureOpen(b, 20000, 3)
	b.ReportMetric(native, "native-open-ns")
	b.ReportMetric(cref, "cnotify-open-ns")
	b.ReportMetric(vigil, "vigil-open-ns")
	b.ReportMetric(vigil/cref, "vigil/cnotify")
	b.ReportMetric(vo/no, "unvetted-ratio")
}
