// Package runtimeapi is Vigil's Lambda Runtime API proxy.
//
// The bootstrap serves the Runtime API on 127.0.0.1 for the function's
// runtime (it points the child's AWS_LAMBDA_RUNTIME_API at Addr) and forwards
// every request to the real Runtime API, unchanged, so that it knows which
// invocation is in flight: Current is what Vigil's audit lines carry.
//
// # What "unchanged" means
//
// The proxy is a plain HTTP/1.1 forwarder to one fixed upstream: net/http's
// Server towards the runtime, and towards the upstream a small pool of
// kept-alive connections written with Request.Write and read with
// ReadResponse on the handler's own goroutine (see upstream.go for why not
// http.Transport; httputil.ReverseProxy is not used either):
//
//   - method, path (as escaped by the runtime), query, status code, bodies and
//     every end-to-end header pass both ways as they are. No X-Forwarded-For,
//     Via or Forwarded header is added; no User-Agent or Accept-Encoding is
//     invented (Go's client would add them); no Content-Type is sniffed and no
//     Date is added to a response that had none.
//   - Hop-by-hop headers (Connection and what it names, Keep-Alive,
//     Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
//     Transfer-Encoding, Upgrade) describe one connection and are not
//     forwarded, as RFC 9110 requires of a proxy. Chunked transfer is kept
//     where the sender used it; trailers are forwarded as trailers, declared
//     or not.
//   - The Host header is the upstream's (the runtime addressed the proxy).
//   - "Expect: 100-continue" is answered by the proxy's server, not
//     forwarded (curl sends it for bodies over 1 KiB); informational (1xx)
//     answers from the upstream are not passed on.
//   - Header names are written in Go's canonical form (HTTP header names are
//     case-insensitive).
//   - Bodies stream in both directions, so a response-streaming function
//     (Lambda-Runtime-Function-Response-Mode: streaming) streams through, and
//     its Lambda-Runtime-Function-Error-Type/-Body trailers follow.
//   - No timeout applies to a request (GET .../invocation/next is a long poll
//     that can last as long as the sandbox is idle or frozen). A request ends
//     when the runtime closes its connection or the proxy is closed; the
//     upstream request is then cancelled too.
//   - Upstream connections are kept alive (one per concurrent request, at
//     most 8 idle); an idle one the upstream closed is noticed before use,
//     and a bodiless request (GET /next) that fails on a reused connection
//     is retried once on a new one.
//   - The runtime's body is forwarded as it arrives: a complete body leaves
//     in one write with its headers, a streamed one chunk by chunk; answers
//     are flushed to the runtime after every read.
//
// If the upstream cannot be reached the runtime gets 502 with a JSON body
// {"errorType":"Vigil.RuntimeAPIUnavailable","errorMessage":...}.
package runtimeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
	srv      *http.Server
	up       *connPool

	ctx    context.Context // cancelled by Close: ends every upstream request
	cancel context.CancelFunc

	current  atomic.Pointer[Invocation]
	onInvoke atomic.Pointer[func(Invocation)]
	onDone   atomic.Pointer[func(Invocation)]

	conns     sync.WaitGroup // open runtime connections (their goroutines)
	served    chan struct{}  // closed when Serve returns
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
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		upstream: upstream,
		log:      log,
		addr:     addr,
		up: &connPool{addr: upstream, dialer: net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}},
		ctx:    ctx,
		cancel: cancel,
		served: make(chan struct{}),
		primed: make(chan struct{}),
	}
	p.srv = &http.Server{
		Handler:                      http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout:            time.Minute,
		DisableGeneralOptionsHandler: true, // "OPTIONS *" is forwarded too
		BaseContext:                  func(net.Listener) context.Context { return ctx },
		// StateNew runs on the Serve goroutine before the connection's own
		// goroutine starts, StateClosed when that goroutine ends: Close can
		// wait for every handler without racing new ones.
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				p.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				p.conns.Done()
			}
		},
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{
			ForceLevel: hclog.Debug,
		}),
	}
	go func() {
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
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("serve failed", "error", err)
		}
		ln.Close()
	}()
	prime := p.up.prime(ctx)
	go func() {
		defer close(p.primed)
		prime()
	}()
	p.log.Debug("listening", "addr", p.Addr(), "upstream", upstream)
	return p, nil
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
// cancels the upstream requests in flight, waits for their handlers to
// return, and closes idle upstream connections. Safe to call more than once.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.closeErr = p.srv.Close()
		<-p.served
		p.conns.Wait()
		<-p.primed
		p.up.close()
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
// upstream.
func (p *Proxy) postError(path, rawPath, errorType, message string) error {
	body, err := json.Marshal(struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{errorType, message})
	if err != nil {
		return fmt.Errorf("runtimeapi: encode error: %w", err)
	}
	ctx, cancel := context.WithTimeout(p.ctx, helperTimeout)
	defer cancel()
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Scheme: "http", Host: p.upstream, Path: path, RawPath: rawPath},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, HeaderErrorType: {errorType}, "User-Agent": nil},
		Host:          p.upstream,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	ex, err := p.up.roundTrip(ctx, req)
	if err != nil {
		return fmt.Errorf("runtimeapi: POST %s: %w", path, err)
	}
	resBody, err := io.ReadAll(io.LimitReader(ex.resp.Body, 4096))
	eof := err == nil && len(resBody) < 4096
	ex.done(eof)
	if ex.resp.StatusCode/100 != 2 {
		return fmt.Errorf("runtimeapi: POST %s: %s: %s", path, ex.resp.Status, strings.TrimSpace(string(resBody)))
	}
	return nil
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

// invocationResult returns the request id of a /invocation/{id}/response or
// /invocation/{id}/error path.
func invocationResult(path string) (id string, ok bool) {
	rest, found := strings.CutPrefix(path, invocationPrefix)
	if !found {
		return "", false
	}
	id, suffix, found := strings.Cut(rest, "/")
	if !found || id == "" || (suffix != "response" && suffix != "error") {
		return "", false
	}
	return id, true
}

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1 (and the
// common non-standard ones).
var hopHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// copyEndToEnd copies the end-to-end headers of src into dst.
func copyEndToEnd(dst, src http.Header) {
	var named []string // headers named by Connection
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				named = append(named, http.CanonicalHeaderKey(f))
			}
		}
	}
outer:
	for k, vv := range src {
		for _, h := range hopHeaders {
			if k == h {
				continue outer
			}
		}
		for _, h := range named {
			if k == h {
				continue outer
			}
		}
		dst[k] = vv
	}
}

// reqBody is the runtime's request body on its way upstream.
//
// Streaming without waste: the upstream writer buffers, and reqBody
// flushes what is buffered before each read of the runtime's body after the
// first, that is before any read that may wait. A body that is already
// complete goes out with its headers in one write; a streamed one goes out
// chunk by chunk as it arrives.
//
// Trailers: at the end of a chunked body it copies the trailers the server
// parsed into the outgoing request's trailer map, which Request.Write sends
// after the body (on the same goroutine, after EOF), declared or not.
type reqBody struct {
	in      *http.Request
	trailer http.Header   // the outgoing request's trailers; nil unless chunked
	bw      *bufio.Writer // the upstream connection's writer, set by the pool
	reads   int
}

func (b *reqBody) Read(buf []byte) (int, error) {
	if b.reads > 0 && b.bw != nil && b.bw.Buffered() > 0 {
		if err := b.bw.Flush(); err != nil {
			return 0, err
		}
	}
	b.reads++
	n, err := b.in.Body.Read(buf)
	if err == io.EOF && b.trailer != nil {
		for k, vv := range b.in.Trailer {
			b.trailer[k] = vv
		}
	}
	return n, err
}

func (b *reqBody) Close() error { return b.in.Body.Close() }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	out := &http.Request{
		Method:     r.Method,
		URL:        &url.URL{Scheme: "http", Host: p.upstream, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(r.Header)+1),
		Host:       p.upstream,
	}
	copyEndToEnd(out.Header, r.Header)
	// The server already answered "Expect: 100-continue" (when the body was
	// first read); the body is sent upstream without waiting for another.
	delete(out.Header, "Expect")
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = nil // stops Go's client adding its own
	}
	switch {
	case r.ContentLength == 0:
		out.Body = http.NoBody
	case r.ContentLength > 0:
		out.ContentLength = r.ContentLength
		out.Body = &reqBody{in: r}
	default: // chunked: keep it chunked and carry the trailers
		out.ContentLength = -1
		out.Trailer = make(http.Header, len(r.Trailer))
		for k := range r.Trailer {
			out.Trailer[k] = nil // declared now, filled at EOF
		}
		out.Body = &reqBody{in: r, trailer: out.Trailer}
	}

	// r.Context() ends when the runtime goes away or on Close.
	ex, err := p.up.roundTrip(r.Context(), out)
	if err != nil {
		if r.Context().Err() != nil {
			// The runtime went away or the proxy is closing: no answer at
			// all (an empty 200 would look like an event).
			p.log.Debug("request cancelled", "method", r.Method, "path", r.URL.Path, "error", err)
			panic(http.ErrAbortHandler)
		}
		p.log.Error("upstream request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeProxyError(w, err)
		return
	}
	res := ex.resp
	bodyDone := false
	defer func() { ex.done(bodyDone) }() // also when a hook or a write panics
	// Invocation tracking happens before the runtime sees the answer: once
	// it has its event the invocation is current, and once its /response
	// or /error returned the invocation is over.
	if res.StatusCode/100 == 2 {
		switch r.Method {
		case http.MethodGet:
			if r.URL.Path == nextPath {
				if inv := invocationFrom(res.Header); inv.RequestID != "" {
					p.start(inv)
				}
			}
		case http.MethodPost:
			if id, isResult := invocationResult(r.URL.Path); isResult {
				p.finish(id)
			}
		}
	}

	h := w.Header()
	copyEndToEnd(h, res.Header)
	if _, ok := res.Header["Content-Type"]; !ok {
		h["Content-Type"] = nil // no sniffing
	}
	if _, ok := res.Header["Date"]; !ok {
		h["Date"] = nil
	}
	declared := make(map[string]bool, len(res.Trailer))
	for k := range res.Trailer {
		h.Add("Trailer", k)
		declared[k] = true
	}
	w.WriteHeader(res.StatusCode)
	err = copyFlushing(w, res.Body)
	bodyDone = err == nil
	if err != nil {
		// Abort the connection: returning would end a chunked answer
		// cleanly and make the truncated body look complete.
		p.log.Debug("response copy ended early", "method", r.Method, "path", r.URL.Path, "error", err)
		panic(http.ErrAbortHandler)
	}
	for k, vv := range res.Trailer {
		if declared[k] {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}

}

// invocationFrom reads an invocation from the headers of a /next response.
func invocationFrom(h http.Header) *Invocation {
	inv := &Invocation{
		RequestID:   h.Get(HeaderRequestID),
		FunctionARN: h.Get(HeaderInvokedFunctionARN),
		TraceID:     h.Get(HeaderTraceID),
		Start:       time.Now(),
	}
	if ms, err := strconv.ParseInt(h.Get(HeaderDeadlineMs), 10, 64); err == nil && ms > 0 {
		inv.Deadline = time.UnixMilli(ms)
	}
	return inv
}

// copyFlushing copies src to w, flushing after every read so that streamed
// bodies stream.
func copyFlushing(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func writeProxyError(w http.ResponseWriter, err error) {
	body, _ := json.Marshal(struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}{"Vigil.RuntimeAPIUnavailable", "vigil: runtime API proxy: " + err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(body)
}
