//go:build linux

package supervisor

import (
	"path"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
)

// treeChanged reports whether an open along a canonical path failed because
// the tree changed since it was resolved: resolve and decide again.
func treeChanged(err error) bool {
	return err == unix.ELOOP || err == unix.EXDEV || err == unix.EAGAIN
}

// pcParent opens the parent directory of a name end's canonical path
// (O_PATH, no symlink or magic link on the way) and returns it with the
// final name to give to the *at call.
func pcParent(ctx resolve.Context, p pcPath, e *pcEnd) (fd int, name string, err error) {
	if e.res.Kind != resolve.Path || e.res.Path == "/" {
		return -1, "", unix.EACCES
	}
	dir, base := path.Split(e.res.Path)
	fd, err = resolveOpen(ctx, resolve.Result{Path: path.Clean(dir), Kind: resolve.Path, LinkFD: -1},
		unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", err
	}
	if p.trail {
		base += "/"
	}
	return fd, base, nil
}

// pcObject opens the object of a path end O_PATH|O_NOFOLLOW along its
// canonical path; for a followed end, a symlink there means the tree
// changed (ELOOP). fd and magic ends are their fd already (not to be
// closed: owned is false in the returned flag).
func pcObject(ctx resolve.Context, p pcPath, e *pcEnd) (fd int, own bool, err error) {
	if e.fd >= 0 {
		return e.fd, false, nil
	}
	fd, err = resolveOpen(ctx, e.res, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, false, err
	}
	if p.follow {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(fd)
			return -1, false, unix.ELOOP
		}
	}
	return fd, true, nil
}

// pcNoFchmodat2 is for tests: chmod as on kernels before 6.6.
var pcNoFchmodat2 bool

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

var emptyPath = [1]byte{0}

func utimensat(dirfd int, p *byte, ts *[2]unix.Timespec, flags int) error {
	var tp unsafe.Pointer
	if ts != nil {
		tp = unsafe.Pointer(&ts[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(tp), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func fchmodat2(dirfd int, p string, mode uint32, flags int) error {
	b, err := unix.BytePtrFromString(p)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(dirfd), uintptr(unsafe.Pointer(b)), uintptr(mode), uintptr(flags), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// pcPerform performs the decided call, already running as the caller. retry
// reports that an open along a canonical path found the tree changed
// (nothing was done): resolve and decide again.
func (r *request) pcPerform(c *pcCall, ctxA resolve.Context, ea *pcEnd, ctxB resolve.Context, eb *pcEnd) (err error, retry bool) {
	switch c.kind {
	case pcMkdir, pcMknod, pcUnlink, pcRmdir, pcSymlink:
		pfd, name, err := pcParent(ctxA, c.a, ea)
		if err != nil {
			return err, treeChanged(err)
		}
		defer unix.Close(pfd)
		switch c.kind {
		case pcMkdir:
			return unix.Mkdirat(pfd, name, c.mode&^r.st.umask), false
		case pcMknod:
			return unix.Mknodat(pfd, name, c.mode&^r.st.umask, int(c.dev)), false
		case pcUnlink:
			return unix.Unlinkat(pfd, name, 0), false
		case pcRmdir:
			return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR), false
		default:
			return unix.Symlinkat(c.target, pfd, name), false
		}
	case pcRename:
		ofd, oname, err := pcParent(ctxA, c.a, ea)
		if err != nil {
			return err, treeChanged(err)
		}
		defer unix.Close(ofd)
		nfd, nname, err := pcParent(ctxB, c.b, eb)
		if err != nil {
			return err, treeChanged(err)
		}
		defer unix.Close(nfd)
		return unix.Renameat2(ofd, oname, nfd, nname, uint(c.flags)), false
	case pcLink:
		nfd, nname, err := pcParent(ctxB, c.b, eb)
		if err != nil {
			return err, treeChanged(err)
		}
		defer unix.Close(nfd)
		if c.a.name {
			ofd, oname, err := pcParent(ctxA, c.a, ea)
			if err != nil {
				return err, treeChanged(err)
			}
			defer unix.Close(ofd)
			return unix.Linkat(ofd, oname, nfd, nname, 0), false
		}
		// AT_SYMLINK_FOLLOW or AT_EMPTY_PATH: link the very object judged,
		// through our /proc/self/fd/N (the O_TMPFILE idiom; it needs no
		// CAP_DAC_READ_SEARCH, and the kernel refuses an unlinkable file).
		ofd, own, err := pcObject(ctxA, c.a, ea)
		if err != nil {
			return err, treeChanged(err)
		}
		if own {
			defer unix.Close(ofd)
		}
		return unix.Linkat(unix.AT_FDCWD, procFD(ofd), nfd, nname, unix.AT_SYMLINK_FOLLOW), false
	case pcTruncate:
		return pcTruncateDo(c, ctxA, ea)
	}

	// Calls on the object.
	if c.fdCall {
		fd := ea.fd
		switch c.kind {
		case pcChmod:
			return unix.Fchmod(fd, c.mode), false
		case pcChown:
			return unix.Fchown(fd, c.uid, c.gid), false
		case pcUtime:
			return utimensat(fd, nil, c.times, 0), false
		case pcSetxattr:
			return unix.Fsetxattr(fd, c.xname, c.xvalue, c.flags), false
		case pcRemovexattr:
			return unix.Fremovexattr(fd, c.xname), false
		}
		return unix.ENOSYS, false
	}
	ofd, own, err := pcObject(ctxA, c.a, ea)
	if err != nil {
		return err, treeChanged(err)
	}
	if own {
		defer unix.Close(ofd)
	}
	nofollow := 0
	if (!c.a.follow && !c.a.fd) || (c.a.fd && c.flags&unix.AT_SYMLINK_NOFOLLOW != 0) {
		nofollow = unix.AT_SYMLINK_NOFOLLOW
	}
	switch c.kind {
	case pcChmod:
		var err error = unix.ENOSYS
		if !pcNoFchmodat2 {
			err = fchmodat2(ofd, "", c.mode, unix.AT_EMPTY_PATH|nofollow)
		}
		if err == unix.ENOSYS && c.nr != unix.SYS_FCHMODAT2 {
			// Before 6.6: chmod the object through our /proc/self/fd/N
			// (usable under the caller's fsuid: same thread group). chmod
			// and fchmodat always follow, so the object is not a symlink.
			err = unix.Chmod(procFD(ofd), c.mode)
		}
		return err, false
	case pcChown:
		return unix.Fchownat(ofd, "", c.uid, c.gid, unix.AT_EMPTY_PATH), false
	case pcUtime:
		return utimensat(ofd, &emptyPath[0], c.times, unix.AT_EMPTY_PATH|nofollow), false
	case pcSetxattr, pcRemovexattr:
		p := procFD(ofd)
		var st unix.Stat_t
		if err := unix.Fstat(ofd, &st); err != nil {
			return err, false
		}
		link := st.Mode&unix.S_IFMT == unix.S_IFLNK
		if link {
			// lsetxattr on a symlink: the link itself, named in its
			// parent, reached through our /proc/self/fd/<parent>.
			pfd, name, err := pcParent(ctxA, c.a, ea)
			if err != nil {
				return err, treeChanged(err)
			}
			defer unix.Close(pfd)
			p = procFD(pfd) + "/" + name
		}
		switch {
		case c.kind == pcSetxattr && link:
			return unix.Lsetxattr(p, c.xname, c.xvalue, c.flags), false
		case c.kind == pcSetxattr:
			return unix.Setxattr(p, c.xname, c.xvalue, c.flags), false
		case link:
			return unix.Lremovexattr(p, c.xname), false
		default:
			return unix.Removexattr(p, c.xname), false
		}
	}
	return unix.ENOSYS, false
}

// pcTruncateDo truncates by opening the object O_WRONLY along its canonical
// path (the caller's write permission, as truncate(2) checks) and
// ftruncating it.
func pcTruncateDo(c *pcCall, ctx resolve.Context, e *pcEnd) (error, bool) {
	fd := -1
	if e.fd >= 0 {
		// The caller's own /proc/self/fd/N of an object no path reaches:
		// reopen our copy for writing, with the caller's credentials.
		var err error
		fd, err = unix.Open(procFD(e.fd), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err, false
		}
	} else {
		switch e.res.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return unix.EISDIR, false
		case unix.S_IFREG:
		default:
			return unix.EINVAL, false
		}
		var err error
		fd, err = resolveOpen(ctx, e.res, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_LARGEFILE, 0)
		if err != nil {
			return err, treeChanged(err)
		}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err, false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return unix.EISDIR, false
	default:
		return unix.EINVAL, false
	}
	return unix.Ftruncate(fd, c.length), false
}
