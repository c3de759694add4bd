package resolve

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits the kernel applies to a path walk.
const (
	pathMax     = 4096 // PATH_MAX, including the terminating NUL
	nameMax     = 255  // NAME_MAX of every Linux filesystem Vigil meets
	maxSymlinks = 40   // MAXSYMLINKS: total links followed in one walk
	procRootIno = 1    // PROC_ROOT_INO: the inode of every procfs root
)

// objStat is what the walk needs to know about an object.
type objStat struct {
	mode uint32
	dev  uint64
	ino  uint64
	mnt  uint64 // STATX_MNT_ID
}

func (s objStat) isDir() bool { return s.mode&unix.S_IFMT == unix.S_IFDIR }
func (s objStat) isLnk() bool { return s.mode&unix.S_IFMT == unix.S_IFLNK }

// sameObject compares identity. The mount is deliberately not compared: a
// file seen through a bind mount is the same object.
func (s objStat) sameObject(o objStat) bool {
	return s.dev == o.dev && s.ino == o.ino && s.mode&unix.S_IFMT == o.mode&unix.S_IFMT
}

const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_INO | unix.STATX_MNT_ID

func fromStatx(x *unix.Statx_t) objStat {
	return objStat{
		mode: uint32(x.Mode), // statx Mode is the full st_mode (type + permissions)
		dev:  unix.Mkdev(x.Dev_major, x.Dev_minor),
		ino:  x.Ino,
		mnt:  x.Mnt_id,
	}
}

// statFd stats the object an fd (typically O_PATH) refers to.
func statFd(fd int) (objStat, error) {
	var x unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, statxMask, &x); err != nil {
		return objStat{}, err
	}
	return fromStatx(&x), nil
}

// statAt stats dir/name following a final link: for a /proc magic link this
// reaches the object of the process the link belongs to.
func statAt(dir int, name string) (objStat, error) {
	var x unix.Statx_t
	if err := unix.Statx(dir, name, unix.AT_STATX_SYNC_AS_STAT, statxMask, &x); err != nil {
		return objStat{}, err
	}
	return fromStatx(&x), nil
}

// readlinkAt reads a link's text. A text that fills the whole buffer may be
// truncated; the kernel never follows a link longer than PATH_MAX-1 either.
func readlinkAt(dir int, name string) (string, error) {
	var buf [pathMax]byte
	n, err := unix.Readlinkat(dir, name, buf[:])
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}

func closeFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// comp is one pending component. trail records that it was followed by a
// slash in the string it came from and is the last one of that string: when
// such a component ends the walk, the kernel follows it even with O_NOFOLLOW,
// requires a directory, and refuses O_CREAT with EISDIR.
type comp struct {
	name  string
	trail bool
}

// endpoint is where a walk ended.
type endpoint struct {
	fd     int // O_PATH fd of the object, -1 when it does not exist
	owned  bool
	st     objStat
	comps  []string // canonical components, from the caller's root
	exists bool
	magic  *Result // set when the object is only reachable through a magic link
}

func (e *endpoint) release() {
	if e.owned {
		closeFd(e.fd)
	}
	e.fd, e.owned = -1, false
}

// walker is one userspace path walk. Invariants: cur is an O_PATH fd of a
// directory, curSt its stat and comps its canonical path (physical: no
// symlink, no "." or ".."), relative to the caller's root. rootComps is the
// canonical path of the directory that acts as root ("/" normally, the dirfd
// with Beneath/InRoot); comps always starts with rootComps.
type walker struct {
	ctx   Context
	flags Flags

	root      int // not owned
	rootSt    objStat
	rootComps []string

	cur      int
	curOwned bool
	curSt    objStat
	curFs    int8 // 0 unknown, 1 procfs, 2 other
	comps    []string
	plen     int // len of the canonical string of comps ("/a/b" = 4; root = 0)

	rootSet  bool   // the kernel would have set nd->root by now (see jumpRoot)
	spliced  bool   // a link was just followed (see walk)
	todo     []comp // pending components, the next one last
	links    int
	startMnt uint64
}

func (w *walker) close() {
	if w.curOwned {
		closeFd(w.cur)
	}
	w.cur, w.curOwned = -1, false
}

// setCur makes fd (a directory) the current directory.
func (w *walker) setCur(fd int, owned bool, st objStat) {
	if w.curOwned && w.cur != fd {
		closeFd(w.cur)
	}
	w.cur, w.curOwned, w.curSt, w.curFs = fd, owned, st, 0
}

// jumpRoot moves to the directory that acts as root, as an absolute path or
// an absolute symlink does.
func (w *walker) jumpRoot() error {
	if w.flags&Beneath != 0 {
		// RESOLVE_BENEATH refuses absolute paths and absolute symlinks.
		return unix.EXDEV
	}
	if w.flags&NoXdev != 0 && (!w.rootSet || w.rootSt.mnt != w.startMnt) {
		// nd_jump_root: the jump itself is a mount crossing. The kernel
		// compares the current mount with nd->root's, which is still
		// unset in a relative walk that met no ".." yet (set_root is
		// lazy): such a jump is EXDEV even within one mount.
		return unix.EXDEV
	}
	w.rootSet = true
	w.setCur(w.root, false, w.rootSt)
	w.comps = append(w.comps[:0], w.rootComps...)
	w.plen = joinedLen(w.comps)
	return nil
}

func joinedLen(comps []string) int {
	n := 0
	for _, c := range comps {
		n += 1 + len(c)
	}
	return n
}

// pushComp appends a name to the canonical path. The supervisor must open
// the result by this string, so a canonical path the kernel itself could not
// take as an argument is refused (the kernel's own walk has no such limit:
// documented deviation).
func (w *walker) pushComp(name string) error {
	if w.plen+1+len(name) >= pathMax {
		return unix.ENAMETOOLONG
	}
	w.comps = append(w.comps, name)
	w.plen += 1 + len(name)
	return nil
}

// pushPath queues the components of s in front of the pending ones.
// lastTrail says the component that s replaces was itself the final one and
// carried a trailing slash.
func (w *walker) pushPath(s string, lastTrail bool) {
	final := len(w.todo) == 0
	trail := final && (lastTrail || strings.HasSuffix(s, "/"))
	// Collect then push in reverse so that the first component is on top.
	start := len(w.todo)
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == '/' {
			i++
		}
		j := i
		for j < len(s) && s[j] != '/' {
			j++
		}
		if j > i {
			w.todo = append(w.todo, comp{name: s[i:j]})
		}
		i = j
	}
	added := w.todo[start:]
	for i, j := 0, len(added)-1; i < j; i, j = i+1, j-1 {
		added[i], added[j] = added[j], added[i]
	}
	if len(added) > 0 {
		added[0].trail = trail
	}
}

func (w *walker) pop() (comp, bool) {
	c := w.todo[len(w.todo)-1]
	w.todo = w.todo[:len(w.todo)-1]
	return c, len(w.todo) == 0
}

// curProc reports whether cur is on procfs and whether it is a procfs root.
// This is decided by the filesystem magic and the root inode, never by name:
// procfs may be mounted anywhere and a directory named "proc" may be anything.
func (w *walker) curProc() (onProc, isRoot bool, err error) {
	if w.curFs == 0 {
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(w.cur, &sfs); err != nil {
			return false, false, err
		}
		w.curFs = 2
		if sfs.Type == unix.PROC_SUPER_MAGIC {
			w.curFs = 1
		}
	}
	onProc = w.curFs == 1
	return onProc, onProc && w.curSt.ino == procRootIno, nil
}

func (w *walker) endAtCur() endpoint {
	e := endpoint{fd: w.cur, owned: w.curOwned, st: w.curSt, comps: w.comps, exists: true}
	w.cur, w.curOwned = -1, false // ownership moves to the endpoint
	return e
}

// dotdot moves to the parent directory.
func (w *walker) dotdot() error {
	w.rootSet = true // handle_dots sets nd->root
	if len(w.comps) <= len(w.rootComps) {
		// At the root: ".." stays there, as in the kernel (and as
		// RESOLVE_IN_ROOT does for the dirfd); RESOLVE_BENEATH refuses.
		if w.flags&Beneath != 0 {
			return unix.EXDEV
		}
		return nil
	}
	// The physical parent of cur (not of some symlink we came through),
	// which is what the kernel's follow_dotdot gives, including going up
	// out of a mounted filesystem to the parent of its mountpoint.
	fd, err := unix.Openat(w.cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	st, err := statFd(fd)
	if err != nil {
		closeFd(fd)
		return err
	}
	if w.flags&NoXdev != 0 && st.mnt != w.startMnt {
		closeFd(fd)
		return unix.EXDEV
	}
	last := w.comps[len(w.comps)-1]
	w.comps = w.comps[:len(w.comps)-1]
	w.plen -= 1 + len(last)
	w.setCur(fd, true, st)
	return nil
}

// walk runs the pending components from cur. On success the endpoint owns
// (or borrows) the final object's fd; the walker keeps nothing open.
func (w *walker) walk() (endpoint, error) {
	for len(w.todo) > 0 {
		c, final := w.pop()
		switch c.name {
		case ".":
			if final {
				return w.endAtCur(), nil
			}
			continue
		case "..":
			if err := w.dotdot(); err != nil {
				return endpoint{}, err
			}
			if final {
				return w.endAtCur(), nil
			}
			continue
		}
		e, done, err := w.step(c, final)
		if err != nil || done {
			return e, err
		}
		if w.spliced {
			// A link was just followed; the rest of the path often has
			// no other link: let the kernel walk it in one call.
			w.spliced = false
			if e, ok := w.tryFast(); ok {
				return e, nil
			}
		}
	}
	// Nothing to walk: "/" or an empty path with EmptyPath.
	return w.endAtCur(), nil
}

// step looks up one ordinary component in cur. done reports that the walk
// ended with e.
func (w *walker) step(c comp, final bool) (e endpoint, done bool, err error) {
	if len(c.name) > nameMax {
		return e, false, unix.ENAMETOOLONG
	}
	create := w.flags&Create != 0
	if final && c.trail && create {
		// open_last_lookups: O_CREAT with a trailing slash is EISDIR,
		// whatever exists. The canonical path has no trailing slash,
		// so without this the final open would create a regular file.
		return e, false, unix.EISDIR
	}
	fd, err := unix.Openat(w.cur, c.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT && final && create {
			if err := w.pushComp(c.name); err != nil {
				return e, false, err
			}
			return endpoint{fd: -1, comps: w.comps}, true, nil
		}
		return e, false, err
	}
	st, err := statFd(fd)
	if err != nil {
		closeFd(fd)
		return e, false, err
	}
	if w.flags&NoXdev != 0 && st.mnt != w.startMnt {
		// Stepping onto a mountpoint reaches the mounted root (openat
		// traverses mounts like the kernel walk does): a crossing.
		closeFd(fd)
		return e, false, unix.EXDEV
	}

	switch {
	case st.isLnk():
		return w.link(fd, st, c, final)
	case st.isDir():
		if err := w.pushComp(c.name); err != nil {
			closeFd(fd)
			return e, false, err
		}
		if final {
			return endpoint{fd: fd, owned: true, st: st, comps: w.comps, exists: true}, true, nil
		}
		w.setCur(fd, true, st)
		return e, false, nil
	default:
		if !final || w.flags&Directory != 0 || c.trail {
			closeFd(fd)
			return e, false, unix.ENOTDIR
		}
		if err := w.pushComp(c.name); err != nil {
			closeFd(fd)
			return e, false, err
		}
		return endpoint{fd: fd, owned: true, st: st, comps: w.comps, exists: true}, true, nil
	}
}

// link handles a symlink (fd, st) named c.name in cur.
func (w *walker) link(fd int, st objStat, c comp, final bool) (e endpoint, done bool, err error) {
	// The final link is not followed with O_NOFOLLOW, or with O_CREAT|O_EXCL
	// (build_open_flags adds O_NOFOLLOW), unless a trailing slash forces it.
	noFollow := w.flags&NoFollow != 0 || (w.flags&Create != 0 && w.flags&Excl != 0)
	if final && noFollow && !c.trail {
		if err := w.pushComp(c.name); err != nil {
			closeFd(fd)
			return e, false, err
		}
		return endpoint{fd: fd, owned: true, st: st, comps: w.comps, exists: true}, true, nil
	}
	// The link's text is read through fd (readlinkat with an empty name on
	// the O_PATH|O_NOFOLLOW fd), not by name: a rename that replaces the
	// link after it was opened must not make the read fail (EINVAL on a
	// directory) or read another link.
	defer closeFd(fd)

	onProc, procRoot, err := w.curProc()
	if err != nil {
		return e, false, err
	}
	w.links++
	if w.links > maxSymlinks {
		return e, false, unix.ELOOP
	}
	if w.flags&NoSymlinks != 0 {
		return e, false, unix.ELOOP
	}
	// On procfs, the links in its root (self, thread-self, mounts, net...)
	// are ordinary symlinks; every link below a /proc/<pid> directory (fd/N,
	// cwd, root, exe, map_files/*, ns/*) is a magic link that jumps to an
	// object instead of naming a path.
	if onProc && !procRoot {
		return w.magic(c, final)
	}
	var body string
	switch {
	case procRoot && c.name == "self":
		// /proc/self is the CALLER, not the supervisor that reads it.
		if w.ctx.Pid <= 0 {
			return e, false, unix.ENOENT // proc_self_get_link without a pid
		}
		body = strconv.Itoa(w.ctx.Pid)
	case procRoot && c.name == "thread-self":
		if w.ctx.Pid <= 0 {
			return e, false, unix.ENOENT
		}
		tid := w.ctx.Tid
		if tid <= 0 {
			tid = w.ctx.Pid
		}
		body = strconv.Itoa(w.ctx.Pid) + "/task/" + strconv.Itoa(tid)
	default:
		body, err = readlinkAt(fd, "")
		if err != nil {
			return e, false, err
		}
	}
	if body == "" {
		return e, false, unix.ENOENT // the kernel refuses empty link bodies
	}
	if body[0] == '/' {
		if err := w.jumpRoot(); err != nil {
			return e, false, err
		}
	}
	w.pushPath(body, final && c.trail)
	w.spliced = true
	if len(w.todo) == 0 {
		// The body was "/" (or only slashes): the link names the root.
		return w.endAtCur(), true, nil
	}
	return e, false, nil
}

// magic handles a /proc magic link c.name in cur, which the walk follows.
func (w *walker) magic(c comp, final bool) (e endpoint, done bool, err error) {
	if w.flags&NoMagicLinks != 0 {
		return e, false, unix.ELOOP
	}
	if w.flags&(Beneath|InRoot) != 0 {
		// nd_jump_link: magic links are refused in scoped lookups, since
		// they may lead anywhere.
		return e, false, unix.EXDEV
	}
	text, err := readlinkAt(w.cur, c.name)
	if err != nil {
		return e, false, err
	}
	// Following the link as root reaches the caller's object (its fd, its
	// cwd...), whatever the text says.
	obj, err := statAt(w.cur, c.name)
	if err != nil {
		return e, false, err
	}
	if w.flags&NoXdev != 0 && obj.mnt != w.startMnt {
		// nd_jump_link compares the link's mount with the object's.
		return e, false, unix.EXDEV
	}
	// The text is the object's path as the kernel prints it (d_path,
	// relative to the reader's root: Vigil assumes the caller's root is the
	// supervisor's). Trust it only if walking it, without following any
	// link, reaches that very object: then the path names it and the
	// policy can judge the path.
	if strings.HasPrefix(text, "/") {
		if pe, ok := w.locate(text, obj); ok {
			if pe.st.isDir() {
				w.comps = append(w.comps[:0], pe.comps...)
				w.plen = joinedLen(w.comps)
				w.setCur(pe.fd, pe.owned, pe.st)
				if final {
					return w.endAtCur(), true, nil
				}
				w.spliced = true
				return e, false, nil
			}
			if !final || w.flags&Directory != 0 || c.trail {
				pe.release()
				return e, false, unix.ENOTDIR
			}
			return pe, true, nil
		}
	}
	// No path reaches the object (pipe:[..], socket:[..], anon_inode:..,
	// a memfd, a deleted or moved file, another mount namespace).
	if !final {
		if obj.isDir() {
			// A directory without a path in the caller's root (deleted, or
			// outside it): the kernel would continue there, but there is no
			// canonical path to judge. Refused (documented deviation).
			return e, false, unix.ENOENT
		}
		return e, false, unix.ENOTDIR
	}
	if (w.flags&Directory != 0 || c.trail) && !obj.isDir() {
		return e, false, unix.ENOTDIR
	}
	if err := w.pushComp(c.name); err != nil {
		return e, false, err
	}
	r := &Result{
		Path:   joinAbs(w.comps),
		Kind:   Magic,
		Exists: true,
		Mode:   obj.mode,
		Dev:    obj.dev,
		Ino:    obj.ino,
		Target: text,
		LinkFD: -1,
	}
	r.LinkPid, r.LinkFD = parseFdLink(w.comps)
	return endpoint{fd: -1, st: obj, comps: w.comps, exists: true, magic: r}, true, nil
}

// tryFast finishes the walk with one openat2 when the pending components
// contain no link: the same reasoning as fastResolve, from cur. ".." may not
// go above the root (lexical bails out), so no RESOLVE_* scoping is needed;
// NoXdev is passed on. ok false: continue component by component.
func (w *walker) tryFast() (endpoint, bool) {
	if disableFastPath || len(w.todo) == 0 {
		return endpoint{}, false
	}
	var b strings.Builder
	for i := len(w.todo) - 1; i >= 0; i-- {
		b.WriteString(w.todo[i].name)
		if i > 0 {
			b.WriteByte('/')
		}
	}
	if w.todo[0].trail {
		if w.flags&Create != 0 {
			return endpoint{}, false // EISDIR, from the full walk
		}
		b.WriteByte('/')
	}
	rest := b.String()
	comps, ok := lexical(w.comps, len(w.rootComps), rest, false)
	if !ok {
		return endpoint{}, false
	}
	var resolve uint64 = unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	if w.flags&NoXdev != 0 {
		resolve |= unix.RESOLVE_NO_XDEV
	}
	st, ok := fastOpen(w.cur, rest, w.flags, resolve)
	if !ok {
		return endpoint{}, false
	}
	return endpoint{fd: -1, st: st, comps: comps, exists: true}, true
}

// parseFdLink recognises .../<pid>/fd/<n> and .../<pid>/task/<tid>/fd/<n>.
// For a task link the fd table is the thread's, so LinkPid is the tid.
func parseFdLink(comps []string) (pid, fd int) {
	n := len(comps)
	if n < 3 || comps[n-2] != "fd" {
		return 0, -1
	}
	f, err1 := strconv.Atoi(comps[n-1])
	p, err2 := strconv.Atoi(comps[n-3])
	if err1 != nil || err2 != nil || f < 0 || p <= 0 {
		return 0, -1
	}
	return p, f
}

// locate reports whether text, a path the kernel printed (d_path of a
// magic link's object or of a dirfd), walked from the caller's root without
// following any link, reaches an object identical to want. The endpoint is
// returned (owning its fd) only if so. A printed path never contains "." or
// ".." components; one that does is not trusted, so that the returned
// components are exactly the physical path that was walked.
func (w *walker) locate(text string, want objStat) (endpoint, bool) {
	comps, ok := lexical(nil, 0, text, true)
	if !ok {
		return endpoint{}, false
	}
	fd, err := openat2(w.ctx.Root, text, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC,
		unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return endpoint{}, false
	}
	st, err := statFd(fd)
	if err != nil || st.isLnk() || !st.sameObject(want) {
		closeFd(fd)
		return endpoint{}, false
	}
	return endpoint{fd: fd, owned: true, st: st, comps: comps, exists: true}, true
}

// lexical appends the components of p to a copy of start, applying "."
// and "..". ok is false when the result cannot be trusted to be the
// physical path: ".." at floor (the root: whether the caller's root and the
// walk's agree is for the full walk to decide), dots at all when noDots,
// a component longer than NAME_MAX or a result of PATH_MAX or more.
func lexical(start []string, floor int, p string, noDots bool) ([]string, bool) {
	comps := append(make([]string, 0, len(start)+8), start...)
	n := joinedLen(comps)
	for i := 0; i < len(p); {
		for i < len(p) && p[i] == '/' {
			i++
		}
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		c := p[i:j]
		i = j
		switch {
		case c == "":
		case c == "." || c == "..":
			if noDots {
				return nil, false
			}
			if c == ".." {
				if len(comps) <= floor {
					return nil, false
				}
				n -= 1 + len(comps[len(comps)-1])
				comps = comps[:len(comps)-1]
			}
		default:
			if len(c) > nameMax || n+1+len(c) >= pathMax {
				return nil, false
			}
			comps = append(comps, c)
			n += 1 + len(c)
		}
	}
	return comps, true
}

func openat2(dirfd int, path string, flags, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: flags, Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, path, &how)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func joinAbs(comps []string) string {
	if len(comps) == 0 {
		return "/"
	}
	return "/" + strings.Join(comps, "/")
}
