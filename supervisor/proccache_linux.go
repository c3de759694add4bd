//go:build linux

package supervisor

import (
	"errors"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// procCache keeps, per receiver thread (no sharing, no locking), open fds
// of /proc/<tid> and /proc/<tid>/status for the last callers it served.
// Opening /proc/<tid>/status costs about 15 us here, reading an open one
// about 4 us. The fds are bound to the task, not to the number: once the
// thread is gone, reads fail (ESRCH) and lookups under the dir fail
// (ENOENT) even if the tid is reused, so a stale entry is detected and
// replaced, never misread.
type procCache struct {
	entries map[int]*procEntry
	order   []int // insertion order, for eviction
}

type procEntry struct {
	dir    int // /proc/<tid>, O_PATH|O_DIRECTORY
	status int // /proc/<tid>/status, O_RDONLY
	pidfd  int // pidfd_open(tid, PIDFD_THREAD), -1 until needed
}

// pidfdThread is PIDFD_THREAD (6.9): a pidfd of the thread, not its group.
const pidfdThread = unix.O_EXCL

// noPidfdThread is set once the kernel has refused PIDFD_THREAD (before
// 6.9): argFD then falls back to the thread group's pidfd.
var noPidfdThread atomic.Bool

// noPidfdInfo is set once the kernel has shown it lacks PIDFD_THREAD or
// PIDFD_GET_INFO (before 6.13): /proc/<tid>/status is read instead.
var noPidfdInfo atomic.Bool

const procCacheSize = 16

func newProcCache() *procCache { return &procCache{entries: map[int]*procEntry{}} }

func (c *procCache) drop(tid int) {
	e, ok := c.entries[tid]
	if !ok {
		return
	}
	unix.Close(e.dir)
	unix.Close(e.status)
	if e.pidfd >= 0 {
		unix.Close(e.pidfd)
	}
	delete(c.entries, tid)
	for i, t := range c.order {
		if t == tid {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

func (c *procCache) get(tid int) (*procEntry, error) {
	if e, ok := c.entries[tid]; ok {
		return e, nil
	}
	dir, err := unix.Open("/proc/"+strconv.Itoa(tid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	st, err := unix.Openat(dir, "status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(dir)
		return nil, err
	}
	if len(c.order) >= procCacheSize {
		c.drop(c.order[0])
	}
	e := &procEntry{dir: dir, status: st, pidfd: -1}
	c.entries[tid] = e
	c.order = append(c.order, tid)
	return e, nil
}

func (c *procCache) close() {
	for len(c.order) > 0 {
		c.drop(c.order[0])
	}
}

// readStatusCached reads /proc/<tid>/status through the cache; a stale
// entry (the thread is gone) is replaced once.
func (c *procCache) readStatus(tid int) (*procStatus, error) {
	var buf [4096]byte
	for attempt := 0; attempt < 2; attempt++ {
		e, err := c.get(tid)
		if err != nil {
			return nil, err
		}
		n, err := unix.Pread(e.status, buf[:], 0)
		if err == nil && n > 0 && n < len(buf) {
			return parseStatus(buf[:n])
		}
		if err == nil && n >= len(buf) {
			// Unusually long (many groups): read it whole the slow way.
			return readStatus(tid)
		}
		c.drop(tid)
	}
	return nil, unix.ESRCH
}

// openAt opens name (root, cwd) under the caller's /proc/<tid>.
func (c *procCache) openAt(tid int, name string, flags int) (int, error) {
	for attempt := 0; attempt < 2; attempt++ {
		e, err := c.get(tid)
		if err != nil {
			return -1, err
		}
		fd, err := unix.Openat(e.dir, name, flags, 0)
		if err == nil {
			return fd, nil
		}
		if err != unix.ENOENT && err != unix.ESRCH {
			return -1, err
		}
		c.drop(tid)
	}
	return -1, unix.ESRCH
}

// procIdent is what PIDFD_GET_INFO tells about a thread: its thread group
// and its filesystem credentials (no supplementary groups, no umask).
type procIdent struct {
	tgid, fsuid, fsgid int
}

// ident asks the kernel for the thread's tgid and fs credentials through
// a cached thread pidfd (one ioctl, against about 5 us for reading and
// parsing /proc/<tid>/status). Like the other fds, the pidfd is bound to
// the task: once the thread is gone the ioctl fails (ESRCH) even if the
// tid is reused, and the entry is replaced. ok is false when the kernel
// lacks the interface.
func (c *procCache) ident(tid int) (procIdent, bool, error) {
	if noPidfdInfo.Load() || noPidfdThread.Load() {
		return procIdent{}, false, nil
	}
	var id procIdent
	ok, err := c.withThreadPidfd(tid, func(pidfd int) error {
		info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_CREDS}
		err := unix.IoctlPidfdInfo(pidfd, &info)
		if err == nil && info.Mask&unix.PIDFD_INFO_CREDS != 0 && info.Tgid > 0 {
			id = procIdent{tgid: int(info.Tgid), fsuid: int(info.Fsuid), fsgid: int(info.Fsgid)}
			return nil
		}
		if err == nil || err == unix.ENOTTY || err == unix.EINVAL {
			return errNoPidfdInfo
		}
		return unix.ESRCH // the thread is gone: replace the entry
	})
	if !ok || err == errNoPidfdInfo {
		noPidfdInfo.Store(true)
		return procIdent{}, false, nil
	}
	return id, true, err
}

// errNoPidfdInfo: the kernel has thread pidfds but no PIDFD_GET_INFO.
var errNoPidfdInfo = errors.New("no PIDFD_GET_INFO")

// withThreadPidfd runs op on the cached pidfd of the thread tid
// (PIDFD_THREAD). Like the other fds it is bound to the task: op gets
// ESRCH once the thread is gone, even if the tid was reused, and the entry
// is then replaced once. ok is false when the kernel has no thread pidfds
// (before 6.9).
func (c *procCache) withThreadPidfd(tid int, op func(pidfd int) error) (ok bool, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		e, err := c.get(tid)
		if err != nil {
			return true, err
		}
		if e.pidfd < 0 {
			fd, err := unix.PidfdOpen(tid, pidfdThread)
			if err == unix.EINVAL {
				noPidfdThread.Store(true)
				return false, nil
			}
			if err != nil {
				c.drop(tid)
				continue
			}
			e.pidfd = fd
		}
		if err := op(e.pidfd); err != unix.ESRCH {
			return true, err
		}
		c.drop(tid)
	}
	return true, unix.ESRCH
}

// statxAt stats name (root) under the caller's /proc/<tid>, following it.
func (c *procCache) statxAt(tid int, name string, mask int, stx *unix.Statx_t) error {
	for attempt := 0; attempt < 2; attempt++ {
		e, err := c.get(tid)
		if err != nil {
			return err
		}
		err = unix.Statx(e.dir, name, 0, mask, stx)
		if err == nil {
			return nil
		}
		if err != unix.ENOENT && err != unix.ESRCH {
			return err
		}
		c.drop(tid)
	}
	return unix.ESRCH
}

// getFD copies fd from the thread's own fd table: pidfd_getfd on the
// thread's pidfd. ok is false when the kernel has no thread pidfds.
func (c *procCache) getFD(tid, fd int) (n int, ok bool, err error) {
	n = -1
	ok, err = c.withThreadPidfd(tid, func(pidfd int) error {
		var e error
		n, e = unix.PidfdGetfd(pidfd, fd, 0)
		return e
	})
	if err != nil {
		n = -1
	}
	return n, ok, err
}
