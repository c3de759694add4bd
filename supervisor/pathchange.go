//go:build linux

package supervisor

import (
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

// Path changes (mkdir, mknod, unlink, rmdir, rename, link, symlink, chmod,
// chown, truncate, utime*, setxattr, removexattr) are writes to every path
// they touch. Like opens, each path is resolved in the caller's context
// into one canonical path and judged (policy.Open(path, rules.Write)); then
// the supervisor performs the call itself, as the caller, on objects it
// opened along the canonical paths with RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS, so that a symlink swapped in after the decision
// makes the open fail (ELOOP: resolve and decide again) instead of leading
// elsewhere:
//
//   - calls on a name (mkdir, mknod, unlink, rmdir, rename, link's new path
//     and, without AT_SYMLINK_FOLLOW, its old path, symlink's new path,
//     lsetxattr on a symlink) open the PARENT directory and use the *at
//     call on (parent fd, final name), which never follows the name;
//   - calls on the followed object (chmod, chown, utime*, setxattr, link
//     with AT_SYMLINK_FOLLOW) and their no-follow variants open the object
//     itself O_PATH|O_NOFOLLOW and act on that fd (AT_EMPTY_PATH, or the
//     supervisor's own /proc/self/fd/N, which is usable under the caller's
//     fsuid: same thread group); truncate opens it O_WRONLY and ftruncates;
//   - fd forms (fchmod, fchown, fsetxattr, fremovexattr, utimensat(fd,
//     NULL), AT_EMPTY_PATH) act on a pidfd_getfd copy of the caller's fd,
//     judged by the canonical path of its object; an object no path reaches
//     (pipe, socket, memfd, O_TMPFILE, deleted file) only if that open file
//     description was opened for writing.
//
// Every end is decided before anything is changed.

type pcKind int

const (
	pcMkdir pcKind = iota
	pcMknod
	pcUnlink
	pcRmdir
	pcRename
	pcLink
	pcSymlink
	pcChmod
	pcChown
	pcTruncate
	pcUtime
	pcSetxattr
	pcRemovexattr
)

var pcOpNames = [...]string{
	pcMkdir: "mkdir", pcMknod: "mknod", pcUnlink: "unlink", pcRmdir: "rmdir",
	pcRename: "rename", pcLink: "link", pcSymlink: "symlink", pcChmod: "chmod",
	pcChown: "chown", pcTruncate: "truncate", pcUtime: "utime",
	pcSetxattr: "setxattr", pcRemovexattr: "removexattr",
}

// pcPath is one path argument of a path change.
type pcPath struct {
	dirfd  int
	path   string
	fd     bool // the object is dirfd itself (fd forms, AT_EMPTY_PATH with "", a NULL utimensat path)
	follow bool // the final component is followed (object calls)
	name   bool // acted on as (parent directory, final name)
	create bool // name calls: the name may not exist yet
	trail  bool // name calls: the path had trailing slashes (stripped; passed on)
	// special: the final component is ".", ".." or the path is "/": the
	// errno the kernel gives for this call, with nothing done.
	special unix.Errno
}

type pcCall struct {
	kind   pcKind
	nr     int32
	a, b   pcPath
	two    bool // b is used (rename, link)
	fdCall bool // plain f* syscall (fchmod, fchown, fsetxattr, fremovexattr, utimensat(fd, NULL))
	mode   uint32
	dev    uint64
	uid    int
	gid    int
	flags  int // rename2 flags, xattr flags, AT_* flags passed on
	length int64
	times  *[2]unix.Timespec
	target string // symlink text
	xname  string
	xvalue []byte
}

const (
	xattrNameMax = 255   // XATTR_NAME_MAX
	xattrSizeMax = 65536 // XATTR_SIZE_MAX
	renameFlags  = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT
	utimeNow     = (1 << 30) - 1 // UTIME_NOW
	utimeOmit    = (1 << 30) - 2 // UTIME_OMIT
)

// pcReadPath reads a path argument; "" is ENOENT unless emptyOK.
func pcReadPath(r *request, addr uint64, emptyOK bool) (string, unix.Errno) {
	p, e := r.readString(addr)
	if e != 0 {
		return "", e
	}
	if p == "" && !emptyOK {
		return "", unix.ENOENT
	}
	return p, 0
}

// pcNameEnd prepares a path acted on as (parent, name): trailing slashes
// are stripped (and given back to the *at call, which applies the kernel's
// own rules for them); a final ".", ".." or a bare "/" is refused with the
// errno the kernel gives for that call (kind, and whether it is the new
// name of a rename/link).
func pcNameEnd(kind pcKind, dirfd int, p string, create bool) pcPath {
	e := pcPath{dirfd: dirfd, name: true, create: create}
	q := strings.TrimRight(p, "/")
	e.trail = q != p
	last := q[strings.LastIndexByte(q, '/')+1:]
	e.path = q
	if q == "" || last == "." || last == ".." {
		e.path = p
		switch kind {
		case pcMkdir, pcMknod, pcSymlink:
			e.special = unix.EEXIST
		case pcUnlink:
			e.special = unix.EISDIR
		case pcRmdir:
			switch {
			case q == "":
				e.special = unix.EBUSY
			case last == ".":
				e.special = unix.EINVAL
			default:
				e.special = unix.ENOTEMPTY
			}
		case pcRename:
			e.special = unix.EBUSY
		case pcLink:
			if create {
				e.special = unix.EEXIST
			} else {
				e.special = unix.EPERM // a directory
			}
		}
	}
	return e
}

// pcObjEnd prepares a path whose object is acted on; with emptyOK and ""
// the object is dirfd itself.
func pcObjEnd(dirfd int, p string, follow, emptyOK bool) pcPath {
	if p == "" && emptyOK {
		return pcPath{dirfd: dirfd, fd: true}
	}
	return pcPath{dirfd: dirfd, path: p, follow: follow}
}

func pcFdEnd(fd int) pcPath { return pcPath{dirfd: fd, fd: true} }

// pcReadTimespecs reads utimensat's struct timespec[2] (NULL: now).
func pcReadTimespecs(r *request, addr uint64) (*[2]unix.Timespec, unix.Errno) {
	if addr == 0 {
		return nil, 0
	}
	var buf [32]byte
	if e := r.readMem(addr, buf[:]); e != 0 {
		return nil, e
	}
	var ts [2]unix.Timespec
	for i := 0; i < 2; i++ {
		ts[i].Sec = *(*int64)(unsafe.Pointer(&buf[16*i]))
		ts[i].Nsec = *(*int64)(unsafe.Pointer(&buf[16*i+8]))
		if n := ts[i].Nsec; n != utimeNow && n != utimeOmit && (n < 0 || n >= 1e9) {
			return nil, unix.EINVAL
		}
	}
	return &ts, 0
}

// pcReadTimevals reads utimes/futimesat's struct timeval[2] (NULL: now).
func pcReadTimevals(r *request, addr uint64) (*[2]unix.Timespec, unix.Errno) {
	if addr == 0 {
		return nil, 0
	}
	var buf [32]byte
	if e := r.readMem(addr, buf[:]); e != 0 {
		return nil, e
	}
	var ts [2]unix.Timespec
	for i := 0; i < 2; i++ {
		sec := *(*int64)(unsafe.Pointer(&buf[16*i]))
		usec := *(*int64)(unsafe.Pointer(&buf[16*i+8]))
		if usec < 0 || usec >= 1e6 {
			return nil, unix.EINVAL
		}
		ts[i] = unix.Timespec{Sec: sec, Nsec: usec * 1000}
	}
	return &ts, 0
}

// pcReadUtimbuf reads utime's struct utimbuf (NULL: now).
func pcReadUtimbuf(r *request, addr uint64) (*[2]unix.Timespec, unix.Errno) {
	if addr == 0 {
		return nil, 0
	}
	var buf [16]byte
	if e := r.readMem(addr, buf[:]); e != 0 {
		return nil, e
	}
	return &[2]unix.Timespec{
		{Sec: *(*int64)(unsafe.Pointer(&buf[0]))},
		{Sec: *(*int64)(unsafe.Pointer(&buf[8]))},
	}, 0
}

// pcReadXattr reads an xattr name (and value) like setxattr/removexattr.
func pcReadXattr(r *request, c *pcCall, nameAddr, valAddr, size uint64, withValue bool) unix.Errno {
	name, e := r.readString(nameAddr)
	if e == unix.ENAMETOOLONG || (e == 0 && (name == "" || len(name) > xattrNameMax)) {
		return unix.ERANGE
	}
	if e != 0 {
		return e
	}
	c.xname = name
	if withValue {
		if size > xattrSizeMax {
			return unix.E2BIG
		}
		c.xvalue = make([]byte, size)
		if size > 0 {
			if e := r.readMem(valAddr, c.xvalue); e != 0 {
				return e
			}
		}
	}
	return 0
}

// pcPathFn reads argument i of the call as a path (see pcDecode); a
// failure is kept in pcDecode's errno and later calls return "".
type pcPathFn func(i int, emptyOK bool) string

// pcDecodeMkdir decodes mkdir/mkdirat from the path argument i, relative to
// dfd.
func pcDecodeMkdir(r *request, c *pcCall, path pcPathFn, dfd, i int) {
	c.kind = pcMkdir
	c.a = pcNameEnd(c.kind, dfd, path(i, false), true)
	c.mode = uint32(r.arg(i+1)) & 0o1777
}

// pcDecodeMknod decodes mknod/mknodat from the path argument i, relative to
// dfd, checking the file type the way the kernel does.
func pcDecodeMknod(r *request, c *pcCall, path pcPathFn, dfd, i int) unix.Errno {
	c.kind = pcMknod
	c.a = pcNameEnd(c.kind, dfd, path(i, false), true)
	c.mode = uint32(r.arg(i + 1))
	c.dev = uint64(uint32(r.arg(i + 2)))
	switch c.mode & unix.S_IFMT {
	case 0, unix.S_IFREG, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFDIR:
		return unix.EPERM
	default:
		return unix.EINVAL
	}
	return 0
}

// pcDecodeUtimesAt decodes utimensat (nsec: struct timespec[2] and flags)
// or futimesat (struct timeval[2]). A read failure is left in *e; the
// result is an errno to return at once.
func pcDecodeUtimesAt(r *request, c *pcCall, path pcPathFn, e *unix.Errno, nsec bool) unix.Errno {
	c.kind = pcUtime
	dfd := r.argInt(0)
	fl := 0
	if nsec {
		fl = r.argInt(3)
		if fl&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
			return unix.EINVAL
		}
	}
	c.flags = fl
	if r.arg(1) == 0 && dfd != unix.AT_FDCWD {
		// do_utimes: a NULL path means the fd itself.
		if fl != 0 {
			return unix.EINVAL
		}
		c.fdCall = true
		c.a = pcFdEnd(dfd)
	} else {
		c.a = pcObjEnd(dfd, path(1, fl&unix.AT_EMPTY_PATH != 0), fl&unix.AT_SYMLINK_NOFOLLOW == 0, true)
	}
	if *e == 0 {
		if nsec {
			c.times, *e = pcReadTimespecs(r, r.arg(2))
		} else {
			c.times, *e = pcReadTimevals(r, r.arg(2))
		}
	}
	return 0
}

// pcDecode reads the call's arguments from the caller, checking flags the
// way the kernel does before it looks anything up.
func pcDecode(r *request) (pcCall, unix.Errno) {
	nr := r.n.Data.Nr
	c := pcCall{nr: nr}
	var e unix.Errno
	path := func(i int, emptyOK bool) string {
		if e != 0 {
			return ""
		}
		var p string
		p, e = pcReadPath(r, r.arg(i), emptyOK)
		return p
	}
	cwd := unix.AT_FDCWD
	switch nr {
	case unix.SYS_MKDIRAT:
		pcDecodeMkdir(r, &c, path, r.argInt(0), 1)
	case unix.SYS_MKNODAT:
		if e := pcDecodeMknod(r, &c, path, r.argInt(0), 1); e != 0 {
			return c, e
		}
	case unix.SYS_UNLINKAT:
		fl := r.argInt(2)
		if fl&^unix.AT_REMOVEDIR != 0 {
			return c, unix.EINVAL
		}
		c.kind = pcUnlink
		if fl&unix.AT_REMOVEDIR != 0 {
			c.kind = pcRmdir
		}
		c.a = pcNameEnd(c.kind, r.argInt(0), path(1, false), false)
	case unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2:
		c.kind, c.two = pcRename, true
		if nr == unix.SYS_RENAMEAT2 {
			c.flags = int(uint32(r.arg(4)))
			if c.flags&^renameFlags != 0 {
				return c, unix.EINVAL
			}
			if c.flags&unix.RENAME_EXCHANGE != 0 && c.flags&(unix.RENAME_NOREPLACE|unix.RENAME_WHITEOUT) != 0 {
				return c, unix.EINVAL
			}
		}
		c.a = pcNameEnd(c.kind, r.argInt(0), path(1, false), false)
		c.b = pcNameEnd(c.kind, r.argInt(2), path(3, false), true)
	case unix.SYS_LINKAT:
		c.kind, c.two = pcLink, true
		fl := r.argInt(4)
		if fl&^(unix.AT_SYMLINK_FOLLOW|unix.AT_EMPTY_PATH) != 0 {
			return c, unix.EINVAL
		}
		old := path(1, fl&unix.AT_EMPTY_PATH != 0)
		switch {
		case old == "" && e == 0:
			c.a = pcFdEnd(r.argInt(0)) // AT_FDCWD: the cwd itself
		case fl&unix.AT_SYMLINK_FOLLOW != 0:
			c.a = pcObjEnd(r.argInt(0), old, true, false)
		default:
			c.a = pcNameEnd(c.kind, r.argInt(0), old, false)
		}
		c.b = pcNameEnd(c.kind, r.argInt(2), path(3, false), true)
	case unix.SYS_SYMLINKAT:
		c.kind = pcSymlink
		c.target = path(0, false)
		c.a = pcNameEnd(c.kind, r.argInt(1), path(2, false), true)
	case unix.SYS_FCHMOD:
		c.kind, c.fdCall = pcChmod, true
		c.a = pcFdEnd(r.argInt(0))
		c.mode = uint32(r.arg(1)) & sIALLUGO
	case unix.SYS_FCHMODAT, unix.SYS_FCHMODAT2:
		c.kind = pcChmod
		fl := 0
		if nr == unix.SYS_FCHMODAT2 {
			fl = r.argInt(3)
			if fl&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
				return c, unix.EINVAL
			}
		}
		c.flags = fl
		c.a = pcObjEnd(r.argInt(0), path(1, fl&unix.AT_EMPTY_PATH != 0), fl&unix.AT_SYMLINK_NOFOLLOW == 0, true)
		c.mode = uint32(r.arg(2)) & sIALLUGO
	case unix.SYS_FCHOWN:
		c.kind, c.fdCall = pcChown, true
		c.a = pcFdEnd(r.argInt(0))
		c.uid, c.gid = r.argInt(1), r.argInt(2)
	case unix.SYS_FCHOWNAT:
		c.kind = pcChown
		fl := r.argInt(4)
		if fl&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
			return c, unix.EINVAL
		}
		c.flags = fl
		c.a = pcObjEnd(r.argInt(0), path(1, fl&unix.AT_EMPTY_PATH != 0), fl&unix.AT_SYMLINK_NOFOLLOW == 0, true)
		c.uid, c.gid = r.argInt(2), r.argInt(3)
	case unix.SYS_TRUNCATE:
		c.kind = pcTruncate
		c.a = pcObjEnd(cwd, path(0, false), true, false)
		c.length = int64(r.arg(1))
		if c.length < 0 {
			return c, unix.EINVAL
		}
	case unix.SYS_UTIMENSAT:
		if e2 := pcDecodeUtimesAt(r, &c, path, &e, true); e2 != 0 {
			return c, e2
		}
	case unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_FSETXATTR:
		c.kind = pcSetxattr
		c.flags = r.argInt(4)
		if c.flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
			return c, unix.EINVAL
		}
		if nr == unix.SYS_FSETXATTR {
			c.fdCall = true
			c.a = pcFdEnd(r.argInt(0))
		} else {
			c.a = pcObjEnd(cwd, path(0, false), nr == unix.SYS_SETXATTR, false)
		}
		if e == 0 {
			e = pcReadXattr(r, &c, r.arg(1), r.arg(2), r.arg(3), true)
		}
	case unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR, unix.SYS_FREMOVEXATTR:
		c.kind = pcRemovexattr
		if nr == unix.SYS_FREMOVEXATTR {
			c.fdCall = true
			c.a = pcFdEnd(r.argInt(0))
		} else {
			c.a = pcObjEnd(cwd, path(0, false), nr == unix.SYS_REMOVEXATTR, false)
		}
		if e == 0 {
			e = pcReadXattr(r, &c, r.arg(1), 0, 0, false)
		}
	default:
		// The architecture's legacy path calls (x86-64: mkdir, rename,
		// utime, ...; pathchange_amd64.go); anything else (setxattrat,
		// removexattrat: 6.13+, struct xattr_args) is not emulated yet:
		// glibc has no wrapper, callers fall back.
		known, early := pcDecodeLegacy(r, &c, path, &e)
		if !known {
			return c, unix.ENOSYS
		}
		if early != 0 {
			return c, early
		}
	}
	if e != 0 {
		return c, e
	}
	if c.a.special != 0 {
		return c, c.a.special
	}
	if c.two && c.b.special != 0 {
		return c, c.b.special
	}
	if c.fdCall && c.a.dirfd < 0 {
		return c, unix.EBADF
	}
	return c, 0
}

// pcEnd is one resolved end.
type pcEnd struct {
	res   resolve.Result
	fd    int  // fd and magic ends: the object's fd (-1 otherwise)
	owned bool // fd is ours to close (a copy made for a magic link)
	magic bool // no path reaches the object: judged by the fd's access mode
	// unsupported: a magic link that cannot be acted on safely: denied
	// even in audit mode.
	unsupported bool
}

func (e *pcEnd) release() {
	if e.owned && e.fd >= 0 {
		unix.Close(e.fd)
	}
	e.fd, e.owned = -1, false
}

// pcWritableFD reports whether fd's open file description was opened for
// writing (and is not O_PATH).
func pcWritableFD(fd int) bool {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_PATH != 0 {
		return false
	}
	acc := fl & unix.O_ACCMODE
	return acc == unix.O_WRONLY || acc == unix.O_RDWR
}

// resolveEnd resolves p in ctx.
func (r *request) pcResolveEnd(ctx resolve.Context, p pcPath) (pcEnd, unix.Errno) {
	end := pcEnd{fd: -1}
	if p.fd {
		res, err := resolvePath(ctx, "", resolve.EmptyPath)
		if err != nil {
			return end, toErrno(err)
		}
		end.res, end.fd = res, ctx.Dir
		end.magic = res.Kind == resolve.Magic
		return end, 0
	}
	var fl resolve.Flags
	switch {
	case p.name:
		fl = resolve.NoFollow
		if p.create {
			fl |= resolve.Create
		}
	case !p.follow:
		fl = resolve.NoFollow
	}
	res, err := resolvePath(ctx, p.path, fl)
	if err != nil {
		return end, toErrno(err)
	}
	end.res = res
	if res.Kind == resolve.Magic {
		if p.name || res.LinkFD < 0 || res.LinkPid != r.st.tgid {
			end.unsupported = true
			return end, 0
		}
		// The caller's own /proc/self/fd/N to an object no path reaches:
		// act on a copy of that fd.
		cp, err := r.getFD(res.LinkFD)
		if err != nil {
			return end, toErrno(err)
		}
		end.fd, end.owned, end.magic = cp, true, true
	}
	return end, 0
}

// pcDecide judges one end.
func (r *request) pcDecide(e *pcEnd) rules.Decision {
	switch {
	case e.unsupported:
		return rules.Decision{Rule: "path change through a /proc magic link other than the caller's own /proc/self/fd/N is not supported"}
	case e.magic && pcWritableFD(e.fd):
		return rules.Decision{Allow: true, Rule: "object without a path, open for writing"}
	case e.magic:
		return rules.Decision{Rule: "object without a path, not open for writing"}
	}
	return r.decidePath(e.res.Path, rules.Write)
}

func (c *pcCall) detail() string {
	switch c.kind {
	case pcMkdir, pcChmod:
		return "mode=0" + strconv.FormatUint(uint64(c.mode), 8)
	case pcMknod:
		return "mode=0" + strconv.FormatUint(uint64(c.mode), 8) + " dev=" + strconv.FormatUint(c.dev, 10)
	case pcChown:
		return "uid=" + strconv.Itoa(c.uid) + " gid=" + strconv.Itoa(c.gid)
	case pcTruncate:
		return "length=" + strconv.FormatInt(c.length, 10)
	case pcSymlink:
		return "target=" + c.target
	case pcSetxattr, pcRemovexattr:
		return "name=" + c.xname
	case pcRename:
		if c.flags != 0 {
			return "flags=" + strconv.Itoa(c.flags)
		}
	}
	return ""
}

// pcHasCap reports whether the caller's thread has capability cp in its
// effective set (trusted after r.valid()).
func (r *request) pcHasCap(cp uint) bool {
	id, e := r.ids()
	return e == 0 && id.hasCap(int(cp))
}

func handlePathChange(r *request) Result {
	c, e := pcDecode(r)
	if e != 0 {
		return Errno(e)
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES)
	}
	ctxA, closeA, e := callerContext(r, c.a.dirfd, c.a.path, c.a.fd)
	defer closeA()
	if e != 0 {
		return Errno(e)
	}
	ctxB := ctxA
	if c.two {
		var closeB func()
		ctxB, closeB, e = callerContext(r, c.b.dirfd, c.b.path, c.b.fd)
		defer closeB()
		if e != 0 {
			return Errno(e)
		}
	}
	var ev *Event
	var lastErr error
	checked := false
	for attempt := 0; attempt < resolve.ResolveAttempts; attempt++ {
		ea, e := r.pcResolveEnd(ctxA, c.a)
		if e == unix.EINVAL {
			// The walk read a link that a racing rename had just
			// replaced (readlink: EINVAL): the tree changed, again.
			lastErr = unix.ENOENT
			continue
		}
		if e != 0 {
			return Errno(e).withEvent(ev)
		}
		eb := pcEnd{fd: -1}
		if c.two {
			if eb, e = r.pcResolveEnd(ctxB, c.b); e != 0 {
				ea.release()
				if e == unix.EINVAL {
					lastErr = unix.ENOENT
					continue
				}
				return Errno(e).withEvent(ev)
			}
		}
		// Decide every end before anything happens. The event names the
		// denied end (the first one when both are allowed) and the other
		// one as Target.
		d := r.pcDecide(&ea)
		ev = &Event{Op: pcOpNames[c.kind], Path: ea.res.Path, Pid: st.tgid, Detail: c.detail()}
		unsupported := ea.unsupported
		if c.two {
			ev.Target = eb.res.Path
			unsupported = unsupported || eb.unsupported
			if db := r.pcDecide(&eb); d.Allow && !db.Allow {
				d = db
				ev.Path, ev.Target = eb.res.Path, ea.res.Path
			}
		}
		var deny bool
		deny, ev = r.s.judge(ev, d)
		if deny || unsupported {
			ea.release()
			eb.release()
			return Errno(unix.EACCES).withEvent(ev)
		}
		if !checked {
			if !r.valid() {
				ea.release()
				eb.release()
				return Errno(unix.ENOENT)
			}
			checked = true
		}
		if e := r.pcCapCheck(&c); e != 0 {
			ea.release()
			eb.release()
			return Errno(e).withEvent(ev)
		}
		var retry bool
		err = r.asCaller(func() error {
			var perr error
			perr, retry = r.pcPerform(&c, ctxA, &ea, ctxB, &eb)
			return perr
		})
		ea.release()
		eb.release()
		if err == nil {
			return Value(0).withEvent(ev)
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return Errno(toErrno(lastErr)).withEvent(ev)
}

// pcCapCheck checks by hand the capabilities the kernel checks with
// capable() (the supervisor has them whatever the caller's fsuid): device
// nodes and whiteouts need CAP_MKNOD.
func (r *request) pcCapCheck(c *pcCall) unix.Errno {
	need := false
	switch {
	case c.kind == pcMknod:
		t := c.mode & unix.S_IFMT
		need = t == unix.S_IFCHR || t == unix.S_IFBLK
	case c.kind == pcRename:
		need = c.flags&unix.RENAME_WHITEOUT != 0
	}
	if need && !r.pcHasCap(unix.CAP_MKNOD) {
		return unix.EPERM
	}
	return 0
}
