//go:build linux

package supervisor

import (
	"golang.org/x/sys/unix"

	"vigil/rules"
)

type action uint8

const (
	actErrno    action = iota // fail the call with errno
	actValue                  // return a value without running the call
	actContinue               // let the kernel run the call (exec only)
	actInjectFD               // install fd in the caller, return its number
)

// Result is what a handler decided. Handlers build it with Errno, Value,
// Continue or InjectFD and may attach an audit Event; only respond() acts
// on it.
type Result struct {
	action  action
	errno   unix.Errno
	val     int64
	fd      int    // actInjectFD: the supervisor's fd, closed after the answer
	fdFlags uint32 // actInjectFD: O_CLOEXEC or 0
	// Event, when set, is logged after the answer.
	Event *Event
	// barrier, when set (exec), wraps the CONTINUE answer in the ptrace
	// check of what was loaded.
	barrier *execBarrier
}

// Errno fails the call with e.
func Errno(e unix.Errno) Result { return Result{action: actErrno, errno: e} }

// Value makes the call return v.
func Value(v int64) Result { return Result{action: actValue, val: v} }

// Continue lets the kernel perform the call. Only for exec: everything
// else is emulated (CONTINUE after a check is a race).
func Continue() Result { return Result{action: actContinue} }

// InjectFD installs the supervisor's fd in the caller (with O_CLOEXEC when
// cloexec) and returns the new number; the supervisor's fd is closed.
func InjectFD(fd int, cloexec bool) Result {
	r := Result{action: actInjectFD, fd: fd}
	if cloexec {
		r.fdFlags = unix.O_CLOEXEC
	}
	return r
}

func (r Result) withEvent(e *Event) Result { r.Event = e; return r }

// judge records decision d on ev according to the policy's mode. deny: the
// call fails with EACCES and ev is logged. Otherwise the call goes ahead and
// logged is the event to write with it: ev marked "audit" (audit mode, a
// call that enforce mode would deny), ev marked "allow" (log_allowed), or
// nil.
func (s *supervisor) judge(ev *Event, d rules.Decision) (deny bool, logged *Event) {
	ev.Rule, ev.Source = d.Rule, d.Source
	switch {
	case !d.Allow && d.Rule == ruleSupervisorProc:
		// Not the policy's to relax: audit mode denies it too.
		ev.Decision = DecisionDeny
		return true, ev
	case !d.Allow && s.policy.Mode() != rules.Audit:
		ev.Decision = DecisionDeny
		return true, ev
	case !d.Allow:
		ev.Decision = DecisionAudit
		return false, ev
	case s.policy.LogAllowed():
		ev.Decision = DecisionAllow
		return false, ev
	}
	return false, nil
}
