//go:build linux

package supervisor

import (
	"bytes"
	"strconv"
	"strings"
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

// groupsIrrelevant reports whether the supplementary groups of a caller
// whose fsuid and fsgid are the supervisor's cannot change what it may
// open (see request.quickStatus), from the supervisor's /proc/self/status.
func groupsIrrelevant(status []byte) bool {
	var capEff, capPrm, capAmb uint64
	var uids, gids []string
	for _, ln := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff":
			capEff, _ = strconv.ParseUint(v, 16, 64)
		case "CapPrm":
			capPrm, _ = strconv.ParseUint(v, 16, 64)
		case "CapAmb":
			capAmb, _ = strconv.ParseUint(v, 16, 64)
		case "Uid":
			uids = strings.Fields(v)
		case "Gid":
			gids = strings.Fields(v)
		}
	}
	if len(uids) != 4 || len(gids) != 4 {
		return false
	}
	const dacCaps = 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH | 1<<unix.CAP_FOWNER
	if uids[3] == "0" && capEff&dacCaps == dacCaps {
		return true
	}
	same := func(f []string) bool { return f[0] == f[1] && f[1] == f[2] && f[2] == f[3] }
	return capEff == 0 && capPrm == 0 && capAmb == 0 && same(uids) && same(gids)
}

// callerIDs is what /proc/<tid>/status says about the caller's ids and
// capabilities (what the kernel checks SCM_CREDENTIALS and privileged
// binds against).
type callerIDs struct {
	tgid             int
	uid, euid, suid  uint32
	gid, egid, sgid  uint32
	capEff           uint64
	haveUIDs, haveGs bool
}

func (c *callerIDs) hasCap(cap int) bool { return c.capEff&(1<<uint(cap)) != 0 }

// ids reads the caller's ids and effective capabilities.
func (r *request) ids() (*callerIDs, unix.Errno) {
	fd, err := r.openProc("status", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, unix.EACCES
	}
	var buf [4096]byte
	n, err := readFull(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return nil, unix.EACCES
	}
	c, ok := parseIDs(buf[:n])
	if !ok {
		return nil, unix.EACCES
	}
	return c, 0
}

func parseIDs(b []byte) (*callerIDs, bool) {
	c := &callerIDs{tgid: -1}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(v)
		switch string(k) {
		case "Tgid":
			if len(f) == 1 {
				c.tgid = atoi(f[0])
			}
		case "Uid", "Gid":
			if len(f) != 4 {
				return nil, false
			}
			var x [3]uint32
			for i := range x {
				n := atoi(f[i])
				if n < 0 {
					return nil, false
				}
				x[i] = uint32(n)
			}
			if k[0] == 'U' {
				c.uid, c.euid, c.suid, c.haveUIDs = x[0], x[1], x[2], true
			} else {
				c.gid, c.egid, c.sgid, c.haveGs = x[0], x[1], x[2], true
			}
		case "CapEff":
			if len(f) == 1 {
				v, err := strconv.ParseUint(string(f[0]), 16, 64)
				if err != nil {
					return nil, false
				}
				c.capEff = v
			}
		}
	}
	return c, c.tgid > 0 && c.haveUIDs && c.haveGs
}
