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

import "golang.org/x/sys/unix"

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
func Resolve(ctx Context, path string, flags Flags) (Result, error) {
	return Result{}, unix.ENOSYS
}

// Open opens a Path-kind result in ctx.Root with openat2 and
// RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS (so that a symlink or a magic link
// that appeared since Resolve fails with ELOOP instead of leading elsewhere),
// with the given open flags and creation mode (the caller's umask already
// applied by the caller of Open). O_NOCTTY is always added. The returned fd
// is the supervisor's. It does not change credentials.
func Open(ctx Context, r Result, oflags int, mode uint32) (int, error) {
	return -1, unix.ENOSYS
}
