package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"vigil/rules"
	"vigil/supervisor"
)

func TestPolicyPath(t *testing.T) {
	dir := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if p, _ := policyPath(env(map[string]string{"VIGIL_RULES": "/x/r.toml", "LAMBDA_TASK_ROOT": dir})); p != "/x/r.toml" {
		t.Errorf("VIGIL_RULES: %s", p)
	}
	// No rules.toml at the task root: the layer's, and both are named.
	p, tried := policyPath(env(map[string]string{"LAMBDA_TASK_ROOT": dir}))
	if p != "/opt/vigil/rules.toml" || len(tried) != 2 || tried[0] != filepath.Join(dir, "rules.toml") {
		t.Errorf("no task rules: %s %q", p, tried)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.toml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, _ := policyPath(env(map[string]string{"LAMBDA_TASK_ROOT": dir})); p != filepath.Join(dir, "rules.toml") {
		t.Errorf("task rules: %s", p)
	}
	if p, _ := policyPath(env(nil)); p != "/var/task/rules.toml" && p != "/opt/vigil/rules.toml" {
		t.Errorf("default task root: %s", p)
	}
}

func TestRuntimeCommandLookup(t *testing.T) {
	withCmd, err := rules.Parse("r.toml", []byte("[runtime]\ncommand = [\"/a\", \"b c\"]\n"), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	without, err := rules.Parse("r.toml", nil, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		if k == "VIGIL_RUNTIME" {
			return " /usr/bin/python3  /var/runtime/bootstrap.py "
		}
		return ""
	}
	if got := runtimeCommand(withCmd, env); !reflect.DeepEqual(got, []string{"/a", "b c"}) {
		t.Errorf("from rules.toml: %q", got)
	}
	if got := runtimeCommand(without, env); !reflect.DeepEqual(got, []string{"/usr/bin/python3", "/var/runtime/bootstrap.py"}) {
		t.Errorf("from VIGIL_RUNTIME: %q", got)
	}
	if got := runtimeCommand(without, func(string) string { return "" }); len(got) != 0 {
		t.Errorf("neither: %q", got)
	}
}

func TestDescribeStatus(t *testing.T) {
	for st, want := range map[int]string{0: "exit status 0", 3: "exit status 3", 137: "signal: killed", 159: "signal: bad system call"} {
		if got := describeStatus(st); got != want {
			t.Errorf("describeStatus(%d) = %q, want %q", st, got, want)
		}
	}
}

// TestWrapperWithoutLambda: the wrapper form outside Lambda runs the
// command under the looked-up policy (no proxy), and a bad policy stops it.
func TestWrapperWithoutLambda(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	rulesPath := filepath.Join(dir, "rules.toml")
	if err := os.WriteFile(rulesPath, []byte("moed = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "")
	t.Setenv("VIGIL_RULES", rulesPath)
	code, _, stderr := runBin(t, "/bin/sh", "-c", "touch "+marker)
	if code != 2 || !strings.Contains(stderr, "Vigil.PolicyError") {
		t.Errorf("bad policy: exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran despite the bad policy")
	}
}

func TestLambdaLogLevel(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  logLevel
		ok    bool
		hclog hclog.Level
	}{
		{"", levelInfo, true, hclog.Info},
		{"TRACE", levelTrace, true, hclog.Trace},
		{"debug", levelDebug, true, hclog.Debug},
		{" Info ", levelInfo, true, hclog.Info},
		{"WARN", levelWarn, true, hclog.Warn},
		{"ERROR", levelError, true, hclog.Error},
		{"FATAL", levelFatal, true, hclog.Off},
		{"WARNING", levelInfo, false, hclog.Info}, // not one of Lambda's values
		{"verbose", levelInfo, false, hclog.Info},
	} {
		l, ok := lambdaLogLevel(tc.in)
		if l != tc.want || ok != tc.ok || l.hclog() != tc.hclog {
			t.Errorf("%q: %v %v %v, want %v %v %v", tc.in, l, ok, l.hclog(), tc.want, tc.ok, tc.hclog)
		}
	}
	if got := levelError.atLeast(levelInfo); got != "ERROR" {
		t.Errorf("ERROR at least INFO: %s", got)
	}
	if got := levelDebug.atLeast(levelInfo); got != "INFO" {
		t.Errorf("DEBUG at least INFO: %s", got)
	}
}

// TestAuditLevelWriter writes real audit lines and log lines through the
// bootstrap's writer at each Lambda log level: denials (deny, audit, kill)
// are never dropped and carry a level Lambda keeps; allowed decisions and
// Vigil's own lines below the level are not written; nothing else in a
// line changes.
func TestAuditLevelWriter(t *testing.T) {
	// A path that spells the writer's markers: escaped in JSON, it must
	// not confuse it.
	tricky := `/tmp/x","level":"FATAL","vigil":{"decision":"allow"`
	events := []supervisor.Event{
		{Decision: supervisor.DecisionDeny, Op: "open", Path: tricky, Rule: "r", Mode: "enforce"},
		{Decision: supervisor.DecisionAudit, Op: "exec", Path: "/usr/bin/id", Rule: "r", Mode: "audit"},
		{Decision: supervisor.DecisionKill, Op: "exec", Path: "/usr/bin/id", Rule: "r", Mode: "enforce"},
		{Decision: supervisor.DecisionAllow, Op: "open", Path: tricky, Rule: "r", Mode: "enforce"},
	}
	// Each event's level at each Lambda level, "" for not written.
	want := map[logLevel][]string{
		levelTrace: {"WARN", "WARN", "ERROR", "INFO"},
		levelDebug: {"WARN", "WARN", "ERROR", "INFO"},
		levelInfo:  {"WARN", "WARN", "ERROR", "INFO"},
		levelWarn:  {"WARN", "WARN", "ERROR", ""},
		levelError: {"ERROR", "ERROR", "ERROR", ""},
		levelFatal: {"FATAL", "FATAL", "FATAL", ""},
	}
	// Vigil's own lines at each Lambda level: which of debug, info, warn,
	// error are written.
	wantLog := map[logLevel]string{
		levelTrace: "DEBUG INFO WARN ERROR", levelDebug: "DEBUG INFO WARN ERROR", levelInfo: "INFO WARN ERROR",
		levelWarn: "WARN ERROR", levelError: "ERROR", levelFatal: "",
	}
	for l := levelTrace; l <= levelFatal; l++ {
		var buf, plain bytes.Buffer
		lw := supervisor.NewLineWriter(auditLevelWriter(&buf, l))
		a := supervisor.NewAuditor(lw)
		a.SetRequestID("req-1")
		a.SetFunction("fn")
		ref := supervisor.NewAuditor(supervisor.NewLineWriter(&plain)) // the same lines, unfiltered
		ref.SetRequestID("req-1")
		ref.SetFunction("fn")
		for _, e := range events {
			a.Log(e)
			ref.Log(e)
		}
		log := supervisor.NewLogger(lw, l.hclog())
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")

		var got []map[string]any
		var gotLog []string
		var raw []string
		for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%v: not JSON: %q", l, line)
			}
			if _, ok := m["logger"]; ok {
				gotLog = append(gotLog, m["level"].(string))
				continue
			}
			got = append(got, m)
			raw = append(raw, line)
		}
		refLines := strings.Split(strings.TrimSuffix(plain.String(), "\n"), "\n")
		i := 0
		for j, lv := range want[l] {
			if lv == "" {
				continue
			}
			if i >= len(got) {
				t.Errorf("%v: event %d (%s) not written", l, j, events[j].Decision)
				continue
			}
			v := got[i]["vigil"].(map[string]any)
			if got[i]["level"] != lv || v["decision"] != events[j].Decision || v["path"] != events[j].Path || got[i]["requestId"] != "req-1" {
				t.Errorf("%v: event %d: %v, want level %s", l, j, got[i], lv)
			}
			// Only the level differs from the unfiltered line (and the
			// timestamp, which may have moved on by a millisecond).
			orig := refLines[j]
			if !strings.Contains(raw[i], `"level":"`+lv+`"`) || withoutLevel(raw[i]) != withoutLevel(orig) {
				t.Errorf("%v: event %d rewritten beyond its level:\n got %s\nfrom %s", l, j, raw[i], orig)
			}
			i++
		}
		if i != len(got) {
			t.Errorf("%v: %d audit lines, want %d: %v", l, len(got), i, got)
		}
		if s := strings.Join(gotLog, " "); s != wantLog[l] {
			t.Errorf("%v: log lines %q, want %q", l, s, wantLog[l])
		}
	}
}

var levelAndTime = regexp.MustCompile(`^\{"timestamp":"[^"]*","level":"[A-Z]+"`)

// withoutLevel cuts an audit line's timestamp and level.
func withoutLevel(line string) string { return levelAndTime.ReplaceAllString(line, "") }

// TestLazyPolicy: every question waits for the policy, then gets the
// policy's own answer.
func TestLazyPolicy(t *testing.T) {
	pol, err := rules.Parse("r.toml", []byte("mode = \"audit\"\nlog_allowed = true\n[process]\nexec = [\"/usr/bin/id\"]\n[filesystem]\nread = [\"/usr/bin/id\"]\n[network]\nconnect = [\"10.0.0.0/8:443\", \"@bus\"]\nlisten = [\"127.0.0.1:8080\", \"@srv\"]\n"), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := newLazyPolicy()
	got := make(chan rules.Decision, 1)
	go func() { got <- l.Exec("/usr/bin/id", rules.Caller{}) }()
	select {
	case d := <-got:
		t.Fatalf("answered before the policy was set: %+v", d)
	case <-time.After(50 * time.Millisecond):
	}
	l.set(pol)
	if d := <-got; d != pol.Exec("/usr/bin/id", rules.Caller{}) || !d.Allow {
		t.Errorf("Exec after set: %+v", d)
	}
	c := rules.Caller{}
	addr := netip.MustParseAddrPort("10.1.2.3:443")
	lis := netip.MustParseAddrPort("127.0.0.1:8080")
	if l.Mode() != rules.Audit || !l.LogAllowed() ||
		l.Open("/usr/bin/id", rules.Read, c) != pol.Open("/usr/bin/id", rules.Read, c) ||
		l.Open("/etc/shadow", rules.Read, c) != pol.Open("/etc/shadow", rules.Read, c) ||
		l.Connect(addr) != pol.Connect(addr) || !l.Connect(addr).Allow ||
		l.Listen(lis) != pol.Listen(lis) || !l.Listen(lis).Allow ||
		!l.ConnectAbstract("bus").Allow || l.ConnectAbstract("x").Allow ||
		!l.ListenAbstract("srv").Allow || l.ListenAbstract("x").Allow {
		t.Error("the lazy policy does not answer as the policy does")
	}
}

// TestMayNameBackend: the exec wrapper reads the policy before it starts
// the supervisor only when the policy may choose the backend.
func TestMayNameBackend(t *testing.T) {
	dir := t.TempDir()
	with, without, fifo := dir+"/with.toml", dir+"/without.toml", dir+"/fifo.toml"
	if err := os.WriteFile(with, []byte("backend = \"ptrace\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(without, []byte("mode = \"audit\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want bool
	}{{with, true}, {without, false}, {dir + "/missing.toml", true}, {fifo, false}} {
		if got := mayNameBackend(tc.path); got != tc.want {
			t.Errorf("mayNameBackend(%s) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
