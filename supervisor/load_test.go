//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoad: 4 processes of 8 threads make 20,000 vetted calls each (opens,
// creates and unlinks, mkdir and rmdir, connects, UDP sends; allowed and
// denied) under one supervisor. Every call gets the answer the policy
// gives, nothing deadlocks, and afterwards the supervisor holds no fd and
// no receiver it did not hold before. `make test` also runs it under
// -race.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	must(t, os.Mkdir(work, 0o755))
	allowed := filepath.Join(dir, "allowed")
	denied := filepath.Join(dir, "denied")
	must(t, os.WriteFile(allowed, []byte("a"), 0o644))
	must(t, os.WriteFile(denied, []byte("d"), 0o644))
	okPort, _ := listen(t)
	badPort, badCount := listen(t)
	pol := newPolicy()
	pol.read = append(pol.read, allowed)
	pol.write = []string{work + "/"}
	pol.connect = []string{"127.0.0.1:" + okPort}

	const procs, threads, perProc = 4, 8, 20000
	supervise(t, pol, fixture("load"), allowed, denied, work, okPort, badPort, "80", "2", "1") // warm up
	fdsBefore := countFDs(t)
	start := time.Now()
	r := supervise(t, pol, fixture("load"), allowed, denied, work, okPort, badPort,
		strconv.Itoa(perProc), strconv.Itoa(threads), strconv.Itoa(procs))
	t.Logf("%d vetted calls in %v", procs*perProc, time.Since(start))
	if r.err != nil || r.status != 0 {
		t.Fatalf("status=%d err=%v stdout=%q stderr=%q", r.status, r.err, r.stdout, r.stderr)
	}
	// Each iteration checks one answer, creates and mkdirs two.
	want := perProc/threads*threads + 2*(perProc/threads*threads/8)
	re := regexp.MustCompile(`good=(\d+) bad=(\d+)`)
	lines := re.FindAllStringSubmatch(r.stdout, -1)
	if len(lines) != procs {
		t.Fatalf("want %d process reports: %q", procs, r.stdout)
	}
	for _, m := range lines {
		if m[1] != strconv.Itoa(want) || m[2] != "0" {
			t.Fatalf("want good=%d bad=0 in every process: %q", want, r.stdout)
		}
	}
	if n := badCount.Load(); n != 0 {
		t.Fatalf("%d connections reached the denied listener", n)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Fatalf("%d entries left in the work dir", len(ents))
	}
	deadline := time.Now().Add(2 * time.Second)
	for liveReceivers.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveReceivers.Load(); n != 0 {
		t.Fatalf("%d receivers outlived their Run", n)
	}
	if after := countFDs(t); after != fdsBefore {
		ents, _ := os.ReadDir("/proc/self/fd")
		var names []string
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			names = append(names, e.Name()+"->"+l)
		}
		t.Fatalf("supervisor fds: %d before, %d after: %s", fdsBefore, after, strings.Join(names, " "))
	}
}
