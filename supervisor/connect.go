//go:build linux

package supervisor

import (
	"path"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

func familyName(f uint16) string {
	switch f {
	case unix.AF_INET:
		return "inet"
	case unix.AF_INET6:
		return "inet6"
	case unix.AF_UNIX:
		return "unix"
	case unix.AF_UNSPEC:
		return "unspec"
	case unix.AF_NETLINK:
		return "netlink"
	case unix.AF_PACKET:
		return "packet"
	case unix.AF_VSOCK:
		return "vsock"
	}
	return "af" + strconv.Itoa(int(f))
}

// target is a destination address that was judged, prepared for the
// supervisor's own call.
type target struct {
	raw      []byte // the sockaddr to hand to the kernel (our copy)
	asCaller bool   // perform the call with the caller's fs credentials
	fd       int    // O_PATH fd of an AF_UNIX socket path, or -1
}

func (t *target) close() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// vetAddress judges the destination b (a sockaddr copied from the caller)
// of op ("connect" or "send") and prepares it: an AF_UNIX path is resolved
// in the caller's context, judged as a write of the socket file, opened
// O_PATH and reached through /proc/self/fd/N, so that a rename or symlink
// swapped in after the decision cannot lead elsewhere. On denial or error
// res is set (with the event); otherwise ev is the event to log (may be
// nil). The caller closes t.
func (r *request) vetAddress(op string, b []byte) (t target, ev *Event, res *Result) {
	t.fd = -1
	fail := func(x Result) (target, *Event, *Result) { t.close(); return t, nil, &x }
	sa, e := decodeSockaddr(b)
	if e != 0 {
		return fail(Errno(e))
	}
	st, err := r.status()
	if err != nil {
		return fail(Errno(unix.EACCES))
	}
	ev = &Event{Op: op, Family: familyName(sa.family), Pid: st.tgid}
	var d rules.Decision
	switch sa.family {
	case unix.AF_INET, unix.AF_INET6:
		ev.Address = sa.addr.String()
		d = r.s.policy.Connect(sa.addr)
		if !d.Allow && r.s.dns != nil {
			// Not an address rule's: perhaps a DNS answer's (dns_linux.go).
			d, ev.Domain = decideLearned(r.s.dns.cache, r.s.dns.pol, sa.addr, d)
		}
	case unix.AF_UNSPEC:
		ev.Address = "unspec"
		if op != "connect" {
			// udp_sendmsg reads an AF_UNSPEC destination as AF_INET.
			d = rules.Decision{Rule: "a send to an AF_UNSPEC address is not supported"}
			break
		}
		// Dissolves a datagram association; reaches nobody.
		d = rules.Decision{Allow: true, Rule: "AF_UNSPEC disconnects"}
	case unix.AF_UNIX:
		switch {
		case sa.unnamed:
			return fail(Errno(unix.EINVAL)) // unix_validate_addr
		case sa.abstract:
			ev.Address = rules.QuoteAbstract(sa.name)
			d = r.s.policy.ConnectAbstract(sa.name)
		default:
			return r.vetUnixPath(op, sa.name, ev)
		}
	case unix.AF_NETLINK:
		ev.Address = "netlink:" + strconv.FormatUint(uint64(sa.nlPid), 10)
		if sa.nlGroups != 0 {
			ev.Address += "/groups=" + strconv.FormatUint(uint64(sa.nlGroups), 16)
		}
		if sa.nlPid == 0 && sa.nlGroups == 0 {
			d = rules.Decision{Allow: true, Rule: "netlink to the kernel"}
		} else {
			d = rules.Decision{Rule: "netlink to another process (nl_pid != 0) or to multicast groups is not allowed"}
		}
	default:
		ev.Address = familyName(sa.family)
		d = rules.Decision{Rule: op + " with address family " + familyName(sa.family) + " is not supported"}
	}
	deny, ev := r.s.judge(ev, d)
	if deny {
		x := Errno(unix.EACCES).withEvent(ev)
		return t, nil, &x
	}
	if (sa.family == unix.AF_UNSPEC || sa.family == unix.AF_NETLINK) && ev != nil && ev.Decision == DecisionAllow {
		ev = nil // a disconnect or a kernel query is not worth a log_allowed line
	}
	t.raw = append([]byte(nil), b...)
	return t, ev, nil
}

// vetUnixPath: see vetAddress.
func (r *request) vetUnixPath(op, p string, ev *Event) (t target, _ *Event, res *Result) {
	t.fd = -1
	ctx, closeCtx, e := callerContext(r, unix.AT_FDCWD, p, false)
	defer closeCtx()
	if e != 0 {
		x := Errno(e)
		return t, nil, &x
	}
	var lastErr error
	for attempt := 0; attempt < resolve.ResolveAttempts; attempt++ {
		res, err := resolvePath(ctx, p, 0) // connect follows a final symlink
		if err != nil {
			x := Errno(toErrno(err))
			return t, nil, &x
		}
		deny, logged := r.judgeUnixPath(ev, res)
		if deny {
			x := Errno(unix.EACCES).withEvent(ev)
			return t, nil, &x
		}
		// Search permission on the way is checked by the open, write
		// permission on the socket by the call itself: both as the caller.
		var fd int
		err = r.asCaller(func() error {
			var oerr error
			fd, oerr = resolveOpen(ctx, res, unix.O_PATH|unix.O_CLOEXEC, 0)
			return oerr
		})
		if err == nil {
			raw, e := unixSockaddr("/proc/self/fd/" + strconv.Itoa(fd))
			if e != 0 {
				unix.Close(fd)
				x := Errno(e).withEvent(logged)
				return t, nil, &x
			}
			return target{raw: raw, asCaller: true, fd: fd}, logged, nil
		}
		lastErr = err
		if err != unix.ELOOP && err != unix.EXDEV && err != unix.EAGAIN {
			break
		}
	}
	x := Errno(toErrno(lastErr)).withEvent(ev)
	if ev.Decision == "" {
		x.Event = nil
	}
	return t, nil, &x
}

// sockCopy copies the caller's socket fd (EBADF, ENOTSOCK like the kernel's
// sockfd_lookup) and reports its domain and type.
func (r *request) sockCopy(fd int) (sock, domain, typ int, e unix.Errno) {
	sock, err := r.argFD(fd)
	if err != nil {
		return -1, 0, 0, toErrno(err)
	}
	typ, err = unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_TYPE)
	if err == nil {
		domain, err = unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_DOMAIN)
	}
	if err != nil {
		unix.Close(sock)
		if err == unix.ENOTSOCK {
			return -1, 0, 0, unix.ENOTSOCK
		}
		return -1, 0, 0, toErrno(err)
	}
	return sock, domain, typ, 0
}

func handleConnect(r *request) Result {
	fd := r.argInt(0)
	addrPtr := r.arg(1)
	addrLen := r.argInt(2)
	if addrLen < 0 || addrLen > sockaddrStorageSize {
		return Errno(unix.EINVAL)
	}
	buf := make([]byte, addrLen)
	if e := r.readMem(addrPtr, buf); e != 0 {
		return Errno(e)
	}
	if d := r.s.dns; d != nil {
		// A nameserver's port 53 (DNS, judged query by query), or a
		// resolver's address-selection probe (dns_linux.go).
		if sa, e := decodeSockaddr(buf); e == 0 && (sa.family == unix.AF_INET || sa.family == unix.AF_INET6) {
			handle := d.probe
			if d.isNameserver(sa.addr) {
				handle = d.connect
			}
			if res, ok := handle(r, fd, sa.addr); ok {
				return res
			}
		}
	}
	t, ev, res := r.vetAddress("connect", buf)
	if res != nil {
		return *res
	}
	defer t.close()
	if !r.valid() {
		return Errno(unix.ENOENT)
	}
	// Connect a copy of the caller's socket (same open file description:
	// same O_NONBLOCK, same socket) to our copy of the address.
	sock, err := r.argFD(fd)
	if err != nil {
		return Errno(toErrno(err)).withEvent(ev)
	}
	defer unix.Close(sock)
	// Blocking sockets block this receiver only (others take over); our
	// signals are blocked, so the connect runs to its end.
	errno := r.perform(t.asCaller, func() unix.Errno {
		_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(sock), uintptr(bytesPtr(t.raw)), uintptr(len(t.raw)))
		return e
	})
	if errno != 0 {
		return Errno(errno).withEvent(ev)
	}
	return Value(0).withEvent(ev)
}

// perform runs the call fn, with the caller's fs credentials when
// asCaller.
func (r *request) perform(asCaller bool, fn func() unix.Errno) unix.Errno {
	if !asCaller {
		return fn()
	}
	var e unix.Errno
	if err := r.asCaller(func() error { e = fn(); return nil }); err != nil {
		return toErrno(err)
	}
	return e
}

// bytesPtr is the address of b's first byte, nil when b is empty. Convert
// it to uintptr only in a Syscall's argument list.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// splitPath splits a canonical absolute path into its directory and last
// component.
func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	dir, base = p[:i], p[i+1:]
	if dir == "" {
		dir = "/"
	}
	return path.Clean(dir), base
}

// judgeUnixPath decides an AF_UNIX socket path (connect, send, bind): a
// write of the resolved path; one reached only through a /proc magic link
// is refused. deny also covers that case in audit mode.
func (r *request) judgeUnixPath(ev *Event, res resolve.Result) (deny bool, logged *Event) {
	ev.Path, ev.Address = res.Path, "unix:"+res.Path
	if res.Kind != resolve.Path {
		r.s.judge(ev, rules.Decision{Rule: "an AF_UNIX address through a /proc magic link is not supported"})
		ev.Decision = DecisionDeny // cannot be emulated, even in audit mode
		return true, ev
	}
	return r.s.judge(ev, r.decidePath(res.Path, rules.Write))
}
