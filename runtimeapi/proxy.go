// Package runtimeapi is Vigil's Lambda Runtime API proxy.
//
// The bootstrap serves the Runtime API on 127.0.0.1 for the function's
// runtime (it points the child's AWS_LAMBDA_RUNTIME_API at Addr) and forwards
// every request to the real Runtime API, unchanged, so that it knows which
// invocation is in flight: Current is what Vigil's audit lines carry.
//
// # How it forwards
//
// The proxy is an HTTP/1.1 forwarder to one fixed upstream, written for
// this one job on top of package net (no net/http: linking it, and the TLS
// and HTTP/2 code that comes with it, cost about 0.8 ms of the bootstrap's
// start, on every cold start). Each connection from the runtime is served
// by one goroutine, paired with one upstream connection of its own: the
// goroutine reads a request, writes it upstream, reads the answer and
// writes it back, so a warm invocation wakes no other goroutine (a plain
// TCP relay wakes one per direction). The first upstream connection is
// dialled when New returns, for the runtime's first /next. The wire format
// is in http1.go, the serving loop in conn.go, the upstream connections in
// upstream.go.
//
// # What "unchanged" means
//
//   - method, request target (path as escaped by the runtime, and query),
//     status code and reason phrase, bodies, and every end-to-end header
//     field pass both ways as they are, in their order. No X-Forwarded-For,
//     Via or Forwarded field is added; no User-Agent or Accept-Encoding is
//     invented; no Content-Type is sniffed and no Date is added to an answer
//     that had none.
//   - Hop-by-hop fields (Connection and what it names, Keep-Alive,
//     Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE,
//     Transfer-Encoding, Upgrade) describe one connection and are not
//     forwarded, as RFC 9110 requires of a proxy. Framing is kept: a
//     Content-Length body leaves with its Content-Length, a chunked one
//     chunk by chunk (chunk extensions dropped) with its Trailer field and
//     its trailers, declared or not (but hop-by-hop and framing fields). An
//     answer delimited by the upstream closing its connection is sent
//     chunked (to an HTTP/1.0 runtime: unchunked, closing the connection).
//   - The Host field is the upstream's (the runtime addressed the proxy).
//   - "Expect: 100-continue" is answered by the proxy, not forwarded (curl
//     sends it for bodies over 1 KiB); informational (1xx) answers from the
//     upstream are not passed on.
//   - Field names are written in Go's canonical form (Content-Type; HTTP
//     field names are case-insensitive).
//   - Bodies stream in both directions, so a response-streaming function
//     (Lambda-Runtime-Function-Response-Mode: streaming) streams through, and
//     its Lambda-Runtime-Function-Error-Type/-Body trailers follow. What has
//     arrived is written on as soon as more would have to be waited for: a
//     head with a body that is already complete leaves in one write, a
//     streamed body as it comes.
//   - No timeout applies to a request (GET .../invocation/next is a long poll
//     that can last as long as the sandbox is idle or frozen). While a
//     request without a body waits for its answer, a background one-byte
//     read notices the runtime close its connection; the upstream
//     connection is then closed, which cancels the request there. Close
//     does the same for every request in flight.
//   - Upstream connections are kept alive (one per runtime connection, given
//     back at most 8 idle when the runtime's closes); one the upstream closed
//     while idle is noticed before use, and a request without a body that
//     fails on a reused connection before any answer is sent again, once, on
//     a new one.
//
// # What it refuses
//
// The proxy never forwards a message it cannot delimit exactly, from either
// side: a head over 1 MiB (the trailer section too), lines not ended by
// CRLF, folded or malformed field lines, control characters in field
// values, both Content-Length and Transfer-Encoding, differing
// Content-Lengths, a transfer coding other than chunked, a malformed
// chunk, an HTTP/1.1 request without exactly one Host, a request target
// other than an absolute path in visible ASCII with well-formed
// percent-escapes (or "*" for OPTIONS), an HTTP version other than 1.0 and
// 1.1. A bad request gets 400 (431 for a head too large, 501
// for a transfer coding, 505 for a version, 417 for an Expect other than
// 100-continue) with a {"errorType":"Vigil.BadRequest",...} body, and its
// connection closed. If the upstream cannot be reached, or its answer is
// malformed (its body too, as long as none of it has left), the runtime
// gets 502 with
// {"errorType":"Vigil.RuntimeAPIUnavailable","errorMessage":...}; an answer
// that breaks off once part of it has gone to the runtime ends with the
// runtime's connection closed, so that it shows as truncated. Either way
// Current is not changed by it: invocations are tracked from answers read
// whole.
package runtimeapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Runtime API paths (API version 2018-06-01).
const (
	apiPrefix        = "/2018-06-01/runtime/"
	nextPath         = apiPrefix + "invocation/next"
	invocationPrefix = apiPrefix + "invocation/"
	initErrorPath    = apiPrefix + "init/error"
)

// Runtime API headers the proxy reads or writes (all others pass through
// untouched as well).
const (
	HeaderRequestID          = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadlineMs         = "Lambda-Runtime-Deadline-Ms"
	HeaderInvokedFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID            = "Lambda-Runtime-Trace-Id"
	HeaderClientContext      = "Lambda-Runtime-Client-Context"
	HeaderCognitoIdentity    = "Lambda-Runtime-Cognito-Identity"
	HeaderErrorType          = "Lambda-Runtime-Function-Error-Type"
	HeaderErrorBody          = "Lambda-Runtime-Function-Error-Body"
	HeaderResponseMode       = "Lambda-Runtime-Function-Response-Mode"
	HeaderTenantID           = "Lambda-Runtime-Aws-Tenant-Id"
)

// helperTimeout bounds the proxy's own calls (InitError, FailCurrent).
const helperTimeout = 10 * time.Second

// Invocation is what the proxy knows of an invocation from the headers of
// the /invocation/next response that delivered it.
type Invocation struct {
	RequestID   string    // Lambda-Runtime-Aws-Request-Id
	Deadline    time.Time // Lambda-Runtime-Deadline-Ms; zero if absent or malformed
	FunctionARN string    // Lambda-Runtime-Invoked-Function-Arn
	TraceID     string    // Lambda-Runtime-Trace-Id
	Start       time.Time // when /next returned it to the proxy
}

// Proxy is a running Runtime API proxy. Its methods are safe for concurrent
// use.
type Proxy struct {
	upstream string // host:port of the real Runtime API
	log      hclog.Logger
	addr     string // the listener's, 127.0.0.1:PORT
	pool     *connPool

	current  atomic.Pointer[Invocation]
	onInvoke atomic.Pointer[func(Invocation)]
	onDone   atomic.Pointer[func(Invocation)]

	mu      sync.Mutex
	closing bool
	ln      net.Listener          // nil until the accepting goroutine made it
	conns   map[net.Conn]struct{} // the runtime's open connections

	serving   sync.WaitGroup // the connections' goroutines
	served    chan struct{}  // closed when the accepting goroutine returns
	primed    chan struct{}  // closed when the first upstream connection is made or given up
	closeOnce sync.Once
	closeErr  error
}

// New starts a proxy that listens on 127.0.0.1 (a free port) and forwards to
// upstream, the host:port of the real Runtime API (the AWS_LAMBDA_RUNTIME_API
// the bootstrap was given). log may be nil; the proxy logs to the sub-logger
// "runtimeapi". Close stops it.
//
// New is on the cold-start path, so it only binds the socket (Addr is
// valid, and connections queue, when it returns); accepting, which needs
// Go's network poller, and one upstream connection for the runtime's first
// /next are set up on other goroutines while the caller goes on (the
// bootstrap loads the policy meanwhile).
func New(upstream string, log hclog.Logger) (*Proxy, error) {
	if err := checkUpstream(upstream); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("runtimeapi")
	fd, addr, err := listenLoopback()
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: listen: %w", err)
	}
	p := &Proxy{
		upstream: upstream,
		log:      log,
		addr:     addr,
		pool:     newPool(upstream),
		conns:    make(map[net.Conn]struct{}),
		served:   make(chan struct{}),
		primed:   make(chan struct{}),
	}
	go p.accept(fd)
	prime := p.pool.prime()
	go func() {
		defer close(p.primed)
		prime()
	}()
	p.log.Debug("listening", "addr", p.Addr(), "upstream", upstream)
	return p, nil
}

// accept accepts the runtime's connections on the listening socket fd and
// serves each on a goroutine of its own, until Close.
func (p *Proxy) accept(fd int) {
	defer close(p.served)
	f := os.NewFile(uintptr(fd), "runtimeapi")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		// Never seen; the runtime's connects are then refused and it
		// fails its init.
		p.log.Error("serve failed", "error", err)
		return
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		ln.Close()
		return
	}
	p.ln = ln
	p.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosing() {
				return
			}
			// Out of file descriptors, or the like: try again later,
			// as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Error("accept failed", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.serving.Add(1)
		p.mu.Unlock()
		go func() {
			defer p.serving.Done()
			p.newConn(c).serve()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// listenLoopback returns a listening TCP socket on 127.0.0.1 with a port the
// kernel picked (close-on-exec: the runtime must not inherit it), and its
// address. Plain system calls: Go's net package would set up its poller
// first, which the bootstrap's cold start need not wait for.
func listenLoopback() (int, string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, string, error) {
		unix.Close(fd)
		return -1, "", os.NewSyscallError(op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail("getsockname", unix.EAFNOSUPPORT)
	}
	return fd, net.JoinHostPort("127.0.0.1", strconv.Itoa(in4.Port)), nil
}

func checkUpstream(upstream string) error {
	if upstream == "" {
		return errors.New("runtimeapi: empty upstream address (is AWS_LAMBDA_RUNTIME_API set?)")
	}
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return fmt.Errorf("runtimeapi: upstream %q is not host:port: %w", upstream, err)
	}
	return nil
}

// Addr is the proxy's address, "127.0.0.1:PORT": the child's
// AWS_LAMBDA_RUNTIME_API.
func (p *Proxy) Addr() string { return p.addr }

// Upstream is the address of the real Runtime API.
func (p *Proxy) Upstream() string { return p.upstream }

// Current returns the invocation in flight: set when /invocation/next
// returns one to the runtime, cleared when its /response or /error has been
// accepted upstream (or FailCurrent reported it). The zero Invocation means
// none. It is one atomic load.
func (p *Proxy) Current() Invocation {
	if inv := p.current.Load(); inv != nil {
		return *inv
	}
	return Invocation{}
}

// OnInvoke sets the function called with each invocation as /next delivers
// it, before the runtime sees it (Current already returns it). It runs on
// the request's goroutine and delays the runtime: keep it short. nil removes
// it. Safe to call at any time.
func (p *Proxy) OnInvoke(fn func(Invocation)) { storeHook(&p.onInvoke, fn) }

// OnDone sets the function called once per invocation when it stops being
// current: its /response or /error was accepted upstream, FailCurrent
// reported it, or the runtime asked for the next invocation without
// answering this one. Same rules as OnInvoke.
func (p *Proxy) OnDone(fn func(Invocation)) { storeHook(&p.onDone, fn) }

func storeHook(h *atomic.Pointer[func(Invocation)], fn func(Invocation)) {
	if fn == nil {
		h.Store(nil)
		return
	}
	h.Store(&fn)
}

func callHook(h *atomic.Pointer[func(Invocation)], inv Invocation) {
	if fn := h.Load(); fn != nil {
		(*fn)(inv)
	}
}

// Close stops the proxy: it closes the listener and every connection,
// which ends the requests in flight (upstream too), waits for their
// goroutines to return, and closes idle upstream connections. Safe to call
// more than once.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		ln := p.ln
		conns := make([]net.Conn, 0, len(p.conns))
		for c := range p.conns {
			conns = append(conns, c)
		}
		p.mu.Unlock()
		if ln != nil {
			p.closeErr = ln.Close()
		}
		for _, c := range conns {
			c.Close()
		}
		p.pool.close()
		<-p.served
		p.serving.Wait()
		<-p.primed
		p.log.Debug("closed")
	})
	return p.closeErr
}

// InitError reports a failed initialisation to the real Runtime API
// (POST /runtime/init/error) with the Lambda-Runtime-Function-Error-Type
// header and the body {"errorType":..., "errorMessage":...}. Lambda then
// fails the invocation with this error (and the runtime should exit).
func (p *Proxy) InitError(errorType, message string) error {
	if err := p.postError(initErrorPath, initErrorPath, errorType, message); err != nil {
		return err
	}
	p.log.Debug("init error reported", "error_type", errorType)
	return nil
}

// FailCurrent reports the invocation in flight, if any, as failed
// (POST /runtime/invocation/{id}/error), for when the runtime died or was
// killed before answering it. It is a no-op when no invocation is in flight.
// On success the invocation stops being current (OnDone runs).
func (p *Proxy) FailCurrent(errorType, message string) error {
	cur := p.current.Load()
	if cur == nil {
		return nil
	}
	path := invocationPrefix + cur.RequestID + "/error"
	rawPath := invocationPrefix + url.PathEscape(cur.RequestID) + "/error"
	if err := p.postError(path, rawPath, errorType, message); err != nil {
		return err
	}
	p.log.Debug("invocation failed by proxy", "request_id", cur.RequestID, "error_type", errorType)
	p.finish(cur.RequestID)
	return nil
}

// postError POSTs a Lambda error document to path (escaped: rawPath) on the
// upstream, on a connection of the pool, within helperTimeout.
func (p *Proxy) postError(path, rawPath, errorType, errorMessage string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("runtimeapi: POST %s: %w", path, err)
		}
	}()
	for i := 0; i < len(errorType); i++ {
		if !isFieldByte(errorType[i]) {
			return fmt.Errorf("error type %q has a control character", errorType)
		}
	}
	body := lambdaErrorDoc(errorType, errorMessage)
	uc, _, err := p.pool.get()
	if err != nil {
		return err
	}
	_ = uc.c.SetDeadline(time.Now().Add(helperTimeout))
	w := uc.bw
	w.WriteString("POST " + rawPath + " HTTP/1.1\r\nHost: " + p.upstream + "\r\nContent-Type: application/json\r\n")
	writeField(w, HeaderErrorType, errorType)
	w.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	w.Write(body)
	err = w.Flush()
	var ans message
	var text strings.Builder // the answer's body, its first 4 KiB
	kind := bodyUntilClose
	if err == nil {
		_, err = readAnswer(uc.br, &ans, nil)
	}
	if err == nil {
		kind = ans.answerBody("POST")
		lw := bufio.NewWriter(limitWriter{&text, 4096})
		f := forwarder{src: uc.br, dst: lw}
		err = f.forward(kind, bodyUntilClose, ans.length, nil) // the data only
		lw.Flush()
	}
	reuse := err == nil && kind != bodyUntilClose && !ans.close && uc.br.Buffered() == 0
	if reuse {
		_ = uc.c.SetDeadline(time.Time{})
	}
	p.pool.release(uc, reuse)
	if err != nil {
		return err
	}
	if ans.status/100 != 2 {
		return fmt.Errorf("%s %s: %s", ans.code, ans.reason, strings.TrimSpace(text.String()))
	}
	return nil
}

// limitWriter keeps the first n bytes written to it and drops the rest.
type limitWriter struct {
	w *strings.Builder
	n int
}

func (l limitWriter) Write(b []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(b[:min(room, len(b))])
	}
	return len(b), nil
}

// start makes inv current. An invocation still current is finished first:
// the runtime asked for the next one without answering it.
func (p *Proxy) start(inv *Invocation) {
	if old := p.current.Swap(inv); old != nil {
		p.log.Debug("invocation abandoned", "request_id", old.RequestID)
		callHook(&p.onDone, *old)
	}
	p.log.Debug("invocation started", "request_id", inv.RequestID)
	callHook(&p.onInvoke, *inv)
}

// finish clears the current invocation if it is id.
func (p *Proxy) finish(id string) {
	cur := p.current.Load()
	if cur == nil || cur.RequestID != id || !p.current.CompareAndSwap(cur, nil) {
		return
	}
	p.log.Debug("invocation done", "request_id", id)
	callHook(&p.onDone, *cur)
}

// track follows invocations through a request and its 2xx answer: the
// answer to GET /invocation/next delivers one, and the upstream's
// acceptance of POST /invocation/{id}/response or /error ends it.
func (p *Proxy) track(req, ans *message) {
	path, _, _ := strings.Cut(req.target, "?")
	switch req.method {
	case "GET":
		if strings.IndexByte(path, '%') >= 0 {
			path, _ = url.PathUnescape(path) // checkTarget let only good escapes through
		}
		if path == nextPath {
			if inv := invocationFrom(ans); inv.RequestID != "" {
				p.start(inv)
			}
		}
	case "POST":
		if id, ok := invocationResult(path); ok {
			p.finish(id)
		}
	}
}

// invocationResult returns the request id of a /invocation/{id}/response or
// /invocation/{id}/error path, as escaped in a request target: the id is
// one path segment, unescaped (FailCurrent escapes it so).
func invocationResult(path string) (id string, ok bool) {
	rest, found := strings.CutPrefix(path, invocationPrefix)
	if !found {
		return "", false
	}
	id, suffix, found := strings.Cut(rest, "/")
	if !found || id == "" || (suffix != "response" && suffix != "error") {
		return "", false
	}
	id, err := url.PathUnescape(id)
	return id, err == nil
}

// invocationFrom reads an invocation from the head of a /next answer.
func invocationFrom(ans *message) *Invocation {
	inv := &Invocation{
		RequestID:   ans.get(HeaderRequestID),
		FunctionARN: ans.get(HeaderInvokedFunctionARN),
		TraceID:     ans.get(HeaderTraceID),
		Start:       time.Now(),
	}
	if ms, err := strconv.ParseInt(ans.get(HeaderDeadlineMs), 10, 64); err == nil && ms > 0 {
		inv.Deadline = time.UnixMilli(ms)
	}
	return inv
}

// lambdaErrorDoc is a Lambda error document, {"errorType":...,"errorMessage":...}:
// the body of the errors the proxy posts and of its own answers.
func lambdaErrorDoc(errorType, message string) []byte {
	body, _ := json.Marshal(struct { // strings always encode
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{errorType, message})
	return body
}
