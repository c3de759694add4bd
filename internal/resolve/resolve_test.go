package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPath opens p O_PATH (following links) and registers the close.
func openPath(t testing.TB, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// selfCtx is the test process as the caller, with dir as its cwd/dirfd.
func selfCtx(t testing.TB, dir string) Context {
	t.Helper()
	ctx := Context{Pid: os.Getpid(), Tid: unix.Gettid(), Root: openPath(t, "/"), Dir: -1}
	if dir != "" {
		ctx.Dir = openPath(t, dir)
	}
	return ctx
}

func mustMkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustFile(t testing.TB, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t testing.TB, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func statOf(t testing.TB, p string, follow bool) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	var err error
	if follow {
		err = unix.Stat(p, &st)
	} else {
		err = unix.Lstat(p, &st)
	}
	if err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st
}

// tempBase is a t.TempDir() with its symlinks resolved (the canonical
// results never contain a link).
func tempBase(t testing.TB) string {
	t.Helper()
	b, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildTree makes the fixed tree most tests use.
func buildTree(t testing.TB, base string) {
	t.Helper()
	mustMkdir(t, base+"/a/b/c")
	mustMkdir(t, base+"/d")
	mustFile(t, base+"/a/f")
	mustFile(t, base+"/a/b/c/g")
	mustLink(t, "a/b", base+"/l_rel")
	mustLink(t, base+"/a", base+"/l_abs")
	mustLink(t, "chain2", base+"/chain1")
	mustLink(t, "l_rel", base+"/chain2")
	mustLink(t, "loop2", base+"/loop1")
	mustLink(t, "loop1", base+"/loop2")
	mustLink(t, "newfile", base+"/dang")
	mustLink(t, "a/f", base+"/lf")
	mustLink(t, "a/", base+"/lslash")
	mustLink(t, "f/", base+"/a/lfslash")
	mustLink(t, "/a", base+"/rootabs")
	mustLink(t, "../..", base+"/a/b/up")
	mustLink(t, "/", base+"/toroot")
	// A chain of exactly 40 links resolves, 41 is ELOOP.
	for i := 0; i < 41; i++ {
		mustLink(t, "n"+strconv.Itoa(i+1), base+"/n"+strconv.Itoa(i))
	}
	mustMkdir(t, base+"/n41")
}

type tcase struct {
	path  string
	flags Flags
	want  string // canonical path relative to base ("" = base), or "/abs"
	err   error
	mode  uint32 // expected S_IFMT, 0: don't care
	miss  bool   // Exists == false
}

func runCases(t *testing.T, ctx Context, base string, cases []tcase) {
	t.Helper()
	for _, c := range cases {
		r, err := Resolve(ctx, c.path, c.flags)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Resolve(%q, %#x) = %+v, %v; want %v", c.path, c.flags, r, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q, %#x): %v", c.path, c.flags, err)
			continue
		}
		want := c.want
		if !strings.HasPrefix(want, "/") {
			want = filepath.Join(base, want)
		}
		if r.Path != want || r.Kind != Path || r.Exists == c.miss {
			t.Errorf("Resolve(%q, %#x) = %+v; want path %q exists %v", c.path, c.flags, r, want, !c.miss)
			continue
		}
		if c.mode != 0 && r.Mode&unix.S_IFMT != c.mode {
			t.Errorf("Resolve(%q): mode %o, want type %o", c.path, r.Mode, c.mode)
		}
		if r.Exists {
			st := statOf(t, want, false)
			if uint64(st.Dev) != r.Dev || st.Ino != r.Ino || st.Mode != r.Mode {
				t.Errorf("Resolve(%q): dev/ino/mode %d/%d/%o, lstat(%s) says %d/%d/%o",
					c.path, r.Dev, r.Ino, r.Mode, want, st.Dev, st.Ino, st.Mode)
			}
		}
	}
}

// bothWalks runs f with the openat2 fast path enabled, then with the full
// walk alone: both must give the same answers.
func bothWalks(t *testing.T, f func(t *testing.T)) {
	t.Run("fast", f)
	t.Run("full", func(t *testing.T) {
		disableFastPath = true
		defer func() { disableFastPath = false }()
		f(t)
	})
}

func TestResolveTree(t *testing.T) { bothWalks(t, testResolveTree) }

func testResolveTree(t *testing.T) {
	base := tempBase(t)
	buildTree(t, base)
	ctx := selfCtx(t, base)
	long := strings.Repeat("x", 256)
	cases := []tcase{
		{path: "a/f", want: "a/f", mode: unix.S_IFREG},
		{path: base + "/a/f", want: "a/f"},
		{path: "a/../a/./f", want: "a/f"},
		{path: "./a//b/", want: "a/b", mode: unix.S_IFDIR},
		{path: ".", want: ""},
		{path: "a/b/c/../../..", want: ""},
		{path: "/", want: "/"},
		{path: "/..", want: "/"},
		{path: "/../../tmp/..", want: "/"},
		{path: "l_rel", want: "a/b"},
		{path: "l_abs/f", want: "a/f"},
		{path: "chain1/c/g", want: "a/b/c/g"},
		{path: "loop1", err: unix.ELOOP},
		{path: "loop1/x", err: unix.ELOOP},
		{path: "n1", want: "n41"},     // 40 links
		{path: "n0", err: unix.ELOOP}, // 41 links
		{path: "l_rel/..", want: "a"}, // ".." is physical: the parent of a/b
		{path: "a/b/up", want: ""},
		{path: "a/b/up/a/f", want: "a/f"},
		{path: "toroot", want: "/"},
		{path: "toroot/" + strings.TrimPrefix(base, "/") + "/a", want: "a"},
		{path: "dang", err: unix.ENOENT},
		{path: "dang", flags: Create, want: "newfile", miss: true},
		{path: "dang", flags: Create | Excl, want: "dang", mode: unix.S_IFLNK},
		{path: "a/f", flags: Create | Excl, want: "a/f", mode: unix.S_IFREG},
		{path: "a/f", flags: Create, want: "a/f"},
		{path: "a/new", flags: Create, want: "a/new", miss: true},
		{path: "a/new/x", flags: Create, err: unix.ENOENT},
		{path: "missing/x", err: unix.ENOENT},
		{path: "l_rel", flags: NoFollow, want: "l_rel", mode: unix.S_IFLNK},
		{path: "l_rel/", flags: NoFollow, want: "a/b", mode: unix.S_IFDIR}, // a trailing slash follows
		{path: "l_rel", flags: NoFollow | Directory, err: unix.ENOTDIR},
		{path: "lf", want: "a/f"},
		{path: "lf/", err: unix.ENOTDIR},
		{path: "a/f/", err: unix.ENOTDIR},
		{path: "a/f/.", err: unix.ENOTDIR},
		{path: "a/f/..", err: unix.ENOTDIR},
		{path: "a/f/x", err: unix.ENOTDIR},
		{path: "a/f", flags: Directory, err: unix.ENOTDIR},
		{path: "a/lfslash", err: unix.ENOTDIR}, // a link body's trailing slash
		{path: "lslash", want: "a"},
		{path: "a/", flags: Create, err: unix.EISDIR},
		{path: "a/nope/", flags: Create, err: unix.EISDIR},
		{path: "a/lfslash", flags: Create, err: unix.EISDIR},
		{path: "a/b", flags: Create, want: "a/b"}, // EISDIR comes from the open
		{path: long, err: unix.ENAMETOOLONG},
		{path: "missing/" + long, err: unix.ENOENT},
		{path: "a/" + long, flags: Create, err: unix.ENAMETOOLONG},
		{path: strings.Repeat("./", 2048), err: unix.ENAMETOOLONG},
		{path: strings.Repeat("./", 2047) + "a", want: "a"},
		{path: "", err: unix.ENOENT},
		{path: "", flags: EmptyPath, want: ""},
		{path: "a\x00", err: unix.EINVAL},
		// RESOLVE_* emulation (ctx.Dir = base).
		{path: "a/../a/f", flags: Beneath, want: "a/f"},
		{path: "..", flags: Beneath, err: unix.EXDEV},
		{path: "a/../..", flags: Beneath, err: unix.EXDEV},
		{path: base, flags: Beneath, err: unix.EXDEV},
		{path: "l_abs", flags: Beneath, err: unix.EXDEV},
		{path: "a/b/up/..", flags: Beneath, err: unix.EXDEV},
		{path: "l_rel/c", flags: Beneath, want: "a/b/c"},
		{path: "..", flags: InRoot, want: ""},
		{path: "../../a/f", flags: InRoot, want: "a/f"},
		{path: "/a/f", flags: InRoot, want: "a/f"},
		{path: "rootabs/f", flags: InRoot, want: "a/f"},
		{path: "toroot", flags: InRoot, want: ""},
		{path: "l_abs", flags: InRoot, err: unix.ENOENT}, // base/<base>/a does not exist
		{path: "a/f", flags: Beneath | InRoot, err: unix.EINVAL},
		{path: "l_rel", flags: NoSymlinks, err: unix.ELOOP},
		{path: "l_rel", flags: NoSymlinks | NoFollow, want: "l_rel", mode: unix.S_IFLNK},
		{path: "a/b/c/g", flags: NoSymlinks, want: "a/b/c/g"},
		{path: "a/b/c/g", flags: NoXdev, want: "a/b/c/g"},
		{path: "/proc/self", flags: NoXdev, err: unix.EXDEV},
		{path: "/proc", flags: NoXdev, err: unix.EXDEV},
		{path: "/proc", want: "/proc"},
	}
	runCases(t, ctx, base, cases)

	// Relative to another dirfd, and EmptyPath on a non-directory.
	ctx2 := ctx
	ctx2.Dir = openPath(t, base+"/a/b")
	runCases(t, ctx2, base, []tcase{
		{path: "c/g", want: "a/b/c/g"},
		{path: "../f", want: "a/f"},
		{path: "up", want: ""},
		{path: "..", flags: InRoot, want: "a/b"},
		{path: "up/a", flags: InRoot, err: unix.ENOENT}, // ../.. stops at a/b
		{path: "up", flags: Beneath, err: unix.EXDEV},
	})
	ctx3 := ctx
	ctx3.Dir = openPath(t, base+"/a/f")
	runCases(t, ctx3, base, []tcase{
		{path: "", flags: EmptyPath, want: "a/f", mode: unix.S_IFREG},
		{path: "", flags: EmptyPath | Directory, err: unix.ENOTDIR},
		{path: "x", err: unix.ENOTDIR},
	})
	// NoXdev across ".." out of a mount: from /proc, ".." is the root fs.
	ctx4 := ctx
	ctx4.Dir = openPath(t, "/proc/self")
	runCases(t, ctx4, base, []tcase{
		{path: "..", want: "/proc"},
		{path: "../..", flags: NoXdev, err: unix.EXDEV},
		{path: "fd", flags: NoXdev, want: "/proc/" + strconv.Itoa(os.Getpid()) + "/fd"},
	})
	// Bad fds.
	if _, err := Resolve(Context{Root: -1, Dir: -1}, "/", 0); err != unix.EBADF {
		t.Errorf("bad root: %v", err)
	}
	if _, err := Resolve(Context{Root: ctx.Root, Dir: -1}, "a", 0); err != unix.EBADF {
		t.Errorf("relative without Dir: %v", err)
	}
}

// TestDeletedCwd: a relative path from a directory that no longer has a
// path fails closed with ENOENT; EmptyPath on it is Magic.
func TestDeletedCwd(t *testing.T) {
	base := tempBase(t)
	mustMkdir(t, base+"/gone")
	ctx := selfCtx(t, base+"/gone")
	if err := os.Remove(base + "/gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(ctx, "x", Create); err != unix.ENOENT {
		t.Errorf("relative in deleted dir: %v, want ENOENT", err)
	}
	r, err := Resolve(ctx, "", EmptyPath)
	if err != nil || r.Kind != Magic || !strings.HasSuffix(r.Target, " (deleted)") {
		t.Errorf("EmptyPath on deleted dir: %+v %v", r, err)
	}
}

// TestOpen checks Open and ResolveOpen on plain results.
func TestOpen(t *testing.T) {
	base := tempBase(t)
	buildTree(t, base)
	ctx := selfCtx(t, base)

	fdPath := func(fd int) string {
		s, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Create through a dangling link: the target is created.
	fd, r, err := ResolveOpen(ctx, "dang", Create, unix.O_CREAT|unix.O_WRONLY, 0o600, nil)
	if err != nil {
		t.Fatalf("create via dangling link: %v", err)
	}
	if got := fdPath(fd); got != base+"/newfile" || r.Exists {
		t.Errorf("created %s (%+v)", got, r)
	}
	unix.Close(fd)
	// Excl on an existing final link: EEXIST from the open.
	if _, _, err := ResolveOpen(ctx, "lf", Create|Excl, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600, nil); err != unix.EEXIST {
		t.Errorf("O_EXCL on a link: %v, want EEXIST", err)
	}
	// NoFollow final link: ELOOP without O_PATH, the link itself with O_PATH.
	if _, _, err := ResolveOpen(ctx, "lf", NoFollow, unix.O_RDONLY|unix.O_NOFOLLOW, 0, nil); err != unix.ELOOP {
		t.Errorf("O_NOFOLLOW on a link: %v, want ELOOP", err)
	}
	fd, _, err = ResolveOpen(ctx, "lf", NoFollow, unix.O_PATH|unix.O_NOFOLLOW, 0, nil)
	if err != nil {
		t.Fatalf("O_PATH|O_NOFOLLOW on a link: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("O_PATH link: mode %o %v", st.Mode, err)
	}
	unix.Close(fd)
	// The root itself, garbage flag bits and a mode without O_CREAT are
	// accepted as open(2) accepts them.
	fd, _, err = ResolveOpen(ctx, "/", 0, unix.O_RDONLY|unix.O_DIRECTORY|1<<30, 0o777, nil)
	if err != nil {
		t.Fatalf("open /: %v", err)
	}
	if got := fdPath(fd); got != "/" {
		t.Errorf("open / gave %s", got)
	}
	unix.Close(fd)
	// decide refuses: nothing is opened, decide's error comes back.
	deny := errors.New("denied")
	if fd, _, err := ResolveOpen(ctx, "a/f", 0, unix.O_RDONLY, 0, func(Result) error { return deny }); err != deny || fd != -1 {
		t.Errorf("decide: %d %v", fd, err)
	}
	// Open refuses Magic results.
	if _, err := Open(ctx, Result{Kind: Magic, Path: "/proc/1/fd/0"}, unix.O_RDONLY, 0); err != unix.EINVAL {
		t.Errorf("Open(Magic): %v", err)
	}
	// A symlink that appears after Resolve makes Open fail with ELOOP.
	r, err = Resolve(ctx, "d/f", Create)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(base + "/d")
	mustLink(t, "a", base+"/d")
	if _, err := Open(ctx, r, unix.O_CREAT|unix.O_WRONLY, 0o600); err != unix.ELOOP {
		t.Errorf("Open after a swap: %v, want ELOOP", err)
	}
}

func countFds(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNoFdLeak runs every kind of resolution, successful and not, and
// checks that the fd table is the same size afterwards.
func TestNoFdLeak(t *testing.T) { bothWalks(t, testNoFdLeak) }

func testNoFdLeak(t *testing.T) {
	base := tempBase(t)
	buildTree(t, base)
	ctx := selfCtx(t, base)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	paths := []string{"a/f", "l_rel/..", "loop1", "n0", "n1", "dang", "a/f/x", "/proc/self/fd/" + strconv.Itoa(p[0]),
		"/proc/self/fd/" + strconv.Itoa(ctx.Dir) + "/a/f", "/proc/self/cwd", "/proc/thread-self/fd/" + strconv.Itoa(p[0]) + "/x",
		"/proc/self/exe", "/dev/stdin", "a/b/up/..", "", "/", "rootabs"}
	flagsets := []Flags{0, NoFollow, Create, Create | Excl, Directory, EmptyPath, Beneath, InRoot, NoSymlinks, NoMagicLinks, NoXdev}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := countFds(t)
	for i := 0; i < 3; i++ {
		for _, p := range paths {
			for _, f := range flagsets {
				Resolve(ctx, p, f)
			}
		}
		fd, _, err := ResolveOpen(ctx, "a/f", 0, unix.O_RDONLY, 0, nil)
		if err == nil {
			unix.Close(fd)
		}
	}
	if after := countFds(t); after != before {
		t.Errorf("fd count %d before, %d after", before, after)
	}
}
