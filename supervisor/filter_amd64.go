//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// archSideDoors are the side doors only x86-64 has: port I/O (iopl,
// ioperm) reaches hardware past the kernel; uselib opens a library by path
// without open(2).
func archSideDoors() []sideDoor {
	return []sideDoor{
		{nr: unix.SYS_IOPL, errno: unix.EPERM, why: "port I/O"},
		{nr: unix.SYS_IOPERM, errno: unix.EPERM, why: "port I/O"},
		{nr: unix.SYS_USELIB, errno: unix.EPERM, why: "uselib"},
	}
}
