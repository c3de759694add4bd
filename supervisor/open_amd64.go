//go:build linux

package supervisor

import (
	"golang.org/x/sys/unix"

	"vigil/tracer"
)

// decodeOpenLegacy decodes x86-64's open and creat for decodeOpen (which
// then normalises them like openat): it returns the path's address, and
// false for any other call.
func decodeOpenLegacy(r *request, c *openCall) (pathAddr uint64, ok bool) {
	switch r.n.Data.Nr {
	case unix.SYS_OPEN:
		pathAddr, c.flags, c.mode = r.arg(0), uint64(uint32(r.arg(1))), r.arg(2)
	case unix.SYS_CREAT:
		pathAddr, c.flags, c.mode = r.arg(0), unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, r.arg(1)
	default:
		return 0, false
	}
	return pathAddr, true
}

// legacyOpenMayBlock: open(2) and creat(2) that the handler performs
// itself (ptrace backend, see openMayBlock).
func legacyOpenMayBlock(c *tracer.Call, effects uint64) bool {
	switch c.Nr {
	case unix.SYS_OPEN:
		return c.Args[1]&effects != 0
	case unix.SYS_CREAT:
		return true
	}
	return false
}
