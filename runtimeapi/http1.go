package runtimeapi

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// This file is the proxy's HTTP/1.1 wire format: reading and checking a
// message head (RFC 9112 sections 2-5), deciding how its body is delimited
// (section 6), and forwarding a body from one connection to the other
// (section 7: chunked transfer coding with trailers). It is strict: what it
// does not understand exactly, it rejects, so that it never forwards a
// message the next hop could delimit differently.

// maxHeadBytes bounds a message head (start line and fields) and a chunked
// body's trailer section. The Runtime API's largest fields (client context,
// Cognito identity) are a few KiB.
const maxHeadBytes = 1 << 20

// max1xx bounds the informational answers skipped before the real one.
const max1xx = 8

// protoError is a message that breaks HTTP/1.1: the proxy answers it with
// status (to the runtime; an upstream's is always 502) and closes the
// connection, since what follows on it cannot be delimited.
type protoError struct {
	status int
	msg    string
}

func (e *protoError) Error() string { return e.msg }

func badMessage(msg string) error { return &protoError{400, msg} }

var (
	errHeadTooLarge = &protoError{431, "message head larger than 1 MiB"}
	errBareLF       = badMessage("line not ended by CRLF")
)

// field is one header or trailer field; name is in canonical form.
type field struct{ name, value string }

// bodyKind is how a message's body is delimited.
type bodyKind uint8

const (
	bodyNone       bodyKind = iota // no body (requests without framing, HEAD answers, 1xx, 204, 304)
	bodySized                      // Content-Length
	bodyChunked                    // Transfer-Encoding: chunked
	bodyUntilClose                 // an answer without framing: its body ends when the connection does
)

// message is a parsed message head.
type message struct {
	// Request line, or status line.
	method, target string // requests
	code, reason   string // answers: the 3-digit status code and the reason phrase as received
	status         int    // answers: code as a number
	http10         bool   // HTTP/1.0 (else HTTP/1.1)

	fields []field // as received, in order

	length    int64    // Content-Length; -1 when absent
	chunked   bool     // Transfer-Encoding: chunked
	close     bool     // Connection: close (or HTTP/1.0)
	connNames []string // the fields Connection names (hop-by-hop)
	hosts     int      // Host fields (requests)
	expect    string   // Expect, lower case (requests)
}

// get returns the first value of the field name (canonical), or "".
func (m *message) get(name string) string {
	for _, f := range m.fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// readHead reads a message head (start line through the empty line that
// ends it) from br, appending it to buf, and returns it. Lines must end
// with CRLF. An error after no byte was read is br's read error as it is
// (io.EOF when the peer closed between messages).
func readHead(br *bufio.Reader, buf []byte) ([]byte, error) {
	start := len(buf)
	line := start // where the line being read starts
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)-start+len(frag) > maxHeadBytes {
			return buf, errHeadTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue // a line longer than br's buffer
		}
		if err != nil {
			if err == io.EOF && len(buf) > start {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
		l := buf[line:]
		if len(l) < 2 || l[len(l)-2] != '\r' {
			return buf, errBareLF
		}
		if len(l) == 2 {
			return buf, nil
		}
		line = len(buf)
	}
}

// parseRequest parses a request head as readHead returned it. Errors are
// *protoError.
func parseRequest(head string, m *message) error {
	reqLine, rest, err := startLine(head)
	if err != nil {
		return err
	}
	method, rest1, ok1 := strings.Cut(reqLine, " ")
	target, version, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 || !isToken(method) {
		return badMessage("malformed request line")
	}
	if m.http10, err = parseVersion(version); err != nil {
		return err
	}
	if err := checkTarget(method, target); err != nil {
		return err
	}
	m.method, m.target = method, target
	if err := m.parseFields(rest); err != nil {
		return err
	}
	switch {
	case !m.http10 && m.hosts != 1:
		return badMessage("an HTTP/1.1 request needs exactly one Host field")
	case m.hosts > 1:
		return badMessage("more than one Host field")
	case m.http10 && m.chunked:
		// RFC 9112 section 6.1: an HTTP/1.0 message's framing is then faulty.
		return badMessage("Transfer-Encoding in an HTTP/1.0 request")
	}
	return nil
}

// parseAnswer parses the head of an answer to a request. Errors are
// *protoError.
func parseAnswer(head string, m *message) error {
	statusLine, rest, err := startLine(head)
	if err != nil {
		return err
	}
	version, rest1, ok := strings.Cut(statusLine, " ")
	if !ok {
		return badMessage("malformed status line")
	}
	if m.http10, err = parseVersion(version); err != nil {
		return err
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ]; the
	// second SP is often left out when there is no reason.
	code, reason, _ := strings.Cut(rest1, " ")
	if len(code) != 3 || !isDigits(code) || code[0] < '1' || code[0] > '5' {
		return badMessage("malformed status code")
	}
	for i := 0; i < len(reason); i++ {
		if !isFieldByte(reason[i]) {
			return badMessage("control character in reason phrase")
		}
	}
	m.code, m.reason = code, reason
	m.status, _ = strconv.Atoi(code)
	return m.parseFields(rest)
}

// startLine splits a head into its first line (without CRLF) and the rest.
func startLine(head string) (string, string, error) {
	i := strings.Index(head, "\r\n")
	if i <= 0 {
		return "", "", badMessage("empty start line")
	}
	return head[:i], head[i+2:], nil
}

// parseVersion accepts HTTP/1.1 and HTTP/1.0.
func parseVersion(v string) (http10 bool, err error) {
	switch v {
	case "HTTP/1.1":
		return false, nil
	case "HTTP/1.0":
		return true, nil
	}
	if len(v) == 8 && strings.HasPrefix(v, "HTTP/") && isDigits(v[5:6]) && v[6] == '.' && isDigits(v[7:]) {
		return false, &protoError{505, "HTTP version " + v + " not supported"}
	}
	return false, badMessage("malformed HTTP version")
}

// checkTarget accepts the origin form (an absolute path and an optional
// query) and, for OPTIONS, "*": the forms a client sends to a server that
// is not a proxy to it. The target is visible ASCII, and the path's
// percent-escapes are well formed (the proxy decodes it to find the
// invocation a request is about).
func checkTarget(method, target string) error {
	if target == "*" && method == "OPTIONS" {
		return nil
	}
	if target == "" || target[0] != '/' {
		return badMessage("request target is not an absolute path")
	}
	path, _, _ := strings.Cut(target, "?")
	for i := 0; i < len(target); i++ {
		b := target[i]
		if b <= ' ' || b >= 0x7f || b == '#' {
			return badMessage("invalid byte in request target")
		}
		if b == '%' && i < len(path) && (i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2])) {
			return badMessage("malformed percent-escape in request path")
		}
	}
	return nil
}

// parseFields parses the field lines of a head (or a trailer section),
// each ended by CRLF, then the empty line, and the framing and connection
// fields among them.
func (m *message) parseFields(s string) error {
	m.fields = m.fields[:0]
	m.length, m.chunked, m.close, m.connNames, m.hosts, m.expect = -1, false, m.http10, m.connNames[:0], 0, ""
	var lengths, codings int
	for {
		i := strings.Index(s, "\r\n")
		if i < 0 {
			return badMessage("truncated head")
		}
		line := s[:i]
		s = s[i+2:]
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			// Also a line folded onto the previous one (obs-fold: leading
			// white space), which RFC 9112 lets a server reject.
			return badMessage("malformed field line")
		}
		value := strings.Trim(line[colon+1:], " \t")
		for j := 0; j < len(value); j++ {
			if !isFieldByte(value[j]) {
				return badMessage("control character in field value")
			}
		}
		f := field{canonicalName(line[:colon]), value}
		m.fields = append(m.fields, f)
		switch f.name {
		case "Content-Length":
			for _, v := range strings.Split(value, ",") {
				lengths++
				n, ok := parseLength(strings.Trim(v, " \t"))
				if !ok || (m.length >= 0 && n != m.length) {
					return badMessage("invalid or conflicting Content-Length")
				}
				m.length = n
			}
		case "Transfer-Encoding":
			for _, v := range strings.Split(value, ",") {
				if v = strings.Trim(v, " \t"); v == "" {
					continue
				}
				codings++
				if !strings.EqualFold(v, "chunked") || codings > 1 {
					return &protoError{501, "transfer coding other than a single chunked not supported"}
				}
				m.chunked = true
			}
		case "Connection":
			for _, v := range strings.Split(value, ",") {
				if v = strings.Trim(v, " \t"); v == "" {
					continue
				}
				if !isToken(v) {
					return badMessage("malformed Connection field")
				}
				if strings.EqualFold(v, "close") {
					m.close = true
				}
				m.connNames = append(m.connNames, canonicalName(v))
			}
		case "Host":
			m.hosts++
		case "Expect":
			m.expect = strings.ToLower(value)
		}
	}
	if s != "" {
		return badMessage("data after the head")
	}
	if codings > 0 && lengths > 0 {
		// RFC 9112 section 6.3: a classic request-smuggling shape.
		return badMessage("both Transfer-Encoding and Content-Length")
	}
	return nil
}

// parseLength parses a Content-Length value: decimal digits, at most 18
// (no overflow).
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 || !isDigits(v) {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// requestBody is how a request's body is delimited: requests without
// framing have none.
func (m *message) requestBody() bodyKind {
	switch {
	case m.chunked:
		return bodyChunked
	case m.length > 0:
		return bodySized
	}
	return bodyNone
}

// answerBody is how the body of an answer to a request with method is
// delimited (RFC 9112 section 6.3).
func (m *message) answerBody(method string) bodyKind {
	switch {
	case method == "HEAD" || m.status < 200 || m.status == 204 || m.status == 304:
		return bodyNone
	case m.chunked:
		return bodyChunked
	case m.length >= 0:
		return bodySized
	}
	return bodyUntilClose
}

// answerFraming returns how the answer ans to req is delimited as it
// arrives (in) and as it leaves for the client (out), and whether the
// client's connection may carry another request after it. An answer that
// ends when the upstream closes goes on chunked, so that the client's
// connection survives it; an HTTP/1.0 client knows no chunks, and its
// connection ends the answer.
func answerFraming(req, ans *message) (in, out bodyKind, keep bool) {
	in = ans.answerBody(req.method)
	out = in
	switch {
	case in == bodyUntilClose && !req.http10:
		out = bodyChunked
	case in == bodyChunked && req.http10:
		out = bodyUntilClose
	}
	return in, out, !req.close && out != bodyUntilClose
}

// hopByHop reports whether the field name (canonical) describes one
// connection only (RFC 9110 section 7.6.1, and the common non-standard
// ones), or is named as such by the message's Connection field. The
// proxy writes framing fields (Content-Length, Transfer-Encoding, Trailer)
// of its own.
func (m *message) hopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length":
		return true
	}
	for _, n := range m.connNames {
		if n == name {
			return true
		}
	}
	return false
}

// writeFields writes m's end-to-end fields, then the framing fields of its
// body as it leaves (out): Content-Length for a sized body (and for a
// bodiless message that had one: a request's "Content-Length: 0", or a
// HEAD answer's, which describes the representation), or
// Transfer-Encoding: chunked with m's Trailer declarations. A request's
// Host and Expect are the proxy's (the caller writes the upstream's Host).
// It does not end the head.
func (m *message) writeFields(w *bufio.Writer, out bodyKind) {
	request := m.method != ""
	for _, f := range m.fields {
		switch {
		case f.name == "Trailer" && out == bodyChunked:
		case request && (f.name == "Host" || f.name == "Expect"):
			continue
		case m.hopByHop(f.name):
			continue
		}
		writeField(w, f.name, f.value)
	}
	switch {
	case out == bodyChunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case m.length >= 0 && (out == bodySized || out == bodyNone):
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), m.length, 10))
		w.WriteString("\r\n")
	}
}

// writeRequestHead writes the head of request m as it goes to host, its
// body leaving as out.
func (m *message) writeRequestHead(w *bufio.Writer, host string, out bodyKind) {
	w.WriteString(m.method)
	w.WriteString(" ")
	w.WriteString(m.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	m.writeFields(w, out)
	w.WriteString("\r\n")
}

// writeAnswerHead writes the head of answer m as it goes on, its body
// leaving as out; unless keep, it says the connection closes after it.
func (m *message) writeAnswerHead(w *bufio.Writer, out bodyKind, keep bool) {
	w.WriteString("HTTP/1.1 ")
	w.WriteString(m.code)
	w.WriteString(" ")
	w.WriteString(m.reason)
	w.WriteString("\r\n")
	m.writeFields(w, out)
	if !keep {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
}

func writeField(w *bufio.Writer, name, value string) {
	w.WriteString(name)
	w.WriteString(": ")
	w.WriteString(value)
	w.WriteString("\r\n")
}

// forwarder forwards a message body from src to dst as it arrives.
//
// dst is flushed before a read of src that would wait (src has not
// buffered what is needed), except the body's first read: what has arrived
// leaves at once, and a head (already in dst) leaves with the body's start
// in one write, or with the whole body when it is already complete.
type forwarder struct {
	src     *bufio.Reader
	dst     *bufio.Writer
	started bool // the body's first read happened
	flushed bool // dst was flushed: the receiver may have seen some of the message
}

// srcError is the sending side's failure (it broke the framing, or its
// connection failed); other errors from forward are the receiving side's.
type srcError struct{ err error }

func (e *srcError) Error() string { return e.err.Error() }
func (e *srcError) Unwrap() error { return e.err }

// fill makes src have at least n bytes buffered, flushing dst first if
// that means waiting.
func (f *forwarder) fill(n int) error {
	first := !f.started
	f.started = true
	if f.src.Buffered() >= n {
		return nil
	}
	if !first && f.dst.Buffered() > 0 {
		f.flushed = true
		if err := f.dst.Flush(); err != nil {
			return err
		}
	}
	if _, err := f.src.Peek(n); err != nil {
		return &srcError{err}
	}
	return nil
}

// forward forwards a body delimited as in from src to dst delimited as out:
// bodySized and bodyChunked bodies leave as they came (chunk by chunk, with
// the trailers), bodyUntilClose leaves chunked or as it came (the receiver
// then sees dst's connection close); out bodySized or bodyUntilClose for a
// chunked body drops the chunk framing and the trailers. size is in's
// Content-Length; trailers are read into scratch. The caller flushes dst.
func (f *forwarder) forward(in, out bodyKind, size int64, scratch []byte) error {
	switch in {
	case bodySized:
		return f.copyN(size)
	case bodyUntilClose:
		return f.copyToEOF(out == bodyChunked)
	case bodyChunked:
		return f.forwardChunks(out == bodyChunked, scratch)
	}
	return nil
}

// copyN forwards n bytes.
func (f *forwarder) copyN(n int64) error {
	for n > 0 {
		if err := f.fill(1); err != nil {
			return eofIsTruncation(err)
		}
		b, _ := f.src.Peek(int(min(int64(f.src.Buffered()), n)))
		if _, err := f.dst.Write(b); err != nil {
			return err
		}
		f.src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// copyToEOF forwards what src sends until it closes, as chunks or as it
// came.
func (f *forwarder) copyToEOF(chunked bool) error {
	for {
		if err := f.fill(1); err != nil {
			var se *srcError
			if errors.As(err, &se) && se.err == io.EOF {
				break
			}
			return err
		}
		b, _ := f.src.Peek(f.src.Buffered())
		if chunked {
			writeChunkSize(f.dst, int64(len(b)))
		}
		if _, err := f.dst.Write(b); err != nil {
			return err
		}
		if chunked {
			f.dst.WriteString("\r\n")
		}
		f.src.Discard(len(b))
	}
	if chunked {
		_, err := f.dst.WriteString("0\r\n\r\n")
		return err
	}
	return nil
}

// forwardChunks forwards a chunked body: each chunk with the size it came
// with (its extensions dropped), then the trailer fields (but those that
// describe one connection or the framing); or, unless chunked, only the
// data.
func (f *forwarder) forwardChunks(chunked bool, scratch []byte) error {
	for {
		if err := f.fill(1); err != nil {
			return eofIsTruncation(err)
		}
		line, err := f.src.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return &srcError{badMessage("chunk size line too long")}
			}
			return eofIsTruncation(&srcError{err})
		}
		n, err := parseChunkSize(line)
		if err != nil {
			return &srcError{err}
		}
		if n == 0 {
			break
		}
		if chunked {
			writeChunkSize(f.dst, n)
		}
		if err := f.copyN(n); err != nil {
			return err
		}
		if err := f.crlf(); err != nil {
			return err
		}
		if chunked {
			if _, err := f.dst.WriteString("\r\n"); err != nil {
				return err
			}
		}
	}
	// The trailer section: field lines, then an empty line.
	if err := f.fill(1); err != nil {
		return eofIsTruncation(err)
	}
	raw, err := readHead(f.src, scratch)
	if err != nil {
		return eofIsTruncation(&srcError{err})
	}
	var t message
	if err := t.parseFields(string(raw)); err != nil {
		return &srcError{err}
	}
	if !chunked {
		return nil
	}
	f.dst.WriteString("0\r\n")
	for _, fl := range t.fields {
		if fl.name != "Host" && fl.name != "Trailer" && !t.hopByHop(fl.name) {
			writeField(f.dst, fl.name, fl.value)
		}
	}
	_, err = f.dst.WriteString("\r\n")
	return err
}

// crlf reads the CRLF that ends a chunk's data.
func (f *forwarder) crlf() error {
	if err := f.fill(2); err != nil {
		return eofIsTruncation(err)
	}
	b, _ := f.src.Peek(2)
	if b[0] != '\r' || b[1] != '\n' {
		return &srcError{badMessage("chunk data not followed by CRLF")}
	}
	f.src.Discard(2)
	return nil
}

func eofIsTruncation(err error) error {
	if errors.Is(err, io.EOF) {
		return &srcError{io.ErrUnexpectedEOF}
	}
	return err
}

// parseChunkSize parses a chunk-size line: hex digits, optional white
// space and chunk extensions (dropped), CRLF.
func parseChunkSize(line []byte) (int64, error) {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, errBareLF
	}
	line = line[:len(line)-2]
	i := 0
	for i < len(line) && isHex(line[i]) {
		i++
	}
	// 15 hex digits at most: no overflow.
	if i == 0 || i > 15 {
		return 0, badMessage("malformed chunk size")
	}
	n, _ := strconv.ParseInt(string(line[:i]), 16, 64)
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, badMessage("malformed chunk size")
	}
	for _, b := range rest {
		if !isFieldByte(b) {
			return 0, badMessage("control character in chunk extension")
		}
	}
	return n, nil
}

func writeChunkSize(w *bufio.Writer, n int64) {
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 16))
	w.WriteString("\r\n")
}

// canonicalName returns a field name in Go's canonical form
// (Content-Type): upper case at the start and after each hyphen, lower
// case elsewhere. It allocates only when name is not already canonical.
func canonicalName(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (upper && 'a' <= c && c <= 'z') || (!upper && 'A' <= c && c <= 'Z') {
			return canonicalize([]byte(name))
		}
		upper = c == '-'
	}
	return name
}

func canonicalize(b []byte) string {
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// isToken reports whether s is an RFC 9110 token (a method, a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// isFieldByte reports whether c may stand in a field value, a reason
// phrase or a chunk extension: anything but control characters other than
// HTAB.
func isFieldByte(c byte) bool { return c == '\t' || (c >= ' ' && c != 0x7f) }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}
