//go:build linux

package supervisor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree makes a test tree: allowed/ (readable and writable), ro/ (readable),
// secret/ (nothing), with files in each.
func tree(t *testing.T) (root string, pol *fakePolicy) {
	t.Helper()
	root = t.TempDir()
	for _, d := range []string{"allowed/sub", "ro", "secret"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"allowed/file", "ro/file", "secret/file"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("data of "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pol = newPolicy()
	pol.read = append(pol.read, root+"/allowed/", root+"/ro/")
	pol.write = append(pol.write, root+"/allowed/")
	pol.deny = append(pol.deny, root+"/secret/")
	return root, pol
}

func expectOK(t *testing.T, r runResult) {
	t.Helper()
	if r.err != nil || r.status != 0 || !strings.HasPrefix(r.stdout, "OK") {
		t.Fatalf("want OK: status=%d err=%v stdout=%q stderr=%q audit=%s", r.status, r.err, r.stdout, r.stderr, r.audit)
	}
}

func expectErr(t *testing.T, r runResult, errno string) {
	t.Helper()
	if r.err != nil || r.status != 1 || !strings.Contains(r.stdout, " "+errno) {
		t.Fatalf("want %s: status=%d err=%v stdout=%q stderr=%q audit=%s", errno, r.status, r.err, r.stdout, r.stderr, r.audit)
	}
}

// auditEvents decodes the audit lines (not the log lines).
func auditEvents(t *testing.T, r runResult) []Event {
	t.Helper()
	var out []Event
	for _, l := range r.lines() {
		var line struct {
			Level   string          `json:"level"`
			Message string          `json:"message"`
			Vigil   json.RawMessage `json:"vigil"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", l, err)
		}
		if !strings.HasPrefix(line.Message, "vigil ") {
			continue
		}
		var e Event
		if err := json.Unmarshal(line.Vigil, &e); err != nil {
			t.Fatalf("bad vigil object in %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

func findEvent(evs []Event, decision, op, path string) *Event {
	for i := range evs {
		if evs[i].Decision == decision && evs[i].Op == op && (path == "" || evs[i].Path == path || evs[i].Address == path) {
			return &evs[i]
		}
	}
	return nil
}

func TestOpenReadWriteCreate(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	t.Run("read allowed", func(t *testing.T) { expectOK(t, supervise(t, pol, vt, "open", root+"/ro/file", "r")) })
	t.Run("read denied", func(t *testing.T) {
		r := supervise(t, pol, vt, "open", root+"/secret/file", "r")
		expectErr(t, r, "EACCES")
		e := findEvent(auditEvents(t, r), "deny", "open", root+"/secret/file")
		if e == nil || e.Flags != "O_RDONLY" || e.Rule != "filesystem.deny" || e.Mode != "enforce" || e.Pid <= 0 || e.Exe != vt {
			t.Fatalf("bad audit event %+v in %s", e, r.audit)
		}
	})
	t.Run("read outside any rule", func(t *testing.T) {
		expectErr(t, supervise(t, pol, vt, "open", root+"/nowhere", "r"), "ENOENT")
		os.WriteFile(root+"/other", []byte("x"), 0o644)
		expectErr(t, supervise(t, pol, vt, "open", root+"/other", "r"), "EACCES")
	})
	t.Run("write allowed", func(t *testing.T) { expectOK(t, supervise(t, pol, vt, "open", root+"/allowed/file", "w")) })
	t.Run("write denied on a readable file", func(t *testing.T) {
		expectErr(t, supervise(t, pol, vt, "open", root+"/ro/file", "w"), "EACCES")
		expectErr(t, supervise(t, pol, vt, "open", root+"/ro/file", "rw"), "EACCES")
		expectErr(t, supervise(t, pol, vt, "open", root+"/ro/file", "a"), "EACCES")
		b, _ := os.ReadFile(root + "/ro/file")
		if string(b) != "data of ro/file\n" {
			t.Fatal("file changed")
		}
		// O_TRUNC is a write even with O_WRONLY only.
		expectErr(t, supervise(t, pol, vt, "open", root+"/ro/file", "t"), "EACCES")
		b, _ = os.ReadFile(root + "/ro/file")
		if string(b) != "data of ro/file\n" {
			t.Fatal("file truncated by a denied open")
		}
	})
	t.Run("create allowed honours umask", func(t *testing.T) {
		expectOK(t, supervise(t, pol, vt, "open", root+"/allowed/new", "c"))
		st, err := os.Stat(root + "/allowed/new")
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("created file: %v %v (want 0644 from 0666 & ~022)", st.Mode(), err)
		}
		expectOK(t, supervise(t, pol, vt, "umask", "077", root+"/allowed/new2", "c"))
		st, err = os.Stat(root + "/allowed/new2")
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("created file: %v %v (want 0600)", st.Mode(), err)
		}
		expectOK(t, supervise(t, pol, vt, "creat", root+"/allowed/new3"))
		expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/new3", "cx"), "EEXIST")
	})
	t.Run("create denied leaves no file", func(t *testing.T) {
		for _, p := range []string{root + "/ro/new", root + "/secret/new", root + "/newtop"} {
			expectErr(t, supervise(t, pol, vt, "open", p, "c"), "EACCES")
			expectErr(t, supervise(t, pol, vt, "creat", p), "EACCES")
			if _, err := os.Lstat(p); err == nil {
				t.Fatalf("%s exists after a denied create", p)
			}
		}
	})
	t.Run("cloexec", func(t *testing.T) {
		r := supervise(t, pol, vt, "open", root+"/ro/file", "rce")
		expectOK(t, r)
		if !strings.Contains(r.stdout, "cloexec=1") {
			t.Fatal(r.stdout)
		}
		r = supervise(t, pol, vt, "open", root+"/ro/file", "r")
		if !strings.Contains(r.stdout, "cloexec=0") {
			t.Fatal(r.stdout)
		}
	})
	t.Run("openat2", func(t *testing.T) {
		pol.read = append(pol.read, root+"/allowed")
		expectOK(t, supervise(t, pol, vt, "openat2", root+"/ro/file", "r", "0"))
		// RESOLVE_BENEATH (0x08) from allowed/: ../secret escapes.
		expectErr(t, supervise(t, pol, vt, "openat2", "../secret/file", "r", "8", root+"/allowed"), "EXDEV")
		expectErr(t, supervise(t, pol, vt, "openat2big", root+"/ro/file"), "E2BIG")
	})
}

func TestOpenSymlinksAndDotDot(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	must(t, os.Symlink(root+"/secret/file", root+"/allowed/link-out"))
	must(t, os.Symlink("../secret/file", root+"/allowed/rel-link-out"))
	must(t, os.Symlink("sub", root+"/allowed/link-in"))
	must(t, os.Symlink(root+"/secret", root+"/allowed/dirlink"))
	must(t, os.WriteFile(root+"/allowed/sub/f", []byte("x"), 0o644))

	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/link-out", "r"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/rel-link-out", "r"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/../secret/file", "r"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/sub/../../secret/file", "r"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dirlink/file", "r"), "EACCES")
	r := supervise(t, pol, vt, "open", root+"/allowed/link-in/f", "r")
	expectOK(t, r)
	// The policy judged the canonical path, not the one given.
	if !containsAsked(pol, "open "+root+"/allowed/sub/f") {
		t.Fatalf("policy was not asked about the canonical path: %v", pol.asked)
	}
	// A symlink as the final component with O_NOFOLLOW: ELOOP.
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/link-in", "nf"), "ELOOP")
	// Creating through a dangling symlink that points outside: denied, no file.
	must(t, os.Symlink(root+"/secret/created", root+"/allowed/dangling"))
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dangling", "c"), "EACCES")
	if _, err := os.Lstat(root + "/secret/created"); err == nil {
		t.Fatal("created through a dangling symlink")
	}
}

func containsAsked(p *fakePolicy, prefix string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.asked {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenProcSelf(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	// /proc/self/root is the caller's root.
	expectOK(t, supervise(t, pol, vt, "open", "/proc/self/root"+root+"/ro/file", "r"))
	expectErr(t, supervise(t, pol, vt, "open", "/proc/self/root"+root+"/secret/file", "r"), "EACCES")
	// /proc/self/cwd is the caller's cwd, not the supervisor's.
	expectOK(t, superviseIn(t, pol, root+"/ro", nil, vt, "open", "/proc/self/cwd/file", "r"))
	expectErr(t, superviseIn(t, pol, root+"/secret", nil, vt, "open", "/proc/self/cwd/file", "r"), "EACCES")
	expectErr(t, superviseIn(t, pol, root+"/secret", nil, vt, "open", "/proc/thread-self/cwd/file", "r"), "EACCES")
	// /proc/self/fd/N of an allowed file is that file again.
	r := supervise(t, pol, vt, "procfd", root+"/ro/file")
	expectOK(t, r)
	st, _ := os.Stat(root + "/ro/file")
	if !strings.Contains(r.stdout, "ino="+itoa(int(inode(st)))) {
		t.Fatalf("reopened the wrong object: %s", r.stdout)
	}
	// ... and cannot upgrade a read-only fd to write access.
	expectErr(t, supervise(t, pol, vt, "procfd", root+"/ro/file", "r", "w"), "EACCES")
	// An O_PATH fd (allowed, grants nothing) reopened for reading is judged
	// as the file it names.
	expectOK(t, supervise(t, pol, vt, "procfd", root+"/ro/file", "p", "r"))
	// A pipe through /proc/self/fd/N: decided on the /proc path, reopened
	// from our copy of the caller's fd.
	r = supervise(t, pol, vt, "pipefd")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "read=x") {
		t.Fatal(r.stdout)
	}
	// /proc/self means the caller: the policy sees the caller's pid.
	pol2 := newPolicy()
	pol2.read = []string{fixtures + "/", "/etc/ld.so.cache", "/lib/", "/usr/lib/", "/lib64/"}
	r = supervise(t, pol2, vt, "open", "/proc/self/status", "r")
	expectErr(t, r, "EACCES")
	evs := auditEvents(t, r)
	if len(evs) == 0 || evs[0].Path != "/proc/"+itoa(evs[0].Pid)+"/status" {
		t.Fatalf("want /proc/<caller pid>/status, got %+v", evs)
	}
	r = supervise(t, pol2, vt, "thread", "open", "/proc/thread-self/status", "r")
	expectErr(t, r, "EACCES")
	evs = auditEvents(t, r)
	if len(evs) == 0 || !strings.HasPrefix(evs[0].Path, "/proc/"+itoa(evs[0].Pid)+"/task/") || strings.HasPrefix(evs[0].Path, "/proc/"+itoa(os.Getpid())) {
		t.Fatalf("want /proc/<caller pid>/task/<tid>/status, got %+v", evs)
	}
}

func TestOpenRelativeAndDirfd(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	// Relative paths after chdir (the caller's cwd, not ours).
	expectOK(t, supervise(t, pol, vt, "openrel", root+"/ro", "file", "r"))
	expectErr(t, supervise(t, pol, vt, "openrel", root+"/secret", "file", "r"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "openrel", root+"/allowed", "../secret/file", "r"), "EACCES")
	// openat on an O_PATH dirfd.
	pol.read = append(pol.read, root+"/allowed")
	expectOK(t, supervise(t, pol, vt, "opath", root+"/allowed", "file"))
	expectOK(t, supervise(t, pol, vt, "opath", root+"/allowed", "sub/../file"))
	expectErr(t, supervise(t, pol, vt, "opath", root+"/allowed", "../secret/file"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "opath", root+"/allowed/sub", "../../secret/file"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "opath", root+"/allowed", "../ro/file", "w"), "EACCES")
}

// TestOpenPrivateFDTable: a thread with an fd table of its own
// (unshare(CLONE_FILES)) opens relative to a dirfd whose number names
// another directory in the thread group leader's table. The open is
// decided on, and performed in, the directory the thread named: ro/file is
// read through it, and secret/file is refused, not swapped for the
// leader's directory's file. Without thread pidfds (before 6.9) such a
// call is refused.
func TestOpenPrivateFDTable(t *testing.T) {
	root, pol := tree(t)
	// The directories themselves may be opened (their files as tree says).
	pol.read = append(pol.read, root+"/allowed", root+"/ro", root+"/secret")
	vt := fixture("vtool")
	r := supervise(t, pol, vt, "privfiles", root+"/allowed", root+"/ro", "file")
	expectOK(t, r)
	if !strings.Contains(r.stdout, "read=data of ro/file") {
		t.Fatalf("read through the leader's dirfd, not the thread's: %s", r.stdout)
	}
	expectErr(t, supervise(t, pol, vt, "privfiles", root+"/ro", root+"/secret", "file"), "EACCES")

	noPidfdThread.Store(true)
	defer noPidfdThread.Store(false)
	expectErr(t, supervise(t, pol, vt, "privfiles", root+"/allowed", root+"/ro", "file"), "EACCES")
	// A thread that shares its table (every ordinary thread) is served
	// through the thread group's pidfd as before.
	expectOK(t, supervise(t, pol, vt, "thread", "opath", root+"/allowed", "file"))
}

// TestOpenRace flips the path buffer between an allowed and a denied file
// while the other thread opens it: the denied file must never be opened.
func TestOpenRace(t *testing.T) {
	root, pol := tree(t)
	must(t, os.WriteFile(root+"/ro/aaaaa", []byte("a"), 0o644))
	must(t, os.WriteFile(root+"/secret/b", []byte("b"), 0o644))
	// Same length: root/ro/aaaa and root/secret/b
	a, b := root+"/ro/aaaaa", root+"/secret/b"
	if len(a) != len(b) {
		t.Fatalf("lengths %d %d", len(a), len(b))
	}
	n := "20000"
	r := supervise(t, pol, fixture("vtool"), "race", a, b, n)
	t.Logf("open race: %s", strings.TrimSpace(r.stdout))
	if r.err != nil || r.status != 0 || !strings.Contains(r.stdout, "violations=0 other=0") {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "allowed=0 ") || strings.Contains(r.stdout, "denied=0 ") {
		t.Fatalf("the race did not exercise both sides: %s", r.stdout)
	}
}
