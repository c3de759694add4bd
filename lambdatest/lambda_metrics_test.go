package lambdatest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests of Vigil's CloudWatch Embedded Metric Format lines (metrics = true)
// and of AWS_LAMBDA_LOG_FORMAT=JSON under the real RIE.

// emfLines returns the EMF lines (JSON objects with an "_aws" member) in
// RIE's output.
func emfLines(out string) []map[string]any {
	return jsonLines(out, func(m map[string]any) bool { return m["_aws"] != nil })
}

// waitEMF waits for the EMF line of requestID (Vigil writes it once the
// invocation's answer has been accepted, so it may follow the answer).
func waitEMF(r *RIE, requestID string, timeout time.Duration) map[string]any {
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range emfLines(r.Output()) {
			if m["requestId"] == requestID {
				return m
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deniedPerOp counts the deny audit lines of requestID per op.
func deniedPerOp(out, requestID string) map[string]float64 {
	n := map[string]float64{}
	for _, l := range auditLines(out) {
		v := l["vigil"].(map[string]any)
		if l["requestId"] == requestID && (v["decision"] == "deny" || v["decision"] == "kill") {
			n[v["op"].(string)]++
		}
	}
	return n
}

// metricsRIE starts the Go fixture as a custom runtime under Vigil with a
// policy that allows dash (to do several denied things in one invocation)
// and denies secret; extra is added to the top of rules.toml.
func metricsRIE(t *testing.T, extra string, env ...string) (r *RIE, secret string) {
	t.Helper()
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	dir := t.TempDir()
	secret = filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := writeRules(t, dir, fmt.Sprintf(`%s
mode = "enforce"
[runtime]
command = [%q]
[process]
exec = [%q, "/usr/bin/dash"]
allow_writable_exec = true # the fixture is built under /tmp (baseline write)
[filesystem]
read = [%q, "/usr/bin/dash"]
deny = [%q]
`, extra, f.command[0], f.command[0], f.command[0], secret))
	r = startRIE(t, Options{Command: []string{boot}, Env: append([]string{"VIGIL_RULES=" + rules}, env...)})
	return r, secret
}

// TestVigilMetricsEMF: with metrics = true, an invocation with denials gets
// exactly one EMF line counting them per op (the same counts as its deny
// audit lines), with its requestId and the function dimension; an
// invocation without denials gets none. With AWS_LAMBDA_LOG_FORMAT=JSON
// every line Vigil writes is a JSON object with timestamp and level.
func TestVigilMetricsEMF(t *testing.T) {
	r, secret := metricsRIE(t, "metrics = true", "AWS_LAMBDA_LOG_FORMAT=JSON")

	res := invoke(t, r, "vg-m-clean", map[string]any{"action": "echo", "x": 1})
	if a := answer(t, res); res.Status != 200 || a["x"] != float64(1) {
		t.Fatalf("echo: %d %s", res.Status, res.Body)
	}
	// Two denied execs and one denied open in one invocation.
	script := fmt.Sprintf("/usr/bin/id; /usr/bin/id; read x < %s; exit 0", secret)
	res = invoke(t, r, "vg-m-deny", map[string]any{"action": "exec", "argv": []string{"/usr/bin/dash", "-c", script}})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true {
		t.Fatalf("dash: %d %s", res.Status, res.Body)
	}
	m := waitEMF(r, "vg-m-deny", 3*time.Second)
	if m == nil {
		t.Fatalf("no EMF line for vg-m-deny:\n%s", r.Output())
	}
	// One more invocation without denials: it must not get a line, and
	// it lets every line of the previous one be written.
	res = invoke(t, r, "vg-m-clean2", map[string]any{"action": "echo", "x": 2})
	if res.Status != 200 {
		t.Fatalf("echo 2: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-m-read", map[string]any{"action": "read", "path": secret})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	if waitEMF(r, "vg-m-read", 3*time.Second) == nil {
		t.Errorf("no EMF line for vg-m-read")
	}
	out := r.Output()
	if testing.Verbose() {
		t.Logf("RIE output:\n%s", out)
	}

	// The shape (EMF specification): _aws.Timestamp in ms, one directive,
	// namespace Vigil, dimension function, Count metrics whose values are
	// root members.
	aws, _ := m["_aws"].(map[string]any)
	ts, _ := aws["Timestamp"].(float64)
	if d := time.Since(time.UnixMilli(int64(ts))); d < 0 || d > time.Minute {
		t.Errorf("_aws.Timestamp %v is not now in ms", aws["Timestamp"])
	}
	dirs, _ := aws["CloudWatchMetrics"].([]any)
	if len(dirs) != 1 {
		t.Fatalf("CloudWatchMetrics: %v", aws)
	}
	dir := dirs[0].(map[string]any)
	if dir["Namespace"] != "Vigil" || fmt.Sprint(dir["Dimensions"]) != "[[function]]" || m["function"] != "test_function" {
		t.Errorf("directive: %v (function %v)", dir, m["function"])
	}
	metrics := map[string]float64{}
	for _, x := range dir["Metrics"].([]any) {
		md := x.(map[string]any)
		name, _ := md["Name"].(string)
		v, ok := m[name].(float64)
		if md["Unit"] != "Count" || !ok {
			t.Errorf("metric %v: unit or value missing in %v", md, m)
		}
		metrics[name] = v
	}
	audited := deniedPerOp(out, "vg-m-deny")
	if audited["exec"] < 2 || audited["open"] < 1 {
		t.Errorf("audit lines of vg-m-deny: %v", audited)
	}
	var total float64
	for op, n := range audited {
		total += n
		if metrics["Denials."+op] != n {
			t.Errorf("Denials.%s = %v, audit lines say %v", op, metrics["Denials."+op], n)
		}
	}
	if metrics["Denials"] != total || len(metrics) != len(audited)+1 {
		t.Errorf("metrics %v, audit lines %v", metrics, audited)
	}

	// One line per invocation with denials, none for the others.
	per := map[any]int{}
	for _, l := range emfLines(out) {
		per[l["requestId"]]++
	}
	if per["vg-m-deny"] != 1 || per["vg-m-read"] != 1 || len(per) != 2 {
		t.Errorf("EMF lines per request: %v", per)
	}

	// JSON log format: every line from Vigil is a JSON object with
	// timestamp and level. Vigil's lines are the JSON ones and any that
	// mention vigil; the rest are RIE's own and the function's.
	vigilLines := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "{") {
			if strings.Contains(l, "vigil") && !strings.Contains(l, "(rapid)") {
				t.Errorf("a plain-text line from Vigil in JSON log format: %q", l)
			}
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Errorf("not a JSON object: %q", l)
			continue
		}
		ts, _ := obj["timestamp"].(string)
		lv, _ := obj["level"].(string)
		if _, err := time.Parse(time.RFC3339, ts); err != nil || lv == "" {
			t.Errorf("no timestamp or level: %q", l)
		}
		vigilLines++
	}
	if vigilLines < 5 {
		t.Errorf("only %d JSON lines from Vigil:\n%s", vigilLines, out)
	}
}

// TestVigilMetricsOff: without metrics = true there are no EMF lines, and
// audit lines stay JSON in the default text log format.
func TestVigilMetricsOff(t *testing.T) {
	r, secret := metricsRIE(t, "")
	res := invoke(t, r, "vg-off-read", map[string]any{"action": "read", "path": secret})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	if line := waitAudit(r, "open", secret, 3*time.Second); line == nil || line["requestId"] != "vg-off-read" {
		t.Fatalf("audit line for the denied open: %v", line)
	}
	res = invoke(t, r, "vg-off-echo", map[string]any{"action": "echo"})
	if res.Status != 200 {
		t.Fatalf("echo: %d %s", res.Status, res.Body)
	}
	if l := emfLines(r.Output()); len(l) != 0 {
		t.Errorf("EMF lines without metrics = true: %v", l)
	}
}

// vigilLogLines returns Vigil's own log lines (JSON with a "logger") in
// RIE's output.
func vigilLogLines(out string) []map[string]any {
	return jsonLines(out, func(m map[string]any) bool { return m["logger"] != nil })
}

// TestVigilLogLevel: AWS_LAMBDA_LOG_LEVEL (Lambda's advanced logging
// controls, with AWS_LAMBDA_LOG_FORMAT=JSON) filters Vigil's own lines as
// Lambda would, but never a denial: at ERROR a denied open's audit line,
// WARN by nature, is written at ERROR so that Lambda keeps it, and so is
// the EMF line; allowed decisions (log_allowed) below the level are not
// written. At DEBUG the proxy's debug lines appear; an unknown value is
// INFO, with a warning.
func TestVigilLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level       string
		auditLevel  string // of the denial
		emfLevel    string
		allowed     bool     // allowed-decision lines written
		logLevels   []string // levels Vigil's own lines may have
		wantMessage string   // one of Vigil's own lines that must be there ("" none)
		noMessage   string   // one that must not
	}{
		{"ERROR", "ERROR", "ERROR", false, []string{"ERROR"}, "", "starting the runtime under Vigil"},
		{"FATAL", "FATAL", "FATAL", false, nil, "", "starting the runtime under Vigil"},
		{"WARN", "WARN", "WARN", false, []string{"WARN", "ERROR"}, "", "starting the runtime under Vigil"},
		{"DEBUG", "WARN", "INFO", true, []string{"DEBUG", "INFO", "WARN", "ERROR"}, "invocation started", ""},
		{"verbose", "WARN", "INFO", true, []string{"INFO", "WARN", "ERROR"}, "AWS_LAMBDA_LOG_LEVEL is not one of", "invocation started"},
	} {
		t.Run(tc.level, func(t *testing.T) {
			t.Parallel()
			r, secret := metricsRIE(t, "metrics = true\nlog_allowed = true", "AWS_LAMBDA_LOG_FORMAT=JSON", "AWS_LAMBDA_LOG_LEVEL="+tc.level)
			res := invoke(t, r, "vg-lv-read", map[string]any{"action": "read", "path": secret})
			wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
			emf := waitEMF(r, "vg-lv-read", 3*time.Second)
			if emf == nil || emf["level"] != tc.emfLevel {
				t.Errorf("EMF line %v, want level %s", emf, tc.emfLevel)
			}
			line := waitAudit(r, "open", secret, 3*time.Second)
			if line == nil || line["level"] != tc.auditLevel || line["requestId"] != "vg-lv-read" {
				t.Errorf("audit line of the denied open: %v, want level %s", line, tc.auditLevel)
			}
			out := r.Output()
			allowed := 0
			for _, l := range auditLines(out) {
				v := l["vigil"].(map[string]any)
				if v["decision"] == "allow" {
					allowed++
				} else if v["decision"] != "deny" || l["level"] != tc.auditLevel {
					t.Errorf("audit line %v", l)
				}
			}
			// log_allowed logs the runtime's own start and its opens.
			if (allowed > 0) != tc.allowed {
				t.Errorf("%d allowed-decision lines at %s", allowed, tc.level)
			}
			var messages []string
			for _, l := range vigilLogLines(out) {
				messages = append(messages, l["message"].(string))
				if lv, _ := l["level"].(string); !slices.Contains(tc.logLevels, lv) {
					t.Errorf("a %s line at %s: %v", lv, tc.level, l)
				}
			}
			all := strings.Join(messages, "\n")
			if tc.wantMessage != "" && !strings.Contains(all, tc.wantMessage) {
				t.Errorf("no line %q among Vigil's lines:\n%s", tc.wantMessage, all)
			}
			if tc.noMessage != "" && strings.Contains(all, tc.noMessage) {
				t.Errorf("line %q written at %s:\n%s", tc.noMessage, tc.level, all)
			}
		})
	}
}
