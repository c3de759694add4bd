//go:build linux

package supervisor

import (
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

// bind and listen are emulated on a pidfd_getfd copy of the caller's
// socket with the supervisor's copy of the address.
//
// AF_INET/AF_INET6: a nonzero port must match network.listen; port 0 (an
// ephemeral port, bound by UDP clients before they send) is allowed, and
// listen decides on the address the socket then has. AF_UNIX: a path is a
// write (creation) of that path, an abstract name must match an "@NAME"
// entry of network.listen, an unnamed address (autobind) is allowed.
// AF_NETLINK binds (a port id and multicast groups to receive) are
// allowed. Other families are denied.

func handleBind(r *request) Result {
	addrLen := r.argInt(2)
	s, e := r.openSock(r.argInt(0))
	if e != 0 {
		return Errno(e)
	}
	defer unix.Close(s.fd)
	if addrLen < 0 || addrLen > sockaddrStorageSize {
		return Errno(unix.EINVAL)
	}
	buf := make([]byte, addrLen)
	if e := r.readMem(r.arg(1), buf); e != 0 {
		return Errno(e)
	}
	sa, e := decodeSockaddr(buf)
	if e != 0 {
		return Errno(e)
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES)
	}
	ev := &Event{Op: "bind", Family: familyName(sa.family), Pid: st.tgid}
	var d rules.Decision
	raw, asCaller := buf, false
	switch sa.family {
	case unix.AF_INET, unix.AF_INET6:
		ev.Address = sa.addr.String()
		if sa.addr.Port() == 0 {
			d = rules.Decision{Allow: true, Rule: "port 0 (ephemeral) is decided at listen"}
			break
		}
		d = r.s.policy.Listen(sa.addr)
	case unix.AF_UNIX:
		switch {
		case sa.unnamed:
			d = rules.Decision{Allow: true, Rule: "AF_UNIX autobind"}
			ev.Address = "unix:autobind"
		case sa.abstract:
			ev.Address = rules.QuoteAbstract(sa.name)
			d = r.s.policy.ListenAbstract(sa.name)
		default:
			return r.bindUnixPath(s, sa.name, ev)
		}
	case unix.AF_NETLINK:
		ev.Address = "netlink:" + strconv.FormatUint(uint64(sa.nlPid), 10)
		d = rules.Decision{Allow: true, Rule: "netlink bind"}
	default:
		ev.Address = familyName(sa.family)
		d = rules.Decision{Rule: "bind with address family " + familyName(sa.family) + " is not supported"}
	}
	deny, logged := r.s.judge(ev, d)
	if deny {
		return Errno(unix.EACCES).withEvent(logged)
	}
	if (sa.family == unix.AF_NETLINK || sa.unnamed) && logged != nil && logged.Decision == DecisionAllow {
		logged = nil
	}
	if sa.family == unix.AF_INET || sa.family == unix.AF_INET6 {
		if e := r.checkPrivPort(sa.addr.Port()); e != 0 {
			return Errno(e).withEvent(logged)
		}
	}
	if !r.valid() {
		return Errno(unix.ENOENT)
	}
	e = r.perform(asCaller, func() unix.Errno {
		_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(s.fd), uintptr(bytesPtr(raw)), uintptr(len(raw)))
		return e
	})
	if e != 0 {
		return Errno(e).withEvent(logged)
	}
	return Value(0).withEvent(logged)
}

// checkPrivPort: ports below net.ipv4.ip_unprivileged_port_start need
// CAP_NET_BIND_SERVICE, which the supervisor (root) has and the caller
// may not: check the caller's.
func (r *request) checkPrivPort(port uint16) unix.Errno {
	if port == 0 {
		return 0
	}
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = v
		}
	}
	if int(port) >= start {
		return 0
	}
	id, e := r.ids()
	if e != 0 {
		return e
	}
	if !id.hasCap(unix.CAP_NET_BIND_SERVICE) {
		return unix.EACCES
	}
	return 0
}

// bindUnixPath binds an AF_UNIX socket to a path: judged as a write of the
// resolved path, created as the caller (its fsuid/fsgid own the socket
// file, its permissions on the directory apply) through
// /proc/self/fd/<dirfd>/<name>, where dirfd is the parent directory opened
// without following symlinks, so that nothing swapped in after the
// decision can redirect the creation. The socket's name (getsockname,
// what peers see) is that /proc path.
func (r *request) bindUnixPath(s sockInfo, p string, ev *Event) Result {
	ctx, closeCtx, e := callerContext(r, unix.AT_FDCWD, p, false)
	defer closeCtx()
	if e != 0 {
		return Errno(e)
	}
	var lastErr error
	for attempt := 0; attempt < resolve.ResolveAttempts; attempt++ {
		// bind never follows a final symlink: it fails with EADDRINUSE.
		res, err := resolvePath(ctx, p, resolve.Create|resolve.Excl)
		if err != nil {
			return Errno(toErrno(err))
		}
		deny, logged := r.judgeUnixPath(ev, res)
		if deny {
			return Errno(unix.EACCES).withEvent(ev)
		}
		if res.Exists {
			return Errno(unix.EADDRINUSE).withEvent(logged)
		}
		if !r.valid() {
			return Errno(unix.ENOENT)
		}
		dir, base := splitPath(res.Path)
		var errno unix.Errno
		err = r.asCaller(func() error {
			dfd, oerr := resolveOpen(ctx, resolve.Result{Path: dir, Kind: resolve.Path, LinkFD: -1}, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if oerr != nil {
				return oerr
			}
			defer unix.Close(dfd)
			raw, e := unixSockaddr("/proc/self/fd/" + strconv.Itoa(dfd) + "/" + base)
			if e != 0 {
				errno = e
				return nil
			}
			_, _, errno = unix.Syscall(unix.SYS_BIND, uintptr(s.fd), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw)))
			return nil
		})
		if err == nil {
			if errno != 0 {
				return Errno(errno).withEvent(logged)
			}
			return Value(0).withEvent(logged)
		}
		lastErr = err
		if err != unix.ELOOP && err != unix.EXDEV && err != unix.EAGAIN {
			break
		}
	}
	return Errno(toErrno(lastErr)).withEvent(ev)
}

// listen(fd, backlog): judged on the address the socket has (getsockname
// on the copy): an unbound inet socket is auto-bound by listen to the
// wildcard address with an ephemeral port (0.0.0.0:0 or [::]:0 is
// judged). AF_UNIX sockets were judged at bind (an unbound one gets an
// autobind name). Other families are denied.
func handleListen(r *request) Result {
	s, e := r.openSock(r.argInt(0))
	if e != 0 {
		return Errno(e)
	}
	defer unix.Close(s.fd)
	var buf [sockaddrStorageSize]byte
	l := uint32(len(buf))
	if _, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l))); e != 0 {
		return Errno(e)
	}
	if l > uint32(len(buf)) {
		l = uint32(len(buf))
	}
	sa, _ := decodeSockaddr(buf[:l])
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES)
	}
	ev := &Event{Op: "listen", Family: familyName(uint16(s.domain)), Pid: st.tgid}
	var d rules.Decision
	switch s.domain {
	case unix.AF_INET, unix.AF_INET6:
		if sa.family != uint16(s.domain) {
			return Errno(unix.EINVAL)
		}
		ev.Address = sa.addr.String()
		d = r.s.policy.Listen(sa.addr)
	case unix.AF_UNIX:
		ev.Address = "unix"
		d = rules.Decision{Allow: true, Rule: "AF_UNIX addresses are judged at bind"}
	default:
		ev.Address = familyName(uint16(s.domain))
		d = rules.Decision{Rule: "listen with address family " + familyName(uint16(s.domain)) + " is not supported"}
	}
	deny, logged := r.s.judge(ev, d)
	if deny {
		return Errno(unix.EACCES).withEvent(logged)
	}
	if s.domain == unix.AF_UNIX {
		logged = nil
	}
	if !r.valid() {
		return Errno(unix.ENOENT)
	}
	if _, _, e := unix.Syscall(unix.SYS_LISTEN, uintptr(s.fd), uintptr(r.argInt(1)), 0); e != 0 {
		return Errno(e).withEvent(logged)
	}
	return Value(0).withEvent(logged)
}
