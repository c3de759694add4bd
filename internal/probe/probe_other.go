//go:build !(linux && cgo)

package probe

import "errors"

// ErrUnsupported is why every check fails where the probe cannot run: it
// needs Linux and cgo.
var ErrUnsupported = errors.New("the probe needs Linux and cgo")

// Run reports every check as failed with ErrUnsupported; Backend is "none".
func Run() Report {
	no := Check{Error: ErrUnsupported.Error()}
	return Report{
		SeccompFilter: no, SeccompListener: no, SeccompAddFD: no, WaitKillableRecv: no,
		PidfdOpen: no, PidfdGetfd: no, Openat2: no, PtraceTraceme: no, PtraceSeize: no,
		ProcessVMReadv: no, Landlock: no, IOUring: no,
	}
}

// RunIsolated is Run.
func RunIsolated() Report { return Run() }
