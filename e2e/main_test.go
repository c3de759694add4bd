// Package e2e runs the built bootstrap binary on real programs: the
// language runtimes a Lambda function uses, and small C fixtures. It builds
// what it needs itself (bin/bootstrap and the C fixtures, into a temporary
// directory), so `go test ./e2e/` works on a clean checkout.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	repoRoot     string // the module root
	bootstrapBin string // the freshly built bin/bootstrap
	fixtureBin   string // directory of compiled C fixtures
)

func TestMain(m *testing.M) {
	if runtime.GOOS != "linux" {
		fmt.Println("e2e: Vigil enforces on Linux only; nothing to run")
		os.Exit(0)
	}
	// Not under /tmp: the baseline makes /tmp writable, and a policy that
	// lets a writable path run is rejected (rightly) by the rules.
	wd, _ := os.Getwd()
	if err := os.MkdirAll(filepath.Join(filepath.Dir(wd), "bin"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp(filepath.Join(filepath.Dir(wd), "bin"), "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repoRoot = filepath.Dir(wd)
	bootstrapBin = filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-o", bootstrapBin, "./bootstrap")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./bootstrap: %v\n%s", err, out)
	}
	fixtureBin = filepath.Join(dir, "fixtures")
	if err := os.Mkdir(fixtureBin, 0o755); err != nil {
		return err
	}
	srcs, _ := filepath.Glob(filepath.Join(repoRoot, "fixtures", "bench", "*.c"))
	for _, src := range srcs {
		out := filepath.Join(fixtureBin, strings.TrimSuffix(filepath.Base(src), ".c"))
		if b, err := exec.Command("cc", "-O2", "-Wall", "-o", out, src, "-lpthread").CombinedOutput(); err != nil {
			return fmt.Errorf("cc %s: %v\n%s", src, err, b)
		}
	}
	return nil
}

// fixture returns the path of a compiled C fixture.
func fixture(name string) string { return filepath.Join(fixtureBin, name) }

// writePolicy writes a rules.toml into a fresh temporary directory.
func writePolicy(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// result is what one run printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

// audits returns the Vigil audit lines found on stderr.
func (r result) audits() []auditLine {
	var out []auditLine
	for _, ln := range strings.Split(r.stderr, "\n") {
		if !strings.HasPrefix(ln, "{") {
			continue
		}
		var a auditLine
		if json.Unmarshal([]byte(ln), &a) == nil && a.Vigil.Decision != "" {
			out = append(out, a)
		}
	}
	return out
}

// auditLine is the shape of one audit line (the fields tests read).
type auditLine struct {
	Timestamp string `json:"timestamp"`
	Level     string `json:"level"`
	Message   string `json:"message"`
	Vigil     struct {
		Decision string `json:"decision"`
		Op       string `json:"op"`
		Path     string `json:"path"`
		Address  string `json:"address"`
		Pid      int    `json:"pid"`
		Exe      string `json:"exe"`
		Rule     string `json:"rule"`
		Mode     string `json:"mode"`
	} `json:"vigil"`
}

// run runs argv, under Vigil with the policy file when policy != "", and
// natively otherwise.
func run(t testing.TB, policy string, env []string, stdin string, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if policy != "" {
		flags := []string{"--rules", policy}
		if b := os.Getenv("VIGIL_TEST_BACKEND"); b != "" {
			flags = append(flags, "--backend", b) // make test runs e2e per backend
		}
		cmd = exec.CommandContext(ctx, bootstrapBin, append(append(flags, "--"), argv...)...)
	} else {
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal()) // as a shell reports it
		}
	} else if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("run %v: timed out\nstderr: %s", argv, se.String())
	}
	return result{so.String(), se.String(), code}
}

// cleanEnv is a small, fixed environment, so that runs with and without
// Vigil see the same one.
func cleanEnv() []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"}
}

// realPython returns the real python3 interpreter (not the pyenv shim,
// which execs hundreds of times), or skips.
func realPython(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skip("python3 is not installed")
	}
	p, err := filepath.EvalSymlinks(strings.TrimSpace(string(out)))
	if err != nil {
		t.Skip("python3: ", err)
	}
	return p
}

// realNode returns node's resolved path, or skips.
func realNode(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Skip("node: ", err)
	}
	return p
}
