//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/rules"
)

func fsdoor(args ...string) []string { return append([]string{fixture("fsdoor")}, args...) }

// statOf is what a denied change must leave as it was.
type statOf struct {
	ok             bool
	mode, uid, gid uint32
	size, nlink    int64
	mtim, ctim     unix.Timespec
	ino            uint64
	xattr          string
	xattrErr       error
}

func snap(t *testing.T, p string) statOf {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return statOf{}
	}
	s := statOf{ok: true, mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, nlink: int64(st.Nlink),
		mtim: st.Mtim, ctim: st.Ctim, ino: st.Ino}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, "user.vigil", buf)
	if err == nil {
		s.xattr = string(buf[:n])
	}
	s.xattrErr = err
	return s
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// denied runs args, expects EACCES and a deny event for op naming path.
func expectDenied(t *testing.T, pol Policy, op, path string, args ...string) runResult {
	t.Helper()
	r := supervise(t, pol, fsdoor(args...)...)
	expectErr(t, r, "EACCES")
	if e := findEvent(auditEvents(t, r), DecisionDeny, op, path); e == nil {
		t.Fatalf("%v: no deny event op=%s path=%s: %s", args, op, path, r.audit)
	}
	return r
}

func mustOK(t *testing.T, pol Policy, args ...string) runResult {
	t.Helper()
	r := supervise(t, pol, fsdoor(args...)...)
	expectOK(t, r)
	return r
}

// TestPathChangeHardLink: a hard link may not carry a file that is out of
// reach (not writable) into the writable tree, by path or by an fd
// (linkat AT_EMPTY_PATH); links inside the tree and O_TMPFILE links work.
func TestPathChangeHardLink(t *testing.T) {
	root, pol := tree(t)
	a := root + "/allowed"
	pol.write = append(pol.write, a) // O_TMPFILE opens the directory itself
	for _, src := range []string{root + "/secret/file", root + "/ro/file"} {
		r := expectDenied(t, pol, "link", src, "link", src, a+"/l")
		if e := findEvent(auditEvents(t, r), DecisionDeny, "link", src); e.Target != a+"/l" || e.Rule == "" {
			t.Fatalf("event %+v: want target %s and a rule", e, a+"/l")
		}
		if exists(a + "/l") {
			t.Fatalf("link of %s created", src)
		}
		expectDenied(t, pol, "link", src, "linkfollow", src, a+"/l")
		if exists(a + "/l") {
			t.Fatalf("linkat follow of %s created", src)
		}
	}
	// A read-only fd of a file outside the writable tree.
	expectDenied(t, pol, "link", root+"/ro/file", "linkempty", root+"/ro/file", "r", a+"/l")
	if exists(a + "/l") {
		t.Fatal("linkat AT_EMPTY_PATH of a read-only fd created the link")
	}
	// Allowed: inside the tree, both forms.
	mustOK(t, pol, "link", a+"/file", a+"/l1")
	mustOK(t, pol, "linkempty", a+"/file", "r", a+"/l2")
	var s1, s2, s0 unix.Stat_t
	must(t, unix.Stat(a+"/file", &s0))
	must(t, unix.Stat(a+"/l1", &s1))
	must(t, unix.Stat(a+"/l2", &s2))
	if s1.Ino != s0.Ino || s2.Ino != s0.Ino || s0.Nlink != 3 {
		t.Fatalf("links: ino %d %d %d nlink %d", s0.Ino, s1.Ino, s2.Ino, s0.Nlink)
	}
	// The link of a symlink without AT_SYMLINK_FOLLOW is the symlink.
	must(t, os.Symlink(root+"/secret/file", a+"/sl"))
	mustOK(t, pol, "link", a+"/sl", a+"/sl2")
	if fi, err := os.Lstat(a + "/sl2"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link of a symlink: %v %v", fi, err)
	}
	expectDenied(t, pol, "link", root+"/secret/file", "linkfollow", a+"/sl", a+"/sl3")
	// Existing target: the kernel's EEXIST.
	expectErr(t, supervise(t, pol, fsdoor("link", a+"/file", a+"/l1")...), "EEXIST")
	// O_TMPFILE linked into place, through /proc/self/fd and AT_EMPTY_PATH.
	mustOK(t, pol, "tmpfile", a, "proc", a+"/t1")
	mustOK(t, pol, "tmpfile", a, "empty", a+"/t2")
	for _, p := range []string{a + "/t1", a + "/t2"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "tmp\n" {
			t.Fatalf("%s: %q %v", p, b, err)
		}
	}
}

// TestPathChangeRename: both ends are writes.
func TestPathChangeRename(t *testing.T) {
	root, pol := tree(t)
	a := root + "/allowed"
	before := snap(t, root+"/ro/file")
	// Into the allowed tree.
	r := expectDenied(t, pol, "rename", root+"/ro/file", "rename", root+"/ro/file", a+"/in")
	if e := findEvent(auditEvents(t, r), DecisionDeny, "rename", root+"/ro/file"); e.Target != a+"/in" {
		t.Fatalf("event %+v", e)
	}
	expectDenied(t, pol, "rename", root+"/secret/file", "rename", root+"/secret/file", a+"/in")
	if exists(a+"/in") || !exists(root+"/secret/file") || snap(t, root+"/ro/file") != before {
		t.Fatal("denied rename into the tree changed something")
	}
	// Out of it.
	r = expectDenied(t, pol, "rename", root+"/ro/out", "rename", a+"/file", root+"/ro/out")
	if e := findEvent(auditEvents(t, r), DecisionDeny, "rename", root+"/ro/out"); e.Target != a+"/file" {
		t.Fatalf("event %+v", e)
	}
	expectDenied(t, pol, "rename", root+"/ro/file", "renameat2", a+"/file", root+"/ro/file", "exchange")
	if !exists(a+"/file") || exists(root+"/ro/out") || snap(t, root+"/ro/file") != before {
		t.Fatal("denied rename out of the tree changed something")
	}
	// Allowed, with the kernel's errnos and flags.
	mustOK(t, pol, "rename", a+"/file", a+"/sub/moved")
	if exists(a+"/file") || !exists(a+"/sub/moved") {
		t.Fatal("rename did not happen")
	}
	must(t, os.WriteFile(a+"/other", []byte("x"), 0o644))
	expectErr(t, supervise(t, pol, fsdoor("renameat2", a+"/other", a+"/sub/moved", "noreplace")...), "EEXIST")
	mustOK(t, pol, "renameat2", a+"/other", a+"/sub/moved", "exchange")
	if b, _ := os.ReadFile(a + "/sub/moved"); string(b) != "x" {
		t.Fatalf("exchange: %q", b)
	}
	expectErr(t, supervise(t, pol, fsdoor("rename", a+"/missing", a+"/x")...), "ENOENT")
	expectErr(t, supervise(t, pol, fsdoor("rename", a+"/sub", a+"/sub/moved/x")...), "ENOTDIR")
	// A symlink is renamed, not its target.
	must(t, os.Symlink(root+"/secret/file", a+"/sl"))
	mustOK(t, pol, "rename", a+"/sl", a+"/sl2")
	if !exists(root+"/secret/file") || !exists(a+"/sl2") {
		t.Fatal("rename of a symlink")
	}
}

// TestPathChangeMetadataOutside: chmod, chown, truncate, utimes, setxattr
// and unlink of a file outside the writable tree are denied and leave it
// exactly as it was; inside the tree they work.
func TestPathChangeMetadataOutside(t *testing.T) {
	root, pol := tree(t)
	out := root + "/ro/file"
	in := root + "/allowed/file"
	ops := []struct {
		op   string
		args []string
	}{
		{"chmod", []string{"chmod", "%", "0600"}},
		{"chmod", []string{"fchmodat", "%", "0600"}},
		{"chmod", []string{"fchmod", "%", "r", "0600"}},
		{"chown", []string{"chown", "%", "1", "1"}},
		{"chown", []string{"lchown", "%", "1", "1"}},
		{"chown", []string{"fchown", "%", "r", "1", "1"}},
		{"chown", []string{"fchownempty", "%", "r", "1", "1"}},
		{"truncate", []string{"truncate", "%", "1"}},
		{"utime", []string{"utimes", "%", "1000"}},
		{"utime", []string{"utime", "%", "1000"}},
		{"utime", []string{"utimensat", "%", "1000"}},
		{"utime", []string{"futimens", "%", "r", "1000"}},
		{"setxattr", []string{"setxattr", "%", "user.vigil", "v"}},
		{"setxattr", []string{"fsetxattr", "%", "r", "user.vigil", "v"}},
		{"unlink", []string{"unlink", "%"}},
		{"unlink", []string{"unlinkat", "%"}},
	}
	subst := func(args []string, p string) []string {
		out := append([]string(nil), args...)
		for i := range out {
			if out[i] == "%" {
				out[i] = p
			}
		}
		return out
	}
	for _, o := range ops {
		before := snap(t, out)
		expectDenied(t, pol, o.op, out, subst(o.args, out)...)
		if after := snap(t, out); after != before {
			t.Fatalf("%v: denied but changed: %+v -> %+v", o.args, before, after)
		}
	}
	// The same calls inside the tree work (and do what they say).
	for _, o := range ops {
		if o.op == "unlink" {
			continue
		}
		mustOK(t, pol, subst(o.args, in)...)
	}
	s := snap(t, in)
	if s.mode&0o777 != 0o600 || s.uid != 1 || s.gid != 1 || s.size != 1 || s.mtim.Sec != 1000 || s.xattr != "v" {
		t.Fatalf("allowed changes not made: %+v", s)
	}
	mustOK(t, pol, "removexattr", in, "user.vigil")
	if snap(t, in).xattrErr != unix.ENODATA {
		t.Fatal("removexattr")
	}
	mustOK(t, pol, "unlink", in)
	if exists(in) {
		t.Fatal("unlink")
	}
	// Kernel errnos for ordinary failures.
	expectErr(t, supervise(t, pol, fsdoor("unlink", root+"/allowed/sub")...), "EISDIR")
	expectErr(t, supervise(t, pol, fsdoor("truncate", root+"/allowed/sub", "0")...), "EISDIR")
	expectErr(t, supervise(t, pol, fsdoor("chmod", root+"/allowed/missing", "0600")...), "ENOENT")
	must(t, os.WriteFile(root+"/allowed/sub/f", nil, 0o644))
	expectErr(t, supervise(t, pol, fsdoor("rmdir", root+"/allowed/sub")...), "ENOTEMPTY")
	expectErr(t, supervise(t, pol, fsdoor("rmdir", root+"/allowed/sub/.")...), "EINVAL")
	expectErr(t, supervise(t, pol, fsdoor("unlink", root+"/allowed/sub/f/")...), "ENOTDIR")
	mustOK(t, pol, "unlink", root+"/allowed/sub/f")
	mustOK(t, pol, "rmdirat", root+"/allowed/sub/")
	if exists(root + "/allowed/sub") {
		t.Fatal("rmdir")
	}
}

// TestPathChangeFdForms: an fd is judged by its object's path; an object
// no path reaches only if the fd was opened for writing.
func TestPathChangeFdForms(t *testing.T) {
	root, pol := tree(t)
	pol.write = append(pol.write, root+"/ro/wfile")
	must(t, os.WriteFile(root+"/ro/wfile", nil, 0o644))
	// Writable path, read-only fd: judged by the path, allowed.
	mustOK(t, pol, "fchmod", root+"/allowed/file", "r", "0640")
	// A pipe: its write end was opened for writing, its read end not.
	r := supervise(t, pol, fsdoor("fchmodpipe", "r", "0600")...)
	expectErr(t, r, "EACCES")
	if e := auditEvents(t, r); len(e) == 0 || e[0].Op != "chmod" || !strings.HasPrefix(e[0].Path, "pipe:") {
		t.Fatalf("events %+v", e)
	}
	mustOK(t, pol, "fchmodpipe", "w", "0600")
	// A writable fd of a path the policy does not let us write: the path
	// decides (the fd was opened when the policy allowed it).
	expectDenied(t, pol, "chmod", root+"/ro/file", "fchmod", root+"/ro/file", "r", "0600")
	mustOK(t, pol, "fchmod", root+"/ro/wfile", "w", "0600")
}

// TestPathChangeCreate: mkdir, symlink and mknod (FIFO) inside the tree
// work with the caller's umask; outside they are denied and create nothing.
func TestPathChangeCreate(t *testing.T) {
	root, pol := tree(t)
	a, ro := root+"/allowed", root+"/ro"
	pol.read = append(pol.read, ro, a) // mkdirat opens the directories
	expectDenied(t, pol, "mkdir", ro+"/d", "mkdir", ro+"/d", "0777")
	expectDenied(t, pol, "mkdir", ro+"/d", "mkdirat", ro, "d", "0777")
	expectDenied(t, pol, "symlink", ro+"/s", "symlink", a+"/file", ro+"/s")
	expectDenied(t, pol, "mknod", ro+"/p", "mknod", ro+"/p", "fifo", "0666")
	expectDenied(t, pol, "mknod", ro+"/p", "mknod", ro+"/p", "reg", "0666")
	for _, n := range []string{"d", "s", "p"} {
		if exists(ro + "/" + n) {
			t.Fatalf("%s created", n)
		}
	}
	mustOK(t, pol, "umask", "027", "mkdir", a+"/d", "0777")
	mustOK(t, pol, "umask", "022", "mkdirat", a, "d2/", "0755")
	mustOK(t, pol, "symlink", ro+"/file", a+"/s")
	mustOK(t, pol, "umask", "022", "mknod", a+"/p", "fifo", "0666")
	mustOK(t, pol, "mknod", a+"/c", "chr", "0600")
	check := func(p string, typ, perm uint32) {
		t.Helper()
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		if st.Mode&unix.S_IFMT != typ || (perm != 0 && st.Mode&0o7777 != perm) {
			t.Fatalf("%s: mode %o, want type %o perm %o", p, st.Mode, typ, perm)
		}
	}
	check(a+"/d", unix.S_IFDIR, 0o750)
	check(a+"/d2", unix.S_IFDIR, 0o755)
	check(a+"/s", unix.S_IFLNK, 0)
	check(a+"/p", unix.S_IFIFO, 0o644)
	check(a+"/c", unix.S_IFCHR, 0o600)
	if l, _ := os.Readlink(a + "/s"); l != ro+"/file" {
		t.Fatalf("symlink text %q", l)
	}
	expectErr(t, supervise(t, pol, fsdoor("mkdir", a+"/d", "0777")...), "EEXIST")
	expectErr(t, supervise(t, pol, fsdoor("mkdir", a+"/s", "0777")...), "EEXIST") // a symlink is not followed
	expectErr(t, supervise(t, pol, fsdoor("mkdir", a+"/nope/d", "0777")...), "ENOENT")
	// A device node needs the caller's CAP_MKNOD, not the supervisor's.
	r := supervise(t, pol, fsdoor("nocap", itoa(unix.CAP_MKNOD), "mknod", a+"/c2", "chr", "0600")...)
	expectErr(t, r, "EPERM")
	if exists(a + "/c2") {
		t.Fatal("mknod without CAP_MKNOD created a device")
	}
}

// TestPathChangeSymlinkOut: a symlink in the writable tree that points
// outside is no way to change its target; the link itself can go.
func TestPathChangeSymlinkOut(t *testing.T) {
	root, pol := tree(t)
	a, target := root+"/allowed", root+"/ro/file"
	must(t, os.Symlink("../ro/file", a+"/out"))
	must(t, os.Symlink(root+"/ro", a+"/outdir"))
	before := snap(t, target)
	expectDenied(t, pol, "chmod", target, "chmod", a+"/out", "0600")
	expectDenied(t, pol, "truncate", target, "truncate", a+"/out", "0")
	expectDenied(t, pol, "chown", target, "chown", a+"/out", "1", "1")
	expectDenied(t, pol, "utime", target, "utimes", a+"/out", "1000")
	expectDenied(t, pol, "setxattr", target, "setxattr", a+"/out", "user.vigil", "v")
	expectDenied(t, pol, "unlink", target, "unlink", a+"/outdir/file")
	expectDenied(t, pol, "mkdir", root+"/ro/d", "mkdir", a+"/outdir/d", "0755")
	if snap(t, target) != before || exists(root+"/ro/d") {
		t.Fatal("changed through a symlink")
	}
	// The no-follow calls act on the link, which is in the tree.
	mustOK(t, pol, "lchown", a+"/out", "2", "2")
	mustOK(t, pol, "unlink", a+"/out")
	if exists(a+"/out") || snap(t, target) != before {
		t.Fatal("unlink of the link")
	}
	var st unix.Stat_t
	must(t, unix.Lstat(a+"/outdir", &st))
	mustOK(t, pol, "fchmodat2nf", a+"/file", "0600") // not a symlink: works
}

// TestPathChangeRace: one thread swaps a directory of the writable tree
// with a symlink to a denied tree while another chmods / unlinks /
// truncates a file through it: the denied file is never changed, and the
// allowed one is.
func TestPathChangeRace(t *testing.T) {
	for _, op := range []string{"chmod", "unlink", "truncate"} {
		t.Run(op, func(t *testing.T) {
			root, pol := tree(t)
			a := root + "/allowed"
			must(t, os.Mkdir(a+"/x", 0o755))
			must(t, os.WriteFile(a+"/x/f", []byte("allowed\n"), 0o644))
			must(t, os.WriteFile(root+"/secret/f", []byte("secret data\n"), 0o644))
			must(t, os.Symlink(root+"/secret", a+"/y"))
			before := snap(t, root+"/secret/f")
			r := supervise(t, pol, fsdoor("race", op, a+"/x", a+"/y", "f", "5000")...)
			expectOK(t, r)
			t.Log(strings.TrimSpace(r.stdout))
			if after := snap(t, root+"/secret/f"); after != before {
				t.Fatalf("the denied file changed: %+v -> %+v", before, after)
			}
			var ok, denied, other int
			for _, f := range strings.Fields(r.stdout) {
				if v, found := strings.CutPrefix(f, "ok="); found {
					ok = atoiS(v)
				}
				if v, found := strings.CutPrefix(f, "denied="); found {
					denied = atoiS(v)
				}
				if v, found := strings.CutPrefix(f, "other="); found {
					other = atoiS(v)
				}
			}
			if ok == 0 || denied == 0 || other != 0 {
				t.Fatalf("want both outcomes and no other errors: %s", r.stdout)
			}
		})
	}
}

func atoiS(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestPathChangeNonRoot: the supervisor performs the calls with the
// caller's credentials: a non-root caller cannot chown or chmod a
// root-owned file, nor create in a root-owned directory, even where the
// policy allows writing; its own file it can chmod.
func TestPathChangeNonRoot(t *testing.T) {
	root, pol := tree(t)
	for p := root; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		must(t, os.Chmod(p, 0o755))
	}
	must(t, os.Chmod(fixtures, 0o755))
	a := root + "/allowed"
	f := a + "/file" // root's, 0644
	before := snap(t, f)
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "chmod", f, "0666")...), "EPERM")
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "chown", f, "65534", "65534")...), "EPERM")
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "fchownempty", f, "r", "65534", "-1")...), "EPERM")
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "truncate", f, "0")...), "EACCES")
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "mkdir", a+"/d", "0777")...), "EACCES")
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "unlink", f)...), "EACCES")
	if snap(t, f) != before || exists(a+"/d") {
		t.Fatal("a non-root caller changed root's file")
	}
	// Its own file, in a directory it may write.
	must(t, os.Mkdir(a+"/u", 0o755))
	must(t, os.Chown(a+"/u", 65534, 65534))
	must(t, os.WriteFile(a+"/u/mine", nil, 0o644))
	must(t, os.Chown(a+"/u/mine", 65534, 65534))
	mustOK(t, pol, "asuser", "65534", "65534", "chmod", a+"/u/mine", "0600")
	mustOK(t, pol, "asuser", "65534", "65534", "umask", "0", "mkdir", a+"/u/d", "0777")
	var st unix.Stat_t
	must(t, unix.Stat(a+"/u/d", &st))
	if st.Uid != 65534 || st.Mode&0o777 != 0o777 {
		t.Fatalf("mkdir as the caller: uid %d mode %o", st.Uid, st.Mode)
	}
	must(t, unix.Stat(a+"/u/mine", &st))
	if st.Mode&0o777 != 0o600 {
		t.Fatalf("chmod: %o", st.Mode)
	}
}

// TestPathChangeAuditMode: audit mode logs what enforce would deny and
// lets it happen.
func TestPathChangeAuditMode(t *testing.T) {
	root, pol := tree(t)
	pol.mode = rules.Audit
	f := root + "/ro/file"
	r := mustOK(t, pol, "chmod", f, "0600")
	if e := findEvent(auditEvents(t, r), DecisionAudit, "chmod", f); e == nil || e.Mode != "audit" {
		t.Fatalf("no audit event: %s", r.audit)
	}
	if snap(t, f).mode&0o777 != 0o600 {
		t.Fatal("audit mode did not chmod")
	}
	r = mustOK(t, pol, "rename", f, root+"/allowed/moved")
	if e := findEvent(auditEvents(t, r), DecisionAudit, "rename", f); e == nil || e.Target != root+"/allowed/moved" {
		t.Fatalf("no audit event: %s", r.audit)
	}
	if !exists(root + "/allowed/moved") {
		t.Fatal("audit mode did not rename")
	}
}

// TestPathChangeRealProgram: python3's tempfile/os/shutil work under a
// permissive policy.
func TestPathChangeRealProgram(t *testing.T) {
	script := `import tempfile,os,shutil
d=tempfile.mkdtemp()
os.mkdir(d+"/a")
open(d+"/a/f","w").write("x")
os.rename(d+"/a/f",d+"/a/g")
os.chmod(d+"/a/g",0o600)
os.symlink("g",d+"/a/l")
os.link(d+"/a/g",d+"/a/h")
os.truncate(d+"/a/h",0)
os.utime(d+"/a/g",(1,2))
os.unlink(d+"/a/l")
assert sorted(os.listdir(d+"/a"))==["g","h"], os.listdir(d+"/a")
assert os.stat(d+"/a/g").st_mode&0o777==0o600 and os.stat(d+"/a/g").st_mtime==2
shutil.rmtree(d)
assert not os.path.exists(d)
print("OK")
`
	r := supervise(t, permissive(), "/usr/bin/python3", "-c", script)
	if r.status != 0 || strings.TrimSpace(r.stdout) != "OK" {
		t.Fatalf("python3: status %d stdout %q stderr %q", r.status, r.stdout, r.stderr)
	}
}

// TestPathChangeChmodFallback: without fchmodat2 (kernels before 6.6, AWS
// Lambda's 5.10) chmod goes through the supervisor's /proc/self/fd/N of the
// object it opened: it works under the caller's fsuid, the kernel still
// checks ownership, and a symlink out of the tree still leads nowhere.
func TestPathChangeChmodFallback(t *testing.T) {
	pcNoFchmodat2 = true
	defer func() { pcNoFchmodat2 = false }()
	root, pol := tree(t)
	for p := root; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		must(t, os.Chmod(p, 0o755))
	}
	must(t, os.Chmod(fixtures, 0o755))
	a := root + "/allowed"
	must(t, os.Symlink(root+"/ro/file", a+"/out"))
	before := snap(t, root+"/ro/file")
	expectDenied(t, pol, "chmod", root+"/ro/file", "chmod", a+"/out", "0600")
	if snap(t, root+"/ro/file") != before {
		t.Fatal("chmod through a symlink")
	}
	mustOK(t, pol, "chmod", a+"/file", "0600")
	if snap(t, a+"/file").mode&0o777 != 0o600 {
		t.Fatal("fallback chmod did not chmod")
	}
	must(t, os.WriteFile(a+"/mine", nil, 0o644))
	must(t, os.Chown(a+"/mine", 65534, 65534))
	mustOK(t, pol, "asuser", "65534", "65534", "fchmodat", a+"/mine", "0640")
	if snap(t, a+"/mine").mode&0o777 != 0o640 {
		t.Fatal("fallback chmod as the owner")
	}
	expectErr(t, supervise(t, pol, fsdoor("asuser", "65534", "65534", "chmod", a+"/file", "0666")...), "EPERM")
	if snap(t, a+"/file").mode&0o777 != 0o600 {
		t.Fatal("fallback chmod of root's file by a non-root caller")
	}
}
