package supervisor

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Decision values of an audit event.
const (
	DecisionAllow = "allow" // allowed and log_allowed is on
	DecisionDeny  = "deny"  // denied (enforce)
	DecisionAudit = "audit" // would have been denied (audit mode); allowed
	DecisionKill  = "kill"  // the process was killed (exec barrier mismatch)
)

// Event is one audit record: the "vigil" object of an audit line. Fields
// that a later issue adds (Function; RequestID lives on the line) are
// optional so the shape stays stable.
type Event struct {
	Decision string `json:"decision"`
	Op       string `json:"op"` // "exec", "open", "connect"
	Path     string `json:"path,omitempty"`
	Target   string `json:"target,omitempty"` // second path (rename, link): the one not in Path
	Flags    string `json:"flags,omitempty"`
	Address  string `json:"address,omitempty"`
	// Domain is the DNS name the decision is about: the name a query asked
	// (op "dns"), or the name whose answer gave a connect's address.
	Domain   string `json:"domain,omitempty"`
	Family   string `json:"family,omitempty"`
	Pid      int    `json:"pid"`
	Exe      string `json:"exe,omitempty"`
	Rule     string `json:"rule"`
	Source   string `json:"source"`
	Mode     string `json:"mode"`
	Function string `json:"function,omitempty"`
	Detail   string `json:"detail,omitempty"`

	// sealed: Seal recorded the time, the invocation and the count at the
	// decision, which Log then uses (it may run after the caller was
	// answered, and the invocation may be over by then).
	sealed    bool
	at        time.Time
	requestID string
}

// object names what the event is about, for the message.
func (e *Event) object() string {
	switch {
	case e.Op == "dns" && e.Domain != "":
		return "dns query for " + e.Domain
	case e.Address != "":
		return e.Op + " to " + e.Address
	case e.Path != "":
		return e.Op + " of " + e.Path
	}
	return e.Op
}

// Line is one JSON log line, shaped for AWS Lambda's JSON log format.
type Line struct {
	Timestamp string `json:"timestamp"`
	Level     string `json:"level"`
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
	Logger    string `json:"logger,omitempty"`
	Vigil     any    `json:"vigil,omitempty"`
}

// LineWriter serialises whole lines onto one writer: every line is one
// Write call under one mutex, so audit lines and log lines never interleave.
type LineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLineWriter wraps w (usually os.Stderr).
func NewLineWriter(w io.Writer) *LineWriter { return &LineWriter{w: w} }

// WriteLine writes b plus a newline in a single Write.
func (lw *LineWriter) WriteLine(b []byte) {
	buf := make([]byte, 0, len(b)+1)
	buf = append(buf, b...)
	buf = append(buf, '\n')
	lw.mu.Lock()
	_, _ = lw.w.Write(buf)
	lw.mu.Unlock()
}

// Auditor turns events into audit lines. It is safe for concurrent use.
type Auditor struct {
	out       *LineWriter
	requestID atomic.Pointer[string]
	function  atomic.Pointer[string]
	counter   atomic.Pointer[DenialCounter]
	now       func() time.Time
}

// SetCounter makes later denials (deny and kill decisions) count in c, per
// op; nil stops counting. Audit-mode "would deny" events are not counted.
func (a *Auditor) SetCounter(c *DenialCounter) { a.counter.Store(c) }

// DenialCounter counts denials per op ("open", "exec", "connect", ...). Add
// is lock-free once an op has been seen (one map load and one atomic add);
// Take reads and resets the counts. It is safe for concurrent use.
type DenialCounter struct {
	ops sync.Map // op -> *atomic.Int64
}

// Add counts one denial of op.
func (c *DenialCounter) Add(op string) {
	v, ok := c.ops.Load(op)
	if !ok {
		v, _ = c.ops.LoadOrStore(op, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Take returns the counts since the last Take (ops with none left out; nil
// when there were none) and resets them.
func (c *DenialCounter) Take() map[string]int64 {
	var out map[string]int64
	c.ops.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Swap(0); n > 0 {
			if out == nil {
				out = make(map[string]int64)
			}
			out[k.(string)] = n
		}
		return true
	})
	return out
}

// NewAuditor writes audit lines to out.
func NewAuditor(out *LineWriter) *Auditor { return &Auditor{out: out, now: time.Now} }

// SetRequestID sets the requestId of later lines ("" removes it).
func (a *Auditor) SetRequestID(id string) { a.requestID.Store(&id) }

// SetFunction sets the vigil.function field of later lines ("" removes it).
func (a *Auditor) SetFunction(name string) { a.function.Store(&name) }

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Seal ties e to the moment of its decision: its time, the invocation
// then current (requestId) and, for a denial, its count in the denial
// counter. The supervisor seals an event before it answers the call: the
// function may finish its invocation before the line is written. Log
// seals what is not sealed yet.
func (a *Auditor) Seal(e *Event) {
	if a == nil || e == nil || e.sealed {
		return
	}
	e.sealed, e.at = true, a.now()
	if p := a.requestID.Load(); p != nil {
		e.requestID = *p
	}
	if e.Decision == DecisionDeny || e.Decision == DecisionKill {
		if c := a.counter.Load(); c != nil {
			c.Add(e.Op)
		}
	}
}

// Log writes one event.
func (a *Auditor) Log(e Event) {
	if a == nil || a.out == nil {
		return
	}
	a.Seal(&e)
	l := Line{Timestamp: timestamp(e.at), RequestID: e.requestID}
	switch e.Decision {
	case DecisionAllow:
		l.Level, l.Message = "INFO", "vigil allowed "+e.object()
	case DecisionAudit:
		l.Level, l.Message = "WARN", "vigil would deny "+e.object()
	case DecisionKill:
		l.Level, l.Message = "ERROR", "vigil killed the process at "+e.object()
	default:
		l.Level, l.Message = "WARN", "vigil denied "+e.object()
	}
	if p := a.function.Load(); p != nil && e.Function == "" {
		e.Function = *p
	}
	l.Vigil = &e
	b, err := json.Marshal(&l)
	if err != nil {
		return
	}
	a.out.WriteLine(b)
}

// NewLogger returns Vigil's own logger: go-hclog with JSON output, rewritten
// into the same shape as the audit lines ({"timestamp","level","message",
// "logger","vigil":{key/values}}) and written through the same LineWriter.
func NewLogger(out *LineWriter, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "vigil",
		Level:      level,
		JSONFormat: true,
		Output:     &hclogAdapter{out: out},
	})
}

// hclogAdapter receives hclog's JSON lines ({"@level","@message","@module",
// "@timestamp", key: value...}) and rewrites them.
type hclogAdapter struct {
	mu  sync.Mutex
	buf []byte
	out *LineWriter
}

func (h *hclogAdapter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, p...)
	for {
		i := bytes.IndexByte(h.buf, '\n')
		if i < 0 {
			break
		}
		line := h.buf[:i]
		h.emit(line)
		h.buf = h.buf[i+1:]
	}
	if len(h.buf) == 0 {
		h.buf = nil
	}
	return len(p), nil
}

func (h *hclogAdapter) emit(line []byte) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		// Not JSON: pass it through as the message.
		b, _ := json.Marshal(&Line{Timestamp: timestamp(time.Now()), Level: "INFO", Message: string(line)})
		h.out.WriteLine(b)
		return
	}
	l := Line{Timestamp: timestamp(time.Now())}
	if v, ok := m["@level"].(string); ok {
		l.Level = strings.ToUpper(v)
		if l.Level == "WARNING" {
			l.Level = "WARN"
		}
	}
	if v, ok := m["@message"].(string); ok {
		l.Message = v
	}
	if v, ok := m["@module"].(string); ok {
		l.Logger = v
	}
	for _, k := range []string{"@level", "@message", "@module", "@timestamp", "@caller"} {
		delete(m, k)
	}
	if len(m) > 0 {
		l.Vigil = m
	}
	b, err := json.Marshal(&l)
	if err != nil {
		return
	}
	h.out.WriteLine(b)
}

// LogFormatJSON reports whether Lambda's log format is JSON
// (AWS_LAMBDA_LOG_FORMAT=JSON, any case). Audit lines and Vigil's own log
// lines are JSON either way; in JSON mode Vigil's few plain-text lines
// (the child's "vigil: exec CMD: ..." line, "command not found", usage) are
// JSON objects too.
func LogFormatJSON(getenv func(string) string) bool {
	return strings.EqualFold(strings.TrimSpace(getenv("AWS_LAMBDA_LOG_FORMAT")), "JSON")
}

// FormatLine returns msg as one log line without its newline: msg itself
// when jsonFormat is false, else {"timestamp","level","message"} in the
// shape of the audit lines.
func FormatLine(jsonFormat bool, level, msg string) []byte {
	if !jsonFormat {
		return []byte(msg)
	}
	b, err := json.Marshal(&Line{Timestamp: timestamp(time.Now()), Level: level, Message: msg})
	if err != nil {
		return []byte(msg)
	}
	return b
}

// jsonLinePrefix returns the start of a JSON line whose message begins with
// msg and whose end the caller writes (more message text, then `"}`):
// {"timestamp":...,"level":level,"message":"msg. msg must be short enough
// for the caller's buffer; the text appended must need no JSON escaping.
func jsonLinePrefix(level, msg string) string {
	b := FormatLine(true, level, msg)
	// b ends with `"}`: cut it to leave the message string open.
	return string(b[:len(b)-2])
}
