package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"vigil/rules"
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
