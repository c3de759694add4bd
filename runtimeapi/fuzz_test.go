package runtimeapi

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// The fuzz targets feed arbitrary bytes to the proxy's wire code as a
// request from the runtime (FuzzRequest) or as an answer from the
// upstream (FuzzAnswer). Whatever the proxy accepts and forwards must be
// well framed for the next hop: net/http reads the forwarded message
// without error, with the same body data and end-to-end fields the proxy
// read; and forwarding it again changes nothing. The seed corpora are in
// testdata/fuzz.

func FuzzRequest(f *testing.F) {
	f.Add([]byte("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, m, err := forwardRequest(string(in))
		if err != nil {
			return
		}
		data, _, err := forwardRequestAs(string(in), true)
		if err != nil {
			t.Fatalf("forwarded, but its data cannot be read again: %v", err)
		}
		again, _, err := forwardRequest(out)
		if err != nil || again != out {
			t.Fatalf("forwarding the forwarded request:\n%q\n%v\nchanged it to\n%q", out, err, again)
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(out)))
		if err != nil {
			t.Fatalf("net/http cannot read the forwarded request %q: %v", out, err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil || string(body) != data {
			t.Fatalf("net/http reads the body of %q as %q (%v), the proxy as %q", out, body, err, data)
		}
		if req.Method != m.method || req.RequestURI != m.target || req.Host != "upstream:9001" {
			t.Fatalf("net/http reads %q as %s %s for %s", out, req.Method, req.RequestURI, req.Host)
		}
		sameFields(t, out, m, req.Header)
	})
}

func FuzzAnswer(f *testing.F) {
	f.Add(false, []byte("HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 2\r\n\r\n{}"))
	f.Fuzz(func(t *testing.T, head bool, in []byte) {
		req := "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
		method := "GET"
		if head {
			req, method = "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", "HEAD"
		}
		out, m, err := forwardAnswer(req, string(in))
		if err != nil {
			return
		}
		data, _, err := forwardAnswerAs(req, string(in), true)
		if err != nil {
			t.Fatalf("forwarded, but its data cannot be read again: %v", err)
		}
		again, _, err := forwardAnswer(req, out)
		if err != nil || again != out {
			t.Fatalf("forwarding the forwarded answer:\n%q\n%v\nchanged it to\n%q", out, err, again)
		}
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("net/http cannot read the forwarded answer %q: %v", out, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil || string(body) != data {
			t.Fatalf("net/http reads the body of %q as %q (%v), the proxy as %q", out, body, err, data)
		}
		if res.StatusCode != m.status {
			t.Fatalf("net/http reads the status of %q as %d", out, res.StatusCode)
		}
		sameFields(t, out, m, res.Header)
	})
}

// sameFields checks that net/http read the end-to-end fields of m from
// out as the proxy did.
func sameFields(t *testing.T, out string, m *message, h http.Header) {
	t.Helper()
	want := http.Header{}
	for _, f := range m.fields {
		if !m.hopByHop(f.name) && f.name != "Host" && f.name != "Expect" {
			want[f.name] = append(want[f.name], f.value)
		}
	}
	for k, vv := range want {
		if !slices.Equal(h[k], vv) {
			t.Fatalf("net/http reads %s of %q as %q, the proxy as %q", k, out, h[k], vv)
		}
	}
}
