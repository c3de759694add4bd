package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
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
	checkDemo(t, r)
}

// checkDemo checks a run of the demo function: what the policy allows
// worked, what it denies failed with EACCES, with a deny audit line for each
// kind.
func checkDemo(t *testing.T, r result) map[string]string {
	t.Helper()
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
	return got
}

// TestDemoUnprivileged runs the demo function as an unprivileged user
// (Lambda functions do not run as root; neither does Vigil there), Vigil
// included, under each backend: the same answers and the same denials.
func TestDemoUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to switch to an unprivileged uid")
	}
	py := "/usr/bin/python3.11" // pyenv's lives under /root, which nobody cannot reach
	if _, err := os.Stat(py); err != nil {
		t.Skip("no Debian python3.11: ", err)
	}
	dir, err := os.MkdirTemp("", "vigil-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{bootstrapBin, "bootstrap", 0o755},
		{filepath.Join(repoRoot, "fixtures", "demo", "handler.py"), "handler.py", 0o644},
		{filepath.Join(repoRoot, "fixtures", "demo", "rules.toml"), "rules.toml", 0o644},
	} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.dst), b, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	var first map[string]string
	for _, backend := range []string{"notify", "ptrace-seccomp", "ptrace-alone"} {
		t.Run(backend, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(dir, "bootstrap"), "--rules", filepath.Join(dir, "rules.toml"),
				"--backend", backend, "--", py, filepath.Join(dir, "handler.py"))
			cmd.Dir = dir
			cmd.Env = cleanEnv()
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			r := result{stdout: so.String()}
			if err := cmd.Run(); err != nil {
				r.code = 1
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					r.code = ee.ExitCode()
				}
			}
			r.stdout, r.stderr = so.String(), se.String()
			t.Logf("as nobody under %s:\n%s\n%s", backend, r.stdout, r.stderr)
			got := checkDemo(t, r)
			if strings.Contains(r.stderr, "backend in use") {
				t.Errorf("backend %s was not the one in use: %s", backend, r.stderr)
			}
			if first == nil {
				first = got
			} else if !reflect.DeepEqual(first, got) {
				t.Errorf("answers differ from notify's:\n%v\n%v", first, got)
			}
		})
	}
}
