//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// handlerTable is the one table: syscall number -> handler, one handler per
// family, each in its own file. The filter notifies exactly these calls
// (see filter_linux.go); a notified syscall without an entry gets ENOSYS.
func handlerTable() map[int32]handler {
	t := map[int32]handler{}
	add := func(h handler, nrs ...int32) {
		for _, nr := range nrs {
			t[nr] = h
		}
	}
	// exec.go
	add(handleExec, unix.SYS_EXECVE, unix.SYS_EXECVEAT)
	// open.go
	add(handleOpen, unix.SYS_OPENAT, unix.SYS_OPENAT2)
	// pathchange.go: every call that changes the file tree or a file's
	// metadata is a write to each path it touches.
	add(handlePathChange,
		unix.SYS_MKDIRAT, unix.SYS_MKNODAT,
		unix.SYS_UNLINKAT,
		unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2,
		unix.SYS_LINKAT, unix.SYS_SYMLINKAT,
		unix.SYS_FCHMOD, unix.SYS_FCHMODAT, unix.SYS_FCHMODAT2,
		unix.SYS_FCHOWN, unix.SYS_FCHOWNAT,
		unix.SYS_TRUNCATE,
		unix.SYS_UTIMENSAT,
		unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_FSETXATTR,
		unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR, unix.SYS_FREMOVEXATTR,
		unix.SYS_SETXATTRAT, unix.SYS_REMOVEXATTRAT)
	// connect.go, send.go, bind.go: every way a socket reaches or offers
	// an address.
	add(handleConnect, unix.SYS_CONNECT)
	add(handleSend, unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_SENDMMSG)
	add(handleBind, unix.SYS_BIND)
	add(handleListen, unix.SYS_LISTEN)
	// signal.go: signals and pidfds aimed at the supervisor.
	add(handleSignal, unix.SYS_KILL, unix.SYS_TKILL, unix.SYS_RT_SIGQUEUEINFO, unix.SYS_PIDFD_OPEN)
	// The legacy path calls of the architecture (open, creat, mkdir, ...:
	// x86-64 has them, arm64 only the *at forms), handled by the same
	// families: table_amd64.go, table_arm64.go.
	addLegacy(add)
	return t
}
