//go:build linux

package supervisor

import (
	"strconv"

	"golang.org/x/sys/unix"
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
				if b.loadedIsAllowed(wpid) {
					_ = ptraceRaw(unix.PTRACE_DETACH, wpid, 0, 0)
					return
				}
				killed = true
				_ = unix.Kill(wpid, unix.SIGKILL)
				ev := &Event{
					Decision: DecisionKill, Op: "exec", Path: b.want.path, Pid: b.tgid,
					Exe: exePath(wpid), Rule: "the loaded program is not the file that was allowed",
					Mode: s.policy.Mode().String(),
				}
				s.audit.Log(*ev)
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

func (b *execBarrier) loadedIsAllowed(pid int) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st); err != nil {
		return false
	}
	return uint64(st.Dev) == b.want.dev && st.Ino == b.want.ino
}
