package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEMFLine checks the shape of the Embedded Metric Format line against
// the EMF specification: _aws.Timestamp (ms), one directive with
// Namespace, Dimensions (arrays of keys of string members) and Metrics
// (Name, Unit) whose names are number members of the root.
func TestEMFLine(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	if b := emfLine(now, "INFO", "f", "r", nil); b != nil {
		t.Fatalf("no denials: %s", b)
	}
	if b := emfLine(now, "INFO", "f", "r", map[string]int64{"open": 0}); b != nil {
		t.Fatalf("zero counts: %s", b)
	}
	b := emfLine(now, "INFO", "orders-api", "req-1", map[string]int64{"open": 2, "exec": 1, "connect": 3})
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	if strings.Contains(string(b), "\n") {
		t.Fatalf("more than one line: %s", b)
	}
	var meta struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.AWS.Timestamp != 1700000000123 {
		t.Errorf("Timestamp %d", meta.AWS.Timestamp)
	}
	if len(meta.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("directives: %s", b)
	}
	d := meta.AWS.CloudWatchMetrics[0]
	if d.Namespace != "Vigil" || !reflect.DeepEqual(d.Dimensions, [][]string{{"function"}}) {
		t.Errorf("directive: %+v", d)
	}
	var names []string
	for _, m := range d.Metrics {
		if m.Unit != "Count" {
			t.Errorf("unit of %s: %q", m.Name, m.Unit)
		}
		names = append(names, m.Name)
		if _, ok := doc[m.Name].(float64); !ok {
			t.Errorf("metric %s has no number member: %s", m.Name, b)
		}
	}
	if want := []string{"Denials", "Denials.connect", "Denials.exec", "Denials.open"}; !reflect.DeepEqual(names, want) {
		t.Errorf("metrics %q, want %q", names, want)
	}
	want := map[string]any{"Denials": 6.0, "Denials.open": 2.0, "Denials.exec": 1.0, "Denials.connect": 3.0,
		"function": "orders-api", "requestId": "req-1", "level": "INFO", "timestamp": "2023-11-14T22:13:20.123Z"}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for _, dims := range d.Dimensions {
		for _, k := range dims {
			if s, ok := doc[k].(string); !ok || s == "" {
				t.Errorf("dimension %s is not a string member", k)
			}
		}
	}

	// No function name: no dimension to reference. The level is the
	// caller's (AWS_LAMBDA_LOG_LEVEL where it is above INFO).
	b = emfLine(now, "ERROR", "", "", map[string]int64{"send": 1})
	if err := json.Unmarshal(b, &doc); err != nil || doc["level"] != "ERROR" {
		t.Errorf("level ERROR: %s", b)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if dims := meta.AWS.CloudWatchMetrics[0].Dimensions; !reflect.DeepEqual(dims, [][]string{{}}) {
		t.Errorf("no function: dimensions %v", dims)
	}
	if strings.Contains(string(b), `"function"`) || strings.Contains(string(b), `"requestId"`) {
		t.Errorf("no function: %s", b)
	}
}

// runEnv runs the bootstrap binary with exactly env.
func runEnv(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var se strings.Builder
	cmd.Stderr = &se
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), se.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, se.String()
}

// TestJSONLogFormat checks that with AWS_LAMBDA_LOG_FORMAT=JSON every line
// the Lambda modes write is a JSON object with timestamp and level: the
// usage line, Vigil's log lines, "command not found" and the failed exec.
func TestJSONLogFormat(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "rules.toml")
	if err := os.WriteFile(pol, []byte("baseline = false\nmetrics = true\n[process]\nexec = [\"/nowhere/*\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin", "AWS_LAMBDA_LOG_FORMAT=JSON", "VIGIL_RULES=" + pol, "AWS_LAMBDA_FUNCTION_NAME=f"}
	check := func(name, stderr string, wantMsg string) {
		t.Helper()
		found := false
		for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Errorf("%s: not JSON: %q", name, l)
				continue
			}
			if ts, _ := m["timestamp"].(string); ts == "" {
				t.Errorf("%s: no timestamp: %q", name, l)
			}
			if lv, _ := m["level"].(string); lv == "" {
				t.Errorf("%s: no level: %q", name, l)
			}
			if msg, _ := m["message"].(string); strings.Contains(msg, wantMsg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no line says %q:\n%s", name, wantMsg, stderr)
		}
	}
	code, se := runEnv(t, env[:2])
	if code != 2 {
		t.Errorf("usage: exit %d", code)
	}
	check("usage", se, "usage: bootstrap")

	code, se = runEnv(t, env, "no-such-command-vigil")
	if code != 127 {
		t.Errorf("not found: exit %d", code)
	}
	check("not found", se, "vigil: no-such-command-vigil: command not found")

	code, se = runEnv(t, env, "/bin/true")
	if code != 126 {
		t.Errorf("exec denied: exit %d", code)
	}
	check("exec denied", se, "vigil: exec /bin/true: permission denied")
	check("exec denied", se, "vigil denied exec of ") // /bin may be /usr/bin

	// Text mode (the default): the plain lines stay plain.
	// (As a line of its own: the policy's log line, written while the
	// supervisor starts, may come before or after it.)
	code, se = runEnv(t, env[2:], "no-such-command-vigil")
	if code != 127 || !slices.Contains(strings.Split(se, "\n"), "vigil: no-such-command-vigil: command not found") {
		t.Errorf("text mode: exit %d:\n%s", code, se)
	}
}
