package runtimeapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// seen is one request as the fake upstream received it.
type seen struct {
	Method, URI, Host string
	Header, Trailer   http.Header
	Body              string
}

// fakeAPI is a stand-in Runtime API that records what reaches it.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	// handle answers a request after its body was read; nil: 202 "{}".
	handle func(w http.ResponseWriter, r *http.Request, body string)
}

func newFakeAPI(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, body string)) *fakeAPI {
	f := &fakeAPI{handle: handle}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), r.Trailer.Clone(), string(b)})
		f.mu.Unlock()
		if f.handle != nil {
			f.handle(w, r, string(b))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "{}")
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) addr() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeAPI) last(t *testing.T) seen {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func newProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := New(upstream, hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// rawClient has no defaults that would hide header changes.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true, Proxy: nil}}

func nextHandler(id string) func(w http.ResponseWriter, r *http.Request, body string) {
	return func(w http.ResponseWriter, r *http.Request, body string) {
		if r.URL.Path != nextPath {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"status":"OK"}`)
			return
		}
		h := w.Header()
		h.Set(HeaderRequestID, id)
		h.Set(HeaderDeadlineMs, "1893456000123")
		h.Set(HeaderInvokedFunctionARN, "arn:aws:lambda:us-east-1:012345678912:function:f")
		h.Set(HeaderTraceID, "Root=1-abc;Parent=def;Sampled=1")
		h.Set(HeaderClientContext, `{"custom":{"a":"b"}}`)
		h.Set(HeaderCognitoIdentity, `{"cognitoIdentityId":"x"}`)
		h.Add("X-Future-Header", "one")
		h.Add("X-Future-Header", "two")
		h.Set("Content-Type", "application/json")
		io.WriteString(w, `{"action":"echo"}`)
	}
}

func TestNextAndResponsePassThrough(t *testing.T) {
	const id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
	up := newFakeAPI(t, nextHandler(id))
	p := newProxy(t, up.addr())
	var mu sync.Mutex
	var invoked, done []Invocation
	p.OnInvoke(func(inv Invocation) {
		if p.Current().RequestID != inv.RequestID {
			t.Errorf("OnInvoke: Current() = %q, want %q", p.Current().RequestID, inv.RequestID)
		}
		mu.Lock()
		invoked = append(invoked, inv)
		mu.Unlock()
	})
	p.OnDone(func(inv Invocation) { mu.Lock(); done = append(done, inv); mu.Unlock() })

	if got := p.Current(); got != (Invocation{}) {
		t.Fatalf("Current() before any invocation = %+v", got)
	}
	req, _ := http.NewRequest("GET", "http://"+p.Addr()+nextPath, nil)
	req.Header.Set("User-Agent", "aws-lambda-go/1.55.1")
	req.Header.Set("X-Runtime-Thing", "v")
	res, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()

	// The runtime sees the upstream's answer unchanged.
	if res.StatusCode != 200 || string(body) != `{"action":"echo"}` {
		t.Fatalf("next: %d %q", res.StatusCode, body)
	}
	for _, k := range []string{HeaderRequestID, HeaderDeadlineMs, HeaderInvokedFunctionARN, HeaderTraceID, HeaderClientContext, HeaderCognitoIdentity, "Content-Type", "Content-Length", "Date"} {
		if res.Header.Get(k) == "" {
			t.Errorf("next: header %s lost", k)
		}
	}
	if got := res.Header.Values("X-Future-Header"); strings.Join(got, ",") != "one,two" {
		t.Errorf("X-Future-Header = %q", got)
	}
	// The upstream sees the runtime's request unchanged.
	s := up.last(t)
	if s.URI != nextPath || s.Host != up.addr() {
		t.Errorf("upstream got URI %q host %q", s.URI, s.Host)
	}
	if s.Header.Get("User-Agent") != "aws-lambda-go/1.55.1" || s.Header.Get("X-Runtime-Thing") != "v" {
		t.Errorf("upstream request headers: %v", s.Header)
	}
	for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "Via", "Accept-Encoding"} {
		if _, ok := s.Header[k]; ok {
			t.Errorf("proxy added %s: %v", k, s.Header[k])
		}
	}

	cur := p.Current()
	want := Invocation{
		RequestID:   id,
		Deadline:    time.UnixMilli(1893456000123),
		FunctionARN: "arn:aws:lambda:us-east-1:012345678912:function:f",
		TraceID:     "Root=1-abc;Parent=def;Sampled=1",
	}
	if cur.RequestID != want.RequestID || !cur.Deadline.Equal(want.Deadline) || cur.FunctionARN != want.FunctionARN || cur.TraceID != want.TraceID || cur.Start.IsZero() {
		t.Errorf("Current() = %+v, want %+v", cur, want)
	}

	// The /response: body, content type and headers pass; the invocation ends.
	req, _ = http.NewRequest("POST", "http://"+p.Addr()+invocationPrefix+id+"/response", strings.NewReader(`{"ok":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header["User-Agent"] = nil // the runtime sends none
	res, err = rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 202 || string(body) != `{"status":"OK"}` {
		t.Fatalf("response: %d %q", res.StatusCode, body)
	}
	s = up.last(t)
	if s.Method != "POST" || s.URI != invocationPrefix+id+"/response" || s.Body != `{"ok":true}` || s.Header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream got %+v", s)
	}
	if _, ok := s.Header["User-Agent"]; ok {
		t.Errorf("proxy invented a User-Agent: %q", s.Header["User-Agent"])
	}
	if got := p.Current(); got.RequestID != "" {
		t.Errorf("Current() after response = %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(invoked) != 1 || invoked[0].RequestID != id || len(done) != 1 || done[0].RequestID != id {
		t.Errorf("hooks: invoked %+v done %+v", invoked, done)
	}
}

func TestErrorAndUnknownEndpoints(t *testing.T) {
	up := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body string) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/2099-"):
			w.Header().Set("X-Reply", r.Method)
			w.Header()["Content-Type"] = nil // the upstream sends none
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "teapot")
		case r.URL.Path == nextPath:
			nextHandler("req-1")(w, r, body)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	p := newProxy(t, up.addr())
	get(t, "http://"+p.Addr()+nextPath)

	// /error with the error type header.
	req, _ := http.NewRequest("POST", "http://"+p.Addr()+invocationPrefix+"req-1/error", strings.NewReader(`{"errorType":"E","errorMessage":"m"}`))
	req.Header.Set(HeaderErrorType, "Runtime.Custom")
	res, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	s := up.last(t)
	if res.StatusCode != 202 || s.Header.Get(HeaderErrorType) != "Runtime.Custom" || s.Body != `{"errorType":"E","errorMessage":"m"}` {
		t.Errorf("error: status %d, upstream saw %+v", res.StatusCode, s)
	}
	if p.Current().RequestID != "" {
		t.Error("Current() not cleared by /error")
	}

	// Any other method and path, with an escaped path and a query.
	req, _ = http.NewRequest("PUT", "http://"+p.Addr()+"/2099-01-01/runtime/some%2Fthing?x=1&y=%20", strings.NewReader("payload"))
	res, err = rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	s = up.last(t)
	if res.StatusCode != http.StatusTeapot || string(body) != "teapot" || res.Header.Get("X-Reply") != "PUT" {
		t.Errorf("future endpoint: %d %q %v", res.StatusCode, body, res.Header)
	}
	if s.URI != "/2099-01-01/runtime/some%2Fthing?x=1&y=%20" || s.Body != "payload" {
		t.Errorf("future endpoint upstream saw %q %q", s.URI, s.Body)
	}
	// A response without Content-Type or Date gets none added.
	if _, ok := res.Header["Content-Type"]; ok {
		t.Errorf("proxy sniffed a Content-Type: %q", res.Header["Content-Type"])
	}
}

func TestRejectedResponseKeepsInvocation(t *testing.T) {
	up := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body string) {
		if r.URL.Path == nextPath {
			nextHandler("req-2")(w, r, body)
			return
		}
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	})
	p := newProxy(t, up.addr())
	get(t, "http://"+p.Addr()+nextPath)
	res, err := rawClient.Post("http://"+p.Addr()+invocationPrefix+"req-2/response", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", res.StatusCode)
	}
	if p.Current().RequestID != "req-2" {
		t.Errorf("a rejected /response ended the invocation: Current() = %+v", p.Current())
	}
	// The runtime asks for the next one without answering: the old one is done.
	var done []string
	p.OnDone(func(inv Invocation) { done = append(done, inv.RequestID) })
	get(t, "http://"+p.Addr()+nextPath)
	if len(done) != 1 || done[0] != "req-2" {
		t.Errorf("OnDone after abandoned invocation: %q", done)
	}
}

// TestStreamingResponse: a chunked /response streams through (the upstream
// sees the first chunk before the runtime writes the second) and its
// trailers arrive.
func TestStreamingResponse(t *testing.T) {
	firstSeen := make(chan string, 1)
	type result struct {
		body    string
		trailer http.Header
		header  http.Header
		te      []string
	}
	got := make(chan result, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			t.Errorf("read first chunk: %v", err)
		}
		firstSeen <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		got <- result{string(buf) + string(rest), r.Trailer.Clone(), r.Header.Clone(), r.TransferEncoding}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	p := newProxy(t, strings.TrimPrefix(up.URL, "http://"))

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+p.Addr()+invocationPrefix+"s-1/response", pr)
	req.Header.Set(HeaderResponseMode, "streaming")
	req.Header.Set("Content-Type", "application/vnd.awslambda.http-integration-response")
	req.Trailer = http.Header{HeaderErrorType: nil, HeaderErrorBody: nil}
	resc := make(chan error, 1)
	go func() {
		res, err := rawClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != 202 {
				err = fmt.Errorf("status %d", res.StatusCode)
			}
		}
		resc <- err
	}()
	io.WriteString(pw, "hello")
	if s := within(t, firstSeen, "the first chunk upstream before the body ended (streaming)"); s != "hello" {
		t.Fatalf("first chunk %q", s)
	}
	req.Trailer.Set(HeaderErrorType, "Function.Boom")
	req.Trailer.Set(HeaderErrorBody, "Ym9vbQ==")
	io.WriteString(pw, " world")
	pw.Close()
	if err := <-resc; err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.body != "hello world" {
		t.Errorf("body %q", r.body)
	}
	if len(r.te) != 1 || r.te[0] != "chunked" {
		t.Errorf("transfer encoding %q, want chunked", r.te)
	}
	if r.header.Get(HeaderResponseMode) != "streaming" {
		t.Errorf("response mode header lost: %v", r.header)
	}
	if r.trailer.Get(HeaderErrorType) != "Function.Boom" || r.trailer.Get(HeaderErrorBody) != "Ym9vbQ==" {
		t.Errorf("trailers %v", r.trailer)
	}
}

// TestUndeclaredRequestTrailer: trailers the runtime did not announce in a
// Trailer header still reach the upstream.
func TestUndeclaredRequestTrailer(t *testing.T) {
	up := newFakeAPI(t, nil)
	p := newProxy(t, up.addr())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %sx/response HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\nabc\r\n0\r\n%s: Function.X\r\n\r\n", invocationPrefix, p.Addr(), HeaderErrorType)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	s := up.last(t)
	if res.StatusCode != 202 || s.Body != "abc" || s.Trailer.Get(HeaderErrorType) != "Function.X" {
		t.Errorf("status %d, upstream saw body %q trailer %v", res.StatusCode, s.Body, s.Trailer)
	}
}

// TestStreamingDownstream: an upstream answer written in chunks reaches the
// runtime chunk by chunk, with its trailers.
func TestStreamingDownstream(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Done")
		io.WriteString(w, "part1")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "part2")
		w.Header().Set("X-Done", "yes")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	defer up.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	p := newProxy(t, strings.TrimPrefix(up.URL, "http://"))
	res, err := rawClient.Get("http://" + p.Addr() + "/2018-06-01/runtime/future")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "part1" {
		t.Fatalf("first part %q %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "part2" || res.Trailer.Get("X-Done") != "yes" || res.Trailer.Get("X-Late") != "late" {
		t.Errorf("rest %q trailer %v", rest, res.Trailer)
	}
}

func TestInitError(t *testing.T) {
	up := newFakeAPI(t, nil)
	p := newProxy(t, up.addr())
	if err := p.InitError("Vigil.PolicyError", `rules.toml:3: unknown key "x"`); err != nil {
		t.Fatal(err)
	}
	s := up.last(t)
	var doc map[string]string
	if err := json.Unmarshal([]byte(s.Body), &doc); err != nil {
		t.Fatal(err)
	}
	if s.Method != "POST" || s.URI != initErrorPath || s.Header.Get(HeaderErrorType) != "Vigil.PolicyError" ||
		doc["errorType"] != "Vigil.PolicyError" || doc["errorMessage"] != `rules.toml:3: unknown key "x"` {
		t.Errorf("upstream saw %+v", s)
	}
	// An upstream refusal is an error.
	up.handle = func(w http.ResponseWriter, r *http.Request, body string) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errorType":"InvalidStateTransition"}`)
	}
	if err := p.InitError("Vigil.X", "m"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("refused init error: %v", err)
	}
}

func TestFailCurrent(t *testing.T) {
	up := newFakeAPI(t, nextHandler("req-9"))
	p := newProxy(t, up.addr())
	if err := p.FailCurrent("Runtime.ExitError", "x"); err != nil || up.count() != 0 {
		t.Fatalf("FailCurrent with nothing in flight: err %v, %d upstream requests", err, up.count())
	}
	get(t, "http://"+p.Addr()+nextPath)
	var done []string
	p.OnDone(func(inv Invocation) { done = append(done, inv.RequestID) })
	if err := p.FailCurrent("Runtime.ExitError", "RequestId: req-9 Error: Runtime exited with error: signal: killed"); err != nil {
		t.Fatal(err)
	}
	s := up.last(t)
	if s.URI != invocationPrefix+"req-9/error" || s.Header.Get(HeaderErrorType) != "Runtime.ExitError" || !strings.Contains(s.Body, `"errorType":"Runtime.ExitError"`) {
		t.Errorf("upstream saw %+v", s)
	}
	if p.Current().RequestID != "" || len(done) != 1 || done[0] != "req-9" {
		t.Errorf("after FailCurrent: Current %+v, done %q", p.Current(), done)
	}

	// An invoker-chosen request id with characters a path must escape.
	up.handle = nextHandler("odd/id ?x")
	get(t, "http://"+p.Addr()+nextPath)
	if err := p.FailCurrent("Runtime.ExitError", "m"); err != nil {
		t.Fatal(err)
	}
	if s := up.last(t); s.URI != invocationPrefix+"odd%2Fid%20%3Fx/error" {
		t.Errorf("escaped request id: upstream saw %q", s.URI)
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := newProxy(t, addr)
	res, err := rawClient.Get("http://" + p.Addr() + nextPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"errorType":"Vigil.RuntimeAPIUnavailable"`) {
		t.Errorf("%d %s", res.StatusCode, body)
	}
	if _, err := New("", nil); err == nil {
		t.Error("New accepted an empty upstream")
	}
	if _, err := New("no-port", nil); err == nil {
		t.Error("New accepted an upstream without a port")
	}
}

// TestCloseEndsLongPoll: Close returns promptly with a /next long poll in
// flight, the upstream request is cancelled, and no goroutine is left.
func TestCloseEndsLongPoll(t *testing.T) {
	before := runtime.NumGoroutine()
	cancelled := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(cancelled)
	}))
	p, err := New(strings.TrimPrefix(up.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	errc := make(chan error, 1)
	go func() {
		res, err := client.Get("http://" + p.Addr() + nextPath)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // the poll is waiting upstream
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Error("upstream long poll not cancelled")
	}
	if err := <-errc; err == nil {
		t.Error("runtime's long poll ended without error")
	}
	p.Close() // idempotent
	up.Close()
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func get(t *testing.T, url string) {
	t.Helper()
	res, err := rawClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

// BenchmarkInvocationCycle measures one /next + /response cycle against a
// local fake Runtime API, directly and through the proxy; the difference is
// the proxy's cost per invocation.
func BenchmarkInvocationCycle(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == nextPath {
			w.Header().Set(HeaderRequestID, "bench")
			w.Header().Set(HeaderDeadlineMs, "1893456000123")
			io.WriteString(w, `{"action":"echo"}`)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	p, err := New(strings.TrimPrefix(up.URL, "http://"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cycle := func(b *testing.B, base string) {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		for b.Loop() {
			res, err := client.Get(base + nextPath)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			res, err = client.Post(base+invocationPrefix+"bench/response", "application/json", strings.NewReader(`{"ok":true}`))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	b.Run("direct", func(b *testing.B) { cycle(b, up.URL) })
	b.Run("proxy", func(b *testing.B) { cycle(b, "http://"+p.Addr()) })
}

// TestStaleIdleConnection: an upstream that closes a kept-alive connection
// after each answer (without saying so) costs nothing: the proxy notices
// the closed idle connection and dials again, also for a POST with a body.
func TestStaleIdleConnection(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := 0
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns++
			mu.Unlock()
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n%s: r-%s\r\n\r\nok", HeaderRequestID, req.Method)
			}()
		}
	}()
	p := newProxy(t, ln.Addr().String())
	for i, method := range []string{"GET", "GET", "POST", "GET"} {
		time.Sleep(20 * time.Millisecond) // the upstream's close has landed
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("body")
		}
		req, _ := http.NewRequest(method, "http://"+p.Addr()+nextPath, body)
		res, err := rawClient.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request %d: %d %q", i, res.StatusCode, b)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 4 {
		t.Errorf("%d upstream connections, want 4", conns)
	}
}

// TestIdleConnectionReused: with a keep-alive upstream, consecutive
// invocations share one upstream connection.
func TestIdleConnectionReused(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	up := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body string) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		nextHandler("k")(w, r, body)
	})
	p := newProxy(t, up.addr())
	for range 5 {
		get(t, "http://"+p.Addr()+nextPath)
		res, err := rawClient.Post("http://"+p.Addr()+invocationPrefix+"k/response", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Errorf("%d upstream connections for sequential requests, want 1", len(conns))
	}
}

// TestFirstRequestOnPrimedConnection: New connects to the upstream before
// any request (the cold start's first /next does not wait for a dial), and
// the first request, sent at once, uses that connection rather than a
// second one, whether or not the dial has finished. (An upstream that is
// down at New is no error until a request needs it: TestUpstreamDown.)
func TestFirstRequestOnPrimedConnection(t *testing.T) {
	for _, wait := range []bool{false, true} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 2)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		p := newProxy(t, ln.Addr().String())
		if wait {
			select {
			case c := <-accepted:
				accepted <- c
			case <-time.After(5 * time.Second):
				t.Fatal("no upstream connection before the first request")
			}
		}
		errc := make(chan error, 1)
		go func() {
			res, err := rawClient.Get("http://" + p.Addr() + nextPath)
			if err == nil {
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			errc <- err
		}()
		var c net.Conn
		select {
		case c = <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("no upstream connection")
		}
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.URL.Path != nextPath {
			t.Fatalf("wait %v: upstream read %v %v", wait, req, err)
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}")
		if err := <-errc; err != nil {
			t.Fatalf("wait %v: %v", wait, err)
		}
		select {
		case c2 := <-accepted:
			t.Errorf("wait %v: a second upstream connection from %v", wait, c2.RemoteAddr())
			c2.Close()
		default:
		}
		c.Close()
		ln.Close()
	}

}

// TestExpectContinue: a runtime that sends "Expect: 100-continue" (curl
// does for bodies over 1 KiB) gets its 100 Continue from the proxy and the
// upstream's real answer; an upstream 100 Continue is not passed on.
func TestExpectContinue(t *testing.T) {
	for _, upstreamSends100 := range []bool{false, true} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan seen, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			if upstreamSends100 {
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
			}
			b, _ := io.ReadAll(req.Body)
			got <- seen{Method: req.Method, Header: req.Header, Body: string(b)}
			io.WriteString(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}")
		}()
		p := newProxy(t, ln.Addr().String())
		body := strings.Repeat("x", 2048)
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST %sx/response HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", invocationPrefix, p.Addr(), len(body))
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusContinue {
			t.Fatalf("want 100 Continue first: %v %v", res, err)
		}
		io.WriteString(c, body)
		res, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		c.Close()
		s := <-got
		if res.StatusCode != 202 || string(b) != `{"status":"OK"}` || s.Body != body || s.Header.Get("Expect") != "" {
			t.Errorf("upstream 100: %v: answer %d %q; upstream saw %d bytes, Expect %q", upstreamSends100, res.StatusCode, b, len(s.Body), s.Header.Get("Expect"))
		}
		ln.Close()
	}
}

// BenchmarkCurrent: what the supervisor's audit line pays per denial.
func BenchmarkCurrent(b *testing.B) {
	p, err := New("127.0.0.1:9", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	p.current.Store(&Invocation{RequestID: "r"})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p.Current().RequestID != "r" {
				b.Fatal("lost")
			}
		}
	})
}
