//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExecAllowed(t *testing.T) {
	r := supervise(t, newPolicy(), fixture("hello"))
	if r.err != nil || r.status != 0 || r.stdout != "hello\n" {
		t.Fatalf("status=%d err=%v stdout=%q stderr=%q", r.status, r.err, r.stdout, r.stderr)
	}
}

func TestExecDenied(t *testing.T) {
	// vtool is allowed, marker is not: vtool's execv of marker must fail
	// with EACCES and marker must not run.
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	pol := newPolicy()
	pol.exec = []string{fixture("vtool")}
	r := supervise(t, pol, fixture("vtool"), "exec", fixture("marker"), mark)
	if !strings.Contains(r.stdout, "ERR 13 EACCES") || r.status != 1 {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the denied program ran")
	}
	if !strings.Contains(r.audit, `"decision":"deny","op":"exec","path":"`+fixture("marker")) {
		t.Fatalf("no audit line for the denial: %s", r.audit)
	}
}
