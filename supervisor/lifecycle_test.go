//go:build linux

package supervisor

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitStatusPropagates(t *testing.T) {
	vt := fixture("vtool")
	pol := newPolicy()
	if r := supervise(t, pol, vt, "exit", "7"); r.status != 7 || r.err != nil {
		t.Fatalf("exit 7: %d %v", r.status, r.err)
	}
	if r := supervise(t, pol, vt, "kill", "15"); r.status != 128+15 {
		t.Fatalf("SIGTERM: %d", r.status)
	}
	if r := supervise(t, pol, vt, "kill", "9"); r.status != 128+9 {
		t.Fatalf("SIGKILL: %d", r.status)
	}
	if r := supervise(t, pol, "no-such-command-vigil"); r.status != 127 || r.err != nil {
		t.Fatalf("command not found: %d %v", r.status, r.err)
	}
}

func TestStdioPassThrough(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	data := strings.Repeat("some input line\n", 1000)
	must(t, os.WriteFile(in, []byte(data), 0o644))
	f, err := os.Open(in)
	must(t, err)
	defer f.Close()
	r := superviseIn(t, newPolicy(), "", f, fixture("vtool"), "cat")
	if r.status != 0 || r.stdout != data {
		t.Fatalf("status=%d, %d bytes out of %d", r.status, len(r.stdout), len(data))
	}
}

// TestOrphansAreKilled: a daemonised grandchild (reparented to the
// supervisor as subreaper) is killed when the command exits.
func TestOrphansAreKilled(t *testing.T) {
	r := supervise(t, newPolicy(), fixture("vtool"), "spawnsleep", "30")
	i := strings.Index(r.stdout, "orphan=")
	if r.status != 0 || i < 0 {
		t.Fatalf("status=%d stdout=%q", r.status, r.stdout)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(r.stdout[i+len("orphan="):]))
	if pid <= 0 {
		t.Fatal(r.stdout)
	}
	if alive(pid) {
		t.Fatalf("orphan %d still alive after the command exited", pid)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// startHelper runs the test binary as a supervisor process and waits for
// the command's first line ("OK pid=N").
func startHelper(t *testing.T, spec string, args ...string) (*exec.Cmd, int, *bufio.Reader) {
	t.Helper()
	cmd := helperCmd(spec, args...)
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no first line: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "OK pid=")))
	if pid <= 0 {
		t.Fatalf("bad first line %q", line)
	}
	return cmd, pid, br
}

func waitDead(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

func TestSupervisorKilledChildDies(t *testing.T) {
	cmd, pid, _ := startHelper(t, "fixtures", fixture("vtool"), "sleep", "30")
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	if !waitDead(pid, 3*time.Second) {
		t.Fatalf("child %d survived its supervisor", pid)
	}
}

func TestSignalsAreForwarded(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		cmd, pid, _ := startHelper(t, "fixtures", fixture("vtool"), "sleep", "30")
		must(t, cmd.Process.Signal(sig))
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) {
			t.Fatalf("%v: supervisor exit %v, want %d", sig, err, 128+int(sig))
		}
		if alive(pid) {
			t.Fatalf("%v: child still alive", sig)
		}
	}
}

// TestFilterRefused: under an outer filter that makes seccomp(2) fail, the
// supervisor exits 2 with one line and the command never runs.
func TestFilterRefused(t *testing.T) {
	if testBackend == "ptrace-alone" {
		t.Skip("ptrace-alone installs no filter: TestBackendFallback runs it under this outer filter")
	}
	mark := filepath.Join(t.TempDir(), "ran")
	self, _ := os.Executable()
	cmd := exec.Command(fixture("noseccomp"), self, fixture("marker"), mark)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_SUPERVISOR=fixtures", "VIGIL_TEST_FIXTURES="+fixtures)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v: %s", err, out)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the command ran without the filter")
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "seccomp") || !strings.Contains(lines[0], "operation not permitted") {
		t.Fatalf("want one clear line, got %q", out)
	}
	t.Logf("refusal line: %s", lines[0])
}

// TestSupervisorGoneVettedCallsFail: after the supervisor is killed, a
// descendant that survived (it is not the direct child, so no parent-death
// signal) gets ENOSYS on a vetted call: nothing runs unguarded.
func TestSupervisorGoneVettedCallsFail(t *testing.T) {
	cmd, pid, br := startHelper(t, "fixtures", fixture("vtool"), "lateropen", "1", "/etc/hostname")
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	if !waitDead(pid, 3*time.Second) {
		t.Fatalf("child %d survived its supervisor", pid)
	}
	done := make(chan string, 1)
	go func() {
		line, err := br.ReadString('\n')
		if err != nil {
			line += " (" + err.Error() + ")"
		}
		done <- line
	}()
	select {
	case line := <-done:
		if tracedBackend() {
			// Under ptrace the orphan was traced too: PTRACE_O_EXITKILL
			// killed it with the tracer, before it could write a word.
			if line != " (EOF)" {
				t.Fatalf("want the orphan killed with its tracer (EOF), got %q", line)
			}
			return
		}
		if !strings.Contains(line, "later ERR 38 ENOSYS") {
			t.Fatalf("want ENOSYS from the orphan's open, got %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan's open hung")
	}
}

// TestNonRootSupervisor: a supervisor that is not root vets its child's
// execs. The supervisor makes itself non-dumpable before starting the
// child, which inherits that; without the child's PR_SET_DUMPABLE before
// execve, a non-root supervisor could not ptrace it and denied every exec.
func TestNonRootSupervisor(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to an unprivileged uid")
	}
	dir, err := os.MkdirTemp("", "vigil-nonroot-")
	must(t, err)
	defer os.RemoveAll(dir)
	must(t, os.Chmod(dir, 0o755))
	self, err := os.Executable()
	must(t, err)
	b, err := os.ReadFile(self)
	must(t, err)
	bin := filepath.Join(dir, "supervisor.test")
	must(t, os.WriteFile(bin, b, 0o755))
	cmd := exec.Command(bin, "/bin/sh", "-c", "exec /bin/sh -c 'exit 7'")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_SUPERVISOR=permissive", "VIGIL_TEST_FIXTURES="+dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("want exit 7 from a non-root supervisor, got %v: %s", err, out)
	}
}

// TestBadDir: a child that cannot enter its directory fails before exec
// with a StartError; the command never runs.
func TestBadDir(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	must(t, err)
	defer null.Close()
	st, err := Run(Config{Policy: permissive(), Args: []string{fixture("marker"), mark}, Dir: "/nonexistent-vigil-dir", Stdout: null, Stderr: null})
	var se *StartError
	if !errors.As(err, &se) || se.Stage != "start" || !strings.Contains(err.Error(), "chdir /nonexistent-vigil-dir: no such file or directory") {
		t.Fatalf("want a start error for chdir, got %d %v", st, err)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the command ran")
	}
}

// TestInheritedFDsDoNotLeak: an fd the supervisor holds without
// close-on-exec never reaches the command, both with close_range
// (Linux 5.11+) and with the /proc/self/fd walk that older kernels (AWS
// Lambda's 5.10) take.
func TestInheritedFDsDoNotLeak(t *testing.T) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC
	must(t, err)
	defer syscall.Close(fd)
	for _, walk := range []bool{false, true} {
		setWalkFDs(walk)
		r := supervise(t, permissive(), "/bin/sh", "-c", "ls /proc/self/fd")
		setWalkFDs(false)
		if r.err != nil || r.status != 0 {
			t.Fatalf("walk=%v: status %d err %v stderr %s", walk, r.status, r.err, r.stderr)
		}
		got := strings.Fields(r.stdout)
		// 0, 1, 2 and the fd ls opens to read the directory: nothing else.
		if len(got) != 4 || got[0] != "0" || got[1] != "1" || got[2] != "2" {
			t.Fatalf("walk=%v: the command sees fds %v (the supervisor's fd %d must not leak)", walk, got, fd)
		}
		for _, f := range got {
			if f == strconv.Itoa(fd) {
				t.Fatalf("walk=%v: fd %d leaked into the command", walk, fd)
			}
		}
	}
}
