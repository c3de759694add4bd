package supervisor

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// jsonLine parses one log line as a Lambda JSON log line: an object with
// string timestamp and level.
func jsonLine(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", line, err)
	}
	for _, k := range []string{"timestamp", "level", "message"} {
		if s, ok := m[k].(string); !ok || s == "" {
			t.Fatalf("no %s in %q", k, line)
		}
	}
	return m
}

func TestLogFormatJSON(t *testing.T) {
	for v, want := range map[string]bool{"": false, "Text": false, "JSON": true, "json": true, " JSON ": true, "xml": false} {
		if got := LogFormatJSON(func(string) string { return v }); got != want {
			t.Errorf("AWS_LAMBDA_LOG_FORMAT=%q: %v, want %v", v, got, want)
		}
	}
}

func TestFormatLine(t *testing.T) {
	if got := string(FormatLine(false, "ERROR", `vigil: x: "y"`)); got != `vigil: x: "y"` {
		t.Errorf("text: %q", got)
	}
	m := jsonLine(t, string(FormatLine(true, "ERROR", "vigil: x: \"y\"\n")))
	if m["level"] != "ERROR" || m["message"] != "vigil: x: \"y\"\n" {
		t.Errorf("json: %v", m)
	}
	// The open prefix the child completes with the errno text and `"}`.
	p := jsonLinePrefix("ERROR", `vigil: exec /a"b: `)
	m = jsonLine(t, p+`permission denied"}`)
	if m["message"] != `vigil: exec /a"b: permission denied` {
		t.Errorf("prefix: %v", m)
	}
}

func TestDenialCounter(t *testing.T) {
	var c DenialCounter
	if got := c.Take(); got != nil {
		t.Fatalf("empty: %v", got)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				c.Add("open")
				if j%10 == 0 {
					c.Add("exec")
				}
			}
		}()
	}
	wg.Wait()
	got := c.Take()
	if got["open"] != 800 || got["exec"] != 80 || len(got) != 2 {
		t.Fatalf("counts: %v", got)
	}
	if got := c.Take(); got != nil {
		t.Fatalf("not reset: %v", got)
	}
	c.Add("connect")
	if got := c.Take(); len(got) != 1 || got["connect"] != 1 {
		t.Fatalf("after reset: %v", got)
	}
}

// TestAuditorCounts checks that deny and kill decisions count per op and
// allow and audit decisions do not.
func TestAuditorCounts(t *testing.T) {
	var buf bytes.Buffer
	a := NewAuditor(NewLineWriter(&buf))
	a.Log(Event{Decision: DecisionDeny, Op: "open"}) // before SetCounter: not counted
	var c DenialCounter
	a.SetCounter(&c)
	for _, e := range []Event{
		{Decision: DecisionDeny, Op: "open"},
		{Decision: DecisionDeny, Op: "open"},
		{Decision: DecisionKill, Op: "exec"},
		{Decision: DecisionDeny, Op: "connect"},
		{Decision: DecisionAllow, Op: "open"},
		{Decision: DecisionAudit, Op: "send"},
	} {
		a.Log(e)
	}
	got := c.Take()
	if len(got) != 3 || got["open"] != 2 || got["exec"] != 1 || got["connect"] != 1 {
		t.Fatalf("counts: %v", got)
	}
	a.SetCounter(nil)
	a.Log(Event{Decision: DecisionDeny, Op: "open"})
	if got := c.Take(); got != nil {
		t.Fatalf("counted after SetCounter(nil): %v", got)
	}
	// Every audit line is JSON with timestamp and level, in either format.
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		jsonLine(t, l)
	}
}

// superviseJSON runs args like supervise, with Config.JSONLog.
func superviseJSON(t *testing.T, pol Policy, jsonLog bool, args ...string) runResult {
	t.Helper()
	tmp := t.TempDir()
	errF, err := os.Create(filepath.Join(tmp, "stderr"))
	must(t, err)
	defer errF.Close()
	var audit bytes.Buffer
	lw := NewLineWriter(&syncWriter{w: &audit})
	st, err := Run(Config{
		Policy:  pol,
		Args:    args,
		Stderr:  errF,
		Auditor: NewAuditor(lw),
		Logger:  NewLogger(lw, hclog.Debug),
		JSONLog: jsonLog,
	})
	se, _ := os.ReadFile(errF.Name())
	return runResult{status: st, stderr: string(se), audit: audit.String(), err: err}
}

// TestPlainLinesJSON checks the supervisor's plain-text lines: as they were
// in text mode, JSON objects with timestamp and level in JSON mode.
func TestPlainLinesJSON(t *testing.T) {
	// Command not found (the supervisor writes it).
	r := superviseJSON(t, newPolicy(), false, "no-such-command-vigil")
	if r.status != 127 || r.stderr != "vigil: no-such-command-vigil: command not found\n" {
		t.Fatalf("text: %d %q", r.status, r.stderr)
	}
	r = superviseJSON(t, newPolicy(), true, "no-such-command-vigil")
	if r.status != 127 || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("json: %d %q", r.status, r.stderr)
	}
	m := jsonLine(t, strings.TrimSuffix(r.stderr, "\n"))
	if m["level"] != "ERROR" || m["message"] != "vigil: no-such-command-vigil: command not found" {
		t.Fatalf("json: %v", m)
	}

	// The command's own execve denied (the child writes it).
	denied := "/bin/true"
	r = superviseJSON(t, newPolicy(), false, denied)
	if r.status != 126 || r.stderr != "vigil: exec /bin/true: permission denied\n" {
		t.Fatalf("text exec: %d %q", r.status, r.stderr)
	}
	r = superviseJSON(t, newPolicy(), true, denied)
	if r.status != 126 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("json exec: %d %q", r.status, r.stderr)
	}
	m = jsonLine(t, strings.TrimSuffix(r.stderr, "\n"))
	if m["level"] != "ERROR" || m["message"] != "vigil: exec /bin/true: permission denied" {
		t.Fatalf("json exec: %v", m)
	}
	// A long, quoted argv[0] still makes one valid line within the
	// child's buffer.
	long := "/no/such/" + strings.Repeat(`"x\`, 300)
	r = superviseJSON(t, permissive(), true, long)
	if strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("json long: %d %q", r.status, r.stderr)
	}
	m = jsonLine(t, strings.TrimSuffix(r.stderr, "\n"))
	if msg := m["message"].(string); !strings.HasPrefix(msg, "vigil: exec /no/such/") || !strings.HasSuffix(msg, "...: no such file or directory") {
		t.Fatalf("json long: %q", msg)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.audit), "\n") {
		if l != "" {
			jsonLine(t, l)
		}
	}
}
