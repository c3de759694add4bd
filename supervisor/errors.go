package supervisor

import "errors"

// ErrUnsupported is returned by Run on systems other than Linux.
var ErrUnsupported = errors.New("vigil supervisor: unsupported operating system (Linux only)")

// StartError means the command was never started: the filter could not be
// built, installed or handed over. Nothing of the command ran. The bootstrap
// exits 2 on it.
type StartError struct {
	Stage string // "filter", "start", "seccomp", "handoff", ...
	Err   error
}

func (e *StartError) Error() string {
	return "vigil: cannot start under the filter (" + e.Stage + "): " + e.Err.Error()
}

func (e *StartError) Unwrap() error { return e.Err }
