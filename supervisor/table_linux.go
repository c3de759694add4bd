//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// handlerTable is the one table: syscall number -> handler. A notified
// syscall without an entry gets ENOSYS.
func handlerTable() map[int32]handler {
	return map[int32]handler{
		unix.SYS_EXECVE:   handleExec,
		unix.SYS_EXECVEAT: handleExec,
		unix.SYS_OPEN:     handleOpen,
		unix.SYS_OPENAT:   handleOpen,
		unix.SYS_OPENAT2:  handleOpen,
		unix.SYS_CREAT:    handleOpen,
		unix.SYS_CONNECT:  handleConnect,
	}
}
