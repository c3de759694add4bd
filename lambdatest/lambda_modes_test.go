package lambdatest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Tests of the bootstrap's Lambda modes (custom runtime and exec wrapper)
// under the real RIE: the Runtime API proxy, request ids on audit lines,
// init errors and crashes.

// buildBootstrap builds bin/bootstrap (cgo, libseccomp) into a temp dir.
func buildBootstrap(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the supervisor's tests here run as root")
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-o", bin, "./bootstrap")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bootstrap: %v\n%s", err, out)
	}
	return bin
}

// writeRules writes a rules.toml into dir and returns its path.
func writeRules(t testing.TB, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "rules.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonLines returns the JSON objects among RIE's output lines that keep
// accepts.
func jsonLines(out string, keep func(map[string]any) bool) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && keep(m) {
			lines = append(lines, m)
		}
	}
	return lines
}

// auditLines returns the audit lines (JSON with a "vigil" object and a
// "decision") in RIE's output.
func auditLines(out string) []map[string]any {
	return jsonLines(out, func(m map[string]any) bool {
		v, ok := m["vigil"].(map[string]any)
		return ok && v["decision"] != nil
	})
}

// waitAudit waits for an audit line about path (or address) and returns it.
func waitAudit(r *RIE, op, object string, timeout time.Duration) map[string]any {
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range auditLines(r.Output()) {
			v := m["vigil"].(map[string]any)
			if v["op"] == op && (v["path"] == object || v["address"] == object) {
				return m
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVigilCustomRuntimeGo runs the Go fixture as a custom runtime under
// Vigil (bootstrap with no arguments, [runtime] command in rules.toml):
// allowed actions work, a denied open and a denied exec return EACCES in
// the function's answer, and stderr carries audit lines with the request id
// of the invocation and the function name. A crash mid-invocation fails
// that invocation (Runtime.ExitError) and the next one works.
func TestVigilCustomRuntimeGo(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed.txt")
	secret := filepath.Join(dir, "secret.txt")
	for _, p := range []string{allowed, secret} {
		if err := os.WriteFile(p, []byte("content of "+filepath.Base(p)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(dir, "ran")
	rules := writeRules(t, dir, fmt.Sprintf(`
mode = "enforce"
[runtime]
command = [%q]
[process]
exec = [%q, "/usr/bin/echo"]
allow_writable_exec = true # the fixture is built under /tmp (baseline write)
[filesystem]
read = [%q, "/usr/bin/echo"]
deny = [%q]
`, f.command[0], f.command[0], f.command[0], secret))
	r := startRIE(t, Options{Command: []string{boot}, Env: []string{"VIGIL_RULES=" + rules, "FIXTURE_MARKER=" + marker}})

	res := invoke(t, r, "vg-env", map[string]any{"action": "env"})
	a := answer(t, res)
	env, _ := a["env"].(map[string]any)
	api, _ := env["AWS_LAMBDA_RUNTIME_API"].(string)
	if res.Status != 200 || a["requestId"] != "vg-env" || api == r.RuntimeAPIAddr || !strings.HasPrefix(api, "127.0.0.1:") {
		t.Errorf("env: %d %s (RIE's Runtime API is %s; the runtime must talk to Vigil's proxy)", res.Status, res.Body, r.RuntimeAPIAddr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the function's code left no marker: %v", err)
	}
	// The custom runtime logged the kernel probe once at init, with the
	// backend auto picks (notify here), and ran under it.
	if !r.WaitOutput(`"message":"kernel probe"`, 3*time.Second) || strings.Count(r.Output(), `"message":"kernel probe"`) != 1 {
		t.Errorf("no single kernel probe line at init:\n%s", r.Output())
	} else if !strings.Contains(r.Output(), `"backend_auto_picks":"notify"`) || !strings.Contains(r.Output(), `"seccomp_addfd":{"ok":true}`) {
		t.Errorf("the probe line does not say what works here:\n%s", r.Output())
	}

	res = invoke(t, r, "vg-read", map[string]any{"action": "read", "path": allowed})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true || a["data"] != "content of allowed.txt\n" {
		t.Errorf("allowed read: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-exec", map[string]any{"action": "exec", "argv": []string{"/usr/bin/echo", "hi"}})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true || a["output"] != "hi\n" {
		t.Errorf("allowed exec: %d %s", res.Status, res.Body)
	}

	res = invoke(t, r, "vg-deny-read", map[string]any{"action": "read", "path": secret})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	line := waitAudit(r, "open", secret, 3*time.Second)
	if line == nil {
		t.Fatalf("no audit line for the denied open of %s", secret)
	}
	v := line["vigil"].(map[string]any)
	if line["requestId"] != "vg-deny-read" || v["decision"] != "deny" || v["function"] != "test_function" {
		t.Errorf("audit line for the denied open: %v", line)
	}

	res = invoke(t, r, "vg-deny-exec", map[string]any{"action": "exec", "argv": []string{"/usr/bin/id"}})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	if line := waitAudit(r, "exec", "/usr/bin/id", 3*time.Second); line == nil || line["requestId"] != "vg-deny-exec" {
		t.Errorf("audit line for the denied exec: %v", line)
	}

	// A crash mid-invocation: Vigil fails the invocation and exits
	// non-zero; RIE starts the runtime again for the next one.
	res = invoke(t, r, "vg-crash", map[string]any{"action": "crash"})
	a = answer(t, res)
	if res.Status != 502 || a["errorType"] != "Runtime.ExitError" ||
		a["errorMessage"] != "RequestId: vg-crash Error: Runtime exited with error: exit status 3" {
		t.Errorf("crash: %d %s", res.Status, res.Body)
	}
	if !r.WaitOutput(`the runtime exited mid-invocation`, 3*time.Second) {
		t.Errorf("Vigil did not log the crash mid-invocation")
	}
	res = invoke(t, r, "vg-after", map[string]any{"action": "echo", "after": "crash"})
	if a := answer(t, res); res.Status != 200 || a["after"] != "crash" {
		t.Errorf("invoke after the crash: %d %s", res.Status, res.Body)
	}
	// Audit lines between invocations carry no stale request id: every
	// line names an invocation this test sent.
	for _, l := range auditLines(r.Output()) {
		if id, _ := l["requestId"].(string); !strings.HasPrefix(id, "vg-") {
			t.Errorf("audit line without this test's request id: %v", l)
		}
	}
}

// TestVigilInitErrors: a policy that does not load, and a custom runtime
// without a command, are init errors from RIE (502, Vigil.* errorType, a
// message that says what to fix) and the function's code never runs. In
// the exec-wrapper form the supervisor starts while the policy loads: a
// policy that does not load is still the init error, and the wrapped
// runtime never runs.
func TestVigilInitErrors(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	for _, tc := range []struct {
		name, rules, errorType, msg string
		env                         []string
		wrap                        bool // exec-wrapper form: bootstrap RUNTIME
	}{
		{"unknown key", "moed = \"enforce\"\n", "Vigil.PolicyError", "moed: unknown key", []string{"VIGIL_RUNTIME=" + f.command[0]}, false},
		{"syntax", "mode = \n", "Vigil.PolicyError", "invalid TOML", []string{"VIGIL_RUNTIME=" + f.command[0]}, false},
		{"no runtime command", "mode = \"enforce\"\n", "Vigil.NoRuntimeCommand", "[runtime] command", nil, false},
		{"exec wrapper unknown key", "moed = \"enforce\"\n", "Vigil.PolicyError", "moed: unknown key", nil, true},
		{"exec wrapper bad VIGIL_MODE", fmt.Sprintf("[process]\nexec = [%q]\nallow_writable_exec = true\n", f.command[0]),
			"Vigil.PolicyError", `VIGIL_MODE="enforcing" is not a mode`, []string{"VIGIL_MODE=enforcing"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			marker := filepath.Join(dir, "ran")
			rules := writeRules(t, dir, tc.rules)
			env := append([]string{"VIGIL_RULES=" + rules, "FIXTURE_MARKER=" + marker}, tc.env...)
			cmd := []string{boot}
			if tc.wrap {
				cmd = append(cmd, f.command...)
			}
			r := startRIE(t, Options{Command: cmd, Env: env})
			for i := range 2 { // RIE retries the init at every invoke
				res := invoke(t, r, fmt.Sprintf("vg-init-%d", i), map[string]any{"action": "echo"})
				a := answer(t, res)
				msg, _ := a["errorMessage"].(string)
				if res.Status != 502 || a["errorType"] != tc.errorType || !strings.Contains(msg, tc.msg) || !strings.Contains(msg, "function was not started") {
					t.Errorf("invoke %d: %d %s", i, res.Status, res.Body)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the function's code ran despite the init error")
			}
		})
	}
}

// TestVigilPolicyLookup: with no VIGIL_RULES the custom runtime reads
// $LAMBDA_TASK_ROOT/rules.toml and takes its command from VIGIL_RUNTIME.
func TestVigilPolicyLookup(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	dir := t.TempDir()
	writeRules(t, dir, fmt.Sprintf("[process]\nexec = [%q]\nallow_writable_exec = true\n", f.command[0]))
	r := startRIE(t, Options{Command: []string{boot}, Env: []string{"LAMBDA_TASK_ROOT=" + dir, "VIGIL_RUNTIME=" + f.command[0]}})
	res := invoke(t, r, "vg-lookup", map[string]any{"action": "echo", "x": 1})
	if a := answer(t, res); res.Status != 200 || a["x"] != float64(1) {
		t.Errorf("echo: %d %s", res.Status, res.Body)
	}
	if !r.WaitOutput(filepath.Join(dir, "rules.toml"), 2*time.Second) {
		t.Errorf("Vigil did not say it loaded %s/rules.toml", dir)
	}
}

// needProgram skips the test, saying why, when the interpreter path is
// not installed.
func needProgram(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skip(path + " is not installed")
	}
}

// TestVigilExecWrapperPython runs the Python fixture through the exec
// wrapper form (bootstrap RUNTIME ARGS..., what AWS_LAMBDA_EXEC_WRAPPER
// makes Lambda run; RIE does not implement the variable, so the test
// starts that command itself).
func TestVigilExecWrapperPython(t *testing.T) {
	f := fixtureNamed(t, "python")
	needFixture(t, f)
	const python = "/usr/bin/python3"
	needProgram(t, python)
	boot := buildBootstrap(t)
	fnDir := filepath.Join(repoRoot, "fixtures", "functions", "python")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	rules := writeRules(t, dir, fmt.Sprintf(`
[process]
exec = ["/usr/bin/python3*"]
[filesystem]
read = ["/usr/bin/python3*", %q]
deny = [%q]
`, fnDir+"/**", secret))
	r := startRIE(t, Options{
		Command: []string{boot, python, filepath.Join(fnDir, "runtime.py")},
		Env:     []string{"VIGIL_RULES=" + rules, "FIXTURE_MARKER=" + marker},
	})
	res := invoke(t, r, "vg-py-echo", map[string]any{"action": "echo", "s": "py"})
	if a := answer(t, res); res.Status != 200 || a["s"] != "py" {
		t.Errorf("echo: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-py-deny", map[string]any{"action": "read", "path": secret})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	if line := waitAudit(r, "open", secret, 3*time.Second); line == nil || line["requestId"] != "vg-py-deny" {
		t.Errorf("audit line for the denied open: %v", line)
	}
	res = invoke(t, r, "vg-py-exec", map[string]any{"action": "exec", "argv": []string{"/usr/bin/id"}})
	wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
	res = invoke(t, r, "vg-py-env", map[string]any{"action": "env"})
	a := answer(t, res)
	env, _ := a["env"].(map[string]any)
	if api, _ := env["AWS_LAMBDA_RUNTIME_API"].(string); res.Status != 200 || api == r.RuntimeAPIAddr || api == "" {
		t.Errorf("env: %d %s", res.Status, res.Body)
	}
}

// TestVigilFilterError simulates Lambdas that refuse what the backends need,
// with an outer seccomp filter (fixtures/c/noseccomp.c). Where nested
// seccomp filters are refused, backend auto falls back to ptrace alone: the
// function runs, its denied open still fails with EACCES and is audited
// with the request id, and the init log says which backend is in use.
// Where ptrace is refused too, or the policy insists on notify, the init
// error is Vigil.FilterError naming what the kernel refused, and the
// function's code never runs.
func TestVigilFilterError(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	dir := t.TempDir()
	outer := filepath.Join(dir, "noseccomp")
	if out, err := exec.Command("gcc", "-O2", "-o", outer, "../fixtures/c/noseccomp.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := writeRules(t, dir, fmt.Sprintf("[process]\nexec = [%q]\nallow_writable_exec = true\n[filesystem]\ndeny = [%q]\n[runtime]\ncommand = [%q]\n",
		f.command[0], secret, f.command[0]))

	t.Run("no nested filters: ptrace", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		r := startRIE(t, Options{Command: []string{outer, boot}, Env: []string{"VIGIL_RULES=" + rules, "FIXTURE_MARKER=" + marker}})
		res := invoke(t, r, "vg-pt-echo", map[string]any{"action": "echo", "s": "x"})
		if a := answer(t, res); res.Status != 200 || a["s"] != "x" {
			t.Errorf("echo under ptrace: %d %s", res.Status, res.Body)
		}
		res = invoke(t, r, "vg-pt-deny", map[string]any{"action": "read", "path": secret})
		wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
		if line := waitAudit(r, "open", secret, 3*time.Second); line == nil || line["requestId"] != "vg-pt-deny" {
			t.Errorf("audit line for the denied open under ptrace: %v", line)
		}
		out := r.Output()
		if !strings.Contains(out, `"message":"backend in use"`) || !strings.Contains(out, `"backend":"ptrace-alone"`) ||
			!strings.Contains(out, `"backend_auto_picks":"ptrace-alone"`) {
			t.Errorf("the init log does not say ptrace-alone is in use:\n%s", out)
		}
	})
	for _, tc := range []struct {
		name  string
		outer []string
		env   []string
		want  []string
	}{
		{"neither filters nor ptrace", []string{outer, "--ptrace", boot}, nil,
			[]string{"ptrace PTRACE_SEIZE: operation not permitted", "refused before: notify: ", "seccomp: operation not permitted"}},
		{"VIGIL_BACKEND=notify", []string{outer, boot}, []string{"VIGIL_BACKEND=notify"},
			[]string{"seccomp: operation not permitted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			r := startRIE(t, Options{Command: tc.outer, Env: append([]string{"VIGIL_RULES=" + rules, "FIXTURE_MARKER=" + marker}, tc.env...)})
			for i := range 2 {
				res := invoke(t, r, fmt.Sprintf("vg-filter-%d", i), map[string]any{"action": "echo"})
				a := answer(t, res)
				msg, _ := a["errorMessage"].(string)
				if res.Status != 502 || a["errorType"] != "Vigil.FilterError" {
					t.Errorf("invoke %d: %d %s", i, res.Status, res.Body)
				}
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("invoke %d: the error does not say %q: %s", i, w, msg)
					}
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the function's code ran unguarded")
			}
		})
	}
}

// TestVigilExecWrapperNode runs the Node.js fixture through the exec
// wrapper form (bootstrap /usr/bin/node runtime.js) with its code in a task
// root of its own and the policy beside it, fixtures/functions/node/rules.toml,
// found as $LAMBDA_TASK_ROOT/rules.toml as on Lambda. Allowed actions
// answer as they do without Vigil; a denied exec, open and connect each
// make the function see EACCES and say so, and each writes exactly one
// audit line, with the invocation's requestId and the function's name.
// Nothing else is denied.
func TestVigilExecWrapperNode(t *testing.T) {
	f := fixtureNamed(t, "node")
	needFixture(t, f)
	const node = "/usr/bin/node"
	needProgram(t, node)
	boot := buildBootstrap(t)
	// The function's code and its rules.toml, as in /var/task on Lambda;
	// here under /tmp, which the baseline lets the function read.
	task := t.TempDir()
	fnDir := filepath.Join(repoRoot, "fixtures", "functions", "node")
	for _, name := range []string{"runtime.js", "handler.js", "rules.toml"} {
		b, err := os.ReadFile(filepath.Join(fnDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(task, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	marker := filepath.Join(t.TempDir(), "ran")
	allowedPort := acceptOn(t, "127.0.0.1")
	deniedPort := acceptOn(t, "127.0.0.2") // reachable: only the policy stops it
	const function = "vigil-node"
	r := startRIE(t, Options{
		Command: []string{boot, node, filepath.Join(task, "runtime.js")},
		Env:     []string{"LAMBDA_TASK_ROOT=" + task, "AWS_LAMBDA_FUNCTION_NAME=" + function, "FIXTURE_MARKER=" + marker},
	})

	res := invoke(t, r, "vg-node-echo", map[string]any{"action": "echo", "s": "node"})
	if a := answer(t, res); res.Status != 200 || a["s"] != "node" {
		t.Errorf("echo: %d %s", res.Status, res.Body)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the function's code left no marker: %v", err)
	}
	res = invoke(t, r, "vg-node-read", map[string]any{"action": "read", "path": filepath.Join(task, "handler.js"), "bytes": 13})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true || a["data"] != "'use strict';" {
		t.Errorf("allowed read: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-node-exec", map[string]any{"action": "exec", "argv": []string{"/usr/bin/echo", "hi"}})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true || a["output"] != "hi\n" || a["exitCode"] != float64(0) {
		t.Errorf("allowed exec: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-node-connect", map[string]any{"action": "connect", "host": "127.0.0.1", "port": allowedPort})
	if a := answer(t, res); res.Status != 200 || a["ok"] != true {
		t.Errorf("allowed connect: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "vg-node-env", map[string]any{"action": "env"})
	a := answer(t, res)
	env, _ := a["env"].(map[string]any)
	if api, _ := env["AWS_LAMBDA_RUNTIME_API"].(string); res.Status != 200 || api == r.RuntimeAPIAddr || !strings.HasPrefix(api, "127.0.0.1:") || env["AWS_LAMBDA_FUNCTION_NAME"] != function {
		t.Errorf("env: %d %s (RIE's Runtime API is %s; the runtime must talk to Vigil's proxy)", res.Status, res.Body, r.RuntimeAPIAddr)
	}

	// The denials: the function sees EACCES, and each is one audit line.
	denied := []struct {
		id, op, object string
		event          map[string]any
	}{
		{"vg-node-deny-read", "open", "/etc/shadow", map[string]any{"action": "read", "path": "/etc/shadow"}},
		{"vg-node-deny-exec", "exec", "/usr/bin/id", map[string]any{"action": "exec", "argv": []string{"/usr/bin/id"}}},
		{"vg-node-deny-connect", "connect", fmt.Sprintf("127.0.0.2:%d", deniedPort),
			map[string]any{"action": "connect", "host": "127.0.0.2", "port": deniedPort}},
	}
	for _, d := range denied {
		res := invoke(t, r, d.id, d.event)
		wantFailure("EACCES", 13)(t, "vigil", r, res, answer(t, res))
		if waitAudit(r, d.op, d.object, 3*time.Second) == nil {
			t.Errorf("%s: no audit line for the denied %s of %s", d.id, d.op, d.object)
		}
	}
	// One more invocation, so that every line of the last denial is out.
	if res := invoke(t, r, "vg-node-last", map[string]any{"action": "echo"}); res.Status != 200 {
		t.Errorf("last echo: %d %s", res.Status, res.Body)
	}
	lines := auditLines(r.Output())
	for _, d := range denied {
		var got []map[string]any
		for _, l := range lines {
			if v := l["vigil"].(map[string]any); v["op"] == d.op && (v["path"] == d.object || v["address"] == d.object) {
				got = append(got, l)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: %d audit lines for the %s of %s, want 1: %v", d.id, len(got), d.op, d.object, got)
			continue
		}
		v := got[0]["vigil"].(map[string]any)
		if got[0]["requestId"] != d.id || got[0]["level"] != "WARN" || v["decision"] != "deny" || v["function"] != function ||
			v["mode"] != "enforce" || v["exe"] != node {
			t.Errorf("%s: audit line %v", d.id, got[0])
		}
	}
	if len(lines) != len(denied) {
		t.Errorf("%d audit lines, want exactly the %d denials: %v", len(lines), len(denied), lines)
	}
	if !r.WaitOutput(filepath.Join(task, "rules.toml"), time.Second) {
		t.Errorf("Vigil did not say it loaded %s", filepath.Join(task, "rules.toml"))
	}
}

// TestVigilExecWrapperSlowPolicy: in the exec-wrapper form the supervisor
// starts the runtime while the policy loads, and the runtime's first
// system call that needs a decision (its own exec) waits for the policy.
// The policy here arrives through a FIFO 300 ms late: a valid one lets
// the function run as usual; one that does not load is the init error and
// the function's code never runs.
func TestVigilExecWrapperSlowPolicy(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	boot := buildBootstrap(t)
	for _, tc := range []struct {
		name, rules string
		ok          bool
	}{
		{"valid", fmt.Sprintf("[process]\nexec = [%q]\nallow_writable_exec = true\n", f.command[0]), true},
		{"invalid", "moed = \"enforce\"\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "rules.toml")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(dir, "ran")
			r := startRIE(t, Options{Command: []string{boot, f.command[0]}, Env: []string{"VIGIL_RULES=" + fifo, "FIXTURE_MARKER=" + marker}})
			go func() {
				time.Sleep(300 * time.Millisecond)
				if err := os.WriteFile(fifo, []byte(tc.rules), 0o644); err != nil {
					t.Error(err)
				}
			}()
			start := time.Now()
			res := invoke(t, r, "vg-slow", map[string]any{"action": "echo", "x": 1})
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("answered after %v, before the policy was written", d)
			}
			a := answer(t, res)
			if tc.ok {
				if res.Status != 200 || a["x"] != float64(1) {
					t.Errorf("echo: %d %s", res.Status, res.Body)
				}
				if _, err := os.Stat(marker); err != nil {
					t.Errorf("the function's code left no marker: %v", err)
				}
				return
			}
			if msg, _ := a["errorMessage"].(string); res.Status != 502 || a["errorType"] != "Vigil.PolicyError" || !strings.Contains(msg, "moed: unknown key") {
				t.Errorf("invoke: %d %s", res.Status, res.Body)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the function's code ran without its policy")
			}
			if strings.Contains(r.Output(), `"decision"`) {
				t.Errorf("a decision was made without the policy:\n%s", r.Output())
			}
		})
	}
}
