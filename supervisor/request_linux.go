//go:build linux

package supervisor

import (
	"bytes"
	"strconv"

	"golang.org/x/sys/unix"

	"vigil/rules"
)

// request is one notification being handled, with what was looked up about
// the caller. Everything it opens is closed by release.
type request struct {
	s       *supervisor
	n       *seccompNotif
	tid     int
	st      *procStatus
	pc      *procCache // the receiver's
	pidfd   int
	tainted bool // credential state of this thread could not be restored
	// traced: the call is stopped under the ptrace backend (ptrace_linux.go),
	// not a notification; it stays pending until the tracer resumes it.
	traced bool
	// open is the decoded open-family call (handleOpen), for the ptrace
	// backend's check of what the caller's own open yields.
	open *openCall
	// openWant (ptrace backend): the object an allowed open without side
	// effects must yield.
	openWant *openWant
}

type openWant struct{ dev, ino uint64 }

func (r *request) release() {
	if r.pidfd >= 0 {
		unix.Close(r.pidfd)
		r.pidfd = -1
	}
}

func (r *request) arg(i int) uint64 { return r.n.Data.Args[i] }

// argInt is a C int argument (fds, flags): the low 32 bits, sign-extended.
func (r *request) argInt(i int) int { return int(int32(uint32(r.n.Data.Args[i]))) }

// valid re-checks that the notification is still pending.
func (r *request) valid() bool {
	if r.traced {
		// A thread in a ptrace stop cannot leave it, and its id cannot be
		// reused before the tracer has reaped it.
		return true
	}
	return notifIDValid(r.s.listener, r.n.ID)
}

// procStatus is what the supervisor needs from /proc/<tid>/status.
type procStatus struct {
	tgid   int
	fsuid  int
	fsgid  int
	groups []uint32
	umask  uint32
	ppid   int
	// full: read from /proc/<tid>/status. Otherwise only tgid, fsuid and
	// fsgid are the caller's (from PIDFD_GET_INFO) and groups are the
	// supervisor's, which is only used when they cannot matter (see
	// quickStatus); umask and ppid are unknown.
	full bool
}

// status reads /proc/<tid>/status once per request. Until the notification
// id is re-checked, the tid might have been reused; every decision re-checks
// it before acting.
func (r *request) status() (*procStatus, error) {
	if r.st != nil && r.st.full {
		return r.st, nil
	}
	var st *procStatus
	var err error
	if r.pc != nil {
		st, err = r.pc.readStatus(r.tid)
	} else {
		st, err = readStatus(r.tid)
	}
	if err != nil {
		return nil, err
	}
	st.full = true
	r.st = st
	return st, nil
}

// quickStatus is status() for callers that need only the tgid and the
// credentials the open is done with (not the umask): when the caller's
// fsuid and fsgid (from one PIDFD_GET_INFO ioctl) are the supervisor's
// and its supplementary groups cannot make a difference, /proc/<tid>/status
// is not read. Groups cannot make a difference when the supervisor is root
// with CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER (permission
// checks pass whatever the groups; a created file gets the fsgid), or when
// it has no capabilities at all and one uid and one gid throughout (its
// descendants, under no_new_privs, cannot change their groups). In both
// cases asCaller would not switch anything. Like status(), what it returns
// is only trusted after the notification id is re-checked.
func (r *request) quickStatus(needUmask bool) (*procStatus, error) {
	if r.st != nil {
		return r.st, nil
	}
	if needUmask || r.pc == nil || !r.s.groupsIrrelevant {
		return r.status()
	}
	id, ok, err := r.pc.ident(r.tid)
	if err != nil {
		return nil, err
	}
	own := r.s.creds
	if !ok || id.fsuid != own.uid || id.fsgid != own.gid {
		return r.status()
	}
	r.st = &procStatus{tgid: id.tgid, fsuid: id.fsuid, fsgid: id.fsgid, groups: own.groups, umask: 0o022}
	return r.st, nil
}

func (r *request) tgid() (int, error) {
	if r.st != nil {
		return r.st.tgid, nil // full or not, the tgid is the caller's
	}
	st, err := r.status()
	if err != nil {
		return 0, err
	}
	return st.tgid, nil
}

func (r *request) caller() rules.Caller {
	c := rules.Caller{Pid: r.tid, Tid: r.tid}
	if r.st != nil {
		c.Pid = r.st.tgid
	}
	return c
}

func readStatus(tid int) (*procStatus, error) {
	var buf [4096]byte
	path := "/proc/" + strconv.Itoa(tid) + "/status"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	n, err := readFull(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return nil, err
	}
	return parseStatus(buf[:n])
}

// readProcStat reads /proc/<tid>/stat; nil when the thread is gone.
func readProcStat(tid int, buf []byte) []byte {
	fd, err := unix.Open("/proc/"+strconv.Itoa(tid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	n, err := readFull(fd, buf)
	unix.Close(fd)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// parseStatus extracts Tgid, PPid, the fs uid/gid (4th field of Uid/Gid),
// Groups and Umask. Missing Tgid/Uid/Gid is an error.
func parseStatus(b []byte) (*procStatus, error) {
	st := &procStatus{tgid: -1, fsuid: -1, fsgid: -1, umask: 0o022}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		key, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch string(key) {
		case "Tgid":
			st.tgid = atoi(val)
		case "PPid":
			st.ppid = atoi(val)
		case "Uid":
			if f := bytes.Fields(val); len(f) == 4 {
				st.fsuid = atoi(f[3])
			}
		case "Gid":
			if f := bytes.Fields(val); len(f) == 4 {
				st.fsgid = atoi(f[3])
			}
		case "Groups":
			for _, g := range bytes.Fields(val) {
				if v := atoi(g); v >= 0 {
					st.groups = append(st.groups, uint32(v))
				}
			}
		case "Umask":
			if v, err := strconv.ParseUint(string(val), 8, 32); err == nil {
				st.umask = uint32(v) & 0o777
			}
		}
	}
	if st.tgid <= 0 || st.fsuid < 0 || st.fsgid < 0 {
		return nil, unix.ESRCH
	}
	return st, nil
}

func atoi(b []byte) int {
	if len(b) == 0 || len(b) > 10 {
		return -1
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		v = v*10 + int(c-'0')
	}
	return v
}

// openProc opens /proc/<tid>/<name> (root, cwd) for the caller.
func (r *request) openProc(name string, flags int) (int, error) {
	if r.pc != nil {
		return r.pc.openAt(r.tid, name, flags)
	}
	return unix.Open("/proc/"+strconv.Itoa(r.tid)+"/"+name, flags, 0)
}

// pidFD returns a pidfd of the caller's thread group.
func (r *request) pidFD() (int, error) {
	if r.pidfd >= 0 {
		return r.pidfd, nil
	}
	tgid, err := r.tgid()
	if err != nil {
		return -1, err
	}
	fd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return -1, err
	}
	r.pidfd = fd
	return fd, nil
}

// getFD copies the caller's fd into the supervisor (pidfd_getfd). The copy
// refers to the same open file description; its close-on-exec flag is set.
// EBADF when the caller has no such fd.
//
// The fd is looked up in the fd table of the thread group (what
// /proc/<pid>/fd, and so /proc/self/fd, shows): right for the links of
// /proc/self/fd. An fd the caller passes as an argument (a socket, a
// dirfd, an SCM_RIGHTS fd) is in its own thread's table: argFD.
func (r *request) getFD(fd int) (int, error) {
	if fd < 0 {
		return -1, unix.EBADF
	}
	pfd, err := r.pidFD()
	if err != nil {
		return -1, err
	}
	c, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		if err == unix.EBADF {
			return -1, unix.EBADF
		}
		return -1, err
	}
	return c, nil
}

// argFD is getFD for an fd the calling thread passed as an argument: it
// is looked up in that thread's own fd table. A thread can have a table
// of its own (clone without CLONE_FILES, unshare(CLONE_FILES)), where the
// same number names another file than in the thread group leader's: the
// call is then decided and performed on what the caller named, not on a
// file of another table. With thread pidfds (PIDFD_THREAD, 6.9) the copy
// comes from the thread's table; without them, the thread group's copy is
// used only when kcmp shows that the thread shares its table, and the
// call is refused (EACCES, logged) when it does not.
func (r *request) argFD(fd int) (int, error) {
	if fd < 0 {
		return -1, unix.EBADF
	}
	if r.pc != nil && !noPidfdThread.Load() {
		if c, ok, err := r.pc.getFD(r.tid, fd); ok {
			return c, err
		}
	}
	tgid, err := r.tgid()
	if err != nil {
		return -1, err
	}
	if tgid != r.tid && !sameFiles(tgid, r.tid) {
		r.s.log.Warn("refused: the calling thread has an fd table of its own and the kernel has no thread pidfds to reach it", "pid", tgid, "tid", r.tid, "fd", fd)
		return -1, unix.EACCES
	}
	return r.getFD(fd)
}

// argFDErrno is what a call gets when argFD fails: EACCES when it refused
// (another fd table), else EBADF (the caller has no such fd, or it went).
func argFDErrno(err error) unix.Errno {
	if err == unix.EACCES {
		return unix.EACCES
	}
	return unix.EBADF
}

// sameFiles reports whether two tasks share one fd table (kcmp
// KCMP_FILES). A kernel without kcmp (ENOSYS, or EPERM where it is
// restricted) cannot tell; the tasks are then taken to share it, as almost
// every thread does. That is no allow on a failed read: which table the fd
// is taken from only chooses the object, and the call is still decided
// on, and performed with, the object taken.
func sameFiles(pid1, pid2 int) bool {
	const kcmpFiles = 2 // KCMP_FILES
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), kcmpFiles, 0, 0, 0)
	if e == unix.ENOSYS || e == unix.EPERM {
		return true
	}
	return e == 0 && r == 0
}

const pathMax = 4096 // PATH_MAX, including the NUL

// readChunk copies into buf what lies at addr in the caller, up to the end
// of addr's page: a read crossing into an unmapped page fails as a whole
// (trap 6). It returns how many bytes it copied; any failure is EFAULT.
func (r *request) readChunk(addr uint64, buf []byte) (int, unix.Errno) {
	const page = 4096
	n := int(page - addr%page)
	if n > len(buf) {
		n = len(buf)
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(n)
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: n}}
	for {
		m, err := unix.ProcessVMReadv(r.tid, local, remote, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			return 0, unix.EFAULT
		}
		return m, 0
	}
}

// readMem copies len(buf) bytes at addr from the caller. Any failure is
// EFAULT.
func (r *request) readMem(addr uint64, buf []byte) unix.Errno {
	if len(buf) == 0 {
		return 0
	}
	if addr == 0 {
		return unix.EFAULT
	}
	for done := 0; done < len(buf); {
		m, e := r.readChunk(addr+uint64(done), buf[done:])
		if e != 0 {
			return e
		}
		done += m
	}
	return 0
}

// readString reads a NUL-terminated string of at most PATH_MAX bytes
// (NUL included) like the kernel's getname(): no NUL within the limit is
// ENAMETOOLONG, an unreadable address EFAULT.
func (r *request) readString(addr uint64) (string, unix.Errno) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	var buf [pathMax]byte
	for done := 0; done < pathMax; {
		m, e := r.readChunk(addr+uint64(done), buf[done:])
		if e != 0 {
			return "", e
		}
		if i := bytes.IndexByte(buf[done:done+m], 0); i >= 0 {
			return string(buf[:done+i]), 0
		}
		done += m
	}
	return "", unix.ENAMETOOLONG
}

// exePath returns the caller's executable path (for audit lines only).
func exePath(tgid int) string {
	var buf [unix.PathMax]byte
	n, err := unix.Readlink("/proc/"+strconv.Itoa(tgid)+"/exe", buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

func (s *supervisor) completeEvent(r *request, e *Event) {
	if e.Pid == 0 {
		if st, err := r.status(); err == nil {
			e.Pid = st.tgid
		} else {
			e.Pid = r.tid
		}
	}
	if e.Exe == "" {
		e.Exe = exePath(e.Pid)
	}
	if e.Mode == "" {
		e.Mode = s.policy.Mode().String()
	}
}
