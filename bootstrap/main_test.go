package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-bootstrap-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBin(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runProg(t, bin, args...)
}

// runProg runs prog with args and returns its exit code and output.
func runProg(t *testing.T, prog string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(prog, args...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), so.String(), se.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, so.String(), se.String()
}

// A policy that does not load: exit 2, one line, and the command never ran.
func TestPolicyDoesNotLoad(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("mode = \"enforce\"\n[filesystem]\nread = 42\nbogus = [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, rules := range []string{filepath.Join(dir, "missing.toml"), bad} {
		code, _, stderr := runBin(t, "--rules", rules, "--", "/usr/bin/touch", mark)
		if code != 2 {
			t.Fatalf("%s: exit %d, want 2; stderr %q", rules, code, stderr)
		}
		if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
			t.Fatalf("want one line, got %q", stderr)
		}
		if !strings.Contains(stderr, "cannot load policy") {
			t.Fatalf("unclear line %q", stderr)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Fatal("the command ran")
		}
	}
}

func TestCheck(t *testing.T) {
	code, stdout, stderr := runBin(t, "--check", "../rules.example.toml")
	if code != 0 || !strings.Contains(stdout, "[filesystem]") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runBin(t, "--check", "/nonexistent.toml")
	if code != 2 || stderr == "" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := runBin(t); code != 2 {
		t.Fatalf("no arguments: exit %d", code)
	}
	if code, _, _ := runBin(t, "--rules", "../rules.example.toml"); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if code, _, _ := runBin(t, "--rules", "../rules.example.toml", "--mode", "bogus", "--", "/bin/true"); code != 2 {
		t.Fatalf("bad mode: exit %d", code)
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"--rules=r.toml", "--mode", "audit", "--function", "f", "--", "cmd", "--rules", "x"})
	if err != nil || o.rules != "r.toml" || o.mode != "audit" || o.function != "f" || !o.functionSet || strings.Join(o.cmd, " ") != "cmd --rules x" {
		t.Fatalf("%+v %v", o, err)
	}
	o, err = parseArgs([]string{"--rules", "r.toml", "cmd", "-x"})
	if err != nil || strings.Join(o.cmd, " ") != "cmd -x" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := parseArgs([]string{"--bogus"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
