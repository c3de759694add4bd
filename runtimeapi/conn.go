package runtimeapi

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rtConn is one connection from the runtime, served by one goroutine
// (serve) that reads each request, writes it to the upstream connection
// paired with this one, reads the answer and writes it back: no other
// goroutine is woken on the way, but the watcher of a long poll.
type rtConn struct {
	p  *Proxy
	c  net.Conn
	in rtReader
	br *bufio.Reader // from the runtime, over in
	bw *bufio.Writer // to the runtime

	req, ans message
	buf      []byte // the heads read, reused

	// up is the paired upstream connection: nil until the first request,
	// and after it broke. Only serve sets it; mu orders that against the
	// watcher, which closes it.
	up *upConn
	mu sync.Mutex

	gone     atomic.Bool    // the watcher saw the runtime close its connection
	watching sync.WaitGroup // the watcher runs
	watched  bool           // this request started the watcher
}

// rtReader reads the runtime's connection, starting with the byte the
// watcher read, if it read one.
type rtReader struct {
	c       net.Conn
	pending int // a byte, or -1
}

func (r *rtReader) Read(b []byte) (int, error) {
	if r.pending >= 0 && len(b) > 0 {
		b[0] = byte(r.pending)
		r.pending = -1
		return 1, nil
	}
	return r.c.Read(b)
}

// aLongTimeAgo is a deadline that makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (p *Proxy) newConn(c net.Conn) *rtConn {
	rc := &rtConn{p: p, c: c, in: rtReader{c: c, pending: -1}}
	rc.br = bufio.NewReaderSize(&rc.in, bufSize)
	rc.bw = bufio.NewWriterSize(c, bufSize)
	return rc
}

// serve serves requests until the runtime closes the connection, a request
// says it is the last, or something goes wrong; then it gives the upstream
// connection back (kept for the next runtime connection when it is at a
// message boundary).
func (c *rtConn) serve() {
	for c.serveOne() {
	}
	c.c.Close()
	if c.up != nil {
		c.p.pool.release(c.up, true)
	}
}

// serveOne forwards one request and its answer; it reports whether the
// connection may carry another request.
func (c *rtConn) serveOne() bool {
	raw, err := readHead(c.br, c.buf[:0])
	c.buf = raw[:0]
	if err != nil {
		// A runtime that closed (or broke) its connection between
		// requests gets nothing.
		if len(raw) > 0 {
			c.reject(err)
		}
		return false
	}
	req := &c.req
	if err := parseRequest(string(raw), req); err != nil {
		c.reject(err)
		return false
	}
	if req.expect != "" && req.expect != "100-continue" {
		c.reject(&protoError{417, "Expect other than 100-continue not supported"})
		return false
	}
	in := req.requestBody()
	defer c.stopWatch()

	// The request, upstream. One without a body is sent again, once, on a
	// new connection when the one it was sent on was reused and failed
	// before any answer: the upstream may have closed it meanwhile.
	var uc *upConn
	for attempt := 0; ; attempt++ {
		var reused bool
		uc, reused, err = c.upstream()
		if err != nil {
			if errors.Is(err, errClosed) || c.gone.Load() {
				return false
			}
			c.p.log.Error("upstream request failed", "method", req.method, "target", req.target, "error", err)
			return c.unavailable(err, in == bodyNone)
		}
		req.writeRequestHead(uc.bw, c.p.upstream, in)
		if in != bodyNone {
			if req.expect != "" {
				// The proxy answers "Expect: 100-continue" itself, now that
				// the request has an upstream connection to go to.
				c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
				if err := c.bw.Flush(); err != nil {
					c.dropUp()
					return false
				}
			}
			f := forwarder{src: c.br, dst: uc.bw}
			if err := f.forward(in, in, req.length, nil); err != nil {
				// Closing the upstream connection ends the request
				// there unfinished: it never takes a truncated body for
				// a whole one.
				c.dropUp()
				var se *srcError
				if errors.As(err, &se) {
					c.p.log.Debug("request body ended early", "method", req.method, "target", req.target, "error", err)
					c.reject(err)
					return false
				}
				c.p.log.Error("upstream request failed", "method", req.method, "target", req.target, "error", err)
				return c.unavailable(err, false)
			}
		}
		err = uc.bw.Flush()
		if err == nil {
			if attempt == 0 && in == bodyNone && c.br.Buffered() == 0 {
				c.startWatch()
			}
			raw, err = readAnswer(uc.br, &c.ans, c.buf[:0])
			c.buf = raw[:0]
		}
		if err == nil {
			break
		}
		c.dropUp()
		if c.gone.Load() {
			c.p.log.Debug("request cancelled: the runtime closed its connection", "method", req.method, "target", req.target)
			return false
		}
		if in == bodyNone && reused && attempt == 0 && len(raw) == 0 && c.ans.status == 0 && !isProtoError(err) {
			continue
		}
		if errors.Is(err, net.ErrClosed) && c.p.isClosing() {
			return false
		}
		c.p.log.Error("upstream request failed", "method", req.method, "target", req.target, "error", err)
		return c.unavailable(err, true) // the request was read whole
	}
	if c.watched {
		// The answer is here: the watcher may stop (it is waited for
		// below, once the answer is on its way).
		c.c.SetReadDeadline(aLongTimeAgo)
	}

	// The answer, to the runtime. Invocation tracking happens once the
	// answer was read whole, before its last bytes leave: once the runtime
	// has its event the invocation is current, once its /response or
	// /error returned the invocation is over, and an answer that broke
	// off tracks nothing.
	ans := &c.ans
	inA, outA, keep := answerFraming(req, ans)
	ans.writeAnswerHead(c.bw, outA, keep)
	f := forwarder{src: uc.br, dst: c.bw}
	err = f.forward(inA, outA, ans.length, nil)
	if err == nil {
		if ans.status/100 == 2 {
			c.p.track(req, ans)
		}
		err = c.bw.Flush()
	}
	c.stopWatch()
	if err != nil || c.gone.Load() {
		c.dropUp()
		var se *srcError
		if !f.flushed && errors.As(err, &se) && !c.gone.Load() {
			// The runtime has seen nothing of it yet: it gets a 502
			// instead.
			c.bw.Reset(c.c)
			c.p.log.Error("upstream answer broke off", "method", req.method, "target", req.target, "error", err)
			return c.unavailable(err, true)
		}
		// Closing the runtime's connection without ending the body makes
		// a truncated answer look truncated.
		c.p.log.Debug("answer ended early", "method", req.method, "target", req.target, "error", err)
		return false
	}
	if inA == bodyUntilClose || ans.close || uc.br.Buffered() > 0 {
		c.dropUp()
	}
	return keep
}

// upstream returns the paired upstream connection if it is still open, or
// takes one from the pool and pairs it.
func (c *rtConn) upstream() (*upConn, bool, error) {
	if uc := c.up; uc != nil {
		if alive(uc.c) {
			return uc, true, nil
		}
		c.dropUp()
	}
	uc, reused, err := c.p.pool.get()
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	c.up = uc
	c.mu.Unlock()
	if c.gone.Load() {
		// The watcher may have looked for a connection to close before
		// this one was set.
		c.dropUp()
		return nil, false, net.ErrClosed
	}
	return uc, reused, nil
}

// dropUp closes the paired upstream connection: it is not at a message
// boundary, or broke.
func (c *rtConn) dropUp() {
	c.mu.Lock()
	uc := c.up
	c.up = nil
	c.mu.Unlock()
	if uc != nil {
		c.p.pool.release(uc, false)
	}
}

// startWatch starts the watcher: while a request without a body waits for
// its answer (GET /next, a long poll), a background read of one byte from
// the runtime notices it close its connection (it gave up, or died), and
// then closes the upstream connection, which cancels the request there
// and ends the wait. A byte that arrives instead (the next request, sent
// ahead) is kept for the next read.
func (c *rtConn) startWatch() {
	c.watched = true
	c.watching.Add(1)
	go func() {
		defer c.watching.Done()
		var b [1]byte
		n, err := c.c.Read(b[:])
		if n > 0 {
			c.in.pending = int(b[0])
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return // stopped
		}
		c.gone.Store(true)
		c.mu.Lock()
		if c.up != nil {
			c.up.c.Close()
		}
		c.mu.Unlock()
	}()
}

// stopWatch stops the watcher, if it runs, and waits for it.
func (c *rtConn) stopWatch() {
	if !c.watched {
		return
	}
	c.watched = false
	c.c.SetReadDeadline(aLongTimeAgo)
	c.watching.Wait()
	c.c.SetReadDeadline(time.Time{})
}

// readAnswer reads the head of an answer from br into m, skipping
// informational (1xx) ones; buf is where the head is read to.
func readAnswer(br *bufio.Reader, m *message, buf []byte) ([]byte, error) {
	m.status = 0
	for range max1xx + 1 {
		raw, err := readHead(br, buf[:0])
		if err != nil {
			return raw, err
		}
		if err := parseAnswer(string(raw), m); err != nil {
			return raw, err
		}
		switch {
		case m.status >= 200:
			return raw, nil
		case m.status == 101:
			// A protocol switch, which the proxy never asks for (it does
			// not forward Upgrade).
			return raw, badMessage("unexpected 101 Switching Protocols")
		}
	}
	return buf, badMessage("too many informational answers")
}

func isProtoError(err error) bool {
	var pe *protoError
	return errors.As(err, &pe)
}

// reject answers a request the proxy cannot forward (malformed, or
// unsupported) with the status the error carries, and ends the connection:
// what follows on it cannot be delimited. A read error gets no answer (the
// runtime went away, or broke off its request).
func (c *rtConn) reject(err error) {
	var pe *protoError
	if !errors.As(err, &pe) {
		return
	}
	c.p.log.Warn("request rejected", "status", pe.status, "error", pe.msg)
	c.answer(pe.status, "Vigil.BadRequest", "vigil: runtime API proxy: "+pe.msg, false)
}

// unavailable answers 502 when the upstream cannot be reached or broke
// its answer. keep says whether the runtime's connection may go on (the
// request was read whole).
func (c *rtConn) unavailable(err error, keep bool) bool {
	keep = keep && !c.req.close
	c.answer(502, "Vigil.RuntimeAPIUnavailable", "vigil: runtime API proxy: "+err.Error(), keep)
	return keep
}

// answer writes an answer of the proxy's own, with a Lambda error
// document ({"errorType":..., "errorMessage":...}) as its body.
func (c *rtConn) answer(status int, errorType, message string, keep bool) {
	body := lambdaErrorDoc(errorType, message)
	w := c.bw
	w.WriteString("HTTP/1.1 ")
	w.WriteString(strconv.Itoa(status))
	w.WriteString(" ")
	w.WriteString(statusText[status])
	w.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	if !keep {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	w.Flush()
}

// statusText has the reason phrases of the proxy's own answers.
var statusText = map[int]string{
	400: "Bad Request",
	417: "Expectation Failed",
	431: "Request Header Fields Too Large",
	501: "Not Implemented",
	502: "Bad Gateway",
	505: "HTTP Version Not Supported",
}
