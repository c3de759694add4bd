//go:build linux

package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
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

// TestTwoStepADDFD: on kernels without SECCOMP_ADDFD_FLAG_SEND (before
// 5.14; AWS Lambda runs 5.10) fds are injected with ADDFD and then answered
// with SEND. Forced here: every open still returns the file asked for.
func TestTwoStepADDFD(t *testing.T) {
	addfdSendUnsupported.Store(true)
	defer addfdSendUnsupported.Store(false)
	dir := t.TempDir()
	f := filepath.Join(dir, "target")
	must(t, os.WriteFile(f, []byte("x"), 0o644))
	pol := newPolicy()
	pol.read = append(pol.read, dir+"/")
	per, threads := 5000, 4
	r := supervise(t, pol, fixture("vtool"), "stress", f, strconv.Itoa(per), strconv.Itoa(threads))
	want := fmt.Sprintf("OK opens=%d bad=0 zero=0 errors=0 ", per*threads)
	if r.status != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
	// And the everyday cases: read, create with the caller's umask, denied.
	TestOpenReadWriteCreate(t)
}
