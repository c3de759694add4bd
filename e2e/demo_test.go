package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the demo function locally (`bin/bootstrap --rules
// fixtures/demo/rules.toml -- python3 handler.py`, the README's form without
// Lambda; `make demo` itself is lambdatest/internal/demo's TestDemo) and
// checks that what the policy allows works and what it denies fails with
// EACCES and is audited.
func TestDemo(t *testing.T) {
	py := realPython(t)
	task := t.TempDir()
	src, err := os.ReadFile(filepath.Join(repoRoot, "fixtures", "demo", "handler.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(task, "handler.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, filepath.Join(repoRoot, "fixtures", "demo", "rules.toml"), nil, "", py, filepath.Join(task, "handler.py"))
	if r.code != 0 {
		t.Fatalf("demo exited %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("demo output is not JSON: %v\n%s\nstderr: %s", err, r.stdout, r.stderr)
	}
	for name, res := range got {
		denied := strings.Contains(name, "(denied)")
		switch {
		case denied && res != "failed: Permission denied":
			t.Errorf("%s: want EACCES, got %q", name, res)
		case !denied && !strings.HasPrefix(res, "ok: "):
			t.Errorf("%s: want ok, got %q", name, res)
		}
	}
	ops := map[string]bool{}
	for _, a := range r.audits() {
		if a.Vigil.Decision == "deny" {
			ops[a.Vigil.Op] = true
		}
	}
	for _, op := range []string{"open", "exec", "connect"} {
		if !ops[op] {
			t.Errorf("no deny audit line for %s; stderr:\n%s", op, r.stderr)
		}
	}
	if len(got) != 7 {
		t.Errorf("demo printed %d results, want 7: %v", len(got), got)
	}
}
