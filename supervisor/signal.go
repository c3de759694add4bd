//go:build linux

package supervisor

import (
	"bytes"
	"strconv"

	"golang.org/x/sys/unix"
)

// ruleSignalSupervisor is the rule of every refused signal or pidfd.
const ruleSignalSupervisor = "signals and pidfds aimed at the supervisor are refused"

// handleSignal decides kill, tkill, rt_sigqueueinfo and pidfd_open: a
// caller may signal (or take a pidfd of) anything the kernel lets it,
// except the supervisor. kill() and tkill() accept the id of any thread of
// the supervisor, which BPF cannot know, so these come here; tgkill and
// rt_tgsigqueueinfo name the thread group and are refused in BPF.
//
// Every argument is a register: nothing is read from the caller's memory,
// so answering CONTINUE is not the open/connect race. What remains is pid
// reuse: the target could exit and its number be given to a new supervisor
// thread between this check and the kernel's delivery, which needs the
// kernel's cyclic pid allocator to wrap around to exactly that number in
// that window (README, "What remains").
//
// The decision is not the policy's: audit mode does not allow it.
func handleSignal(r *request) Result {
	// The kernel takes these as C ints.
	target := int(int32(uint32(r.arg(0))))
	ours := r.s.self
	var hit bool
	switch r.n.Data.Nr {
	case unix.SYS_KILL, unix.SYS_RT_SIGQUEUEINFO:
		switch {
		case target > 0:
			hit = tgidOf(target) == ours
		case target == 0:
			// The caller's own process group: the command runs in its
			// own, but a process can move into the supervisor's.
			hit = pgrpOf(r.tid) == r.s.pgrp
		case target == -1:
			// Every process the caller may signal, the supervisor too.
			hit = true
		default:
			hit = -target == r.s.pgrp
		}
	case unix.SYS_TKILL, unix.SYS_PIDFD_OPEN:
		hit = target > 0 && tgidOf(target) == ours
	}
	if !hit {
		return Continue()
	}
	ev := &Event{Decision: DecisionDeny, Op: "signal", Rule: ruleSignalSupervisor,
		Detail: signalDetail(r.n.Data.Nr, target, r.argInt(1))}
	return Errno(unix.EPERM).withEvent(ev)
}

func signalDetail(nr int32, target, sig int) string {
	switch nr {
	case unix.SYS_KILL:
		return "kill(" + strconv.Itoa(target) + ", " + strconv.Itoa(sig) + ")"
	case unix.SYS_TKILL:
		return "tkill(" + strconv.Itoa(target) + ", " + strconv.Itoa(sig) + ")"
	case unix.SYS_RT_SIGQUEUEINFO:
		return "rt_sigqueueinfo(" + strconv.Itoa(target) + ", " + strconv.Itoa(sig) + ")"
	}
	return "pidfd_open(" + strconv.Itoa(target) + ")"
}

// tgidOf is the thread group of a thread id, or -1 when it does not exist.
func tgidOf(tid int) int {
	st, err := readStatus(tid)
	if err != nil {
		return -1
	}
	return st.tgid
}

// pgrpOf is the process group of a thread (field 5 of /proc/<tid>/stat),
// or -1.
func pgrpOf(tid int) int {
	var buf [512]byte
	b := readProcStat(tid, buf[:])
	if b == nil {
		return -1
	}
	return parseStatPgrp(b)
}

// parseStatPgrp reads the process group from /proc/<pid>/stat: the comm
// field may hold spaces and parentheses, so fields are counted after the
// last ')'.
func parseStatPgrp(b []byte) int {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(b[i+1:])
	// state ppid pgrp
	if len(f) < 3 {
		return -1
	}
	return atoi(f[2])
}
