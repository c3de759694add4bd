//go:build linux && cgo

package probe

/*
#include "probe_linux.h"
*/
import "C"

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timeout bounds the whole probe: a child that has not answered by then is
// killed and its checks fail.
const timeout = time.Second

// Run probes this kernel (see the package comment). It takes a few
// milliseconds, at most about timeout.
func Run() Report { return run(timeout, 0) }

// RunIsolated is Run from a child process of its own: the probe's children
// are not this process's, so it can run while this process reaps any child
// of its own (Vigil's supervisor does), which could otherwise take them.
func RunIsolated() Report { return runWith(timeout, 0, true) }

// run is Run with a timeout and, for tests, children that hang instead of
// probing (C.VP_HANG_*).
func run(timeout time.Duration, hang int) Report { return runWith(timeout, hang, false) }

func runWith(timeout time.Duration, hang int, isolated bool) Report {
	start := time.Now()
	var c C.struct_vp_report
	if isolated {
		C.vp_run_isolated(&c, C.int(timeout.Milliseconds()), C.int(hang))
	} else {
		C.vp_run(&c, C.int(timeout.Milliseconds()), C.int(hang))
	}
	r := Report{
		SeccompFilter:    check(c.seccomp_filter, timeout),
		SeccompListener:  check(c.seccomp_listener, timeout),
		SeccompAddFD:     check(c.seccomp_addfd, timeout),
		WaitKillableRecv: check(c.wait_killable_recv, timeout),
		PidfdOpen:        check(c.pidfd_open, timeout),
		PidfdGetfd:       check(c.pidfd_getfd, timeout),
		Openat2:          check(c.openat2, timeout),
		PtraceTraceme:    check(c.ptrace_traceme, timeout),
		PtraceSeize:      check(c.ptrace_seize, timeout),
		ProcessVMReadv:   check(c.process_vm_readv, timeout),
		Landlock:         check(c.landlock, timeout),
		LandlockABI:      int(c.landlock_abi),
		IOUring:          check(c.io_uring, timeout),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel, r.Machine = unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
	}
	r.ElapsedUS = time.Since(start).Microseconds()
	return r
}

func check(c C.struct_vp_check, timeout time.Duration) Check {
	code, where := int(c.code), C.GoString(C.vp_step_name(c.step))
	if where != "" {
		where += ": "
	}
	switch {
	case code == 0:
		return Check{OK: true}
	case code > 0:
		e := syscall.Errno(code)
		name := unix.ErrnoName(e)
		if name == "" {
			name = fmt.Sprintf("errno %d", code)
		}
		return Check{Error: fmt.Sprintf("%s%s (%s)", where, name, e.Error()), Errno: code}
	case code == C.VP_TIMEOUT:
		return Check{Error: fmt.Sprintf("%stimed out after %v (the probe child was killed)", where, timeout)}
	case code == C.VP_SKIPPED:
		return Check{Error: "not tried: needs " + C.GoString(C.vp_step_name(c.step))}
	case code == C.VP_MISMATCH:
		return Check{Error: where + "succeeded but did not do what it should"}
	default:
		return Check{Error: where + "the probe child died or broke the protocol"}
	}
}
