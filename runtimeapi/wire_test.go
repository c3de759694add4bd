package runtimeapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawUpstream is a Runtime API stand-in that speaks raw bytes: serve runs
// for each connection the proxy makes (the first is the one New primes).
func rawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// dialProxy opens a raw connection to the proxy; the test writes requests
// on it by hand.
func dialProxy(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// within returns what ch delivers within 5 s; otherwise the test fails,
// saying what it waited for.
func within[T any](t *testing.T, ch <-chan T, waitedFor string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for " + waitedFor)
		panic("unreachable")
	}
}

// errorDoc reads a proxy answer's Lambda error document.
func errorDoc(t *testing.T, res *http.Response) map[string]string {
	t.Helper()
	var doc map[string]string
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &doc); err != nil || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q (%s): not a JSON error document: %v", res.StatusCode, b, res.Header.Get("Content-Type"), err)
	}
	return doc
}

// TestBadRequestRejected: a request the proxy cannot delimit exactly gets
// a 4xx with a Lambda error document, its connection is closed, and
// nothing reaches the upstream.
func TestBadRequestRejected(t *testing.T) {
	up := newFakeAPI(t, nil)
	p := newProxy(t, up.addr())
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"CL and TE", "POST " + invocationPrefix + "x/response HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
		{"differing CLs", "POST " + invocationPrefix + "x/response HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc", 400},
		{"bare LF", "GET " + nextPath + " HTTP/1.1\nHost: h\n\n", 400},
		{"no Host", "GET " + nextPath + " HTTP/1.1\r\n\r\n", 400},
		{"gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"HTTP/2", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"Expect", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
		{"head too large", "GET " + nextPath + " HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Big: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "\r\n", 431},
	} {
		c, br := dialProxy(t, p)
		go io.WriteString(c, tc.req) // the proxy may answer before it read all
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		doc := errorDoc(t, res)
		if res.StatusCode != tc.status || doc["errorType"] != "Vigil.BadRequest" || !res.Close {
			t.Errorf("%s: %d %v close %v", tc.name, res.StatusCode, doc, res.Close)
		}
		// EOF, or a reset when the proxy closed with the request unread.
		if b, err := br.ReadByte(); err == nil {
			t.Errorf("%s: connection not closed after the rejection: read %q", tc.name, b)
		}
	}
	if n := up.count(); n != 0 {
		t.Errorf("%d rejected requests reached the upstream", n)
	}
}

// TestBadChunkAbortsUpstream: a chunked body that breaks its framing half
// way, after its first chunk went upstream, is not passed off upstream as
// complete (the upstream connection is closed mid-body), and the runtime
// gets 400.
func TestBadChunkAbortsUpstream(t *testing.T) {
	first := make(chan string, 1)
	got := make(chan error, 1)
	addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // the runtime's request goes on the primed connection
		}
		b := make([]byte, 3)
		_, err = io.ReadFull(req.Body, b)
		first <- string(b)
		if err == nil {
			_, err = io.ReadAll(req.Body)
		}
		got <- err
	})
	p := newProxy(t, addr)
	c, br := dialProxy(t, p)
	io.WriteString(c, "POST "+invocationPrefix+"x/response HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
	if b := within(t, first, "the first chunk upstream"); b != "abc" {
		t.Fatalf("first chunk %q", b)
	}
	io.WriteString(c, "zz\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc := errorDoc(t, res); res.StatusCode != 400 || doc["errorType"] != "Vigil.BadRequest" {
		t.Errorf("%d %v", res.StatusCode, doc)
	}
	if err := within(t, got, "the upstream request to end"); err == nil {
		t.Error("the upstream read a complete body")
	}
}

// TestBadUpstreamAnswer: an answer the proxy cannot delimit exactly is not
// forwarded: the runtime gets 502, and an invocation it named does not
// start.
func TestBadUpstreamAnswer(t *testing.T) {
	for _, ans := range []string{
		"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"HTTP/1.1 200 OK\nLambda-Runtime-Aws-Request-Id: r1\nContent-Length: 2\n\n{}",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
	} {
		addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, ans)
			}
		})
		p := newProxy(t, addr)
		res, err := rawClient.Get("http://" + p.Addr() + nextPath)
		if err != nil {
			t.Fatal(err)
		}
		if doc := errorDoc(t, res); res.StatusCode != 502 || doc["errorType"] != "Vigil.RuntimeAPIUnavailable" {
			t.Errorf("%q: %d %v", ans, res.StatusCode, doc)
		}
		res.Body.Close()
		if cur := p.Current(); cur.RequestID != "" {
			t.Errorf("%q: invocation %q started from a bad answer", ans, cur.RequestID)
		}
	}
}

// TestTruncatedAnswer: an answer that breaks off never reaches the
// runtime as a complete one: it gets 502 while nothing of the answer had
// left (and no invocation starts), a truncated body after.
func TestTruncatedAnswer(t *testing.T) {
	for _, tc := range []struct {
		ans       string
		truncated bool // part of the body left before the break
	}{
		{"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\npart1\r\n", true},
		{"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 10\r\n\r\npart1", true},
		{"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\npart1\r\nzz\r\n", false},
	} {
		addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, tc.ans)
			}
		})
		p := newProxy(t, addr)
		res, err := rawClient.Get("http://" + p.Addr() + nextPath)
		if err != nil {
			t.Fatal(err)
		}
		if tc.truncated {
			b, err := io.ReadAll(res.Body)
			if err == nil {
				t.Errorf("%q: the runtime read a complete body %q", tc.ans, b)
			}
		} else if doc := errorDoc(t, res); res.StatusCode != 502 || doc["errorType"] != "Vigil.RuntimeAPIUnavailable" {
			t.Errorf("%q: %d %v", tc.ans, res.StatusCode, doc)
		}
		res.Body.Close()
		if cur := p.Current(); cur.RequestID != "" {
			t.Errorf("%q: invocation %q started from a broken answer", tc.ans, cur.RequestID)
		}
	}
}

// TestRuntimeGoneCancelsLongPoll: when the runtime closes its connection
// while its /next waits upstream, the upstream connection is closed (the
// request there is cancelled), and the proxy serves the next connection.
func TestRuntimeGoneCancelsLongPoll(t *testing.T) {
	polls, cancelled := make(chan bool, 1), make(chan bool, 1)
	addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == nextPath && req.Header.Get("X-Hang") != "" {
				polls <- true
				io.Copy(io.Discard, br) // until the proxy closes it
				cancelled <- true
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r2\r\nContent-Length: 2\r\n\r\n{}")
		}
	})
	p := newProxy(t, addr)
	c, _ := dialProxy(t, p)
	io.WriteString(c, "GET "+nextPath+" HTTP/1.1\r\nHost: h\r\nX-Hang: 1\r\n\r\n")
	within(t, polls, "the long poll upstream")
	c.Close()
	within(t, cancelled, "the upstream request's cancellation after the runtime went away")
	get(t, "http://"+p.Addr()+nextPath)
	if p.Current().RequestID != "r2" {
		t.Errorf("Current() = %+v after the next /next", p.Current())
	}
}

// TestRequestSentAhead: a request the runtime sends while its previous
// bodiless one still waits upstream (the watcher reads its first byte) is
// served whole, after the first answer.
func TestRequestSentAhead(t *testing.T) {
	release := make(chan struct{})
	addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if i == 0 {
				<-release
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
		}
	})
	p := newProxy(t, addr)
	c, br := dialProxy(t, p)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // the watcher reads
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	close(release)
	for _, want := range []string{"/first", "/second"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if string(b) != want {
			t.Errorf("answer %q, want %q", b, want)
		}
	}
}

// TestEscapedRequestID: a /response for an invocation whose id the runtime
// had to escape in the path ends that invocation.
func TestEscapedRequestID(t *testing.T) {
	const id = "odd/id ?x"
	up := newFakeAPI(t, nextHandler(id))
	p := newProxy(t, up.addr())
	get(t, "http://"+p.Addr()+nextPath)
	if p.Current().RequestID != id {
		t.Fatalf("Current() = %+v", p.Current())
	}
	res, err := rawClient.Post("http://"+p.Addr()+invocationPrefix+url.PathEscape(id)+"/response", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if s := up.last(t); s.URI != invocationPrefix+"odd%2Fid%20%3Fx/response" {
		t.Errorf("upstream saw %q", s.URI)
	}
	if cur := p.Current(); cur.RequestID != "" {
		t.Errorf("Current() after the /response = %+v", cur)
	}
}

// TestAnswerUntilClose: an answer the upstream ends by closing its
// connection reaches an HTTP/1.1 runtime chunked (its connection stays
// usable) and an HTTP/1.0 one as it came, ending the connection; so does
// a chunked answer to HTTP/1.0.
func TestAnswerUntilClose(t *testing.T) {
	addr := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/chunked" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body")
	})
	p := newProxy(t, addr)
	c, br := dialProxy(t, p)
	for range 2 {
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || string(b) != "the whole body" || len(res.TransferEncoding) != 1 || res.Close {
			t.Errorf("HTTP/1.1: %q %v, transfer encoding %q, close %v", b, err, res.TransferEncoding, res.Close)
		}
	}
	for _, path := range []string{"/x", "/chunked"} {
		c, br := dialProxy(t, p)
		io.WriteString(c, "GET "+path+" HTTP/1.0\r\n\r\n")
		b, err := io.ReadAll(br)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(b), "\r\nConnection: close\r\n") ||
			strings.Contains(string(b), "Transfer-Encoding") || !(strings.HasSuffix(string(b), "\r\n\r\nthe whole body") || strings.HasSuffix(string(b), "\r\n\r\nabcdef")) {
			t.Errorf("HTTP/1.0 %s: %q %v", path, b, err)
		}
	}
}
