//go:build linux

package tracer

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The engine's own tests, with a Decider written here; the supervisor's
// test suite runs the real one under both modes (VIGIL_TEST_BACKEND).

type testLog struct{ t *testing.T }

func (l testLog) Debug(msg string, args ...interface{}) {
	l.t.Log(append([]interface{}{msg}, args...)...)
}
func (l testLog) Warn(msg string, args ...interface{}) {
	l.t.Log(append([]interface{}{msg}, args...)...)
}
func (l testLog) Error(msg string, args ...interface{}) {
	l.t.Log(append([]interface{}{msg}, args...)...)
}

// funcDecider decides with a function (each test's targets are calls the
// programs make only after their start-up, once released by the test).
type funcDecider struct {
	enter func(c *Call) Verdict
	async bool
}

func (d *funcDecider) Async(c *Call) bool { return d.async }

func (d *funcDecider) Enter(c *Call) Verdict {
	if d.enter == nil {
		return Verdict{Kind: Allow, AtExec: func(int) bool { return true }}
	}
	return d.enter(c)
}

// trace starts argv with a pipe on stdin, seizes it, releases it with a
// line and traces it to the end. It returns its output and wait status.
func trace(t *testing.T, mode Mode, d Decider, argv ...string) (string, unix.WaitStatus) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A file, not a buffer: nobody calls cmd.Wait (the tracer reaps the
	// child), so os/exec's copying goroutine would never be waited for.
	outF, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	cmd.Stdout, cmd.Stderr = outF, outF
	type res struct {
		ws  unix.WaitStatus
		err error
	}
	rc := make(chan res, 1)
	started := make(chan error, 1)
	go func() {
		tr := New(mode, d, testLog{t})
		// Started from the tracer thread, seized before it reads its line.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		// Go's Start returns once the child's exec has closed its fds,
		// which is before the exec's ptrace event: seize only once the
		// child waits in read(0), well past its exec.
		if err := waitInRead(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			started <- err
			return
		}
		if err := tr.Seize(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			started <- err
			return
		}
		started <- nil
		rc <- res{ws: tr.Run()}
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	r := <-rc
	out, _ := os.ReadFile(outF.Name())
	return string(out), r.ws
}

// waitInRead waits until pid is blocked in read(0, ...) (/proc/PID/syscall
// starts with the number of read and fd 0).
func waitInRead(pid int) error {
	want := strconv.Itoa(unix.SYS_READ) + " 0x0 "
	for i := 0; i < 5000; i++ {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/syscall")
		if err != nil {
			return err
		}
		if strings.HasPrefix(string(b), want) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("the child never waited in read(0)")
}

const py = "/usr/bin/python3"

func needPython(t *testing.T) {
	if _, err := os.Stat(py); err != nil {
		t.Skip("no ", py)
	}
}

// TestAllowAll: with everything allowed the traced program runs as without
// the tracer, including its exec and its exit status.
func TestAllowAll(t *testing.T) {
	// (SeccompStops needs a filter in the tracee: the supervisor's tests
	// cover it. Without one no call would stop and its exec event, having
	// no vetted entry, would be killed.)
	out, ws := trace(t, SyscallStops, &funcDecider{}, "/bin/sh", "-c", "read x; echo got $x; exec /bin/sh -c 'exit 7'")
	if !ws.Exited() || ws.ExitStatus() != 7 || out != "got go\n" {
		t.Fatalf("status %v, output %q", ws, out)
	}
}

// TestReturnSkipsTheCall: a Return verdict skips the call and the caller
// sees the value.
func TestReturnSkipsTheCall(t *testing.T) {
	d := &funcDecider{enter: func(c *Call) Verdict {
		if c.Nr == unix.SYS_CHDIR {
			return Verdict{Kind: Return, Ret: -int64(unix.EACCES)}
		}
		return Verdict{Kind: Allow}
	}}
	out, ws := trace(t, SyscallStops, d, "/bin/sh", "-c", "read x; cd / 2>/dev/null && echo moved || echo refused; pwd")
	wd, _ := os.Getwd()
	if !ws.Exited() || ws.ExitStatus() != 0 || out != "refused\n"+wd+"\n" {
		t.Fatalf("status %v, output %q", ws, out)
	}
}

// TestKillAndExecChecks: Kill kills; an exec whose AtExec says no is killed
// before it runs; an exec event without a vetted entry is killed.
func TestKillAndExecChecks(t *testing.T) {
	cases := []struct {
		name  string
		enter func(c *Call) Verdict
	}{
		{"kill at exec", func(c *Call) Verdict {
			if c.Nr == unix.SYS_EXECVE {
				return Verdict{Kind: Kill}
			}
			return Verdict{Kind: Allow}
		}},
		{"exec check fails", func(c *Call) Verdict {
			if c.Nr == unix.SYS_EXECVE {
				return Verdict{Kind: Allow, AtExec: func(int) bool { return false }}
			}
			return Verdict{Kind: Allow}
		}},
		{"exec without a vetted entry", func(c *Call) Verdict { return Verdict{Kind: Allow} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := t.TempDir() + "/ran"
			out, ws := trace(t, SyscallStops, &funcDecider{enter: tc.enter}, "/bin/sh", "-c", "read x; exec /bin/touch "+mark)
			if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
				t.Fatalf("want SIGKILL, got %v (%q)", ws, out)
			}
			if _, err := os.Stat(mark); err == nil {
				t.Fatal("the program ran")
			}
		})
	}
}

// TestExitCheckClosesTheFD: an exit check that refuses an open's result
// closes the fd in the caller and replaces the return value.
func TestExitCheckClosesTheFD(t *testing.T) {
	needPython(t)
	for _, async := range []bool{false, true} {
		name := "sync"
		if async {
			name = "async"
		}
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var refused []int64
			d := &funcDecider{async: async, enter: func(c *Call) Verdict {
				// Only the test's open (O_NOFOLLOW marks it).
				if c.Nr != unix.SYS_OPENAT || c.Args[2]&unix.O_NOFOLLOW == 0 {
					return Verdict{Kind: Allow}
				}
				return Verdict{Kind: Allow, AtExit: func(ret int64) ExitResult {
					if ret < 0 {
						return ExitResult{Ret: ret, CloseFD: -1}
					}
					mu.Lock()
					refused = append(refused, ret)
					mu.Unlock()
					return ExitResult{Ret: -int64(unix.EACCES), CloseFD: int(ret)}
				}}
			}}
			prog := `import os, sys
sys.stdin.readline()
before = sorted(os.listdir("/proc/self/fd"))
try:
    fd = os.open("/etc/hostname", os.O_RDONLY | os.O_NOFOLLOW)
    print("opened", fd)
except PermissionError:
    print("refused")
print(" ".join(before))
print(" ".join(sorted(os.listdir("/proc/self/fd"))))
`
			out, ws := trace(t, SyscallStops, d, py, "-S", "-c", prog)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if !ws.Exited() || ws.ExitStatus() != 0 || len(lines) != 3 || lines[0] != "refused" {
				t.Fatalf("status %v, output %q", ws, out)
			}
			if len(refused) != 1 {
				t.Fatalf("want one open refused at exit, got %v", refused)
			}
			// The refused fd was closed in the caller: the same fds are
			// open before and after (listdir's own fd is listed both times).
			if lines[1] != lines[2] {
				t.Errorf("fd %d, refused at exit, is still open: before %q, after %q", refused[0], lines[1], lines[2])
			}
		})
	}
}

// TestRewrite: a rewritten call runs with the new number and arguments.
func TestRewrite(t *testing.T) {
	d := &funcDecider{enter: func(c *Call) Verdict {
		if c.Nr == unix.SYS_CHDIR {
			// chdir(path) -> sched_yield(): returns 0, no move.
			return Verdict{Kind: Allow, Rewrite: &Rewrite{Nr: unix.SYS_SCHED_YIELD}}
		}
		return Verdict{Kind: Allow, AtExec: func(int) bool { return true }}
	}}
	wd, _ := os.Getwd()
	out, ws := trace(t, SyscallStops, d, "/bin/sh", "-c", "read x; cd / ; pwd; /bin/pwd")
	// The shell believes it moved (chdir "succeeded"); the kernel's cwd did
	// not change.
	if !ws.Exited() || !strings.HasSuffix(out, wd+"\n") {
		t.Fatalf("status %v, output %q", ws, out)
	}
}

// TestForksAreFollowed: children and threads of the tracee are traced
// from their start: a Return verdict reaches a grandchild's call.
func TestForksAreFollowed(t *testing.T) {
	d := &funcDecider{enter: func(c *Call) Verdict {
		if c.Nr == unix.SYS_CHDIR {
			return Verdict{Kind: Return, Ret: -int64(unix.EPERM)}
		}
		return Verdict{Kind: Allow, AtExec: func(int) bool { return true }}
	}}
	out, ws := trace(t, SyscallStops, d, "/bin/sh", "-c", "read x; /bin/sh -c '(cd / 2>/dev/null && echo moved || echo refused)'")
	if !ws.Exited() || out != "refused\n" {
		t.Fatalf("status %v, output %q", ws, out)
	}
}
