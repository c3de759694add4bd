//go:build linux

package supervisor

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Credentials are per thread on Linux; the raw setfsuid/setfsgid/setgroups
// system calls (not Go's syscall.Setuid, which changes every thread) change
// only the receiver's locked OS thread.

type fsCreds struct {
	uid, gid int
	groups   []uint32
}

func ownCreds() (fsCreds, error) {
	gs, err := unix.Getgroups()
	if err != nil {
		return fsCreds{}, err
	}
	c := fsCreds{uid: currentFsuid(), gid: currentFsgid()}
	for _, g := range gs {
		c.groups = append(c.groups, uint32(g))
	}
	return c, nil
}

// setfsuid(-1) fails and returns the current value without changing it.
func currentFsuid() int {
	r, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	return int(r)
}

func currentFsgid() int {
	r, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	return int(r)
}

func setGroupsThread(gs []uint32) error {
	var p unsafe.Pointer
	if len(gs) > 0 {
		p = unsafe.Pointer(&gs[0])
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(p), 0)
	if e != 0 {
		return e
	}
	return nil
}

func sameGroups(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// asCaller runs fn with the caller's filesystem credentials on this (locked)
// thread and restores the supervisor's after. It is a no-op when they are
// the same. If they cannot be restored the request is marked tainted and the
// receiver thread is discarded.
func (r *request) asCaller(fn func() error) error {
	st := r.st
	own := r.s.creds
	if st == nil {
		return unix.EPERM
	}
	if st.fsuid == own.uid && st.fsgid == own.gid && sameGroups(st.groups, own.groups) {
		return fn()
	}
	if err := setGroupsThread(st.groups); err != nil {
		r.restore()
		return unix.EPERM
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(st.fsgid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(st.fsuid), 0, 0)
	if currentFsuid() != st.fsuid || currentFsgid() != st.fsgid {
		r.restore()
		return unix.EPERM
	}
	err := fn()
	r.restore()
	return err
}

func (r *request) restore() {
	own := r.s.creds
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(own.uid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(own.gid), 0, 0)
	err := setGroupsThread(own.groups)
	if err != nil || currentFsuid() != own.uid || currentFsgid() != own.gid {
		r.tainted = true
	}
}
