//go:build linux

package supervisor

// addLegacy adds nothing on arm64: its system call table has only the *at
// forms of the path calls (openat, mkdirat, renameat, ...), which
// handlerTable adds on every architecture.
func addLegacy(add func(h handler, nrs ...int32)) {}
