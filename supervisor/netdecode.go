//go:build linux

package supervisor

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Pure decoders of the socket ABI (x86_64): sockaddrs, msghdr/mmsghdr,
// iovec arrays and control messages. They work on bytes copied from the
// caller, never on its memory, so that they can be fuzzed (FuzzMsghdr).

const (
	sockaddrStorageSize = 128 // sizeof(struct sockaddr_storage)
	sizeofMsghdr        = 56  // struct msghdr
	sizeofMmsghdr       = 64  // struct mmsghdr (msghdr + msg_len + padding)
	sizeofIovec         = 16
	sizeofCmsghdr       = 16
	sizeofSockaddrNl    = 12
	uioMaxIov           = 1024 // UIO_MAXIOV
	scmMaxFD            = 253  // SCM_MAX_FD
	// maxControl caps the control data copied (the kernel's limit is
	// net.core.optmem_max, 20-128 KiB; beyond it sendmsg fails ENOBUFS).
	maxControl = 64 << 10
	// maxPayload caps the data copied for one message: stream sockets then
	// send part of it (legal), datagram sockets get EMSGSIZE (no datagram
	// protocol carries that much).
	maxPayload = 1 << 20
)

// sockAddr is a decoded socket address.
type sockAddr struct {
	family uint16
	addr   netip.AddrPort // AF_INET, AF_INET6
	// AF_UNIX: unnamed (only sun_family: autobind), an abstract name
	// (sun_path[0] == 0; the rest, by length, any bytes), or a path.
	unnamed  bool
	abstract bool
	name     string
	// AF_NETLINK
	nlPid, nlGroups uint32
}

// decodeSockaddr decodes what connect, bind or a send's destination would:
// the length rules of move_addr_to_kernel and of the inet, inet6, unix and
// netlink handlers. Other families are returned with only family set.
func decodeSockaddr(b []byte) (sockAddr, unix.Errno) {
	if len(b) < 2 {
		return sockAddr{}, unix.EINVAL
	}
	if len(b) > sockaddrStorageSize {
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
	case unix.AF_UNIX:
		if len(b) > unix.SizeofSockaddrUnix {
			return sa, unix.EINVAL
		}
		path := b[2:]
		switch {
		case len(path) == 0:
			sa.unnamed = true
		case path[0] == 0:
			sa.abstract = true
			sa.name = string(path[1:])
		default:
			// unix_mkname_bsd: the path ends at the first NUL, or at
			// the end of the given length.
			n := 0
			for n < len(path) && path[n] != 0 {
				n++
			}
			sa.name = string(path[:n])
		}
	case unix.AF_NETLINK:
		if len(b) < sizeofSockaddrNl {
			return sa, unix.EINVAL
		}
		sa.nlPid = binary.NativeEndian.Uint32(b[4:8])
		sa.nlGroups = binary.NativeEndian.Uint32(b[8:12])
	}
	return sa, 0
}

// unixSockaddr encodes a sockaddr_un with a path (no trailing NUL needed:
// the length says where it ends; one is added anyway, like glibc callers).
func unixSockaddr(path string) ([]byte, unix.Errno) {
	if len(path)+1 > len(unix.RawSockaddrUnix{}.Path) {
		return nil, unix.ENAMETOOLONG
	}
	b := make([]byte, 2+len(path)+1)
	binary.NativeEndian.PutUint16(b, unix.AF_UNIX)
	copy(b[2:], path)
	return b, 0
}

// msgHdr is a struct msghdr read from the caller (addresses in its memory).
type msgHdr struct {
	name       uint64
	namelen    int32
	iov        uint64
	iovlen     uint64
	control    uint64
	controllen uint64
}

// parseMsghdr decodes a struct msghdr like copy_msghdr_from_user: a NULL
// name means no name, a negative length is EINVAL, a longer one is cut to
// sizeof(sockaddr_storage); more than UIO_MAXIOV iovecs is EMSGSIZE; a
// control length above INT_MAX is ENOBUFS.
func parseMsghdr(b []byte) (msgHdr, unix.Errno) {
	if len(b) < sizeofMsghdr {
		return msgHdr{}, unix.EFAULT
	}
	ne := binary.NativeEndian
	m := msgHdr{
		name:       ne.Uint64(b[0:]),
		namelen:    int32(ne.Uint32(b[8:])),
		iov:        ne.Uint64(b[16:]),
		iovlen:     ne.Uint64(b[24:]),
		control:    ne.Uint64(b[32:]),
		controllen: ne.Uint64(b[40:]),
	}
	if m.name == 0 {
		m.namelen = 0
	}
	if m.namelen < 0 {
		return m, unix.EINVAL
	}
	if m.namelen > sockaddrStorageSize {
		m.namelen = sockaddrStorageSize
	}
	if m.namelen == 0 {
		m.name = 0
	}
	if m.iovlen > uioMaxIov {
		return m, unix.EMSGSIZE
	}
	if m.controllen > 1<<31-1 {
		return m, unix.ENOBUFS
	}
	if m.controllen > maxControl {
		return m, unix.ENOBUFS
	}
	return m, 0
}

// iovec is one struct iovec of the caller.
type iovec struct {
	base, len uint64
}

// parseIovecs decodes n iovecs; like import_iovec a length that does not
// fit ssize_t is EINVAL. total is the sum, capped at limit; the returned
// segments cover exactly the first total bytes (empty ones dropped).
func parseIovecs(b []byte, n int, limit uint64) (segs []iovec, total uint64, full uint64, e unix.Errno) {
	if n < 0 || len(b) < n*sizeofIovec {
		return nil, 0, 0, unix.EFAULT
	}
	for i := 0; i < n; i++ {
		v := iovec{binary.NativeEndian.Uint64(b[i*16:]), binary.NativeEndian.Uint64(b[i*16+8:])}
		if v.len > 1<<63-1 {
			return nil, 0, 0, unix.EINVAL
		}
		if full+v.len < full || full+v.len > 1<<63-1 {
			return nil, 0, 0, unix.EINVAL
		}
		full += v.len
		if v.len == 0 || total >= limit {
			continue
		}
		if total+v.len > limit {
			v.len = limit - total
		}
		total += v.len
		segs = append(segs, v)
	}
	return segs, total, full, 0
}

// cmsg is one control message.
type cmsg struct {
	level, typ int32
	data       []byte
}

func cmsgAlign(n uint64) uint64 { return (n + 7) &^ 7 }

// parseCmsgs walks control data like for_each_cmsghdr with CMSG_OK:
// a header whose length is below sizeof(struct cmsghdr) or runs past the
// end is EINVAL; trailing bytes too short for a header are ignored.
func parseCmsgs(b []byte) ([]cmsg, unix.Errno) {
	var out []cmsg
	off := uint64(0)
	end := uint64(len(b))
	for off+sizeofCmsghdr <= end {
		l := binary.NativeEndian.Uint64(b[off:])
		if l < sizeofCmsghdr || l > end-off {
			return nil, unix.EINVAL
		}
		out = append(out, cmsg{
			level: int32(binary.NativeEndian.Uint32(b[off+8:])),
			typ:   int32(binary.NativeEndian.Uint32(b[off+12:])),
			data:  b[off+sizeofCmsghdr : off+l],
		})
		next := cmsgAlign(l)
		if next > end-off {
			break
		}
		off += next
	}
	return out, 0
}

// buildCmsgs encodes control messages (CMSG_SPACE each).
func buildCmsgs(ms []cmsg) []byte {
	var n uint64
	for _, m := range ms {
		n += cmsgAlign(sizeofCmsghdr + uint64(len(m.data)))
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	off := uint64(0)
	for _, m := range ms {
		binary.NativeEndian.PutUint64(b[off:], sizeofCmsghdr+uint64(len(m.data)))
		binary.NativeEndian.PutUint32(b[off+8:], uint32(m.level))
		binary.NativeEndian.PutUint32(b[off+12:], uint32(m.typ))
		copy(b[off+sizeofCmsghdr:], m.data)
		off += cmsgAlign(sizeofCmsghdr + uint64(len(m.data)))
	}
	return b
}

// rightsFDs decodes SCM_RIGHTS data like scm_fp_copy: whole ints only,
// at most SCM_MAX_FD.
func rightsFDs(data []byte) ([]int32, unix.Errno) {
	n := len(data) / 4
	if n > scmMaxFD {
		return nil, unix.EINVAL
	}
	fds := make([]int32, n)
	for i := range fds {
		fds[i] = int32(binary.NativeEndian.Uint32(data[i*4:]))
	}
	return fds, 0
}

// ucred is SCM_CREDENTIALS data.
type ucred struct {
	pid      int32
	uid, gid uint32
}

// parseUcred decodes SCM_CREDENTIALS data: the kernel wants exactly
// CMSG_LEN(sizeof(struct ucred)).
func parseUcred(data []byte) (ucred, unix.Errno) {
	if len(data) != 12 {
		return ucred{}, unix.EINVAL
	}
	ne := binary.NativeEndian
	return ucred{int32(ne.Uint32(data)), ne.Uint32(data[4:]), ne.Uint32(data[8:])}, 0
}

func encodeUcred(c ucred) []byte {
	b := make([]byte, 12)
	binary.NativeEndian.PutUint32(b, uint32(c.pid))
	binary.NativeEndian.PutUint32(b[4:], c.uid)
	binary.NativeEndian.PutUint32(b[8:], c.gid)
	return b
}
