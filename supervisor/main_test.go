//go:build linux

package supervisor

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"vigil/rules"
)

// fixtures holds the C test programs, built once by TestMain.
var fixtures string

func fixture(name string) string { return filepath.Join(fixtures, name) }

func TestMain(m *testing.M) {
	// Test helper mode: run as a supervisor in a separate process (for the
	// tests that kill the supervisor, check exit statuses through a real
	// process boundary, or run under an outer filter).
	if spec := os.Getenv("VIGIL_TEST_SUPERVISOR"); spec != "" {
		os.Exit(helperSupervisor(spec))
	}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			// Fuzz workers only run the decoders: no fixtures needed.
			os.Exit(m.Run())
		}
	}
	dir, err := os.MkdirTemp("", "vigil-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fixtures = dir
	if err := buildFixtures(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building fixtures:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildFixtures(dir string) error {
	srcs, err := filepath.Glob("../fixtures/c/*.c")
	if err != nil || len(srcs) == 0 {
		return fmt.Errorf("no fixtures/c/*.c (%v)", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(srcs))
	for i, src := range srcs {
		wg.Add(1)
		go func(i int, src string) {
			defer wg.Done()
			out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c"))
			b, err := exec.Command("gcc", "-O2", "-Wall", "-o", out, src, "-lpthread").CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("gcc %s: %v\n%s", src, err, b)
			}
		}(i, src)
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// fakePolicy is a tiny policy for tests: prefixes (a trailing "/" means a
// tree, otherwise the exact path).
type fakePolicy struct {
	mode       rules.Mode
	logAllowed bool
	exec       []string
	read       []string
	write      []string
	deny       []string
	connect    []string // "127.0.0.1:80" or "*" for any
	listen     []string // "127.0.0.1:8080", "0.0.0.0:0" or "*" for any
	abstract   []string // abstract AF_UNIX names that may be connected to ("*": any)
	abstractL  []string // abstract AF_UNIX names that may be bound ("*": any)
	mu         sync.Mutex
	asked      []string
}

func match(list []string, p string) bool {
	for _, x := range list {
		if x == "*" || x == p || (strings.HasSuffix(x, "/") && strings.HasPrefix(p, x)) {
			return true
		}
	}
	return false
}

func (f *fakePolicy) note(s string) {
	f.mu.Lock()
	f.asked = append(f.asked, s)
	f.mu.Unlock()
}

func (f *fakePolicy) Mode() rules.Mode { return f.mode }
func (f *fakePolicy) LogAllowed() bool { return f.logAllowed }
func (f *fakePolicy) Exec(path string, c rules.Caller) rules.Decision {
	f.note("exec " + path)
	if match(f.deny, path) || !match(f.exec, path) {
		return rules.Decision{Rule: "no process.exec pattern matches"}
	}
	return rules.Decision{Allow: true, Rule: "process.exec", Source: "test"}
}
func (f *fakePolicy) Open(path string, acc rules.Access, c rules.Caller) rules.Decision {
	f.note(fmt.Sprintf("open %s %d pid=%d", path, acc, c.Pid))
	if match(f.deny, path) {
		return rules.Decision{Rule: "filesystem.deny", Source: "test"}
	}
	if acc&rules.Write != 0 && !match(f.write, path) {
		return rules.Decision{Rule: "no filesystem.write pattern matches"}
	}
	if !match(f.read, path) && !match(f.write, path) {
		return rules.Decision{Rule: "no filesystem.read pattern matches"}
	}
	return rules.Decision{Allow: true, Rule: "filesystem", Source: "test"}
}
func (f *fakePolicy) Connect(addr netip.AddrPort) rules.Decision {
	f.note("connect " + addr.String())
	if match(f.connect, addr.String()) {
		return rules.Decision{Allow: true, Rule: "network.connect", Source: "test"}
	}
	return rules.Decision{Rule: "no network.connect rule matches"}
}

func (f *fakePolicy) Listen(addr netip.AddrPort) rules.Decision {
	f.note("listen " + addr.String())
	if match(f.listen, addr.String()) {
		return rules.Decision{Allow: true, Rule: "network.listen", Source: "test"}
	}
	return rules.Decision{Rule: "no network.listen rule matches"}
}
func (f *fakePolicy) ConnectAbstract(name string) rules.Decision {
	f.note("connect @" + name)
	if match(f.abstract, name) {
		return rules.Decision{Allow: true, Rule: "network.connect", Source: "test"}
	}
	return rules.Decision{Rule: "no network.connect rule matches"}
}
func (f *fakePolicy) ListenAbstract(name string) rules.Decision {
	f.note("listen @" + name)
	if match(f.abstractL, name) {
		return rules.Decision{Allow: true, Rule: "network.listen", Source: "test"}
	}
	return rules.Decision{Rule: "no network.listen rule matches"}
}

// systemReads are what a dynamically linked program opens before main.
var systemReads = []string{"/etc/ld.so.cache", "/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/", "/proc/", "/dev/", "/sys/", "/etc/", "/usr/share/", "/usr/local/lib/"}

// newPolicy allows the fixtures to run and the dynamic loader to work.
func newPolicy() *fakePolicy {
	return &fakePolicy{
		exec: []string{fixtures + "/"},
		read: append([]string{fixtures + "/"}, systemReads...),
	}
}

// permissive allows everything.
func permissive() *fakePolicy {
	return &fakePolicy{exec: []string{"*"}, read: []string{"*"}, write: []string{"*"}, connect: []string{"*"},
		listen: []string{"*"}, abstract: []string{"*"}, abstractL: []string{"*"}}
}

type runResult struct {
	status int
	stdout string
	stderr string
	audit  string
	err    error
}

// events returns the audit events of a run.
func (r runResult) lines() []string {
	var out []string
	for _, l := range strings.Split(r.audit, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// supervise runs args under pol in this process.
func supervise(t testing.TB, pol Policy, args ...string) runResult {
	t.Helper()
	return superviseIn(t, pol, "", nil, args...)
}

func superviseIn(t testing.TB, pol Policy, dir string, stdin *os.File, args ...string) runResult {
	t.Helper()
	tmp := t.TempDir()
	outF, _ := os.Create(filepath.Join(tmp, "stdout"))
	errF, _ := os.Create(filepath.Join(tmp, "stderr"))
	defer outF.Close()
	defer errF.Close()
	var audit bytes.Buffer
	lw := NewLineWriter(&syncWriter{w: &audit})
	st, err := Run(Config{
		Policy:  pol,
		Args:    args,
		Dir:     dir,
		Stdin:   stdin,
		Stdout:  outF,
		Stderr:  errF,
		Auditor: NewAuditor(lw),
		Logger:  NewLogger(lw, hclog.Debug),
		Backend: testBackend,
	})
	so, _ := os.ReadFile(outF.Name())
	se, _ := os.ReadFile(errF.Name())
	r := runResult{status: st, stdout: string(so), stderr: string(se), audit: audit.String(), err: err}
	if testing.Verbose() {
		t.Logf("run %v: status=%d err=%v\nstdout: %s\nstderr: %s\naudit: %s", args, st, err, so, se, audit.String())
	}
	return r
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// helperSupervisor runs the supervisor in this (separate) process with a
// policy given as a spec: "permissive" or "fixtures" (newPolicy), with
// optional ";audit".
func helperSupervisor(spec string) int {
	fixtures = os.Getenv("VIGIL_TEST_FIXTURES")
	var pol *fakePolicy
	parts := strings.Split(spec, ";")
	switch parts[0] {
	case "permissive":
		pol = permissive()
	default:
		pol = newPolicy()
	}
	for _, p := range parts[1:] {
		if p == "audit" {
			pol.mode = rules.Audit
		}
		if strings.HasPrefix(p, "write=") {
			pol.write = append(pol.write, strings.TrimPrefix(p, "write="))
		}
		if b, ok := strings.CutPrefix(p, "backend="); ok {
			testBackend = b
		}
	}
	os.Unsetenv("VIGIL_TEST_SUPERVISOR")
	os.Unsetenv("VIGIL_TEST_FIXTURES")
	st, err := Run(Config{Policy: pol, Args: os.Args[1:], Backend: testBackend,
		BackendHook: func(b string) { fmt.Fprintln(os.Stderr, "vigil-test: backend "+b) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return st
}

// helperCmd builds a command that runs the test binary as a supervisor.
func helperCmd(spec string, args ...string) *exec.Cmd {
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_SUPERVISOR="+spec, "VIGIL_TEST_FIXTURES="+fixtures)
	return cmd
}

// testBackend is the backend the behaviour tests run under:
// VIGIL_TEST_BACKEND ("" is notify). make test runs the package once per
// backend.
var testBackend = os.Getenv("VIGIL_TEST_BACKEND")

// notifyOnly skips a test of the notification backend's own machinery
// (listener, ADDFD, replay, exec barrier) when the tests run under ptrace.
func notifyOnly(t testing.TB) {
	t.Helper()
	if tracedBackend() {
		t.Skipf("tests the seccomp notification backend's machinery; this run is VIGIL_TEST_BACKEND=%s", testBackend)
	}
}

// tracedBackend reports whether the tests run under a ptrace backend.
func tracedBackend() bool {
	return testBackend != "" && testBackend != "notify" && testBackend != "auto"
}

func itoa(i int) string { return strconv.Itoa(i) }
