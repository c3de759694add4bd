package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs what `make demo` (the README's first command) runs and
// checks what it shows: the allowed invocations answer, the denied ones
// answer EACCES, and each denial has its audit line with its request id.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the supervisor's tests run as root here")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-o", boot, "./bootstrap")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bootstrap: %v\n%s", err, out)
	}
	var out strings.Builder
	if err := run(&out, root, boot, filepath.Join(root, "fixtures", "demo", "lambda.rules.toml")); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		`answer: 200 {"action":"echo","hello":"world"}`,
		`answer: 200 {"ok":true,"action":"read"`,
		`"requestId":"demo-3","vigil":{"decision":"deny","op":"open","path":"/etc/shadow"`,
		`"requestId":"demo-4","vigil":{"decision":"deny","op":"exec","path":"/usr/bin/id"`,
		`"requestId":"demo-5","vigil":{"decision":"deny","op":"connect","address":"127.0.0.1:9"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %s", want)
		}
	}
	if n := strings.Count(got, `"error":"EACCES"`); n != 3 {
		t.Errorf("%d EACCES answers, want 3", n)
	}
	if n := strings.Count(got, "   audit:  "); n != 3 {
		t.Errorf("%d audit lines, want 3 (one per denial)", n)
	}
	if t.Failed() {
		t.Log(got)
	}
}
