//go:build linux

package supervisor

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/rules"
)

const sockaddrStorageSize = 128 // sizeof(struct sockaddr_storage)

// sockAddr is a decoded connect address.
type sockAddr struct {
	family uint16
	addr   netip.AddrPort // AF_INET, AF_INET6
}

// decodeSockaddr decodes what connect(2) would: the length rules of
// move_addr_to_kernel and of the inet/inet6 connect handlers.
func decodeSockaddr(b []byte) (sockAddr, unix.Errno) {
	if len(b) < 2 {
		return sockAddr{}, unix.EINVAL
	}
	sa := sockAddr{family: binary.NativeEndian.Uint16(b[:2])}
	switch sa.family {
	case unix.AF_INET:
		if len(b) < unix.SizeofSockaddrInet4 {
			return sa, unix.EINVAL
		}
		port := binary.BigEndian.Uint16(b[2:4])
		sa.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if len(b) < 24 { // SIN6_LEN_RFC2133
			return sa, unix.EINVAL
		}
		port := binary.BigEndian.Uint16(b[2:4])
		sa.addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port)
	}
	return sa, 0
}

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
	}
	return "af" + strconv.Itoa(int(f))
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
	sa, e := decodeSockaddr(buf)
	if e != 0 {
		return Errno(e)
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES)
	}
	ev := &Event{Op: "connect", Family: familyName(sa.family), Pid: st.tgid}
	var d rules.Decision
	switch sa.family {
	case unix.AF_INET, unix.AF_INET6:
		ev.Address = sa.addr.String()
		d = r.s.policy.Connect(sa.addr)
	case unix.AF_UNSPEC:
		// Dissolves a datagram association; reaches nobody.
		d = rules.Decision{Allow: true, Rule: "AF_UNSPEC disconnects"}
		ev.Address = "unspec"
	default:
		ev.Address = familyName(sa.family)
		d = rules.Decision{Rule: "connect with address family " + familyName(sa.family) + " is not supported yet"}
	}
	deny, ev := r.s.judge(ev, d)
	if deny {
		return Errno(unix.EACCES).withEvent(ev)
	}
	if sa.family == unix.AF_UNSPEC && ev != nil && ev.Decision == DecisionAllow {
		ev = nil // a disconnect is not worth a log_allowed line
	}
	if !r.valid() {
		return Errno(unix.ENOENT)
	}
	// Connect a copy of the caller's socket (same open file description:
	// same O_NONBLOCK, same socket) to our copy of the address.
	sock, err := r.getFD(fd)
	if err != nil {
		return Errno(toErrno(err)).withEvent(ev)
	}
	defer unix.Close(sock)
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	// Blocking sockets block this receiver only (others take over); our
	// signals are blocked, so the connect runs to its end.
	_, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(sock), uintptr(p), uintptr(len(buf)))
	if errno != 0 {
		return Errno(errno).withEvent(ev)
	}
	return Value(0).withEvent(ev)
}
