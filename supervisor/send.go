//go:build linux

package supervisor

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendto with an address, sendmsg and sendmmsg are emulated: the
// supervisor copies the message (destination, data, control data), judges
// the destination as a connect, and sends its copy on a pidfd_getfd copy
// of the caller's socket. CONTINUE would be a race: another thread could
// add a msg_name after the check, or dup2 another socket onto the fd.

const msgFastopen = 0x20000000 // MSG_FASTOPEN

// credsAllowed is the kernel's scm_check_creds for the caller: the pid
// must be its own (or CAP_SYS_ADMIN), the uid one of its real, effective
// or saved uids (or CAP_SETUID), likewise the gid (or CAP_SETGID).
func credsAllowed(c ucred, id *callerIDs) bool {
	pidOK := int(c.pid) == id.tgid || id.hasCap(unix.CAP_SYS_ADMIN)
	uidOK := c.uid == id.uid || c.uid == id.euid || c.uid == id.suid || id.hasCap(unix.CAP_SETUID)
	gidOK := c.gid == id.gid || c.gid == id.egid || c.gid == id.sgid || id.hasCap(unix.CAP_SETGID)
	return pidOK && uidOK && gidOK
}

// privilegedCmsg reports whether the kernel would check a capability of
// the sender for this control message (the supervisor, root, would pass
// where the caller might not): SO_MARK and SO_PRIORITY above 6
// (CAP_NET_RAW or CAP_NET_ADMIN), IPv6 extension headers (CAP_NET_RAW).
func privilegedCmsg(m cmsg, id *callerIDs) bool {
	netAdmin := id.hasCap(unix.CAP_NET_ADMIN) || id.hasCap(unix.CAP_NET_RAW)
	switch m.level {
	case unix.SOL_SOCKET:
		switch m.typ {
		case unix.SO_MARK:
			return !netAdmin
		case unix.SO_PRIORITY:
			if len(m.data) >= 4 && binary.NativeEndian.Uint32(m.data) > 6 {
				return !netAdmin
			}
		}
	case unix.SOL_IPV6:
		switch m.typ {
		case unix.IPV6_HOPOPTS, unix.IPV6_DSTOPTS, unix.IPV6_RTHDRDSTOPTS, unix.IPV6_RTHDR,
			unix.IPV6_2292HOPOPTS, unix.IPV6_2292DSTOPTS, unix.IPV6_2292RTHDR:
			return !id.hasCap(unix.CAP_NET_RAW)
		}
	}
	return false
}

// control translates the caller's control data for the supervisor's own
// sendmsg: SCM_RIGHTS fd numbers of the caller's table become pidfd_getfd
// copies (closed by the returned func after the send), SCM_CREDENTIALS is
// checked against what the caller may claim (EPERM otherwise), privileged
// messages need the caller's capability (EPERM). On AF_UNIX sockets
// without SCM_CREDENTIALS the caller's own credentials are attached, so
// that a receiver with SO_PASSCRED sees the caller (the kernel would
// otherwise attach the supervisor's).
func (r *request) control(raw []byte, domain int) ([]byte, func(), unix.Errno) {
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	ms, e := parseCmsgs(raw)
	if e != 0 {
		return nil, closeAll, e
	}
	if len(ms) == 0 && domain != unix.AF_UNIX {
		return nil, closeAll, 0
	}
	id, e := r.ids()
	if e != 0 {
		return nil, closeAll, e
	}
	haveCreds := false
	out := make([]cmsg, 0, len(ms)+1)
	for _, m := range ms {
		switch {
		case m.level == unix.SOL_SOCKET && m.typ == unix.SCM_RIGHTS:
			nums, e := rightsFDs(m.data)
			if e != 0 {
				return nil, closeAll, e
			}
			data := make([]byte, 4*len(nums))
			for i, n := range nums {
				c, err := r.argFD(int(n))
				if err != nil {
					return nil, closeAll, argFDErrno(err)
				}
				fds = append(fds, c)
				binary.NativeEndian.PutUint32(data[4*i:], uint32(c))
			}
			m.data = data
		case m.level == unix.SOL_SOCKET && m.typ == unix.SCM_CREDENTIALS:
			c, e := parseUcred(m.data)
			if e != 0 {
				return nil, closeAll, e
			}
			if !credsAllowed(c, id) {
				return nil, closeAll, unix.EPERM
			}
			haveCreds = true
		case privilegedCmsg(m, id):
			return nil, closeAll, unix.EPERM
		}
		out = append(out, m)
	}
	if domain == unix.AF_UNIX && !haveCreds {
		// scm_send's default: the sender's tgid, real uid and real gid.
		out = append(out, cmsg{level: unix.SOL_SOCKET, typ: unix.SCM_CREDENTIALS,
			data: encodeUcred(ucred{pid: int32(id.tgid), uid: id.uid, gid: id.gid})})
	}
	return buildCmsgs(out), closeAll, 0
}

// readSegs copies the caller's iovec segments into one buffer with one
// process_vm_readv (at most UIO_MAXIOV segments, which parseMsghdr
// guarantees). Anything short of all of it is EFAULT.
func (r *request) readSegs(segs []iovec, total uint64) ([]byte, unix.Errno) {
	buf := make([]byte, total)
	if total == 0 {
		return buf, 0
	}
	remote := make([]unix.RemoteIovec, len(segs))
	for i, s := range segs {
		remote[i] = unix.RemoteIovec{Base: uintptr(s.base), Len: int(s.len)}
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(int(total))
	for {
		n, err := unix.ProcessVMReadv(r.tid, local, remote, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || uint64(n) != total {
			return nil, unix.EFAULT
		}
		return buf, 0
	}
}

// writeMem copies b into the caller at addr (process_vm_writev). Any
// failure is EFAULT.
func (r *request) writeMem(addr uint64, b []byte) unix.Errno {
	if len(b) == 0 {
		return 0
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	for {
		n, err := unix.ProcessVMWritev(r.tid, local, remote, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != len(b) {
			return unix.EFAULT
		}
		return 0
	}
}

// outMsg is one message copied from the caller.
type outMsg struct {
	hasName bool   // a destination was given (sendto: address non-NULL)
	name    []byte // the destination sockaddr (may be empty for sendto)
	data    []byte
	control []byte // raw, the caller's
	flags   int
}

// sockInfo is the supervisor's copy of the caller's socket.
type sockInfo struct {
	fd, domain, typ int
}

// payloadErr applies the copy cap: a datagram larger than maxPayload
// cannot be sent in part.
func payloadErr(s sockInfo, full uint64) unix.Errno {
	if full > maxPayload && s.typ != unix.SOCK_STREAM {
		return unix.EMSGSIZE
	}
	return 0
}

// sendOne judges and sends one message on s. nr is the system call to
// perform (SYS_SENDTO or SYS_SENDMSG). It returns the kernel's count, or
// res (a denial or error).
func (r *request) sendOne(s sockInfo, m outMsg, nr uintptr, op string) (int64, *Event, *Result) {
	var t target
	t.fd = -1
	var ev *Event
	if m.hasName && len(m.name) > 0 {
		var res *Result
		t, ev, res = r.vetAddress(op, m.name)
		if res != nil {
			return 0, nil, res
		}
		if ev != nil && m.flags&msgFastopen != 0 {
			ev.Flags = "MSG_FASTOPEN"
		}
	}
	defer t.close()
	var ctl []byte
	closeFDs := func() {}
	if nr == unix.SYS_SENDMSG {
		var e unix.Errno
		ctl, closeFDs, e = r.control(m.control, s.domain)
		if e != 0 {
			closeFDs()
			x := Errno(e).withEvent(ev)
			return 0, nil, &x
		}
	}
	defer closeFDs()
	if !r.valid() {
		x := Errno(unix.ENOENT)
		return 0, nil, &x
	}
	var n uintptr
	errno := r.perform(t.asCaller, func() unix.Errno {
		var e unix.Errno
		if nr == unix.SYS_SENDTO {
			var dummy [1]byte
			addr, alen := unsafe.Pointer(nil), 0
			if m.hasName {
				// sendto with a non-NULL address of length 0 is not the
				// same as no address (UDP: EINVAL): keep it non-NULL.
				addr = unsafe.Pointer(&dummy[0])
				if len(t.raw) > 0 {
					addr, alen = unsafe.Pointer(&t.raw[0]), len(t.raw)
				}
			}
			n, _, e = unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(bytesPtr(m.data)), uintptr(len(m.data)),
				uintptr(m.flags), uintptr(addr), uintptr(alen))
			runtime.KeepAlive(&dummy)
			return e
		}
		var h unix.Msghdr
		var iov unix.Iovec
		if len(m.data) > 0 {
			iov.Base = &m.data[0]
			iov.SetLen(len(m.data))
			h.Iov = &iov
			h.SetIovlen(1)
		}
		if len(t.raw) > 0 {
			h.Name = &t.raw[0]
			h.Namelen = uint32(len(t.raw))
		}
		if len(ctl) > 0 {
			h.Control = &ctl[0]
			h.SetControllen(len(ctl))
		}
		n, _, e = unix.Syscall(unix.SYS_SENDMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&h)), uintptr(m.flags))
		runtime.KeepAlive(m.data)
		runtime.KeepAlive(ctl)
		runtime.KeepAlive(t.raw)
		return e
	})
	if errno != 0 {
		x := Errno(errno).withEvent(ev)
		return 0, nil, &x
	}
	return int64(n), ev, nil
}

func handleSend(r *request) Result {
	switch r.n.Data.Nr {
	case unix.SYS_SENDTO:
		return handleSendto(r)
	case unix.SYS_SENDMSG:
		return handleSendmsg(r)
	case unix.SYS_SENDMMSG:
		return handleSendmmsg(r)
	}
	return Errno(unix.ENOSYS)
}

// sendto(fd, buf, len, flags, addr, addrlen); the filter notifies it only
// with a non-NULL addr.
func handleSendto(r *request) Result {
	s, e := r.openSock(r.argInt(0))
	if e != 0 {
		return Errno(e)
	}
	defer unix.Close(s.fd)
	m := outMsg{flags: r.argInt(3), hasName: r.arg(4) != 0}
	addrLen := r.argInt(5)
	if m.hasName {
		if addrLen < 0 || addrLen > sockaddrStorageSize {
			return Errno(unix.EINVAL) // move_addr_to_kernel
		}
		m.name = make([]byte, addrLen)
		if e := r.readMem(r.arg(4), m.name); e != 0 {
			return Errno(e)
		}
	}
	full := r.arg(2)
	if full > 1<<31-1 {
		full = 1<<31 - 1 // MAX_RW_COUNT-ish: import_ubuf limits a single buffer
	}
	if e := payloadErr(s, full); e != 0 {
		return Errno(e)
	}
	total := min(full, maxPayload)
	if total > 0 && r.arg(1) == 0 {
		return Errno(unix.EFAULT)
	}
	data, e := r.readSegs([]iovec{{r.arg(1), total}}, total)
	if e != 0 {
		return Errno(e)
	}
	m.data = data
	if n, ev, res, ok := r.dnsSend(s, []outMsg{m}); ok {
		if res != nil {
			return *res
		}
		return Value(int64(n)).withEvent(ev)
	}
	nr := uintptr(unix.SYS_SENDTO)
	if s.domain == unix.AF_UNIX {
		// As sendmsg, so that the caller's credentials are attached (see
		// control); for AF_UNIX an empty address is no address either way.
		nr = unix.SYS_SENDMSG
	}
	n, ev, res := r.sendOne(s, m, nr, "send")
	if res != nil {
		return *res
	}
	return Value(n).withEvent(ev)
}

// openSock is sockCopy as a sockInfo.
func (r *request) openSock(fd int) (sockInfo, unix.Errno) {
	sock, dom, typ, e := r.sockCopy(fd)
	return sockInfo{fd: sock, domain: dom, typ: typ}, e
}

// readMsg copies one struct msghdr at addr and everything it points to.
func (r *request) readMsg(s sockInfo, addr uint64, flags int) (outMsg, unix.Errno) {
	m := outMsg{flags: flags}
	var hb [sizeofMsghdr]byte
	if e := r.readMem(addr, hb[:]); e != 0 {
		return m, e
	}
	h, e := parseMsghdr(hb[:])
	if e != 0 {
		return m, e
	}
	if h.namelen > 0 {
		m.hasName = true
		m.name = make([]byte, h.namelen)
		if e := r.readMem(h.name, m.name); e != 0 {
			return m, e
		}
	}
	if h.iovlen > 0 {
		ib := make([]byte, h.iovlen*sizeofIovec)
		if e := r.readMem(h.iov, ib); e != 0 {
			return m, e
		}
		segs, total, full, e := parseIovecs(ib, int(h.iovlen), maxPayload)
		if e != 0 {
			return m, e
		}
		if e := payloadErr(s, full); e != 0 {
			return m, e
		}
		if m.data, e = r.readSegs(segs, total); e != 0 {
			return m, e
		}
	}
	if h.controllen > 0 {
		m.control = make([]byte, h.controllen)
		if e := r.readMem(h.control, m.control); e != 0 {
			return m, e
		}
	}
	return m, 0
}

// sendmsg(fd, msg, flags).
func handleSendmsg(r *request) Result {
	s, e := r.openSock(r.argInt(0))
	if e != 0 {
		return Errno(e)
	}
	defer unix.Close(s.fd)
	m, e := r.readMsg(s, r.arg(1), r.argInt(2))
	if e != 0 {
		return Errno(e)
	}
	if n, ev, res, ok := r.dnsSend(s, []outMsg{m}); ok {
		if res != nil {
			return *res
		}
		return Value(int64(n)).withEvent(ev)
	}
	n, ev, res := r.sendOne(s, m, unix.SYS_SENDMSG, "send")
	if res != nil {
		return *res
	}
	return Value(n).withEvent(ev)
}

// sendmmsg(fd, msgvec, vlen, flags): the messages in order, each msg_len
// written back; a failure or denial at message k>0 ends the batch with k,
// at message 0 it is the call's error.
func handleSendmmsg(r *request) Result {
	s, e := r.openSock(r.argInt(0))
	if e != 0 {
		return Errno(e)
	}
	defer unix.Close(s.fd)
	vec, vlen, flags := r.arg(1), uint32(r.arg(2)), r.argInt(3)
	if vlen > uioMaxIov {
		vlen = uioMaxIov
	}
	if n, ev, res, ok := r.dnsSendmmsg(s, vec, vlen, flags); ok {
		if res != nil {
			return *res
		}
		return Value(int64(n)).withEvent(ev)
	}
	var first *Event // returned with the answer; later ones logged at once
	for i := uint32(0); i < vlen; i++ {
		entry := vec + uint64(i)*sizeofMmsghdr
		m, e := r.readMsg(s, entry, flags)
		var n int64
		var ev *Event
		var res *Result
		if e != 0 {
			x := Errno(e)
			res = &x
		} else {
			n, ev, res = r.sendOne(s, m, unix.SYS_SENDMSG, "send")
		}
		if res != nil {
			if i == 0 {
				return *res
			}
			if res.Event != nil {
				r.logNow(first)
				first = res.Event
			}
			return Value(int64(i)).withEvent(first)
		}
		var lb [4]byte
		binary.NativeEndian.PutUint32(lb[:], uint32(n))
		if e := r.writeMem(entry+sizeofMsghdr, lb[:]); e != 0 {
			if i == 0 {
				return Errno(e).withEvent(ev)
			}
			r.logNow(ev)
			return Value(int64(i)).withEvent(first)
		}
		if first == nil {
			first = ev
		} else {
			r.logNow(ev)
		}
	}
	return Value(int64(vlen)).withEvent(first)
}

// dnsSend hands messages bound for a nameserver to dns_linux.go; ok is
// false for every other send.
func (r *request) dnsSend(s sockInfo, msgs []outMsg) (int, *Event, *Result, bool) {
	d := r.s.dns
	if d == nil {
		return 0, nil, nil, false
	}
	ds, ns, ok := d.sendTarget(s, msgs[0])
	if !ok {
		return 0, nil, nil, false
	}
	n, ev, res := d.send(r, s, ds, ns, msgs)
	if res == nil && n == 1 {
		n = len(msgs[0].data) // a datagram is sent whole
	}
	return n, ev, res, true
}

// dnsSendmmsg: a batch of DNS queries (glibc sends A and AAAA in one
// sendmmsg) is sent as one exchange, the answers awaited together. The
// batch is the leading messages that go to the same nameserver.
func (r *request) dnsSendmmsg(s sockInfo, vec uint64, vlen uint32, flags int) (int, *Event, *Result, bool) {
	d := r.s.dns
	if d == nil || vlen == 0 {
		return 0, nil, nil, false
	}
	var msgs []outMsg
	var ds *dnsSock
	var ns netip.AddrPort
	for i := uint32(0); i < min(vlen, 8); i++ {
		m, e := r.readMsg(s, vec+uint64(i)*sizeofMmsghdr, flags)
		if e != 0 {
			if i == 0 {
				x := Errno(e)
				return 0, nil, &x, true
			}
			break
		}
		mds, mns, ok := d.sendTarget(s, m)
		if !ok || (i > 0 && mns != ns) {
			if i == 0 {
				return 0, nil, nil, false
			}
			break
		}
		ds, ns = mds, mns
		msgs = append(msgs, m)
	}
	n, ev, res := d.send(r, s, ds, ns, msgs)
	if res != nil {
		return 0, nil, res, true
	}
	for i := 0; i < n; i++ {
		var lb [4]byte
		binary.NativeEndian.PutUint32(lb[:], uint32(len(msgs[i].data)))
		if e := r.writeMem(vec+uint64(i)*sizeofMmsghdr+sizeofMsghdr, lb[:]); e != 0 {
			if i == 0 {
				x := Errno(e).withEvent(ev)
				return 0, nil, &x, true
			}
			return i, ev, nil, true
		}
	}
	return n, ev, nil, true
}

// logNow writes an audit event before the answer (sendmmsg's extra ones).
func (r *request) logNow(ev *Event) {
	if ev == nil {
		return
	}
	r.s.completeEvent(r, ev)
	r.s.audit.Log(*ev)
}
