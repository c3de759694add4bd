//go:build linux

package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.WriteFile(dst, b, 0o755))
}

func TestExecVariants(t *testing.T) {
	vt := fixture("vtool")
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	pol := newPolicy()
	pol.exec = []string{vt, fixture("hello")}
	pol.read = append(pol.read, dir+"/")
	noMarker := func(t *testing.T) {
		t.Helper()
		if _, err := os.Stat(mark); err == nil {
			t.Fatal("the forbidden program ran")
		}
	}
	t.Run("exec from a non-leader thread", func(t *testing.T) {
		r := supervise(t, pol, vt, "threadexec", fixture("hello"))
		if r.status != 0 || r.stdout != "hello\n" {
			t.Fatalf("status=%d stdout=%q stderr=%q audit=%s", r.status, r.stdout, r.stderr, r.audit)
		}
		expectErr(t, supervise(t, pol, vt, "threadexec", fixture("marker"), mark), "EACCES")
		noMarker(t)
	})
	t.Run("execveat AT_EMPTY_PATH on an O_PATH fd", func(t *testing.T) {
		r := supervise(t, pol, vt, "fexec", fixture("hello"))
		if r.status != 0 || r.stdout != "hello\n" {
			t.Fatalf("status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
		}
		pol.read = append(pol.read, fixture("marker"))
		expectErr(t, supervise(t, pol, vt, "fexec", fixture("marker"), mark), "EACCES")
		noMarker(t)
	})
	t.Run("memfd exec is denied", func(t *testing.T) {
		r := supervise(t, pol, vt, "memfdexec", fixture("hello"))
		expectErr(t, r, "EACCES")
		if !strings.Contains(r.audit, "not a regular file on disk") {
			t.Fatal(r.audit)
		}
	})
	t.Run("symlink to a forbidden program", func(t *testing.T) {
		must(t, os.Symlink(fixture("marker"), dir+"/innocent"))
		expectErr(t, supervise(t, pol, vt, "exec", dir+"/innocent", mark), "EACCES")
		noMarker(t)
	})
	t.Run("scripts need an allowed interpreter", func(t *testing.T) {
		good := filepath.Join(dir, "good.sh")
		bad := filepath.Join(dir, "bad.sh")
		must(t, os.WriteFile(good, []byte("#!"+fixture("hello")+" -x\n"), 0o755))
		must(t, os.WriteFile(bad, []byte("#! "+fixture("marker")+"\n"), 0o755))
		pol2 := newPolicy()
		pol2.read = pol.read
		pol2.exec = append(append([]string(nil), pol.exec...), good, bad)
		r := supervise(t, pol2, vt, "exec", good)
		if r.status != 0 || r.stdout != "hello\n" {
			t.Fatalf("status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
		}
		r = supervise(t, pol2, vt, "exec", bad)
		expectErr(t, r, "EACCES")
		if !strings.Contains(r.audit, "interpreter "+fixture("marker")) {
			t.Fatal(r.audit)
		}
		// A script whose interpreter is itself a script, up to the limit.
		s2 := filepath.Join(dir, "s2")
		must(t, os.WriteFile(s2, []byte("#!"+good+"\n"), 0o755))
		pol2.exec = append(pol2.exec, s2)
		r = supervise(t, pol2, vt, "exec", s2)
		if r.status != 0 || r.stdout != "hello\n" {
			t.Fatalf("nested script: status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
		}
	})
	t.Run("missing program", func(t *testing.T) {
		expectErr(t, supervise(t, pol, vt, "exec", dir+"/nothing"), "ENOENT")
	})
}

// TestExecRace: one thread flips the path buffer between an allowed and a
// forbidden program while vfork children (sharing that memory) exec it. The
// forbidden program would create a marker file: it must never run.
func TestExecRace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "aaaaa"), filepath.Join(dir, "bbbbb")
	copyFile(t, fixture("hello"), a)
	copyFile(t, fixture("marker"), b)
	mark := filepath.Join(dir, "marker-ran")
	pol := newPolicy()
	pol.exec = []string{fixture("vtool"), a}
	pol.read = append(pol.read, dir+"/")
	n := "1000"
	if testing.Short() {
		n = "200"
	}
	r := supervise(t, pol, fixture("vtool"), "execrace", a, b, mark, n)
	t.Logf("exec race: %s", strings.TrimSpace(r.stdout[strings.LastIndex(r.stdout, "OK"):]))
	if r.status != 0 || !strings.Contains(r.stdout, "OK tries="+n) {
		t.Fatalf("status=%d stderr=%q", r.status, r.stderr)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the forbidden program ran")
	}
	if strings.Contains(r.stdout, " ran=0 ") {
		t.Fatal("the allowed program never ran")
	}
	if !strings.Contains(r.stdout, " other=0") {
		t.Fatalf("unexpected outcomes: %s", r.stdout)
	}
	if strings.Contains(r.stdout, " killed=0 ") {
		t.Log("note: no flip was caught between decision and exec this time")
	}
}

func TestThreadsAndGrandchildren(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	expectErr(t, supervise(t, pol, vt, "thread", "open", root+"/secret/file", "r"), "EACCES")
	expectOK(t, supervise(t, pol, vt, "thread", "open", root+"/ro/file", "r"))
	expectErr(t, supervise(t, pol, vt, "fork", "open", root+"/secret/file", "r"), "EACCES")
	expectOK(t, supervise(t, pol, vt, "fork", "open", root+"/ro/file", "r"))
	expectErr(t, supervise(t, pol, vt, "fork", "thread", "open", root+"/secret/file", "r"), "EACCES")
	pol.exec = []string{vt}
	expectErr(t, supervise(t, pol, vt, "fork", "exec", fixture("marker"), root+"/allowed/m"), "EACCES")
	pol.connect = nil
	expectErr(t, supervise(t, pol, vt, "fork", "connect", "127.0.0.1", "9"), "EACCES")
}

// TestSlowOpenDoesNotStall: one thread's open blocks inside the supervisor
// (a FIFO without writer); the other thread's opens must still be served.
func TestSlowOpenDoesNotStall(t *testing.T) {
	root, pol := tree(t)
	fifo := root + "/allowed/fifo"
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Skip("mkfifo:", err)
	}
	r := supervise(t, pol, fixture("vtool"), "fifo", fifo, root+"/ro/file")
	if r.status != 0 || !strings.Contains(r.stdout, "opens_while_blocked=100") {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
	t.Log(strings.TrimSpace(r.stdout))
}
