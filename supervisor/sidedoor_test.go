//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/rules"
)

// TestSideDoors: every way around the supervisor that the filter or the
// signal handler closes is refused, the allowed neighbour of each still
// works, and the supervisor survives all of them.
func TestSideDoors(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	secret := filepath.Join(dir, "secret")
	must(t, os.WriteFile(allowed, []byte("allowed\n"), 0o644))
	must(t, os.WriteFile(secret, []byte("secret\n"), 0o644))
	pol := newPolicy()
	pol.read = append(pol.read, allowed)
	sd := fixture("sidedoor")
	// A thread of the supervisor (this process) other than the leader, for
	// the calls that accept any thread id: one held by a goroutine locked
	// to it for the whole test (receiver threads come and go).
	tid := stableThread(t)
	t.Setenv("SIDEDOOR_TID", tid)
	cases := []struct {
		args []string
		want string // "OK" or an errno name
	}{
		{[]string{"io_uring"}, "ENOSYS"},
		{[]string{"open_by_handle_at"}, "EPERM"},
		{[]string{"name_to_handle_at"}, "EOPNOTSUPP"},
		{[]string{"ptrace"}, "EPERM"},
		{[]string{"traceme"}, "EPERM"},
		{[]string{"process_vm_readv"}, "EPERM"},
		{[]string{"kill"}, "EPERM"},
		{[]string{"kill_hi"}, "EPERM"},
		{[]string{"kill_thread"}, "EPERM"},
		{[]string{"tkill"}, "EPERM"},
		{[]string{"tgkill"}, "EPERM"},
		{[]string{"tgkill_hi"}, "EPERM"},
		{[]string{"sigqueue"}, "EPERM"},
		{[]string{"kill_all"}, "EPERM"},
		{[]string{"kill_group"}, "EPERM"},
		{[]string{"kill_own_group"}, "OK"},
		{[]string{"join_group"}, "EPERM"},
		{[]string{"kill_child"}, "OK"},
		{[]string{"pidfd_open"}, "EPERM"},
		{[]string{"pidfd_open_self"}, "OK"},
		{[]string{"pidfd_getfd"}, "EPERM"},
		{[]string{"listener"}, "EPERM"},
		{[]string{"filter"}, "OK"},
		{[]string{"unshare_ns"}, "EPERM"},
		{[]string{"unshare_user"}, "EPERM"},
		{[]string{"unshare_files"}, "OK"},
		{[]string{"bindmount", secret, allowed}, "EPERM"},
		{[]string{"unshare_mount", secret, allowed}, "EPERM"},
		{[]string{"clone_ns"}, "EPERM"},
		{[]string{"clone3"}, "ENOSYS"},
		{[]string{"chroot"}, "EPERM"},
		{[]string{"bpf"}, "EPERM"},
		{[]string{"perf_event_open"}, "EPERM"},
		{[]string{"prctl_mm"}, "EPERM"},
		{[]string{"procsup"}, "EACCES"},       // the policy allows /proc/: closed anyway
		{[]string{"procsupthread"}, "EACCES"}, // through a thread's /proc/<tid>
		{[]string{"procsupdir"}, "EACCES"},    // no /proc/<pid> fd to use as a pidfd
		{[]string{"procown"}, "OK"},
		{[]string{"alive"}, "OK"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			r := supervise(t, pol, append([]string{sd}, c.args...)...)
			if r.err != nil {
				t.Fatalf("run: %v", r.err)
			}
			if c.want == "OK" {
				if r.status != 0 || !strings.HasPrefix(r.stdout, "OK") {
					t.Fatalf("want OK: status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
				}
				return
			}
			expectErr(t, r, c.want)
			if strings.HasPrefix(c.args[0], "kill") || c.args[0] == "tkill" || c.args[0] == "sigqueue" ||
				c.args[0] == "pidfd_open" || c.args[0] == "join_group" {
				if c.args[0] == "kill_hi" || c.args[0] == "tgkill_hi" {
					return
				}
				ev := auditEvents(t, r)
				if len(ev) == 0 || ev[len(ev)-1].Op != "signal" || ev[len(ev)-1].Rule != ruleSignalSupervisor {
					t.Fatalf("no signal denial in the audit: %s", r.audit)
				}
				if (c.args[0] == "kill_thread" || c.args[0] == "tkill") && !strings.Contains(ev[len(ev)-1].Detail, "("+tid+",") {
					t.Fatalf("not aimed at thread %s: %s", tid, ev[len(ev)-1].Detail)
				}
			}
		})
	}
	t.Run("closed in audit mode too", func(t *testing.T) {
		ap := newPolicy()
		ap.mode = rules.Audit
		r := supervise(t, ap, sd, "procsup")
		expectErr(t, r, "EACCES")
		ev := auditEvents(t, r)
		if len(ev) == 0 || ev[len(ev)-1].Rule != ruleSupervisorProc || ev[len(ev)-1].Decision != DecisionDeny {
			t.Fatalf("want a deny with %q: %s", ruleSupervisorProc, r.audit)
		}
	})
	// The child shared the supervisor's memory map until its execve and
	// made it dumpable for the handoff: the supervisor must be
	// non-dumpable again once the command runs.
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Fatalf("supervisor dumpable=%d (%v) after runs, want 0", d, err)
	}
	b, err := os.ReadFile(allowed)
	must(t, err)
	if string(b) != "allowed\n" {
		t.Fatalf("the allowed file was replaced: %q", b)
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("4242 (a b) c)) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1000 10\n")
	if g := parseStatPgrp(line); g != 4242 {
		t.Fatalf("pgrp %d", g)
	}
	if st, ok := parseStatStart(line); !ok || st != 777 {
		t.Fatalf("start %d %v", st, ok)
	}
	if _, ok := parseStatStart([]byte("1 (x) S 1")); ok {
		t.Fatal("short stat parsed")
	}
	if g := parseStatPgrp([]byte("garbage")); g != -1 {
		t.Fatal(g)
	}
}

// stableThread returns the id of an OS thread of this process, not the
// leader, that lives until the test ends.
func stableThread(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for i := 0; i < 10; i++ {
		ch := make(chan int)
		go func() {
			runtime.LockOSThread()
			tid := unix.Gettid()
			ch <- tid
			// Keep the thread, the leader too (so that the next try
			// gets another one); it is released at the end of the test.
			<-done
			runtime.UnlockOSThread()
		}()
		if tid := <-ch; tid != os.Getpid() {
			return strconv.Itoa(tid)
		}
	}
	t.Fatal("no thread other than the leader")
	return ""
}
