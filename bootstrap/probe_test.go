package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// probeOutput splits --probe's stdout into its JSON line, decoded, and the
// lines for people.
func probeOutput(t *testing.T, stdout string) (map[string]any, []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("first line is not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"kernel", "machine", "seccomp_filter", "seccomp_listener", "seccomp_addfd",
		"wait_killable_recv", "pidfd_open", "pidfd_getfd", "openat2", "ptrace_traceme", "ptrace_seize",
		"process_vm_readv", "landlock", "landlock_abi", "io_uring", "elapsed_us", "backend"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, lines[0])
		}
	}
	if len(lines) < 13 || !strings.HasPrefix(lines[1], "vigil probe: Linux ") {
		t.Fatalf("want a summary and a line per check after the JSON:\n%s", stdout)
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "{") {
			t.Errorf("a second JSON line: %s", l)
		}
	}
	return m, lines[1:]
}

func works(m map[string]any, key string) bool {
	c, _ := m[key].(map[string]any)
	return c["ok"] == true
}

// Here everything works (kernel-facts.md): notify, exit 0.
func TestProbe(t *testing.T) {
	code, stdout, stderr := runBin(t, "--probe")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	m, lines := probeOutput(t, stdout)
	if m["backend"] != "notify" || !works(m, "seccomp_addfd") || !works(m, "ptrace_seize") {
		t.Errorf("%s", stdout)
	}
	if !strings.Contains(lines[0], `backend auto picks "notify"`) || !strings.Contains(stdout, "  seccomp ADDFD          works\n") {
		t.Errorf("lines:\n%s", strings.Join(lines, "\n"))
	}
	if code, _, stderr := runBin(t, "--probe=yes"); code != 2 || !strings.Contains(stderr, "takes no value") {
		t.Errorf("--probe=yes: exit %d, %q", code, stderr)
	}
}

// Under a host filter that refuses seccomp the bootstrap reports ptrace and
// exits 0; refusing ptrace as well leaves no backend: exit 1, and the lines
// say what the kernel refused.
func TestProbeRefused(t *testing.T) {
	noseccomp := filepath.Join(t.TempDir(), "noseccomp")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-o", noseccomp, "../fixtures/c/noseccomp.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	probeAs := func(args ...string) (int, string) {
		out, err := exec.Command(noseccomp, append(args, bin, "--probe")...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}

	code, stdout := probeAs()
	m, lines := probeOutput(t, stdout)
	if code != 0 || m["backend"] != "ptrace-alone" || works(m, "seccomp_filter") || !works(m, "ptrace_seize") {
		t.Errorf("no seccomp: exit %d\n%s", code, stdout)
	}
	if !strings.Contains(lines[0], `backend auto picks "ptrace-alone"`) {
		t.Errorf("summary %q", lines[0])
	}

	code, stdout = probeAs("--ptrace")
	m, lines = probeOutput(t, stdout)
	if code != 1 || m["backend"] != "none" || works(m, "ptrace_seize") || works(m, "ptrace_traceme") {
		t.Errorf("no seccomp, no ptrace: exit %d\n%s", code, stdout)
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"no backend works here",
		"not notify: seccomp filter: seccomp(SECCOMP_SET_MODE_FILTER): EPERM (operation not permitted)",
		"not ptrace-alone: ptrace PTRACE_SEIZE: ptrace(PTRACE_SEIZE, PTRACE_O_TRACESECCOMP|PTRACE_O_EXITKILL): EPERM (operation not permitted)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}
