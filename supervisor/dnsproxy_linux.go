//go:build linux

package supervisor

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"vigil/rules"
)

// The DNS proxy: the other end of the sockets the supervisor installs in
// place of the caller's when it connects to a nameserver (dns_linux.go).
// It knows each caller's socket by its local port on loopback, judges
// every query by its name, asks the nameserver from a socket of its own,
// learns the answer and relays it. Datagrams and connections from any
// other port are dropped.

func (d *dnsState) startProxies() error {
	d.proxyOnce.Do(func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			d.proxyErr = err
			return
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback4.As4()}); err != nil {
			unix.Close(fd)
			d.proxyErr = err
			return
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			d.proxyErr = err
			return
		}
		ap, _ := addrPortOf(sa)
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			unix.Close(fd)
			d.proxyErr = err
			return
		}
		d.udpProxy, d.udpPort = fd, ap.Port()
		d.tcpPort = uint16(ln.Addr().(*net.TCPAddr).Port)
		go d.serveUDP()
		go d.serveTCP(ln)
		d.s.log.Debug("dns proxy started", "udp_port", d.udpPort, "tcp_port", d.tcpPort)
	})
	return d.proxyErr
}

// proxiedSock finds the caller's socket a datagram or connection came
// from, by its port (its address is loopback, or the address it was bound
// to: the kernel picked the route). Reaching the proxy from any other
// socket takes a connect or send to it, which the policy judges.
func (d *dnsState) proxiedSock(udp bool, from netip.AddrPort) *dnsSock {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ds *dnsSock
	if udp {
		ds = d.udpByPort[from.Port()]
	} else {
		ds = d.tcpByPort[from.Port()]
	}
	if ds != nil {
		ds.used.Store(time.Now().UnixNano())
	}
	return ds
}

func (d *dnsState) serveUDP() {
	buf := make([]byte, maxDNSMessage)
	for {
		n, from, err := unix.Recvfrom(d.udpProxy, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			d.s.log.Error("dns proxy stopped", "error", err)
			return
		}
		ap, ok := addrPortOf(from)
		if !ok {
			continue
		}
		ds := d.proxiedSock(true, ap)
		if ds == nil {
			continue
		}
		msg := append([]byte(nil), buf[:n]...)
		d.sem <- struct{}{}
		go func() {
			defer func() { <-d.sem }()
			if resp := d.proxyQuery(ds, msg, d.upstreamUDP); resp != nil {
				_ = unix.Sendto(d.udpProxy, resp, 0, from)
			}
		}()
	}
}

func (d *dnsState) serveTCP(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			d.s.log.Error("dns tcp proxy stopped", "error", err)
			return
		}
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		ds := d.proxiedSock(false, ap)
		if ds == nil {
			c.Close()
			continue
		}
		go d.serveTCPConn(ds, c)
	}
}

// serveTCPConn relays length-prefixed queries of one caller connection
// over one connection of the supervisor's to the nameserver.
func (d *dnsState) serveTCPConn(ds *dnsSock, c *net.TCPConn) {
	defer d.unregister(ds)
	defer c.Close()
	var up net.Conn
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	upstream := func(ds *dnsSock, q []byte, qq dnsQuestion) ([]byte, error) {
		if up == nil {
			var err error
			if up, err = net.DialTimeout("tcp", ds.ns.String(), d.timeout); err != nil {
				return nil, err
			}
		}
		_ = up.SetDeadline(time.Now().Add(d.timeout))
		if err := writeFramed(up, q); err != nil {
			return nil, err
		}
		for tries := 0; tries < 8; tries++ {
			resp, err := readFramed(up)
			if err != nil {
				return nil, err
			}
			if _, ok := parseDNSAnswer(qq, resp); ok {
				return resp, nil
			}
		}
		return nil, errors.New("no answer to the query")
	}
	for {
		_ = c.SetReadDeadline(time.Now().Add(dnsSockIdle))
		q, err := readFramed(c)
		if err != nil {
			return
		}
		resp := d.proxyQuery(ds, q, upstream)
		if resp == nil {
			return
		}
		if err := writeFramed(c, resp); err != nil {
			return
		}
	}
}

func readFramed(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeFramed(w io.Writer, b []byte) error {
	if len(b) > maxDNSMessage {
		return errors.New("dns message too long")
	}
	out := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	copy(out[2:], b)
	_, err := w.Write(out)
	return err
}

// upstreamUDP asks the nameserver from a socket of the supervisor's own
// (connected: only the nameserver's datagrams reach it) and returns the
// first datagram that answers the question.
func (d *dnsState) upstreamUDP(ds *dnsSock, q []byte, qq dnsQuestion) ([]byte, error) {
	c, err := net.Dial("udp", ds.ns.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d.timeout))
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, maxDNSMessage)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if _, ok := parseDNSAnswer(qq, buf[:n]); ok {
			return buf[:n], nil
		}
	}
}

// proxyQuery judges one query of ds and returns what to answer: the
// nameserver's answer, REFUSED for a name the policy does not allow,
// SERVFAIL when the nameserver did not answer; nil (no answer) for what is
// not a query.
func (d *dnsState) proxyQuery(ds *dnsSock, msg []byte, upstream func(*dnsSock, []byte, dnsQuestion) ([]byte, error)) []byte {
	ev := &Event{Op: "dns", Family: "inet", Address: ds.ns.String(), Pid: ds.pid, Exe: ds.exe}
	if ds.ns.Addr().Is6() {
		ev.Family = "inet6"
	}
	q, err := parseDNSQuery(msg)
	if err != nil {
		ev.Detail = "not a DNS query"
		_, logged := d.s.judge(ev, rules.Decision{Rule: "a message to a nameserver must be a DNS query with one question"})
		d.logEvent(logged)
		return nil // even in audit mode: there is nothing to relay it as
	}
	ev.Domain, ev.Detail = q.name, "query type "+q.typeName()
	deny, logged := d.s.judge(ev, d.pol.Resolve(q.name))
	d.logEvent(logged)
	if deny {
		return dnsReply(q, dnsmessage.RCodeRefused)
	}
	resp, err := upstream(ds, msg, q)
	if err != nil {
		d.s.log.Debug("dns: no answer from the nameserver", "nameserver", ds.ns.String(), "name", q.name, "error", err)
		return dnsReply(q, dnsmessage.RCodeServerFailure)
	}
	if a, ok := parseDNSAnswer(q, resp); ok {
		d.learn(q, a)
	}
	return resp
}
