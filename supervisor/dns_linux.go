//go:build linux

package supervisor

import (
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"vigil/rules"
)

// DNS: names are judged where they are asked, addresses where they are
// used.
//
// Every query the function sends to a nameserver of /etc/resolv.conf (port
// 53, UDP or TCP) is judged by its name against the domain rules of
// network.connect: a name no pattern matches is refused before it leaves
// (DNS exfiltration is closed), and the answers for the others teach the
// supervisor which addresses those names have (dnscache.go). A connect or
// send to an address that no address rule allows is then allowed when the
// address is a live answer for a name a domain rule with that port
// matches.
//
// The invariant that makes this hold: the function never holds a socket
// connected to a nameserver, so every byte it sends there passes the
// supervisor. A connect to a nameserver connects the caller's socket (the
// supervisor's pidfd_getfd copy: the same socket) to the supervisor's DNS
// proxy on loopback instead:
//
//   - UDP: resolvers that write their queries (Go's) talk to the proxy,
//     which judges each query, asks the nameserver from a socket of its
//     own and relays the answer. Resolvers that send with
//     send/sendto/sendmsg/sendmmsg (glibc, c-ares), which the filter
//     notifies, also check that an answer comes from the nameserver's own
//     address: at their first send the socket is disconnected (AF_UNSPEC;
//     "direct" from then on), the supervisor sends the judged queries from
//     it to the nameserver and reads the answers with MSG_PEEK (SO_PEEK_OFF
//     walks the queue) before it answers the send, leaving them queued for
//     the caller. A write on an unconnected socket fails (EDESTADDRREQ):
//     nothing reaches the nameserver unseen.
//   - TCP (after a truncated answer): connected to the proxy's TCP
//     listener, which judges and relays each length-prefixed query.
//
// The socket stays the caller's (its flags, options and poller
// registrations), so this works the same under every backend. Answers are
// learned only from what the supervisor received itself from the
// nameserver's address, matched to a query it sent (id and question):
// what the caller could forge in its own memory teaches nothing.

type dnsKind uint8

const (
	dnsDirect  dnsKind = iota // unconnected UDP socket: the supervisor sends
	dnsProxied                // UDP socket connected to the proxy
	dnsTCP                    // TCP socket connected to the proxy
)

// dnsSock is a socket of the caller's that talks DNS through the
// supervisor.
type dnsSock struct {
	kind dnsKind
	ns   netip.AddrPort // the nameserver it stands for (canonical)
	pid  int
	exe  string
	ino  uint64
	port uint16 // proxied and TCP: its local port (the proxy knows it by it)
	used atomic.Int64
	mu   sync.Mutex // one exchange at a time (the peek offset is per socket)
}

type dnsState struct {
	s       *supervisor
	pol     domainPolicy
	servers []netip.Addr // canonical
	timeout time.Duration
	minTTL  time.Duration
	cache   *dnsCache

	mu        sync.Mutex
	socks     map[uint64]*dnsSock // by socket inode
	udpByPort map[uint16]*dnsSock
	tcpByPort map[uint16]*dnsSock

	proxyOnce sync.Once
	proxyErr  error
	udpProxy  int
	udpPort   uint16
	tcpPort   uint16
	sem       chan struct{} // bounds proxied queries in flight
}

// newDNS reads the nameservers once, at start: a resolv.conf the function
// might rewrite later does not change whom the supervisor trusts.
func newDNS(s *supervisor, pol domainPolicy, resolvConf string) *dnsState {
	d := &dnsState{
		s: s, pol: pol, cache: newDNSCache(),
		minTTL:    time.Duration(pol.DNSMinTTL()) * time.Second,
		socks:     map[uint64]*dnsSock{},
		udpByPort: map[uint16]*dnsSock{},
		tcpByPort: map[uint16]*dnsSock{},
		udpProxy:  -1,
		sem:       make(chan struct{}, 64),
	}
	b, err := os.ReadFile(resolvConf)
	if err != nil {
		s.log.Debug("no resolv.conf: nameservers are the defaults", "path", resolvConf, "error", err)
	}
	d.servers, d.timeout = parseResolvConf(b)
	return d
}

// isNameserver: is ap port 53 of a nameserver?
func (d *dnsState) isNameserver(ap netip.AddrPort) bool {
	if ap.Port() != 53 {
		return false
	}
	a := rules.CanonAddr(ap.Addr())
	for _, s := range d.servers {
		if s == a {
			return true
		}
	}
	return false
}

func sockIno(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func (d *dnsState) lookup(ino uint64) *dnsSock {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds := d.socks[ino]
	if ds != nil {
		ds.used.Store(time.Now().UnixNano())
	}
	return ds
}

func (d *dnsState) register(ds *dnsSock) {
	ds.used.Store(time.Now().UnixNano())
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.socks) >= dnsMaxSocks {
		// Sockets the caller closed are never reported: forget the idle.
		cut := time.Now().Add(-dnsSockIdle).UnixNano()
		for ino, x := range d.socks {
			if x.used.Load() < cut {
				d.dropLocked(ino, x)
			}
		}
	}
	d.socks[ds.ino] = ds
	switch ds.kind {
	case dnsProxied:
		d.udpByPort[ds.port] = ds
	case dnsTCP:
		d.tcpByPort[ds.port] = ds
	}
}

func (d *dnsState) unregister(ds *dnsSock) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.socks[ds.ino] == ds {
		d.dropLocked(ds.ino, ds)
	}
}

func (d *dnsState) dropLocked(ino uint64, ds *dnsSock) {
	delete(d.socks, ino)
	switch ds.kind {
	case dnsProxied:
		if d.udpByPort[ds.port] == ds {
			delete(d.udpByPort, ds.port)
		}
	case dnsTCP:
		if d.tcpByPort[ds.port] == ds {
			delete(d.tcpByPort, ds.port)
		}
	}
}

// sockaddrFor is ap as a sockaddr for a socket of family dom (an IPv4
// address on an AF_INET6 socket is v4-mapped).
func sockaddrFor(ap netip.AddrPort, dom int) unix.Sockaddr {
	a := ap.Addr()
	if dom == unix.AF_INET6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: netip.AddrFrom16(a.As16()).As16()}
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
}

func addrPortOf(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(rules.CanonAddr(netip.AddrFrom16(a.Addr)), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

func (d *dnsState) event(op string, dom int, ns netip.AddrPort, pid int) *Event {
	return &Event{Op: op, Family: familyName(uint16(dom)), Address: ns.String(), Pid: pid}
}

// connect handles connect(fd, nameserver:53): the socket is connected to
// the proxy instead. ok is false when the call is not DNS after all (not
// an inet datagram or stream socket): it is then judged as any connect.
func (d *dnsState) connect(r *request, fd int, dest netip.AddrPort) (res Result, ok bool) {
	sock, dom, typ, e := r.sockCopy(fd)
	if e != 0 {
		return Errno(e), true
	}
	defer unix.Close(sock)
	if (dom != unix.AF_INET && dom != unix.AF_INET6) || (typ != unix.SOCK_DGRAM && typ != unix.SOCK_STREAM) {
		return Result{}, false
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES), true
	}
	ns := netip.AddrPortFrom(rules.CanonAddr(dest.Addr()), 53)
	ev := d.event("connect", dom, ns, st.tgid)
	_, logged := d.s.judge(ev, rules.Decision{Allow: true, Rule: "a nameserver of /etc/resolv.conf (each query is judged by its name)", Source: "resolv.conf"})
	if err := d.startProxies(); err != nil {
		d.s.log.Error("dns proxy did not start", "error", err)
		return Errno(unix.ECONNREFUSED).withEvent(logged), true
	}
	ino, err := sockIno(sock)
	if err != nil {
		return Errno(toErrno(err)), true
	}
	ds := &dnsSock{kind: dnsProxied, ns: ns, pid: st.tgid, exe: exePath(st.tgid), ino: ino}
	proxy := d.udpPort
	if typ == unix.SOCK_STREAM {
		ds.kind, proxy = dnsTCP, d.tcpPort
		// Known to the proxy by its port before the handshake: an unbound
		// socket is bound to loopback first.
		local, err := localAddr(sock)
		if err != nil {
			return Errno(toErrno(err)), true
		}
		if local.Port() == 0 {
			if err := unix.Bind(sock, sockaddrFor(netip.AddrPortFrom(loopback4, 0), dom)); err != nil {
				return Errno(toErrno(err)), true
			}
			if local, err = localAddr(sock); err != nil {
				return Errno(toErrno(err)), true
			}
		}
		ds.port = local.Port()
		d.register(ds)
	}
	if !r.valid() {
		d.unregister(ds)
		return Errno(unix.ENOENT), true
	}
	// A nonblocking TCP socket gets EINPROGRESS, as its own connect would.
	if err := unix.Connect(sock, sockaddrFor(netip.AddrPortFrom(loopback4, proxy), dom)); err != nil && !(typ == unix.SOCK_STREAM && err == unix.EINPROGRESS) {
		d.unregister(ds)
		return Errno(toErrno(err)).withEvent(logged), true
	} else if err != nil {
		return Errno(unix.EINPROGRESS).withEvent(logged), true
	}
	if typ == unix.SOCK_DGRAM {
		// Bound by the connect (autobind: undone by a disconnect).
		local, err := localAddr(sock)
		if err != nil {
			return Errno(toErrno(err)), true
		}
		ds.port = local.Port()
		d.register(ds)
	}
	return Value(0).withEvent(logged), true
}

func localAddr(sock int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(sock)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, _ := addrPortOf(sa)
	return ap, nil
}

// probe handles a UDP connect to another port of an address that DNS gave
// for an allowed name, which no rule allows: what resolvers do to pick a
// source address (RFC 6724 sorting; Go's probes port 53 of each answer)
// without sending anything. The socket is connected, so that getsockname
// tells the route, and shut down for writing first-hand: every send on it
// fails with EPIPE, also after a reconnect. ok is false for every other
// connect, which is judged as usual.
func (d *dnsState) probe(r *request, fd int, dest netip.AddrPort) (res Result, ok bool) {
	if d.s.policy.Connect(dest).Allow {
		return Result{}, false
	}
	var buf [4]string
	live, _ := d.cache.names(dest.Addr(), buf[:0])
	if len(live) == 0 {
		return Result{}, false
	}
	if dec, _ := decideLearned(d.cache, d.pol, dest, rules.Decision{}); dec.Allow {
		return Result{}, false
	}
	sock, dom, typ, e := r.sockCopy(fd)
	if e != 0 {
		return Errno(e), true
	}
	defer unix.Close(sock)
	if typ != unix.SOCK_DGRAM || (dom != unix.AF_INET && dom != unix.AF_INET6) {
		return Result{}, false
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES), true
	}
	ev := d.event("connect", dom, dest, st.tgid)
	ev.Domain, ev.Detail = live[0], "connected for address selection only: sends on this socket fail (EPIPE)"
	_, logged := d.s.judge(ev, rules.Decision{Allow: true, Rule: "a UDP connect to an address of " + live[0] + " that no rule lets it send to"})
	if !r.valid() {
		return Errno(unix.ENOENT), true
	}
	if err := unix.Shutdown(sock, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
		return Errno(toErrno(err)), true
	}
	if err := unix.Connect(sock, sockaddrFor(dest, dom)); err != nil {
		return Errno(toErrno(err)).withEvent(logged), true
	}
	return Value(0).withEvent(logged), true
}

// sendTarget tells whether a message on s goes to a nameserver: to one
// named as its destination, or on a socket registered for DNS without a
// destination. ds is the registration (nil for a socket of the caller's
// own that names a nameserver).
func (d *dnsState) sendTarget(s sockInfo, m outMsg) (ds *dnsSock, ns netip.AddrPort, ok bool) {
	if s.domain != unix.AF_INET && s.domain != unix.AF_INET6 {
		return nil, ns, false
	}
	if m.hasName && len(m.name) > 0 {
		sa, e := decodeSockaddr(m.name)
		if e != 0 || (sa.family != unix.AF_INET && sa.family != unix.AF_INET6) || !d.isNameserver(sa.addr) {
			return nil, ns, false
		}
		ns = netip.AddrPortFrom(rules.CanonAddr(sa.addr.Addr()), 53)
	}
	ino, err := sockIno(s.fd)
	if err == nil {
		ds = d.lookup(ino)
	}
	if ns.IsValid() {
		return ds, ns, true
	}
	if ds == nil || ds.kind == dnsTCP {
		return nil, ns, false
	}
	return ds, ds.ns, true
}

// send handles sends of DNS queries (msgs, in order) on s, the caller's
// socket fd. It returns how many were sent, the event to log with the
// answer, or res (the first message's denial or error).
func (d *dnsState) send(r *request, s sockInfo, ds *dnsSock, ns netip.AddrPort, msgs []outMsg) (int, *Event, *Result) {
	fail := func(x Result) (int, *Event, *Result) { return 0, nil, &x }
	st, err := r.status()
	if err != nil {
		return fail(Errno(unix.EACCES))
	}
	if s.typ != unix.SOCK_DGRAM {
		ev := d.event("dns", s.domain, ns, st.tgid)
		if deny, logged := d.s.judge(ev, rules.Decision{Rule: "TCP Fast Open to a nameserver is not supported"}); deny {
			return fail(Errno(unix.EACCES).withEvent(logged))
		}
		return fail(Errno(unix.EOPNOTSUPP))
	}
	sock := s.fd
	if ds != nil && ds.kind == dnsProxied {
		// A resolver that sends (and checks where answers come from):
		// from now on the socket is unconnected, and the supervisor sends
		// its queries to the nameserver itself.
		if !r.valid() {
			return fail(Errno(unix.ENOENT))
		}
		var unspec [16]byte // sa_family AF_UNSPEC
		if _, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(sock), uintptr(unsafe.Pointer(&unspec[0])), uintptr(len(unspec))); e != 0 {
			return fail(Errno(e))
		}
		d.unregister(ds)
		ds = &dnsSock{kind: dnsDirect, ns: ds.ns, pid: ds.pid, exe: ds.exe, ino: ds.ino}
		d.register(ds)
	}
	if ds != nil {
		ds.mu.Lock()
		defer ds.mu.Unlock()
	}
	to := sockaddrFor(ns, s.domain)
	var pending []dnsQuestion
	var first *Event
	sent := 0
	for i, m := range msgs {
		ev := d.event("dns", s.domain, ns, st.tgid)
		q, perr := parseDNSQuery(m.data)
		var dec rules.Decision
		if perr != nil {
			ev.Detail = "not a DNS query"
			dec = rules.Decision{Rule: "a message to a nameserver must be a DNS query with one question"}
		} else {
			ev.Domain, ev.Detail = q.name, "query type "+q.typeName()
			dec = d.pol.Resolve(q.name)
		}
		deny, logged := d.s.judge(ev, dec)
		if deny {
			if i == 0 {
				return fail(Errno(unix.EACCES).withEvent(logged))
			}
			r.logNow(logged)
			break
		}
		if !r.valid() {
			return fail(Errno(unix.ENOENT))
		}
		if err := unix.Sendto(sock, m.data, m.flags|unix.MSG_NOSIGNAL, to); err != nil {
			if i == 0 {
				return fail(Errno(toErrno(err)).withEvent(logged))
			}
			r.logNow(logged)
			break
		}
		sent++
		if perr == nil {
			pending = append(pending, q)
		}
		if first == nil {
			first = logged
		} else {
			r.logNow(logged)
		}
	}
	if len(pending) > 0 && d.awaitable(sock, ns) {
		d.await(sock, ns, pending)
	}
	return sent, first, nil
}

// awaitable: can answers from ns reach sock (not connected elsewhere)?
func (d *dnsState) awaitable(sock int, ns netip.AddrPort) bool {
	sa, err := unix.Getpeername(sock)
	if err != nil {
		return true // not connected
	}
	ap, ok := addrPortOf(sa)
	return ok && ap == ns
}

// await reads the answers to pending from sock's queue without taking
// them (the caller reads them next), learning what they say, until each
// has its answer or the resolver's timeout has passed.
func (d *dnsState) await(sock int, ns netip.AddrPort, pending []dnsQuestion) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(ep)
	// Edge-triggered: every datagram queued after the walk below wakes
	// the wait, those already seen do not.
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, sock, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET}); err != nil {
		return
	}
	deadline := time.Now().Add(d.timeout)
	done := make([]bool, len(pending))
	left := len(pending)
	buf := make([]byte, maxDNSMessage)
	evs := make([]unix.EpollEvent, 1)
	for left > 0 {
		if err := unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
			return
		}
		for walked := 0; walked < 1024 && left > 0; walked++ {
			n, from, err := unix.Recvfrom(sock, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				break
			}
			if ap, ok := addrPortOf(from); !ok || ap != ns {
				continue
			}
			for i, q := range pending {
				if done[i] {
					continue
				}
				if a, ok := parseDNSAnswer(q, buf[:n]); ok {
					done[i] = true
					left--
					d.learn(q, a)
					break
				}
			}
		}
		_ = unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, -1)
		wait := time.Until(deadline)
		if left == 0 || wait <= 0 {
			return
		}
		for {
			_, err := unix.EpollWait(ep, evs, int(wait/time.Millisecond)+1)
			if err != unix.EINTR {
				break
			}
		}
	}
}

func (d *dnsState) learn(q dnsQuestion, a dnsAnswer) {
	if a.rcode != 0 || len(a.addrs) == 0 {
		return
	}
	d.cache.learn(q.name, a.addrs, max(time.Duration(a.ttl)*time.Second, d.minTTL))
}

// logEvent writes an event the proxy decided (no notification to answer).
func (d *dnsState) logEvent(ev *Event) {
	if ev == nil {
		return
	}
	if ev.Mode == "" {
		ev.Mode = d.s.policy.Mode().String()
	}
	d.s.audit.Seal(ev)
	d.s.audit.Log(*ev)
}
