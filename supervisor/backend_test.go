package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackendFallback simulates hosts that refuse what the backends need,
// with an outer seccomp filter (fixtures/c/noseccomp.c): where nested
// filters are refused, "auto" falls back to ptrace alone and still denies;
// where ptrace is refused too, the command does not run and the one error
// line names what the kernel refused.
func TestBackendFallback(t *testing.T) {
	self, _ := os.Executable()
	secret := filepath.Join(t.TempDir(), "secret") // outside the policy's reads
	if err := os.WriteFile(secret, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	helper := func(t *testing.T, spec string, outer ...string) (string, int, error) {
		args := append(outer, self, fixture("vtool"), "open", secret, "r")
		cmd := exec.Command(fixture("noseccomp"), args...)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_SUPERVISOR="+spec, "VIGIL_TEST_FIXTURES="+fixtures)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code, err = ee.ExitCode(), nil
		}
		t.Logf("%s: exit %d\n%s", spec, code, out)
		return string(out), code, err
	}
	t.Run("no nested filters: auto picks ptrace and denies", func(t *testing.T) {
		out, code, err := helper(t, "fixtures;backend=auto")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "vigil-test: backend ptrace-alone\n") {
			t.Fatalf("want the ptrace backend (alone), got %q", out)
		}
		if code != 1 || !strings.Contains(out, "ERR 13 EACCES") {
			t.Fatalf("want the open of %s denied (EACCES, exit 1), got exit %d: %q", secret, code, out)
		}
		if !strings.Contains(out, `"decision":"deny","op":"open","path":"`+secret+`"`) {
			t.Fatalf("want the denial's audit line, got %q", out)
		}
	})
	t.Run("ptrace-seccomp insists on a filter", func(t *testing.T) {
		out, code, err := helper(t, "fixtures;backend=ptrace-seccomp")
		if err != nil {
			t.Fatal(err)
		}
		if code != 2 || strings.Contains(out, "vigil-test: backend") || !strings.Contains(out, "operation not permitted") {
			t.Fatalf("want exit 2 naming the refusal, got exit %d: %q", code, out)
		}
	})
	t.Run("neither filters nor ptrace: nothing runs", func(t *testing.T) {
		mark := filepath.Join(t.TempDir(), "ran")
		cmd := exec.Command(fixture("noseccomp"), "--ptrace", self, fixture("marker"), mark)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_SUPERVISOR=fixtures;backend=auto", "VIGIL_TEST_FIXTURES="+fixtures)
		b, err := cmd.CombinedOutput()
		out := string(b)
		t.Logf("%s", out)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("want exit 2, got %v: %s", err, out)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Fatal("the command ran unguarded")
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		for _, want := range []string{"ptrace", "operation not permitted", "refused before", "notify: ", "ptrace-seccomp: "} {
			if !strings.Contains(last, want) {
				t.Errorf("the error line does not say %q: %q", want, last)
			}
		}
	})
}
