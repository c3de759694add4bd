//go:build linux

package supervisor

import (
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

// The resolver; a variable so that tests can run before internal/resolve
// exists. Production code never changes it.
var (
	resolvePath = resolve.Resolve
	resolveOpen = resolve.Open
)

// Open flag sets, as the kernel defines them (fs/fcntl.c, fs/open.c).
const (
	oTmpfileFlag    = 0o20000000 // __O_TMPFILE (O_TMPFILE without O_DIRECTORY)
	validOpenFlags  = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY | unix.O_TRUNC | unix.O_APPEND | unix.O_NONBLOCK | unix.O_DSYNC | unix.O_ASYNC | unix.O_DIRECT | unix.O_LARGEFILE | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_CLOEXEC | unix.O_SYNC | unix.O_PATH | oTmpfileFlag
	oPathFlags      = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_PATH | unix.O_CLOEXEC
	validResolve    = unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_IN_ROOT | resolveCached
	resolveCached   = 0x20 // RESOLVE_CACHED (5.12)
	openHowSizeVer0 = 24
	sIALLUGO        = 0o7777
)

// openCall is an open-family call decoded from a notification.
type openCall struct {
	dirfd   int
	path    string
	flags   uint64
	mode    uint64
	resolve uint64
}

// decodeOpen reads the arguments of open/openat/openat2/creat from the
// caller, normalised the way the kernel's build_open_how does for open and
// openat, and validated like build_open_flags for openat2.
func decodeOpen(r *request) (openCall, unix.Errno) {
	c := openCall{dirfd: unix.AT_FDCWD}
	var pathAddr uint64
	legacy := true
	switch r.n.Data.Nr {
	case unix.SYS_OPENAT:
		c.dirfd, pathAddr, c.flags, c.mode = r.argInt(0), r.arg(1), uint64(uint32(r.arg(2))), r.arg(3)
	case unix.SYS_OPENAT2:
		legacy = false
		c.dirfd, pathAddr = r.argInt(0), r.arg(1)
		howAddr, size := r.arg(2), r.arg(3)
		if size < openHowSizeVer0 {
			return c, unix.EINVAL
		}
		if size > 4096 {
			return c, unix.E2BIG
		}
		buf := make([]byte, size)
		if e := r.readMem(howAddr, buf); e != 0 {
			return c, e
		}
		// Like copy_struct_from_user: fields we do not know must be zero.
		for _, b := range buf[openHowSizeVer0:] {
			if b != 0 {
				return c, unix.E2BIG
			}
		}
		c.flags = *(*uint64)(unsafe.Pointer(&buf[0]))
		c.mode = *(*uint64)(unsafe.Pointer(&buf[8]))
		c.resolve = *(*uint64)(unsafe.Pointer(&buf[16]))
	default:
		// The architecture's legacy calls (x86-64: open, creat;
		// open_amd64.go).
		var ok bool
		if pathAddr, ok = decodeOpenLegacy(r, &c); !ok {
			return c, unix.ENOSYS
		}
	}
	if legacy {
		// build_open_how: unknown flags are ignored, O_LARGEFILE forced,
		// O_PATH keeps only its own flags, mode only with creation.
		c.flags &= validOpenFlags
		c.flags |= unix.O_LARGEFILE
		if c.flags&unix.O_PATH != 0 {
			c.flags &= oPathFlags
		}
		if c.flags&(unix.O_CREAT|oTmpfileFlag) != 0 {
			c.mode &= sIALLUGO
		} else {
			c.mode = 0
		}
	}
	// build_open_flags.
	if c.flags&^uint64(validOpenFlags) != 0 {
		return c, unix.EINVAL
	}
	if c.resolve&^uint64(validResolve) != 0 {
		return c, unix.EINVAL
	}
	if c.resolve&unix.RESOLVE_BENEATH != 0 && c.resolve&unix.RESOLVE_IN_ROOT != 0 {
		return c, unix.EINVAL
	}
	if c.flags&(unix.O_CREAT|oTmpfileFlag) != 0 {
		if c.mode&^sIALLUGO != 0 {
			return c, unix.EINVAL
		}
	} else if c.mode != 0 {
		return c, unix.EINVAL
	}
	if c.flags&oTmpfileFlag != 0 {
		if c.flags&(oTmpfileFlag|unix.O_DIRECTORY|unix.O_CREAT) != oTmpfileFlag|unix.O_DIRECTORY {
			return c, unix.EINVAL
		}
		if acc := c.flags & unix.O_ACCMODE; acc != unix.O_WRONLY && acc != unix.O_RDWR {
			return c, unix.EINVAL
		}
	}
	if c.flags&unix.O_PATH != 0 && c.flags&^uint64(oPathFlags) != 0 {
		return c, unix.EINVAL
	}
	if c.resolve&resolveCached != 0 {
		// We always do a full walk; EAGAIN is what a cache miss returns,
		// and callers retry without RESOLVE_CACHED.
		return c, unix.EAGAIN
	}
	path, e := r.readString(pathAddr)
	if e != 0 {
		return c, e
	}
	if path == "" {
		return c, unix.ENOENT
	}
	c.path = path
	return c, 0
}

// openAccess is what the flags ask for. O_PATH grants nothing by itself
// (every later use of the fd as a dirfd or through /proc/self/fd is resolved
// to its object again) and counts as Read.
func openAccess(flags uint64) rules.Access {
	if flags&unix.O_PATH != 0 {
		return rules.Read
	}
	var acc rules.Access
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		acc = rules.Read
	case unix.O_WRONLY:
		acc = rules.Write
	default: // O_RDWR, and 3 (ioctl-only access, which needs both)
		acc = rules.Read | rules.Write
	}
	if flags&(unix.O_TRUNC|unix.O_CREAT|unix.O_APPEND|oTmpfileFlag) != 0 {
		acc |= rules.Write
	}
	return acc
}

func resolveFlagsForOpen(c openCall) resolve.Flags {
	var f resolve.Flags
	if c.flags&unix.O_NOFOLLOW != 0 {
		f |= resolve.NoFollow
	}
	if c.flags&unix.O_CREAT != 0 {
		f |= resolve.Create
		if c.flags&unix.O_EXCL != 0 {
			f |= resolve.Excl
		}
	}
	if c.flags&unix.O_DIRECTORY != 0 {
		f |= resolve.Directory
	}
	if c.resolve&unix.RESOLVE_BENEATH != 0 {
		f |= resolve.Beneath
	}
	if c.resolve&unix.RESOLVE_IN_ROOT != 0 {
		f |= resolve.InRoot
	}
	if c.resolve&unix.RESOLVE_NO_SYMLINKS != 0 {
		f |= resolve.NoSymlinks
	}
	if c.resolve&unix.RESOLVE_NO_MAGICLINKS != 0 {
		f |= resolve.NoMagicLinks
	}
	if c.resolve&unix.RESOLVE_NO_XDEV != 0 {
		f |= resolve.NoXdev
	}
	return f
}

// callerContext opens the caller's root and, when the walk needs it, its
// cwd or a copy of its dirfd. The fds are closed by the returned func.
func callerContext(r *request, dirfd int, path string, needDir bool) (resolve.Context, func(), unix.Errno) {
	ctx := resolve.Context{Pid: r.st.tgid, Tid: r.tid, Root: -1, Dir: -1}
	ownRoot := false
	closeAll := func() {
		if ctx.Root >= 0 && ownRoot {
			unix.Close(ctx.Root)
		}
		if ctx.Dir >= 0 {
			unix.Close(ctx.Dir)
		}
	}
	if r.sameRoot() {
		ctx.Root = r.s.root
	} else {
		root, err := r.openProc("root", unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY)
		if err != nil {
			return ctx, closeAll, unix.EACCES
		}
		ctx.Root, ownRoot = root, true
	}
	if needDir || !strings.HasPrefix(path, "/") {
		if dirfd == unix.AT_FDCWD {
			d, err := r.openProc("cwd", unix.O_PATH|unix.O_CLOEXEC)
			if err != nil {
				return ctx, closeAll, unix.ENOENT
			}
			ctx.Dir = d
		} else {
			d, err := r.argFD(dirfd)
			if err != nil {
				return ctx, closeAll, argFDErrno(err)
			}
			ctx.Dir = d
		}
	}
	return ctx, closeAll, 0
}

// sameRoot reports whether the caller's root (/proc/<tid>/root) is the
// supervisor's: the same mount (mount ids are unique among live mounts, and
// the supervisor holds its root) and the same inode, so the same place in
// the same mount tree. One statx instead of opening and closing the
// caller's root for every open.
func (r *request) sameRoot() bool {
	if r.s.root < 0 || r.pc == nil {
		return false
	}
	var stx unix.Statx_t
	if err := r.pc.statxAt(r.tid, "root", unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil {
		return false
	}
	return stx.Mask&unix.STATX_MNT_ID != 0 && stx.Mask&unix.STATX_INO != 0 &&
		stx.Ino == r.s.rootIno && stx.Mnt_id == r.s.rootMnt
}

func toErrno(err error) unix.Errno {
	if e, ok := err.(unix.Errno); ok && e != 0 {
		return e
	}
	// Anything that is not a kernel errno is a failure of ours: deny.
	return unix.EACCES
}

func handleOpen(r *request) (out Result) {
	c, e := decodeOpen(r)
	if e != 0 {
		return Errno(e)
	}
	if r.traced {
		r.open = &c // for the tracer's check at exit; notify keeps c on the stack
	}
	// barrier_linux.go: a dynamic loader's open of the program it runs
	// must yield the file that was allowed.
	defer r.checkLoaderOpen(c.path, &out)
	st, err := r.quickStatus(c.flags&(unix.O_CREAT|oTmpfileFlag) != 0)
	if err != nil {
		return Errno(unix.EACCES)
	}
	ctx, closeCtx, e := callerContext(r, c.dirfd, c.path, c.resolve&(unix.RESOLVE_BENEATH|unix.RESOLVE_IN_ROOT) != 0)
	defer closeCtx()
	if e != 0 {
		return Errno(e)
	}
	acc := openAccess(c.flags)
	mode := uint32(c.mode)
	if c.flags&(unix.O_CREAT|oTmpfileFlag) != 0 {
		mode &^= st.umask
	}
	oflags := int(c.flags) | unix.O_CLOEXEC | unix.O_NOCTTY
	res, done, checked := r.lexicalOpen(c, ctx, acc, oflags, mode)
	if done {
		return res
	}
	var ev *Event
	var lastErr error
	// Resolve, decide, open. If the tree changes between the walk and the
	// open (a component became a symlink, a rename raced the walk), Open
	// fails with ELOOP/EXDEV/EAGAIN instead of leading elsewhere: resolve
	// and decide again, a few times (like resolve.ResolveOpen, but with the
	// open under the caller's credentials).
	for attempt := 0; attempt < resolve.ResolveAttempts; attempt++ {
		res, err := resolvePath(ctx, c.path, resolveFlagsForOpen(c))
		if err != nil {
			return Errno(toErrno(err)).withEvent(ev)
		}
		ev = &Event{Op: "open", Path: res.Path, Flags: openFlagString(c.flags), Pid: st.tgid}
		var d rules.Decision
		magicOK := true
		if res.Kind == resolve.Magic && (res.LinkFD < 0 || res.LinkPid != st.tgid) {
			// A link to an object no path reaches (pipe, socket, memfd,
			// deleted file) is reopened through our own copy of the
			// caller's fd; only the caller's own /proc/<pid>/fd/N can be.
			magicOK = false
			d = rules.Decision{Rule: "open of a /proc magic link other than the caller's own /proc/self/fd/N is not supported"}
		} else {
			d = r.decidePath(res.Path, acc)
		}
		var deny bool
		if deny, ev = r.s.judge(ev, d); deny {
			return Errno(unix.EACCES).withEvent(ev)
		}
		if !magicOK {
			// Even in audit mode this cannot be emulated safely.
			return Errno(unix.EACCES).withEvent(ev)
		}
		// Everything read from the caller is now in our memory; make sure
		// it was the caller's (tid not reused, call not abandoned) before
		// the first side effect.
		if !checked {
			if !r.valid() {
				return Errno(unix.ENOENT)
			}
			checked = true
		}
		if c.flags&unix.O_PATH != 0 {
			// The kernel cannot inject an O_PATH file (ADDFD's fget()
			// refuses FMODE_PATH files: EBADF), so O_PATH opens are the one
			// open that is decided and then CONTINUEd. A racing thread can
			// at most make it an O_PATH fd to something else, which grants
			// nothing by itself: every use of it as a dirfd, through
			// /proc/self/fd/N or with execveat(AT_EMPTY_PATH) is resolved
			// to its object again and judged. Only metadata (fstat) leaks.
			return Continue().withEvent(ev)
		}
		if r.traced && res.Kind != resolve.Magic && res.Exists && c.flags&(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|oTmpfileFlag) == 0 {
			// ptrace backend, an open without side effects: the caller's
			// own call runs, and what it opens must be this object (checked
			// at its exit, ptrace_linux.go). Nothing is opened here: a
			// FIFO's open would block the tracer.
			r.openWant = &openWant{dev: res.Dev, ino: res.Ino}
			return Continue().withEvent(ev)
		}
		var fd int
		if res.Kind == resolve.Magic {
			// Decided on the /proc path; reopened through a pidfd_getfd
			// copy so that the caller cannot swap the object meanwhile.
			fd, err = r.reopenMagic(res, oflags, acc)
			if err != nil {
				return Errno(toErrno(err)).withEvent(ev)
			}
			return InjectFD(fd, c.flags&unix.O_CLOEXEC != 0).withEvent(ev)
		}
		err = r.asCaller(func() error {
			var oerr error
			fd, oerr = resolveOpen(ctx, res, oflags, mode)
			return oerr
		})
		if err == nil {
			return InjectFD(fd, c.flags&unix.O_CLOEXEC != 0).withEvent(ev)
		}
		lastErr = err
		if res.Exists && res.Mode&unix.S_IFMT == unix.S_IFLNK && err == unix.ELOOP {
			break // O_NOFOLLOW on a final symlink: ELOOP, as the kernel says
		}
		if err != unix.ELOOP && err != unix.EXDEV && err != unix.EAGAIN {
			break
		}
	}
	return Errno(toErrno(lastErr)).withEvent(ev)
}

// lexicalOpens counts opens answered by the lexical fast path (tests).
var lexicalOpens atomic.Int64

// disableLexicalOpen is for tests and measurements: every open takes the
// full path.
var disableLexicalOpen bool

// lexicalPath returns the path the kernel walks for an absolute open path,
// with a leading /proc/self or /proc/thread-self replaced by what they name
// for the caller, if it has no "." or ".." component, no empty component
// ("//") and no trailing slash; ok is false otherwise (and for "/").
func lexicalPath(p string, tgid, tid int) (string, bool) {
	if len(p) < 2 || p[0] != '/' {
		return "", false
	}
	if rest, ok := cutProcPrefix(p, "/proc/self"); ok {
		p = "/proc/" + strconv.Itoa(tgid) + rest
	} else if rest, ok := cutProcPrefix(p, "/proc/thread-self"); ok {
		p = "/proc/" + strconv.Itoa(tgid) + "/task/" + strconv.Itoa(tid) + rest
	}
	if len(p) >= pathMax || p[len(p)-1] == '/' || strings.Contains(p, "//") ||
		strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		return "", false
	}
	return p, true
}

// cutProcPrefix cuts prefix when it is a whole leading component sequence.
func cutProcPrefix(p, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(p, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// lexicalOpen is the fast path of an open: for an absolute path with no
// ".", ".." or "//" component, the policy judges the path as written
// (/proc/self and /proc/thread-self replaced textually); if it allows, the
// supervisor opens that path with RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS. Success proves that no symlink or magic link was
// on the way (the kernel refuses one that appears during the walk), so the
// object opened is the one at the path that was judged: the full path's
// Resolve would have given the same canonical path. Everything else is left
// to the full path (done false), which judges the resolved object: a
// lexical denial (the path may lead elsewhere through a symlink, and audit
// mode wants the canonical path), ELOOP (a symlink on the way, or a final
// one), and any error but ENOENT and ENOTDIR. Those two are genuine: the
// walk stopped at a missing component, or a non-directory, reached through
// real directories only (with NO_SYMLINKS a symlink on the way gives ELOOP
// before anything behind it is looked up), which is what the kernel would
// tell the caller and what Resolve would say, without a decision.
// checked reports whether the notification id was re-validated.
func (r *request) lexicalOpen(c openCall, ctx resolve.Context, acc rules.Access, oflags int, mode uint32) (res Result, done, checked bool) {
	if disableLexicalOpen || c.resolve != 0 || c.flags&(unix.O_PATH|oTmpfileFlag) != 0 {
		return res, false, false
	}
	p, ok := lexicalPath(c.path, r.st.tgid, r.tid)
	if !ok {
		return res, false, false
	}
	d := r.decidePath(p, acc)
	if !d.Allow {
		return res, false, false
	}
	// Everything read from the caller is in our memory: make sure it was
	// the caller's before the first side effect.
	if !r.valid() {
		return Errno(unix.ENOENT), true, true
	}
	// allowed is the event of the allowed open (log_allowed only).
	allowed := func() *Event {
		if !r.s.policy.LogAllowed() {
			return nil
		}
		return &Event{Op: "open", Path: p, Flags: openFlagString(c.flags), Pid: r.st.tgid,
			Rule: d.Rule, Source: d.Source, Decision: DecisionAllow}
	}
	traced := r.traced && c.flags&(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC) == 0
	if traced {
		// ptrace backend, no side effects: only the object is needed (for
		// the check at the caller's exit, see handleOpen), never opened
		// for real (a FIFO would block the tracer).
		oflags = unix.O_PATH | unix.O_CLOEXEC
	}
	var fd int
	err := r.asCaller(func() error {
		var oerr error
		fd, oerr = resolveOpen(ctx, resolve.Result{Path: p, Kind: resolve.Path, LinkFD: -1}, oflags, mode)
		return oerr
	})
	if err == nil && traced {
		var st unix.Stat_t
		serr := unix.Fstat(fd, &st)
		unix.Close(fd)
		if serr != nil {
			return res, false, true
		}
		r.openWant = &openWant{dev: uint64(st.Dev), ino: st.Ino}
		lexicalOpens.Add(1)
		return Continue().withEvent(allowed()), true, true
	}
	switch err {
	case nil:
		lexicalOpens.Add(1)
		return InjectFD(fd, c.flags&unix.O_CLOEXEC != 0).withEvent(allowed()), true, true
	case unix.ENOENT, unix.ENOTDIR:
		lexicalOpens.Add(1)
		return Errno(err.(unix.Errno)), true, true
	}
	return res, false, true
}

// reopenMagic opens /proc/self/fd/<copy> for a copy of the caller's fd.
// The supervisor's /proc/self is not reachable with the caller's fsuid
// (we are non-dumpable), so the open runs with our credentials after a
// plain permission-bit check against the caller's.
func (r *request) reopenMagic(res resolve.Result, oflags int, acc rules.Access) (int, error) {
	cp, err := r.getFD(res.LinkFD)
	if err != nil {
		return -1, err
	}
	defer unix.Close(cp)
	if oflags&unix.O_PATH == 0 {
		var st unix.Stat_t
		if err := unix.Fstat(cp, &st); err != nil {
			return -1, err
		}
		if !dacAllows(&st, r.st, acc) {
			return -1, unix.EACCES
		}
	}
	return unix.Open("/proc/self/fd/"+strconv.Itoa(cp), oflags, 0)
}

func dacAllows(st *unix.Stat_t, c *procStatus, acc rules.Access) bool {
	if c.fsuid == 0 {
		return true
	}
	var bits uint32
	switch {
	case int(st.Uid) == c.fsuid:
		bits = st.Mode >> 6 & 7
	case int(st.Gid) == c.fsgid || containsGroup(c.groups, st.Gid):
		bits = st.Mode >> 3 & 7
	default:
		bits = st.Mode & 7
	}
	if acc&rules.Read != 0 && bits&4 == 0 {
		return false
	}
	if acc&rules.Write != 0 && bits&2 == 0 {
		return false
	}
	return true
}

func containsGroup(gs []uint32, g uint32) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

var openFlagNames = []struct {
	bit  uint64
	name string
}{
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"}, {unix.O_CLOEXEC, "O_CLOEXEC"},
	{unix.O_PATH, "O_PATH"}, {oTmpfileFlag, "O_TMPFILE"},
}

// openFlagString renders the interesting flags: "O_WRONLY|O_CREAT|O_TRUNC".
func openFlagString(f uint64) string {
	var parts []string
	if f&unix.O_PATH == 0 {
		switch f & unix.O_ACCMODE {
		case unix.O_RDONLY:
			parts = append(parts, "O_RDONLY")
		case unix.O_WRONLY:
			parts = append(parts, "O_WRONLY")
		case unix.O_RDWR:
			parts = append(parts, "O_RDWR")
		default:
			parts = append(parts, "O_ACCMODE")
		}
	}
	for _, n := range openFlagNames {
		if f&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, "|")
}
