//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// pcDecodeLegacy decodes the x86-64 path-change calls without a directory
// fd argument (and futimesat), for pcDecode: known reports whether nr is
// one of them; early is an errno to return at once; a failure to read the
// caller's memory is left in *e, as pcDecode's own cases do.
func pcDecodeLegacy(r *request, c *pcCall, path pcPathFn, e *unix.Errno) (known bool, early unix.Errno) {
	nr := c.nr
	cwd := unix.AT_FDCWD
	switch nr {
	case unix.SYS_MKDIR:
		pcDecodeMkdir(r, c, path, cwd, 0)
	case unix.SYS_MKNOD:
		early = pcDecodeMknod(r, c, path, cwd, 0)
	case unix.SYS_UNLINK:
		c.kind = pcUnlink
		c.a = pcNameEnd(c.kind, cwd, path(0, false), false)
	case unix.SYS_RMDIR:
		c.kind = pcRmdir
		c.a = pcNameEnd(c.kind, cwd, path(0, false), false)
	case unix.SYS_RENAME:
		c.kind, c.two = pcRename, true
		c.a = pcNameEnd(c.kind, cwd, path(0, false), false)
		c.b = pcNameEnd(c.kind, cwd, path(1, false), true)
	case unix.SYS_LINK:
		c.kind, c.two = pcLink, true
		c.a = pcNameEnd(c.kind, cwd, path(0, false), false)
		c.b = pcNameEnd(c.kind, cwd, path(1, false), true)
	case unix.SYS_SYMLINK:
		c.kind = pcSymlink
		c.target = path(0, false)
		c.a = pcNameEnd(c.kind, cwd, path(1, false), true)
	case unix.SYS_CHMOD:
		c.kind = pcChmod
		c.a = pcObjEnd(cwd, path(0, false), true, false)
		c.mode = uint32(r.arg(1)) & sIALLUGO
	case unix.SYS_CHOWN, unix.SYS_LCHOWN:
		c.kind = pcChown
		c.a = pcObjEnd(cwd, path(0, false), nr == unix.SYS_CHOWN, false)
		c.uid, c.gid = r.argInt(1), r.argInt(2)
	case unix.SYS_UTIME, unix.SYS_UTIMES:
		c.kind = pcUtime
		c.a = pcObjEnd(cwd, path(0, false), true, false)
		if *e == 0 {
			if nr == unix.SYS_UTIME {
				c.times, *e = pcReadUtimbuf(r, r.arg(1))
			} else {
				c.times, *e = pcReadTimevals(r, r.arg(1))
			}
		}
	case unix.SYS_FUTIMESAT:
		early = pcDecodeUtimesAt(r, c, path, e, false)
	default:
		return false, 0
	}
	return true, early
}
