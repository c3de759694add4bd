// Package resolve resolves a path the way the kernel would for a traced
// caller, but in the supervisor: symlinks, "..", relative paths, dirfds and
// /proc magic links are followed in the caller's context (its root, its cwd,
// its dirfd, its /proc/self), giving one canonical absolute path that the
// policy judges and that the supervisor then opens without following any
// symlink, so that what is opened is what was judged.
//
// CONTRACT: supervisor/ and tracer/ use the exported names below. Keep the
// signatures; add to them rather than change them.
package resolve

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Context is the caller a path is resolved for.
type Context struct {
	Pid int // caller's thread group id
	Tid int // caller's thread id (0: same as Pid)
	// Root is an fd, in the supervisor, of the caller's root directory
	// (for example opened O_PATH from /proc/<tid>/root). Absolute paths and
	// absolute symlink targets start here; ".." never climbs above it.
	Root int
	// Dir is an fd, in the supervisor, of the directory a relative path
	// starts from: the caller's cwd (/proc/<tid>/cwd) or a pidfd_getfd copy
	// of its dirfd. With EmptyPath it is the object itself (it may be any
	// kind of file). -1 when the path is absolute and no dirfd was given.
	Dir int
}

// Flags say how the final component and the walk are treated; they mirror
// open(2)/openat2(2)/execveat(2) flags.
type Flags uint32

const (
	NoFollow     Flags = 1 << iota // O_NOFOLLOW / AT_SYMLINK_NOFOLLOW: do not follow a final symlink
	Create                         // O_CREAT: the final component may be missing (a dangling final symlink is followed to its target, as the kernel does)
	Excl                           // O_EXCL with O_CREAT: never follow a final symlink; it exists
	Directory                      // O_DIRECTORY, or a trailing slash: the result must be a directory
	EmptyPath                      // AT_EMPTY_PATH: an empty path means Dir itself
	Beneath                        // RESOLVE_BENEATH
	InRoot                         // RESOLVE_IN_ROOT
	NoSymlinks                     // RESOLVE_NO_SYMLINKS
	NoMagicLinks                   // RESOLVE_NO_MAGICLINKS
	NoXdev                         // RESOLVE_NO_XDEV
)

// Kind says what the canonical path names.
type Kind int

const (
	// Path: an object reachable by Path, which has no symlink in it.
	Path Kind = iota
	// Magic: a /proc/<pid>/... magic link (fd/N, cwd, root, exe,
	// map_files/...) to an object that no path reaches (pipe:[..],
	// socket:[..], anon_inode:.., a memfd, a deleted file). Path is the
	// /proc path of the link itself ("/proc/<pid>/fd/3"), Target what
	// readlink said.
	Magic
)

// Result is a resolved path.
type Result struct {
	Path   string // canonical, absolute in the caller's root; /proc/self is /proc/<Pid>
	Kind   Kind
	Exists bool   // the final component exists (false only with Create)
	Mode   uint32 // st_mode of the final object when it exists (lstat for NoFollow, else stat)
	Dev    uint64 // st_dev, when it exists
	Ino    uint64 // st_ino, when it exists
	Target string // Magic: the link's text
	// LinkPid, LinkFD: Magic links of the form /proc/<pid>/fd/<n> (or
	// task/<tid>/fd/<n>): whose fd table and which fd. LinkFD is -1 otherwise.
	LinkPid int
	LinkFD  int
}

// Resolve resolves path for the caller. Errors are the errno the kernel
// would have returned to the caller (ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG,
// EXDEV, EINVAL, EACCES...), as unix.Errno.
//
// The walk is the kernel's, done with O_PATH fds (see walk.go): components
// one by one, symlinks read and spliced, ".." taken physically, /proc/self
// and /proc/thread-self read as the caller's, magic links followed only when
// the path they print names the very object they lead to.
//
// Assumptions and documented deviations from the kernel:
//
//   - The caller's root and mount namespace are the supervisor's (Vigil
//     blocks chroot and mount namespaces elsewhere), and /proc is a procfs of
//     the supervisor's pid namespace, in which ctx.Pid/ctx.Tid are numbered.
//     Paths the kernel prints (readlink of /proc/self/fd/<Dir>, of magic
//     links) are relative to the supervisor's root; they are only used after
//     walking them from ctx.Root, without following links, reaches the same
//     st_dev/st_ino, so a broken assumption makes Resolve fail (ENOENT) or
//     give a Magic result, never a wrong path.
//   - A relative path (or Beneath/InRoot) from a Dir that no path reaches in
//     the caller's root (deleted, or outside the root) fails with ENOENT; the
//     kernel would still resolve ".." there. With EmptyPath and "", such a Dir
//     gives Kind=Magic with Path and Target both the text readlink gave and
//     LinkFD -1 (Resolve does not know the caller's fd number).
//   - A magic link that is not the final component and leads to a directory
//     no path reaches (e.g. /proc/<pid>/cwd of a deleted directory) fails with
//     ENOENT (ENOTDIR for a non-directory, like the kernel).
//   - A canonical path of PATH_MAX bytes or more is ENAMETOOLONG, since the
//     supervisor opens the result by that path; the kernel has no limit on
//     where symlinks lead.
//   - No permission checks: the walk runs as the supervisor (root). The
//     kernel checks search permission on every directory it walks and ptrace
//     access for magic links; Open re-walks the canonical path with the
//     caller's credentials, so only directories that are left by ".." or
//     through symlinks, and magic-link access to other processes, go
//     unchecked (the errno of a failing path may then be ENOENT/ENOTDIR where
//     the kernel says EACCES). fs.protected_symlinks is not applied either:
//     Context does not carry the caller's fsuid.
//   - A path containing a NUL byte is EINVAL (a path read from the caller's
//     memory stops at the NUL, so this only guards against misuse).
//   - Pass the path as the caller gave it: a trailing slash is seen here
//     (it forces following, requires a directory, and with Create is
//     EISDIR). Directory stands for O_DIRECTORY.
func Resolve(ctx Context, path string, flags Flags) (Result, error) {
	if flags&Beneath != 0 && flags&InRoot != 0 {
		// openat2 refuses the combination, before it reads the path.
		return Result{}, unix.EINVAL
	}
	if len(path) >= pathMax {
		return Result{}, unix.ENAMETOOLONG // getname: the string itself is too long
	}
	if strings.IndexByte(path, 0) >= 0 {
		return Result{}, unix.EINVAL
	}
	if path == "" && flags&EmptyPath == 0 {
		return Result{}, unix.ENOENT
	}
	w := &walker{ctx: ctx, flags: flags, root: ctx.Root, cur: -1}
	defer w.close()

	abs := strings.HasPrefix(path, "/")
	scoped := flags&(Beneath|InRoot) != 0
	var dirComps []string
	var dirSt objStat
	if !abs || scoped {
		if ctx.Dir < 0 {
			return Result{}, unix.EBADF
		}
		var err error
		if dirSt, err = statFd(ctx.Dir); err != nil {
			return Result{}, err
		}
		comps, text, ok := w.locateFd(ctx.Dir, dirSt)
		if path == "" {
			// EmptyPath: the object is Dir itself, of any kind.
			return emptyPathResult(dirSt, comps, text, ok, flags)
		}
		if !dirSt.isDir() {
			return Result{}, unix.ENOTDIR
		}
		if !ok {
			return Result{}, unix.ENOENT
		}
		dirComps = comps
	}

	if !disableFastPath {
		if r, ok := fastResolve(ctx, path, flags, dirComps); ok {
			return r, nil
		}
	}

	rootSt, err := statFd(ctx.Root)
	if err != nil {
		return Result{}, err
	}
	if !rootSt.isDir() {
		return Result{}, unix.ENOTDIR
	}
	w.rootSt = rootSt
	if abs && !scoped {
		// "Absolute path arguments" start at the root; for NoXdev the
		// start itself is not a crossing.
		w.startMnt = rootSt.mnt
		w.rootSet = true
		w.setCur(ctx.Root, false, rootSt)
	} else {
		w.startMnt = dirSt.mnt
		w.setCur(ctx.Dir, false, dirSt)
		w.comps = dirComps
		w.plen = joinedLen(dirComps)
		if scoped {
			w.rootSet = true // path_init sets nd->root to the dirfd
			// Dir acts as the root: ".." stops there (InRoot) or fails
			// (Beneath), absolute paths and links restart there (InRoot)
			// or fail (Beneath).
			w.root, w.rootSt = ctx.Dir, dirSt
			w.rootComps = append([]string(nil), dirComps...)
		}
		if abs {
			if err := w.jumpRoot(); err != nil {
				return Result{}, err
			}
		}
	}

	w.pushPath(path, false)
	e, err := w.walk()
	if err != nil {
		return Result{}, err
	}
	defer e.release()
	if e.magic != nil {
		return *e.magic, nil
	}
	if flags&Directory != 0 && e.exists && !e.st.isDir() {
		// O_DIRECTORY on a final symlink that is not followed: do_open's
		// ENOTDIR comes before may_open's ELOOP.
		return Result{}, unix.ENOTDIR
	}
	r := Result{Path: joinAbs(e.comps), Kind: Path, Exists: e.exists, LinkFD: -1}
	if e.exists {
		r.Mode, r.Dev, r.Ino = e.st.mode, e.st.dev, e.st.ino
	}
	return r, nil
}

// disableFastPath is for tests: they check the full walk alone too.
var disableFastPath bool

// fastResolve is the common case, done by the kernel in one call: a path
// with no symlink and no magic link in it. openat2 with RESOLVE_NO_SYMLINKS
// (and the caller's RESOLVE_* flags) walks it; if that succeeds, no link was
// followed, so every ".." was taken from a directory reached by name and the
// physical path is the lexical one: start + path with "." and ".." applied.
// Anything else (a link, an error, a ".." at the root, Create with a
// trailing slash) is left to the full walk, which gives the errno; ok says
// whether r is the answer. The full walk would give the same result (the
// differential tests run both).
func fastResolve(ctx Context, path string, flags Flags, dirComps []string) (r Result, ok bool) {
	if flags&Create != 0 && strings.HasSuffix(path, "/") {
		return r, false // EISDIR, from the full walk
	}
	abs := strings.HasPrefix(path, "/")
	scoped := flags&(Beneath|InRoot) != 0
	dirfd, start, floor := ctx.Dir, dirComps, 0
	var resolve uint64 = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	switch {
	case scoped:
		floor = len(dirComps)
		if abs {
			if flags&Beneath != 0 {
				return r, false
			}
			start = dirComps // InRoot: "/" is Dir
		}
		if flags&Beneath != 0 {
			resolve |= unix.RESOLVE_BENEATH
		} else {
			resolve |= unix.RESOLVE_IN_ROOT
		}
	case abs:
		// IN_ROOT makes the absolute path start at the caller's root.
		dirfd, start = ctx.Root, nil
		resolve |= unix.RESOLVE_IN_ROOT
	}
	if flags&NoXdev != 0 {
		resolve |= unix.RESOLVE_NO_XDEV
	}
	comps, ok := lexical(start, floor, path, false)
	if !ok {
		return r, false
	}
	st, ok := fastOpen(dirfd, path, flags, resolve)
	if !ok {
		return r, false
	}
	return Result{Path: joinAbs(comps), Kind: Path, Exists: true,
		Mode: st.mode, Dev: st.dev, Ino: st.ino, LinkFD: -1}, true
}

// fastOpen opens path from dirfd with O_PATH as the final component asks
// (see fastResolve) and the given RESOLVE_* flags, and stats what it got.
func fastOpen(dirfd int, path string, flags Flags, resolve uint64) (objStat, bool) {
	oflags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if flags&NoFollow != 0 || (flags&Create != 0 && flags&Excl != 0) {
		oflags |= unix.O_NOFOLLOW // with NO_SYMLINKS: the final link itself
	}
	if flags&Directory != 0 {
		oflags |= unix.O_DIRECTORY
	}
	fd, err := openat2(dirfd, path, oflags, resolve)
	if err != nil {
		return objStat{}, false
	}
	st, err := statFd(fd)
	closeFd(fd)
	return st, err == nil
}

// locateFd finds the canonical path of an fd of the supervisor (a copy of
// the caller's cwd or dirfd): readlink of its /proc/self/fd entry, trusted
// only if walking it from the caller's root reaches the same object.
func (w *walker) locateFd(fd int, st objStat) (comps []string, text string, ok bool) {
	text, err := readlinkAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil || !strings.HasPrefix(text, "/") {
		return nil, text, false
	}
	pe, found := w.locate(text, st)
	if !found {
		return nil, text, false
	}
	pe.release()
	return pe.comps, text, true
}

func emptyPathResult(st objStat, comps []string, text string, ok bool, flags Flags) (Result, error) {
	if flags&Directory != 0 && !st.isDir() {
		return Result{}, unix.ENOTDIR
	}
	r := Result{Kind: Path, Exists: true, Mode: st.mode, Dev: st.dev, Ino: st.ino, LinkFD: -1}
	if ok {
		r.Path = joinAbs(comps)
		return r, nil
	}
	r.Kind, r.Path, r.Target = Magic, text, text
	return r, nil
}

// validOpenFlags is the kernel's VALID_OPEN_FLAGS: open(2) ignores other
// bits, openat2(2) refuses them, so Open drops them like open(2) would.
const validOpenFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY |
	unix.O_TRUNC | unix.O_APPEND | unix.O_NONBLOCK | unix.O_DSYNC | unix.O_SYNC |
	unix.O_ASYNC | unix.O_DIRECT | oLargefile | unix.O_DIRECTORY | unix.O_NOFOLLOW |
	unix.O_NOATIME | unix.O_CLOEXEC | unix.O_TMPFILE | unix.O_PATH

// oPathFlags are the flags open(2) keeps with O_PATH (O_PATH_FLAGS).
const oPathFlags = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_PATH | unix.O_CLOEXEC

// Open opens a Path-kind result in ctx.Root with openat2 and
// RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS (so that a symlink or a magic link
// that appeared since Resolve fails with ELOOP instead of leading elsewhere),
// with the given open flags and creation mode (the caller's umask already
// applied by the caller of Open). O_NOCTTY is always added. The returned fd
// is the supervisor's. It does not change credentials.
//
// Like open(2) (build_open_how), unknown flag bits are dropped, mode is
// ignored unless O_CREAT or O_TMPFILE is given and is masked to 07777, and
// with O_PATH only O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC are kept; openat2
// would return EINVAL for each of these. O_CLOEXEC is always added: the fd
// is the supervisor's own (SECCOMP_IOCTL_NOTIF_ADDFD sets the caller's
// close-on-exec flag separately), and must not leak into its children.
// A Magic result gives EINVAL. RESOLVE_NO_MAGICLINKS is also set.
func Open(ctx Context, r Result, oflags int, mode uint32) (int, error) {
	if r.Kind != Path || !strings.HasPrefix(r.Path, "/") {
		return -1, unix.EINVAL
	}
	rel := strings.TrimLeft(r.Path, "/")
	if rel == "" {
		rel = "."
	}
	flags := uint64(oflags) & validOpenFlags
	if flags&unix.O_PATH != 0 {
		flags &= oPathFlags
	} else {
		flags |= unix.O_NOCTTY
	}
	flags |= unix.O_CLOEXEC
	var m uint64
	if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE {
		m = uint64(mode) & 0o7777
	}
	how := unix.OpenHow{
		Flags:   flags,
		Mode:    m,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(ctx.Root, rel, &how)
		if err == unix.EINTR {
			continue // e.g. a FUSE or NFS open interrupted by a Go runtime signal
		}
		return fd, err
	}
}

// ResolveAttempts is how many times ResolveOpen resolves, judges and opens
// before giving up on a path that keeps changing under it.
const ResolveAttempts = 3

// ResolveOpen resolves path, lets decide judge the result (a non-nil error
// from decide is returned as is, with the Result, and nothing is opened),
// then opens it with Open. If Open fails with ELOOP, EXDEV or EAGAIN (the
// tree changed between Resolve and Open: a component became a symlink, or
// a rename raced the walk), it starts again, up to ResolveAttempts times in
// all, and decide judges every new Result; the last error is returned.
//
// A Magic result that decide accepts is returned with fd -1 and EINVAL
// (Open's answer): the caller checks r.Kind and reopens the object itself.
// A final symlink (NoFollow) opened without O_PATH fails with ELOOP at once,
// as the kernel's O_NOFOLLOW does; it is not retried.
func ResolveOpen(ctx Context, path string, flags Flags, oflags int, mode uint32,
	decide func(Result) error) (fd int, r Result, err error) {
	for attempt := 0; attempt < ResolveAttempts; attempt++ {
		r, err = Resolve(ctx, path, flags)
		if err != nil {
			return -1, r, err
		}
		if decide != nil {
			if err := decide(r); err != nil {
				return -1, r, err
			}
		}
		fd, err = Open(ctx, r, oflags, mode)
		if err == nil {
			return fd, r, nil
		}
		if r.Kind != Path {
			return -1, r, err
		}
		if r.Exists && r.Mode&unix.S_IFMT == unix.S_IFLNK && err == unix.ELOOP {
			return -1, r, err
		}
		if err != unix.ELOOP && err != unix.EXDEV && err != unix.EAGAIN {
			return -1, r, err
		}
	}
	return -1, r, err
}
