//go:build linux

package supervisor

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
)

const wNoThread = 0x20000000 // __WNOTHREAD

// execBarrier makes sure that what an allowed exec loads is the file that
// was allowed. The decision was made on a path the caller can still change
// (another thread rewrites the buffer, a rename swaps the file); the kernel
// re-reads it when it performs the exec. So, before answering CONTINUE, the
// calling thread is seized with ptrace (PTRACE_O_TRACEEXEC); at
// PTRACE_EVENT_EXEC the new image has not run a single instruction, and
// /proc/PID/exe must be the allowed file (device and inode), else the
// process is killed. A failed exec shows up as PTRACE_EVENT_STOP (from our
// PTRACE_INTERRUPT) instead, and we detach.
//
// All ptrace requests for the tracee come from this receiver's locked OS
// thread (ptrace binds the tracer to a thread), and waits use __WNOTHREAD so
// that one barrier never consumes another barrier's events.
type execBarrier struct {
	tid, tgid int
	want      execTarget
}

func ptraceRaw(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (b *execBarrier) run(s *supervisor, id uint64, res *Result) error {
	s.trace(b.tgid)
	defer s.untrace(b.tgid)
	opts := uintptr(unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL)
	if err := ptraceRaw(unix.PTRACE_SEIZE, b.tid, 0, opts); err != nil {
		// Fail closed: an exec we cannot verify is not allowed.
		deny := Errno(unix.EACCES)
		ev := res.Event
		if ev == nil {
			ev = &Event{Op: "exec", Pid: b.tgid, Path: b.want.path}
			ev.Exe = exePath(b.tgid)
			ev.Mode = s.policy.Mode().String()
		}
		ev.Decision = DecisionDeny
		ev.Rule, ev.Source = ruleNoPtrace, ""
		ev.Detail = "ptrace: " + err.Error()
		res.Event = ev
		return s.respond(id, &deny)
	}
	cont := Continue()
	sendErr := s.respond(id, &cont)
	// Whatever the answer did (ENOENT: the caller was killed or its call
	// interrupted and about to be re-issued), stop the tracee at its next
	// chance so that we learn how the exec ended.
	_ = ptraceRaw(unix.PTRACE_INTERRUPT, b.tid, 0, 0)
	b.await(s, res)
	return sendErr
}

// await waits for the outcome; it returns with the tracee detached or dead.
func (b *execBarrier) await(s *supervisor, res *Result) {
	killed := false
	for {
		// wait4(-1, __WALL|__WNOTHREAD) from this thread reports only this
		// thread's own tracee (receiver threads have no children: only the
		// thread that forked the command does, and orphans go to the
		// leader). Waiting by pid would not do: an exec by a non-leader
		// thread gives the tracee the thread group id, and a waiter on the
		// old tid is never woken.
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, unix.WALL|wNoThread, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return // detached or reaped: nothing left
		}
		if err != nil {
			s.log.Error("exec barrier wait failed", "pid", b.tid, "error", err)
			_ = unix.Kill(b.tgid, unix.SIGKILL)
			return
		}
		switch {
		case ws.Exited() || ws.Signaled():
			if wpid == b.tgid {
				// We consumed the exit; if we are also the real parent, the
				// reaper never sees it: hand the status over.
				s.recordExit(wpid, exitStatus(ws))
			}
			return
		case ws.Stopped():
			event := int(ws>>16) & 0xff
			sig := ws.StopSignal()
			switch {
			case sig == unix.SIGTRAP && event == unix.PTRACE_EVENT_EXEC:
				if killed {
					continue
				}
				ok, why := b.verify(wpid)
				if ok {
					if barrierVerifiedHook != nil {
						barrierVerifiedHook(wpid, b.want)
					}
					_ = ptraceRaw(unix.PTRACE_DETACH, wpid, 0, 0)
					return
				}
				killed = true
				_ = unix.Kill(wpid, unix.SIGKILL)
				b.logKill(s, wpid, why)
				// Keep waiting: the exit comes next.
			case event == unix.PTRACE_EVENT_STOP:
				if killed {
					continue
				}
				// Our interrupt (or a group stop) before any exec: the exec
				// failed or will be re-issued (and vetted again).
				_ = ptraceRaw(unix.PTRACE_DETACH, wpid, 0, 0)
				return
			default:
				// Signal-delivery stop: pass the signal on.
				inject := uintptr(sig)
				if event != 0 {
					inject = 0
				}
				_ = ptraceRaw(unix.PTRACE_CONT, wpid, 0, inject)
			}
		}
	}
}

// logKill writes the audit line of an exec killed because the new image
// of pid is not what was allowed.
func (b *execBarrier) logKill(s *supervisor, pid int, why string) {
	s.audit.Log(Event{
		Decision: DecisionKill, Op: "exec", Path: b.want.path, Pid: b.tgid,
		Exe: exePath(pid), Rule: why, Mode: s.policy.Mode().String(),
	})
}

// barrierVerifiedHook, when set (tests only), runs after the barrier has
// verified a new image and before it lets it run.
var barrierVerifiedHook func(pid int, t execTarget)

// verify checks the new image of pid, stopped at PTRACE_EVENT_EXEC: nothing
// of it has run, its old threads are gone and nobody else shares its
// memory, so what it holds (its exe, its argv) can no longer change.
func (b *execBarrier) verify(pid int) (bool, string) {
	loaderOpens.drop(pid)
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st); err != nil ||
		uint64(st.Dev) != b.want.dev || st.Ino != b.want.ino {
		return false, "the loaded program is not the file that was allowed"
	}
	if !b.want.loader {
		return true, ""
	}
	// The dynamic loader run as a command: the program it will run is
	// the one its argv names now.
	const ruleProg = "the program the dynamic loader runs is not the file that was allowed"
	argv, trunc, err := readCmdline(pid)
	if err != nil {
		return false, ruleProg + ": argv cannot be read"
	}
	i, ok := loaderProgram(argv)
	if !ok {
		if trunc {
			return false, ruleProg + ": argv too long"
		}
		return true, "" // only options: it runs nothing
	}
	want := b.want.prog
	prog := argv[i]
	if want == nil || !strings.Contains(prog, "/") {
		return false, ruleProg
	}
	dev, ino, err := resolveInProcess(pid, prog)
	if err != nil || dev != want.dev || ino != want.ino {
		return false, ruleProg
	}
	// It opens the program by that name later: a rename or a symlink
	// swapped in meanwhile is caught at that open (checkLoaderOpen).
	if err := loaderOpens.expect(pid, prog, want); err != nil {
		return false, ruleProg + ": " + err.Error()
	}
	return true, ""
}

// readCmdline returns the argv of a process (a prefix when longer than
// maxArgvBytes).
func readCmdline(pid int) ([]string, bool, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/cmdline", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, maxArgvBytes+1)
	n, err := readFull(fd, buf)
	if err != nil {
		return nil, false, err
	}
	return splitCmdline(buf[:n], maxArgvBytes)
}

// splitCmdline splits /proc/PID/cmdline; more than max bytes is truncated
// (the last, possibly partial, argument dropped).
func splitCmdline(b []byte, max int) ([]string, bool, error) {
	trunc := len(b) > max
	if trunc {
		b = b[:max]
		if i := bytes.LastIndexByte(b, 0); i >= 0 {
			b = b[:i+1]
		} else {
			b = nil
		}
	}
	if len(b) == 0 {
		return []string{""}, trunc, nil
	}
	if b[len(b)-1] != 0 {
		return nil, false, unix.EINVAL
	}
	return strings.Split(string(b[:len(b)-1]), "\x00"), trunc, nil
}

// resolveInProcess resolves name as process pid's open() would, and
// returns the device and inode it names (a regular file reachable by a
// path only).
func resolveInProcess(pid int, name string) (uint64, uint64, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/"
	root, err := unix.Open(p+"root", unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(root)
	ctx := resolve.Context{Pid: pid, Tid: pid, Root: root, Dir: -1}
	if !strings.HasPrefix(name, "/") {
		cwd, err := unix.Open(p+"cwd", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, 0, err
		}
		defer unix.Close(cwd)
		ctx.Dir = cwd
	}
	res, err := resolvePath(ctx, name, 0)
	if err != nil {
		return 0, 0, err
	}
	if res.Kind != resolve.Path || !res.Exists || res.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, 0, unix.EACCES
	}
	return res.Dev, res.Ino, nil
}

// loaderExpectation: process pid (a dynamic loader run as a command) must
// open exactly path and get the file that was allowed.
type loaderExpectation struct {
	path  string
	want  loaderProgramTarget
	pidfd int // tells a live process from a recycled pid
}

// loaderOpens holds the expectations of loaders between their exec and
// their open of the program. Pids are unique system-wide, so one registry
// serves every supervisor in the process.
var loaderOpens = &loaderRegistry{m: map[int]*loaderExpectation{}}

type loaderRegistry struct {
	n  atomic.Int32 // len(m), for a lock-free fast path in every open
	mu sync.Mutex
	m  map[int]*loaderExpectation
}

func (l *loaderRegistry) expect(pid int, path string, want *loaderProgramTarget) error {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= 64 {
		for p, x := range l.m {
			if !pidfdAlive(x.pidfd) {
				l.removeLocked(p)
			}
		}
	}
	l.removeLocked(pid)
	l.m[pid] = &loaderExpectation{path: path, want: *want, pidfd: pfd}
	l.n.Store(int32(len(l.m)))
	return nil
}

func (l *loaderRegistry) drop(pid int) {
	if l.n.Load() == 0 {
		return
	}
	l.mu.Lock()
	l.removeLocked(pid)
	l.mu.Unlock()
}

func (l *loaderRegistry) removeLocked(pid int) {
	if x, ok := l.m[pid]; ok {
		unix.Close(x.pidfd)
		delete(l.m, pid)
		l.n.Store(int32(len(l.m)))
	}
}

// take returns pid's expectation for an open of path, removing it when
// remove is set. A stale one (its process gone, the pid recycled) is
// dropped.
func (l *loaderRegistry) take(pid int, path string, remove bool) (loaderExpectation, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	x, ok := l.m[pid]
	if !ok {
		return loaderExpectation{}, false
	}
	if !pidfdAlive(x.pidfd) {
		l.removeLocked(pid)
		return loaderExpectation{}, false
	}
	if x.path != path {
		return loaderExpectation{}, false
	}
	v := *x
	if remove {
		l.removeLocked(pid)
	}
	return v, true
}

func pidfdAlive(pidfd int) bool {
	return unix.PidfdSendSignal(pidfd, 0, nil, 0) != unix.ESRCH
}

// checkLoaderOpen is called (deferred) by handleOpen with the answer it
// computed. When the caller is a dynamic loader that the barrier let run a
// program and this is its open of exactly that program's name, the file it
// gets must be the one that was allowed: a rename or symlink swap after the
// barrier's check would otherwise have the loader map another program. A
// mismatch is denied (EACCES: the loader reports the error and exits).
func (r *request) checkLoaderOpen(path string, out *Result) {
	if loaderOpens.n.Load() == 0 || r.st == nil {
		return
	}
	tgid := r.st.tgid
	// What the open yields: the file the supervisor opened, or (ptrace
	// backend) the object the caller's own open must yield, checked at its
	// exit.
	var dev, ino uint64
	switch {
	case out.action == actInjectFD:
		var st unix.Stat_t
		if err := unix.Fstat(out.fd, &st); err == nil {
			dev, ino = uint64(st.Dev), st.Ino
		}
	case out.action == actContinue && r.openWant != nil:
		dev, ino = r.openWant.dev, r.openWant.ino
	default:
		// Nothing to map was handed over: keep watching (the open is
		// checked only when it yields a file).
		return
	}
	x, ok := loaderOpens.take(tgid, path, true)
	if !ok {
		return
	}
	if dev == x.want.dev && ino == x.want.ino && (dev != 0 || ino != 0) {
		return
	}
	if out.action == actInjectFD {
		unix.Close(out.fd)
	}
	*out = Errno(unix.EACCES).withEvent(&Event{
		Decision: DecisionDeny, Op: "exec", Path: x.want.path, Pid: tgid,
		Rule:   "the program the dynamic loader opens is not the file that was allowed",
		Detail: "opened " + path,
	})
}
