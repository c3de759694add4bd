//go:build linux

package supervisor

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLexicalPath(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"/etc/hostname", "/etc/hostname", true},
		{"/proc/self/status", "/proc/42/status", true},
		{"/proc/self", "/proc/42", true},
		{"/proc/thread-self/status", "/proc/42/task/43/status", true},
		{"/proc/selfish/x", "/proc/selfish/x", true},
		{"/proc/42/status", "/proc/42/status", true},
		{"/a/.../b", "/a/.../b", true},
		{"/a/..b/c", "/a/..b/c", true},
		{"relative", "", false},
		{"/", "", false},
		{"", "", false},
		{"/a//b", "", false},
		{"/a/./b", "", false},
		{"/a/../b", "", false},
		{"/a/.", "", false},
		{"/a/..", "", false},
		{"/a/b/", "", false},
		{"/proc/self/", "", false},
		{"/proc/self/../1/status", "", false},
	} {
		got, ok := lexicalPath(c.in, 42, 43)
		if ok != c.ok || got != c.want {
			t.Errorf("lexicalPath(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestNoSymlinksErrnoOrder checks the kernel fact the fast path's errno
// answers rest on: with RESOLVE_NO_SYMLINKS a symlink on the way fails
// with ELOOP before anything behind it is looked up, so ENOENT and ENOTDIR
// come only from walks through real directories.
func TestNoSymlinksErrnoOrder(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(root+"/d/sub", 0o755))
	must(t, os.WriteFile(root+"/d/file", nil, 0o644))
	must(t, os.Symlink(root+"/d", root+"/abslink"))
	must(t, os.Symlink("d", root+"/rellink"))
	must(t, os.Symlink(root+"/nowhere", root+"/dangling"))
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(rfd)
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	creat := how
	creat.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_CLOEXEC
	creat.Mode = 0o644
	for _, c := range []struct {
		path string
		how  unix.OpenHow
		want error
	}{
		{"d/file", how, nil},
		{"d/missing", how, unix.ENOENT},
		{"missing/x", how, unix.ENOENT},
		{"d/file/x", how, unix.ENOTDIR},
		{"abslink/missing", how, unix.ELOOP},
		{"abslink/missing/deeper", how, unix.ELOOP},
		{"rellink/file", how, unix.ELOOP},
		{"rellink/file/x", how, unix.ELOOP},
		{"dangling", how, unix.ELOOP},
		{"dangling", creat, unix.ELOOP},
		{"abslink/new", creat, unix.ELOOP},
	} {
		fd, err := unix.Openat2(rfd, c.path, &c.how)
		if err == nil {
			unix.Close(fd)
		}
		if err != c.want {
			t.Errorf("openat2(%q, flags %#x) = %v, want %v", c.path, c.how.Flags, err, c.want)
		}
	}
	if _, err := os.Lstat(root + "/nowhere"); err == nil {
		t.Fatal("created through a dangling symlink")
	}
	if _, err := os.Lstat(root + "/d/new"); err == nil {
		t.Fatal("created through a symlinked directory")
	}
}

// TestOpenLexicalFastPath: plain absolute paths are answered by the fast
// path; a symlink anywhere on the way sends the open to the full path,
// which judges the resolved object.
func TestOpenLexicalFastPath(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	must(t, os.Symlink(root+"/secret", root+"/allowed/dirlink"))
	must(t, os.Symlink(root+"/allowed", root+"/elsewhere"))
	must(t, os.Symlink(root+"/secret/file", root+"/allowed/filelink"))
	must(t, os.Symlink(root+"/secret/made", root+"/allowed/dangling"))

	before := lexicalOpens.Load()
	expectOK(t, supervise(t, pol, vt, "open", root+"/ro/file", "r"))
	if lexicalOpens.Load() == before {
		t.Fatal("a plain allowed path did not take the fast path")
	}
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/missing", "r"), "ENOENT")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/file/x", "r"), "ENOTDIR")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/nodir/new", "c"), "ENOENT")
	expectOK(t, supervise(t, pol, vt, "open", root+"/allowed/fresh", "c"))
	if _, err := os.Stat(root + "/allowed/fresh"); err != nil {
		t.Fatal(err)
	}

	// A symlinked prefix that the lexical path does not match: denied
	// lexically, allowed by the full path on the resolved object.
	pol.mu.Lock()
	pol.asked = nil
	pol.mu.Unlock()
	expectOK(t, supervise(t, pol, vt, "open", root+"/elsewhere/file", "r"))
	if !containsAsked(pol, "open "+root+"/allowed/file") {
		t.Fatalf("the resolved path was not judged: %v", pol.asked)
	}

	// Lexically allowed, but a component is a symlink into a denied tree:
	// the fast open fails with ELOOP and the full path denies.
	for _, p := range []string{root + "/allowed/dirlink/file", root + "/allowed/filelink"} {
		pol.mu.Lock()
		pol.asked = nil
		pol.mu.Unlock()
		r := supervise(t, pol, vt, "open", p, "r")
		expectErr(t, r, "EACCES")
		if !containsAsked(pol, "open "+root+"/secret/file") {
			t.Fatalf("%s: the resolved path was not judged: %v", p, pol.asked)
		}
		if findEvent(auditEvents(t, r), "deny", "open", root+"/secret/file") == nil {
			t.Fatalf("%s: no denial of the resolved path in %s", p, r.audit)
		}
	}
	// Behind a symlink, a missing file is not created in the denied tree,
	// nor through a dangling final symlink.
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dirlink/new", "c"), "EACCES")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dangling", "c"), "EACCES")
	for _, p := range []string{root + "/secret/new", root + "/secret/made"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s created through a symlink", p)
		}
	}
	// Behind a symlink a missing file is ENOENT (resolved, no decision).
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dirlink/missing", "r"), "ENOENT")

	// The same answers with the fast path off.
	disableLexicalOpen = true
	defer func() { disableLexicalOpen = false }()
	expectOK(t, supervise(t, pol, vt, "open", root+"/ro/file", "r"))
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/missing", "r"), "ENOENT")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/file/x", "r"), "ENOTDIR")
	expectErr(t, supervise(t, pol, vt, "open", root+"/allowed/dirlink/file", "r"), "EACCES")
	expectOK(t, supervise(t, pol, vt, "open", root+"/elsewhere/file", "r"))
}
