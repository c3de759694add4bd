package supervisor

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestSealAtDecision: an event sealed at its decision keeps the invocation
// and is counted then, even when its line is written after the invocation
// ended (the caller was answered first).
func TestSealAtDecision(t *testing.T) {
	var buf bytes.Buffer
	a := NewAuditor(NewLineWriter(&buf))
	c := new(DenialCounter)
	a.SetCounter(c)
	a.SetRequestID("inv-1")
	ev := &Event{Decision: DecisionDeny, Op: "open", Path: "/etc/shadow"}
	a.Seal(ev)
	// The invocation ends and its denials are taken before the line is
	// written.
	if got := c.Take(); got["open"] != 1 {
		t.Fatalf("denial not counted at its decision: %v", got)
	}
	a.SetRequestID("inv-2")
	a.Log(*ev)
	var line struct {
		RequestID string `json:"requestId"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatal(err)
	}
	if line.RequestID != "inv-1" {
		t.Errorf("line written for %q, want the invocation of the decision, inv-1: %s", line.RequestID, buf.String())
	}
	if got := c.Take(); got != nil {
		t.Errorf("counted twice: %v", got)
	}
}
