// Package probe finds out which of the kernel features Vigil's backends
// need work here, and which backend "auto" would pick: bin/bootstrap
// --probe prints it, and the Lambda custom runtime logs it at init.
//
// Everything that changes a process for good (no_new_privs, seccomp
// filters, PTRACE_TRACEME) is tried in short-lived children forked from C
// (raw system calls only, no re-exec of this binary), never in the caller;
// every child is killed and reaped before Run returns, and one that hangs
// is reported as not working after a timeout. The whole probe takes a few
// milliseconds (Report.ElapsedUS).
//
// Run forks and reaps its own children by pid: a goroutine that reaps any
// child (wait4(-1)) at the same time could take them from it.
package probe

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The backends "auto" picks from, best first.
const (
	BackendNotify        = "notify"         // seccomp user notification (supervisor/)
	BackendPtraceSeccomp = "ptrace-seccomp" // ptrace, stopped only on vetted calls by SECCOMP_RET_TRACE
	BackendPtrace        = "ptrace-alone"   // ptrace, stopped on every call (PTRACE_SYSCALL)
	BackendNone          = "none"           // nothing works: Vigil cannot enforce here
)

// Check is whether one feature works here.
type Check struct {
	OK bool `json:"ok"`
	// When not OK: what failed and how, e.g. "seccomp(SECCOMP_SET_MODE_FILTER):
	// EPERM (operation not permitted)", "not tried: needs seccomp listener" or
	// "timed out after 1s (the probe child was killed)".
	Error string `json:"error,omitempty"`
	// The errno the kernel returned, when that is how it failed.
	Errno int `json:"errno,omitempty"`
}

// Report is what Run found. Its JSON form (MarshalJSON) adds "backend",
// the pick of Backend.
type Report struct {
	Kernel  string `json:"kernel"`  // uname release
	Machine string `json:"machine"` // uname machine

	SeccompFilter    Check `json:"seccomp_filter"`     // SECCOMP_SET_MODE_FILTER of an allow-all program, after no_new_privs
	SeccompListener  Check `json:"seccomp_listener"`   // SECCOMP_FILTER_FLAG_NEW_LISTENER
	SeccompAddFD     Check `json:"seccomp_addfd"`      // a notification answered with an fd injected by SECCOMP_IOCTL_NOTIF_ADDFD, used by the child
	WaitKillableRecv Check `json:"wait_killable_recv"` // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV accepted (5.19)
	PidfdOpen        Check `json:"pidfd_open"`
	PidfdGetfd       Check `json:"pidfd_getfd"`      // a child's fd taken and used
	Openat2          Check `json:"openat2"`          // with RESOLVE_NO_SYMLINKS
	PtraceTraceme    Check `json:"ptrace_traceme"`   // PTRACE_TRACEME, and the parent sees the child stop
	PtraceSeize      Check `json:"ptrace_seize"`     // PTRACE_SEIZE with PTRACE_O_TRACESECCOMP|PTRACE_O_EXITKILL, then PTRACE_INTERRUPT stops it
	ProcessVMReadv   Check `json:"process_vm_readv"` // a child's memory read back
	Landlock         Check `json:"landlock"`
	LandlockABI      int   `json:"landlock_abi"` // 0 when Landlock is not available
	IOUring          Check `json:"io_uring"`     // io_uring_setup

	ElapsedUS int64 `json:"elapsed_us"` // how long Run took, in microseconds
}

// MarshalJSON writes the report's fields and "backend": Backend().
func (r Report) MarshalJSON() ([]byte, error) {
	type fields Report // without the methods, so no recursion
	return json.Marshal(struct {
		fields
		Backend string `json:"backend"`
	}{fields(r), r.Backend()})
}

type named struct {
	name  string
	check Check
}

// checks lists the checks in the order Lines prints them.
func (r Report) checks() []named {
	return []named{
		{"seccomp filter", r.SeccompFilter},
		{"seccomp listener", r.SeccompListener},
		{"seccomp ADDFD", r.SeccompAddFD},
		{"WAIT_KILLABLE_RECV", r.WaitKillableRecv},
		{"pidfd_open", r.PidfdOpen},
		{"pidfd_getfd", r.PidfdGetfd},
		{"openat2", r.Openat2},
		{"ptrace PTRACE_TRACEME", r.PtraceTraceme},
		{"ptrace PTRACE_SEIZE", r.PtraceSeize},
		{"process_vm_readv", r.ProcessVMReadv},
		{"Landlock", r.Landlock},
		{"io_uring", r.IOUring},
	}
}

// tier is a backend and the checks it needs.
type tier struct {
	backend string
	checks  []named
}

// needs is what each backend needs to work, in the order auto tries them.
func (r Report) needs() []tier {
	filter, seize, readv := named{"seccomp filter", r.SeccompFilter}, named{"ptrace PTRACE_SEIZE", r.PtraceSeize}, named{"process_vm_readv", r.ProcessVMReadv}
	return []tier{
		{BackendNotify, []named{filter, {"seccomp listener", r.SeccompListener}, {"seccomp ADDFD", r.SeccompAddFD}, {"pidfd_getfd", r.PidfdGetfd}, readv}},
		{BackendPtraceSeccomp, []named{filter, seize, readv}},
		{BackendPtrace, []named{seize, readv}},
	}
}

// Backend is the backend "auto" picks: "notify" when a seccomp filter, a
// listener, ADDFD, pidfd_getfd and process_vm_readv work; else
// "ptrace-seccomp" when a seccomp filter, PTRACE_SEIZE and process_vm_readv
// work; else "ptrace-alone" when PTRACE_SEIZE and process_vm_readv work; else
// "none".
func (r Report) Backend() string {
	for _, b := range r.needs() {
		if len(failed(b.checks)) == 0 {
			return b.backend
		}
	}
	return BackendNone
}

func failed(cs []named) []string {
	var out []string
	for _, c := range cs {
		if !c.check.OK {
			out = append(out, c.name+": "+c.check.Error)
		}
	}
	return out
}

// Lines is the report for people: a summary line with the kernel and the
// backend, for each backend better than the one picked a line saying what
// it lacks, then one line per check.
func (r Report) Lines() []string {
	b := r.Backend()
	var lines []string
	if b == BackendNone {
		lines = append(lines, fmt.Sprintf("vigil probe: Linux %s %s: no backend works here, Vigil cannot enforce (the kernel refused what each needs; %.1f ms)", r.Kernel, r.Machine, float64(r.ElapsedUS)/1000))
	} else {
		lines = append(lines, fmt.Sprintf("vigil probe: Linux %s %s: backend auto picks %q (%.1f ms)", r.Kernel, r.Machine, b, float64(r.ElapsedUS)/1000))
	}
	for _, n := range r.needs() {
		if n.backend == b {
			break
		}
		lines = append(lines, fmt.Sprintf("  not %s: %s", n.backend, strings.Join(failed(n.checks), "; ")))
	}
	for _, c := range r.checks() {
		state := "works"
		if c.name == "Landlock" && c.check.OK {
			state = fmt.Sprintf("works (ABI %d)", r.LandlockABI)
		}
		if !c.check.OK {
			state = "fails: " + c.check.Error
		}
		lines = append(lines, fmt.Sprintf("  %-22s %s", c.name, state))
	}
	return lines
}
