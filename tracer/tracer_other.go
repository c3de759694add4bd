//go:build !linux

package tracer

import "errors"

// ErrUnsupported: the ptrace backend exists on Linux only.
var ErrUnsupported = errors.New("tracer: ptrace backend is Linux-only")
