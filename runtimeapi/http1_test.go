package runtimeapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// forwardRequest runs a request from the runtime through the proxy's wire
// code as conn.go does (head parsed, written as it leaves for host, body
// forwarded as it came) and returns what would go upstream. The reader's
// buffer is small so that long lines take the slow paths.
func forwardRequest(in string) (string, *message, error) { return forwardRequestAs(in, false) }

// forwardRequestAs is forwardRequest; with data, the body is forwarded
// as its data only (no framing, no trailers): what the receiver reads.
func forwardRequestAs(in string, data bool) (string, *message, error) {
	br := bufio.NewReaderSize(strings.NewReader(in), 64)
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64)
	raw, err := readHead(br, nil)
	if err != nil {
		return "", nil, err
	}
	m := new(message)
	if err := parseRequest(string(raw), m); err != nil {
		return "", m, err
	}
	kind := m.requestBody()
	outKind := kind
	if data {
		outKind = bodyUntilClose
	}
	m.writeRequestHead(bw, "upstream:9001", kind)
	if data {
		bw.Flush()
		out.Reset()
	}
	f := forwarder{src: br, dst: bw}
	err = f.forward(kind, outKind, m.length, nil)
	bw.Flush()
	return out.String(), m, err
}

// forwardAnswer runs an answer to req (a request head) through the
// proxy's wire code as conn.go does and returns what would go to the
// runtime.
func forwardAnswer(req, in string) (string, *message, error) { return forwardAnswerAs(req, in, false) }

// forwardAnswerAs is forwardAnswer; with data, it returns the body's data
// only.
func forwardAnswerAs(req, in string, data bool) (string, *message, error) {
	var rm message
	if err := parseRequest(req, &rm); err != nil {
		panic(err)
	}
	br := bufio.NewReaderSize(strings.NewReader(in), 64)
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64)
	m := new(message)
	if _, err := readAnswer(br, m, nil); err != nil {
		return "", m, err
	}
	kind, outKind, keep := answerFraming(&rm, m)
	m.writeAnswerHead(bw, outKind, keep)
	if data {
		bw.Flush()
		out.Reset()
		outKind = bodyUntilClose
	}
	f := forwarder{src: br, dst: bw}
	err := f.forward(kind, outKind, m.length, nil)
	bw.Flush()
	return out.String(), m, err
}

func statusOf(err error) int {
	var pe *protoError
	if errors.As(err, &pe) {
		return pe.status
	}
	return 0
}

const host = "Host: 127.0.0.1:9001\r\n"

func TestRequestsRejected(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
	}{
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400},
		{"bare LF in a field line", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400},
		{"CR in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400},
		{"DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", 400},
		{"folded line", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"empty start line", "\r\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"method not a token", "G(T / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\n" + host + "\r\n", 400},
		{"HTTP/2", "GET / HTTP/2.0\r\n" + host + "\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\n" + host + "\r\n", 505},
		{"absolute form", "GET http://x/ HTTP/1.1\r\n" + host + "\r\n", 400},
		{"authority form", "CONNECT x:443 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"asterisk but OPTIONS", "GET * HTTP/1.1\r\n" + host + "\r\n", 400},
		{"bad escape", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400},
		{"cut escape", "GET /a%2 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"fragment", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", 400},
		{"non-ASCII target", "GET /\xc3\xa4 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
		{"differing CLs", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
		{"differing CL list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 3, 4\r\n\r\n", 400},
		{"signed CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: +3\r\n\r\n", 400},
		{"negative CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
		{"empty CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: \r\n\r\n", 400},
		{"huge CL", "POST / HTTP/1.1\r\n" + host + "Content-Length: 9999999999999999999\r\n\r\n", 400},
		{"gzip", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 501},
		{"gzip, chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"chunked twice", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bad Connection", "GET / HTTP/1.1\r\n" + host + "Connection: a b\r\n\r\n", 400},
		{"head too large", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X-Big: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "\r\n", 431},
		{"one line too large", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n", 431},
	} {
		_, _, err := forwardRequest(tc.in)
		if statusOf(err) != tc.status {
			t.Errorf("%s: error %v (status %d), want status %d", tc.name, err, statusOf(err), tc.status)
		}
	}
}

func TestBodiesRejected(t *testing.T) {
	const chunked = "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n"
	for _, tc := range []struct {
		name, in string
		status   int // 0: the body broke off (io.ErrUnexpectedEOF)
	}{
		{"chunk size not hex", chunked + "zz\r\nab\r\n0\r\n\r\n", 400},
		{"chunk size empty", chunked + "\r\n", 400},
		{"chunk size signed", chunked + "+2\r\nab\r\n0\r\n\r\n", 400},
		{"chunk size too large", chunked + "1000000000000000\r\n", 400},
		{"chunk size then junk", chunked + "2 x\r\nab\r\n0\r\n\r\n", 400},
		{"chunk size bare LF", chunked + "2\nab\r\n0\r\n\r\n", 400},
		{"chunk data too long", chunked + "2\r\nabc\r\n0\r\n\r\n", 400},
		{"chunk extension with control", chunked + "2;a=\x01\r\nab\r\n0\r\n\r\n", 400},
		{"bad trailer", chunked + "0\r\nX y: z\r\n\r\n", 400},
		{"chunked body cut", chunked + "5\r\nab", 0},
		{"no last chunk", chunked + "2\r\nab\r\n", 0},
		{"no end of trailers", chunked + "0\r\nX-T: v\r\n", 0},
		{"sized body cut", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nab", 0},
	} {
		_, _, err := forwardRequest(tc.in)
		var se *srcError
		if !errors.As(err, &se) {
			t.Errorf("%s: error %v, want the sender's", tc.name, err)
			continue
		}
		if tc.status == 0 && !errors.Is(err, io.ErrUnexpectedEOF) || tc.status != 0 && statusOf(err) != tc.status {
			t.Errorf("%s: error %v (status %d), want status %d", tc.name, err, statusOf(err), tc.status)
		}
	}
}

func TestRequestForwarded(t *testing.T) {
	for _, tc := range []struct{ name, in, out string }{
		{
			"fields in order, canonical names, end-to-end only, Host replaced",
			"GET /2018-06-01/runtime/invocation/next?a=%20 HTTP/1.1\r\nuser-agent: aws-lambda-go\r\nHost: 127.0.0.1:1\r\n" +
				"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n" +
				"Proxy-Authorization: x\r\nProxy-Connection: x\r\nx-a: 1\r\nX-A: 2\r\nX-Empty:\r\nX-Ws: \t v \t\r\n\r\n",
			"GET /2018-06-01/runtime/invocation/next?a=%20 HTTP/1.1\r\nHost: upstream:9001\r\nUser-Agent: aws-lambda-go\r\n" +
				"X-A: 1\r\nX-A: 2\r\nX-Empty: \r\nX-Ws: v\r\n\r\n",
		},
		{
			"sized body, Expect dropped, duplicate equal lengths made one",
			"POST /x/response HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\nContent-Length: 5\r\nExpect: 100-continue\r\nContent-Type: text/plain\r\n\r\nhello",
			"POST /x/response HTTP/1.1\r\nHost: upstream:9001\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		},
		{
			"Content-Length: 0 kept",
			"POST /x HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			"POST /x HTTP/1.1\r\nHost: upstream:9001\r\nContent-Length: 0\r\n\r\n",
		},
		{
			"chunked: sizes kept, extensions dropped, trailers but hop-by-hop and framing ones",
			"POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n" +
				"5;ext=1\r\nhello\r\n00A \t;x\r\n0123456789\r\n0\r\nlambda-runtime-function-error-type: Function.X\r\nConnection: close\r\nContent-Length: 3\r\nTrailer: x\r\nHost: h\r\n\r\n",
			"POST /x HTTP/1.1\r\nHost: upstream:9001\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\na\r\n0123456789\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.X\r\n\r\n",
		},
		{
			"OPTIONS *",
			"OPTIONS * HTTP/1.1\r\n" + host + "\r\n",
			"OPTIONS * HTTP/1.1\r\nHost: upstream:9001\r\n\r\n",
		},
	} {
		out, _, err := forwardRequest(tc.in)
		if err != nil || out != tc.out {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.name, out, err, tc.out)
		}
	}
}

func TestRequestConnection(t *testing.T) {
	for _, tc := range []struct {
		in    string
		close bool
	}{
		{"GET / HTTP/1.1\r\n" + host + "\r\n", false},
		{"GET / HTTP/1.1\r\n" + host + "Connection: Close\r\n\r\n", true},
		{"GET / HTTP/1.0\r\n\r\n", true},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true}, // no HTTP/1.0 keep-alive
	} {
		_, m, err := forwardRequest(tc.in)
		if err != nil || m.close != tc.close {
			t.Errorf("%q: close %v, %v; want %v", tc.in, m.close, err, tc.close)
		}
	}
}

func TestAnswerForwarded(t *testing.T) {
	const get = "GET /x HTTP/1.1\r\n" + host + "\r\n"
	const get10 = "GET /x HTTP/1.0\r\n\r\n"
	for _, tc := range []struct{ name, req, in, out string }{
		{
			"sized, reason kept, no Date or Content-Type added",
			get, "HTTP/1.1 202 Accepted\r\nx-reply: a\r\nContent-Length: 2\r\n\r\nok",
			"HTTP/1.1 202 Accepted\r\nX-Reply: a\r\nContent-Length: 2\r\n\r\nok",
		},
		{
			"1xx skipped, no reason phrase",
			get, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
			"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
		},
		{
			"until close: chunked to an HTTP/1.1 runtime",
			get, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nall of it\r\n0\r\n\r\n",
		},
		{
			"until close: as it comes to an HTTP/1.0 runtime",
			get10, "HTTP/1.0 200 OK\r\n\r\nall of it",
			"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
		},
		{
			"chunked to an HTTP/1.0 runtime: data only",
			get10, "HTTP/1.1 200 OK\r\nTrailer: X-Done\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Done: yes\r\n\r\n",
			"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc",
		},
		{
			"chunked with trailers",
			get, "HTTP/1.1 200 OK\r\nTrailer: X-Done\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Done: yes\r\nX-Late: late\r\n\r\n",
			"HTTP/1.1 200 OK\r\nTrailer: X-Done\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Done: yes\r\nX-Late: late\r\n\r\n",
		},
		{
			"HEAD: Content-Length kept, no body",
			"HEAD /x HTTP/1.1\r\n" + host + "\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n",
		},
		{
			"204: no body",
			get, "HTTP/1.1 204 No Content\r\n\r\n",
			"HTTP/1.1 204 No Content\r\n\r\n",
		},
		{
			"the runtime's Connection: close",
			"GET /x HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
			"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
		},
	} {
		out, _, err := forwardAnswer(tc.req, tc.in)
		if err != nil || out != tc.out {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.name, out, err, tc.out)
		}
	}
}

func TestAnswersRejected(t *testing.T) {
	const get = "GET /x HTTP/1.1\r\n" + host + "\r\n"
	for _, tc := range []struct{ name, in string }{
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n"},
		{"status 099", "HTTP/1.1 099 X\r\n\r\n"},
		{"status 600", "HTTP/1.1 600 X\r\n\r\n"},
		{"control character in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"},
		{"endless 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", max1xx+1) + "HTTP/1.1 200 OK\r\n\r\n"},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"differing CLs", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
		{"head too large", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Big: "+strings.Repeat("a", 1000)+"\r\n", 1100) + "\r\n"},
	} {
		if _, _, err := forwardAnswer(get, tc.in); !isProtoError(err) {
			t.Errorf("%s: error %v, want a malformed answer", tc.name, err)
		}
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{
		"content-type":                  "Content-Type",
		"CONTENT-TYPE":                  "Content-Type",
		"Content-Type":                  "Content-Type",
		"lambda-runtime-aws-request-id": HeaderRequestID,
		"te":                            "Te",
		"x-1a":                          "X-1a",
		"a--b":                          "A--B",
		"x_y":                           "X_y",
	} {
		if got := canonicalName(in); got != want {
			t.Errorf("canonicalName(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { canonicalName("Content-Type") }); n != 0 {
		t.Errorf("canonicalName of a canonical name allocates %v times", n)
	}
}
