package supervisor

import (
	"errors"
	"strings"
)

// ErrUnsupported is returned by Run on systems other than Linux.
var ErrUnsupported = errors.New("vigil supervisor: unsupported operating system (Linux only)")

// StartError means the command was never started: the filter could not be
// built, installed or handed over. Nothing of the command ran. The bootstrap
// exits 2 on it.
type StartError struct {
	Stage string // "filter", "start", "seccomp", "handoff", "ptrace", ...
	Err   error
	// Refused lists the backends tried before this one and why the kernel
	// refused each (backend "auto").
	Refused []string
}

func (e *StartError) Error() string {
	msg := "vigil: cannot start under the filter (" + e.Stage + "): " + e.Err.Error()
	if len(e.Refused) > 0 {
		msg += "; refused before: " + strings.Join(e.Refused, "; ")
	}
	return msg
}

// fallbackable reports whether err means that a backend could not take
// hold of the command (nothing of it ran), so that "auto" may try the next.
func fallbackable(err error) bool {
	var se *StartError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Stage {
	case "filter", "seccomp", "handoff", "ptrace":
		return true
	}
	return false
}

func (e *StartError) Unwrap() error { return e.Err }
