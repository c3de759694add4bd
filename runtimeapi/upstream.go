package runtimeapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// connPool holds the proxy's connections to the real Runtime API: each
// runtime connection takes one for as long as it lives (see conn.go), the
// proxy's own calls (InitError, FailCurrent) one per call, and connections
// given back stay idle for the next taker.
//
// Why not http.Transport (or any client with goroutines of its own per
// connection): a request and its answer would each cross a goroutine
// handoff, often a thread wake-up. Here the goroutine that read the
// runtime's request writes it upstream and reads the answer itself.
// (Measured under RIE on this project's 2-vCPU machines, lambdatest's
// BenchmarkProxyOverhead: a Transport-based proxy added 0.8-1.2 ms per warm
// invocation where a plain TCP relay adds 0.15-0.35 ms.)
type connPool struct {
	addr   string
	dialer net.Dialer
	ctx    context.Context // cancelled by close: ends dials
	cancel context.CancelFunc

	mu     sync.Mutex
	idle   []*upConn
	busy   map[*upConn]struct{} // taken: closed by close, which cancels their requests
	closed bool
	// priming is closed when the connection prime dials is in the pool
	// (or the dial failed); nil when prime was not called.
	priming chan struct{}
}

// maxIdle bounds the idle connections kept: a runtime has a /next long poll
// and a /response or /error in flight at most, plus the proxy's own calls.
const maxIdle = 8

// bufSize is the size of each connection's read and write buffers, both
// sides: the Runtime API's heads fit, and a large body moves in few
// system calls.
const bufSize = 16 << 10

type upConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

var errClosed = errors.New("runtimeapi: proxy closed")

func newPool(addr string) *connPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &connPool{
		addr: addr,
		dialer: net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		},
		ctx:    ctx,
		cancel: cancel,
		busy:   make(map[*upConn]struct{}),
	}
}

// get returns an idle connection that is still open, or a new one; reused
// says which. The connection is the caller's until it gives it back with
// release.
func (u *connPool) get() (uc *upConn, reused bool, err error) {
	for {
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			return nil, false, errClosed
		}
		n := len(u.idle)
		if n == 0 {
			priming := u.priming
			u.mu.Unlock()
			if priming == nil {
				break
			}
			// The first request waits for the connection being primed
			// rather than dial a second one (close ends the dial).
			<-priming
			u.mu.Lock()
			if u.priming == priming {
				u.priming = nil
			}
			u.mu.Unlock()
			continue
		}
		uc = u.idle[n-1]
		u.idle = u.idle[:n-1]
		u.busy[uc] = struct{}{}
		u.mu.Unlock()
		if alive(uc.c) {
			return uc, true, nil
		}
		u.release(uc, false)
	}
	uc, err = u.dial()
	if err != nil {
		return nil, false, err
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		uc.c.Close()
		return nil, false, errClosed
	}
	u.busy[uc] = struct{}{}
	u.mu.Unlock()
	return uc, false, nil
}

func (u *connPool) dial() (*upConn, error) {
	c, err := u.dialer.DialContext(u.ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, bufSize), bw: bufio.NewWriterSize(c, bufSize)}, nil
}

// prime returns a function that dials one connection ahead of the first
// request and keeps it idle, so that the runtime's first /next does not
// wait for a dial; run it on a goroutine of its own. A request that comes
// meanwhile waits for that connection instead of dialing another. A failed
// dial is not an error: the request dials again and reports what it gets.
func (u *connPool) prime() func() {
	done := make(chan struct{})
	u.mu.Lock()
	u.priming = done
	u.mu.Unlock()
	return func() {
		defer close(done)
		uc, err := u.dial()
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			uc.c.Close()
			return
		}
		u.idle = append(u.idle, uc)
		u.mu.Unlock()
	}
}

// release gives a connection back: kept idle when reuse says it is at a
// message boundary with nothing unread, closed otherwise.
func (u *connPool) release(uc *upConn, reuse bool) {
	u.mu.Lock()
	delete(u.busy, uc)
	if reuse && !u.closed && len(u.idle) < maxIdle {
		u.idle = append(u.idle, uc)
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	uc.c.Close()
}

// close closes every connection, idle or taken (what is in flight on them
// fails), ends dials, and makes later ones fail.
func (u *connPool) close() {
	u.cancel()
	u.mu.Lock()
	conns := u.idle
	for uc := range u.busy {
		conns = append(conns, uc)
	}
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, uc := range conns {
		uc.c.Close()
	}
}

// alive reports whether a connection that sat between requests is still
// open: a non-blocking peek finds neither EOF nor unexpected data.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait
	})
	return err == nil && ok
}
