//go:build linux && cgo

package probe

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helper mode: print Run's report as JSON (the tests run it under an outer
// filter).
func TestMain(m *testing.M) {
	if os.Getenv("VIGIL_PROBE_HELPER") == "1" {
		b, err := json.Marshal(Run())
		if err != nil {
			panic(err)
		}
		os.Stdout.Write(append(b, '\n'))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// noChildrenLeft fails unless every probe child was reaped.
func noChildrenLeft(t *testing.T) {
	t.Helper()
	if pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("a probe child was left behind: wait4 = %d, %v", pid, err)
	}
}

// On these machines everything works (/work/shared/kernel-facts.md: kernel
// 6.18, root), so auto picks notify.
func TestEverythingWorksHere(t *testing.T) {
	r := Run()
	for _, c := range r.checks() {
		if !c.check.OK {
			t.Errorf("%s: %s", c.name, c.check.Error)
		}
	}
	if r.LandlockABI < 1 {
		t.Errorf("Landlock ABI %d", r.LandlockABI)
	}
	if r.Kernel == "" || r.Machine == "" {
		t.Errorf("kernel %q machine %q", r.Kernel, r.Machine)
	}
	if b := r.Backend(); b != BackendNotify {
		t.Errorf("backend %q, want notify", b)
	}
	noChildrenLeft(t)
	// The probe's cost, measured over a few runs (the first pays for
	// faulting in the C code).
	var ds []time.Duration
	for range 10 {
		ds = append(ds, time.Duration(Run().ElapsedUS)*time.Microsecond)
	}
	t.Logf("probe time: first %v, then %v", time.Duration(r.ElapsedUS)*time.Microsecond, ds)
}

// A child that hangs is killed at the timeout and its checks fail; the
// others are unaffected, and nothing is left behind.
func TestHungChildTimesOut(t *testing.T) {
	const timeout = 100 * time.Millisecond
	start := time.Now()
	r := run(timeout, 2) // VP_HANG_SECCOMP
	took := time.Since(start)
	if took < timeout*9/10 || took > 5*timeout { // the C side measures its own clock
		t.Errorf("took %v with a %v timeout", took, timeout)
	}
	for _, c := range []Check{r.SeccompFilter, r.SeccompListener, r.SeccompAddFD, r.WaitKillableRecv} {
		if c.OK || !strings.Contains(c.Error, "timed out after 100ms") {
			t.Errorf("hung seccomp child: %+v", c)
		}
	}
	for _, c := range []Check{r.PidfdGetfd, r.ProcessVMReadv, r.PtraceSeize, r.PtraceTraceme, r.Openat2} {
		if !c.OK {
			t.Errorf("unaffected check failed: %+v", c)
		}
	}
	if b := r.Backend(); b != BackendPtrace { // no seccomp filter: neither notify nor ptrace-seccomp
		t.Errorf("backend %q, want ptrace", b)
	}
	noChildrenLeft(t)

	r = run(timeout, 1|2|4)
	if b := r.Backend(); b != BackendNone || r.PtraceTraceme.OK || r.PidfdOpen.OK {
		t.Errorf("all children hung: backend %q, %+v", b, r)
	}
	noChildrenLeft(t)
}

// outerFilter builds fixtures/c/noseccomp.
func outerFilter(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "noseccomp")
	if b, err := exec.Command("gcc", "-O2", "-Wall", "-o", out, "../../fixtures/c/noseccomp.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// probeUnder runs Run in this test binary under noseccomp with args.
func probeUnder(t *testing.T, noseccomp string, args ...string) Report {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(noseccomp, append(args, self)...)
	cmd.Env = append(os.Environ(), "VIGIL_PROBE_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	var r Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r
}

// A host that forbids nested seccomp filters (seccomp(2) and
// prctl(PR_SET_SECCOMP) fail with EPERM): the seccomp checks fail with the
// kernel's answer and auto falls back to ptrace. With ptrace refused too,
// nothing works.
func TestUnderOuterFilter(t *testing.T) {
	noseccomp := outerFilter(t)

	r := probeUnder(t, noseccomp)
	if r.SeccompFilter.OK || r.SeccompFilter.Errno != int(syscall.EPERM) ||
		!strings.Contains(r.SeccompFilter.Error, "seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted)") {
		t.Errorf("seccomp filter: %+v", r.SeccompFilter)
	}
	for name, c := range map[string]Check{"listener": r.SeccompListener, "addfd": r.SeccompAddFD, "wait_killable_recv": r.WaitKillableRecv} {
		if c.OK || c.Error != "not tried: needs seccomp filter" {
			t.Errorf("%s: %+v", name, c)
		}
	}
	if !r.PtraceSeize.OK || !r.PtraceTraceme.OK || !r.ProcessVMReadv.OK || !r.PidfdGetfd.OK {
		t.Errorf("ptrace side: %+v", r)
	}
	if b := r.Backend(); b != BackendPtrace {
		t.Errorf("backend %q, want ptrace", b)
	}

	r = probeUnder(t, noseccomp, "--ptrace")
	for name, c := range map[string]Check{"traceme": r.PtraceTraceme, "seize": r.PtraceSeize} {
		if c.OK || c.Errno != int(syscall.EPERM) || !strings.Contains(c.Error, "ptrace(PTRACE_") {
			t.Errorf("%s: %+v", name, c)
		}
	}
	if r.SeccompFilter.OK {
		t.Errorf("seccomp filter: %+v", r.SeccompFilter)
	}
	if b := r.Backend(); b != BackendNone {
		t.Errorf("backend %q, want none", b)
	}
}

func TestBackend(t *testing.T) {
	ok, no := Check{OK: true}, Check{Error: "x: EPERM (operation not permitted)", Errno: 1}
	all := Report{SeccompFilter: ok, SeccompListener: ok, SeccompAddFD: ok, WaitKillableRecv: ok, PidfdOpen: ok,
		PidfdGetfd: ok, Openat2: ok, PtraceTraceme: ok, PtraceSeize: ok, ProcessVMReadv: ok, Landlock: ok, IOUring: ok}
	for _, tc := range []struct {
		name string
		edit func(*Report)
		want string
	}{
		{"all", func(*Report) {}, "notify"},
		{"no WAIT_KILLABLE_RECV, Landlock, io_uring, openat2, TRACEME (not needed)", func(r *Report) {
			r.WaitKillableRecv, r.Landlock, r.IOUring, r.Openat2, r.PtraceTraceme = no, no, no, no, no
		}, "notify"},
		{"no listener", func(r *Report) { r.SeccompListener = no }, "ptrace-seccomp"},
		{"no ADDFD", func(r *Report) { r.SeccompAddFD = no }, "ptrace-seccomp"},
		{"no pidfd_getfd", func(r *Report) { r.PidfdGetfd = no }, "ptrace-seccomp"},
		{"no seccomp", func(r *Report) { r.SeccompFilter = no }, "ptrace-alone"},
		{"no listener, no seize", func(r *Report) { r.SeccompListener, r.PtraceSeize = no, no }, "none"},
		{"no process_vm_readv", func(r *Report) { r.ProcessVMReadv = no }, "none"},
		{"no seccomp, no seize", func(r *Report) { r.SeccompFilter, r.PtraceSeize = no, no }, "none"},
		{"nothing", func(r *Report) { *r = Report{} }, "none"},
	} {
		r := all
		tc.edit(&r)
		if got := r.Backend(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestJSONAndLines(t *testing.T) {
	no := Check{Error: "seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted)", Errno: 1}
	r := Report{Kernel: "5.10.0", Machine: "x86_64", SeccompFilter: no, PtraceSeize: Check{OK: true}, ProcessVMReadv: Check{OK: true}, ElapsedUS: 2500}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kernel", "machine", "seccomp_filter", "seccomp_listener", "seccomp_addfd", "wait_killable_recv",
		"pidfd_open", "pidfd_getfd", "openat2", "ptrace_traceme", "ptrace_seize", "process_vm_readv", "landlock",
		"landlock_abi", "io_uring", "elapsed_us", "backend"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	if m["backend"] != "ptrace-alone" || strings.Contains(string(b), "\n") {
		t.Errorf("json %s", b)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.SeccompFilter != no || back.Kernel != "5.10.0" {
		t.Errorf("round trip: %v %+v", err, back)
	}

	lines := r.Lines()
	if !strings.Contains(lines[0], `Linux 5.10.0 x86_64: backend auto picks "ptrace-alone" (2.5 ms)`) {
		t.Errorf("summary %q", lines[0])
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"  not notify: seccomp filter: seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted); seccomp listener: ",
		"  not ptrace-seccomp: seccomp filter: seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted)\n",
		"  seccomp filter         fails: seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted)\n",
		"  ptrace PTRACE_SEIZE    works\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if len(lines) != 1+2+len(r.checks()) {
		t.Errorf("%d lines:\n%s", len(lines), text)
	}

	r.PtraceSeize = no
	if lines := r.Lines(); !strings.Contains(lines[0], "no backend works here") || !strings.HasPrefix(lines[3], "  not ptrace-alone: ptrace PTRACE_SEIZE: ") {
		t.Errorf("none:\n%s", strings.Join(lines, "\n"))
	}
}

// BenchmarkRun measures the whole probe: three forked children and the
// checks in this process.
func BenchmarkRun(b *testing.B) {
	for b.Loop() {
		if r := Run(); r.Backend() == BackendNone {
			b.Fatal(r.Lines())
		}
	}
}

// TestRunIsolated: the probe from a child of its own reports what Run
// does, and leaves no child of this process behind, even while another
// goroutine reaps every child of this process as Vigil's supervisor does.
func TestRunIsolated(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var ws unix.WaitStatus
			unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for range 5 {
		r := RunIsolated()
		if r.Backend() != BackendNotify {
			t.Fatalf("isolated probe under a concurrent reaper: %s\n%s", r.Backend(), strings.Join(r.Lines(), "\n"))
		}
		for _, c := range r.checks() {
			if !c.check.OK {
				t.Errorf("%s: %s", c.name, c.check.Error)
			}
		}
	}
	close(stop)
	<-done
}
