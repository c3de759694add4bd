package resolve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// child is a process whose context paths are resolved in: its own cwd,
// a pipe as stdin, and fds 3.. = a file, a pipe, a deleted file, a memfd,
// a directory.
type child struct {
	pid  int
	ctx  Context
	cwd  string
	file string // what fd 3 is
	dir  string // what fd 7 is
}

func startChild(t *testing.T, base string) *child {
	t.Helper()
	c := &child{cwd: base + "/childcwd", file: base + "/a/f", dir: base + "/a/b"}
	mustMkdir(t, c.cwd)
	mustFile(t, c.cwd+"/x")

	open := func(p string, flag int) *os.File {
		f, err := os.OpenFile(p, flag, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr2, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close(); pr2.Close(); pw2.Close() })
	del := open(base+"/deleted", os.O_CREATE|os.O_RDWR)
	if err := os.Remove(base + "/deleted"); err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.MemfdCreate("vigil-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memf := os.NewFile(uintptr(mfd), "memfd")
	t.Cleanup(func() { memf.Close() })

	cmd := exec.Command("sleep", "30")
	cmd.Dir = c.cwd
	cmd.Stdin = pr
	cmd.ExtraFiles = []*os.File{open(c.file, os.O_RDONLY), pr2, del, memf, open(c.dir, os.O_RDONLY)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c.pid = cmd.Process.Pid
	// Wait until the child runs sleep (its exe is no longer ours).
	self, _ := os.Readlink("/proc/self/exe")
	for i := 0; i < 1000; i++ {
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(c.pid) + "/exe"); err == nil && exe != self {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
	}
	ps := "/proc/" + strconv.Itoa(c.pid)
	c.ctx = Context{Pid: c.pid, Tid: c.pid, Root: openPath(t, ps+"/root"), Dir: openPath(t, ps+"/cwd")}
	return c
}

func TestProcCallerContext(t *testing.T) { bothWalks(t, testProcCallerContext) }

func testProcCallerContext(t *testing.T) {
	base := tempBase(t)
	buildTree(t, base)
	mustLink(t, "/proc/self/fd/0", base+"/stdin")
	mustLink(t, "/proc/self/fd", base+"/devfd")
	mustLink(t, "/proc/thread-self", base+"/ts")
	c := startChild(t, base)
	ps := "/proc/" + strconv.Itoa(c.pid)
	sleepExe, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	sleepExe, _ = filepath.EvalSymlinks(sleepExe)

	// Results that are paths: the child's objects, by their own paths.
	runCases(t, c.ctx, base, []tcase{
		{path: "/proc/self/fd/3", want: c.file, mode: unix.S_IFREG},
		{path: "/proc/thread-self/fd/3", want: c.file},
		{path: base + "/devfd/3", want: c.file},
		{path: "/proc/self/fd/7/c/g", want: c.dir + "/c/g"},
		{path: "/proc/self/fd/7/c/../../f", want: base + "/a/f"},
		{path: "/proc/self/cwd/x", want: c.cwd + "/x"},
		{path: "x", want: c.cwd + "/x"},
		{path: ".", want: c.cwd},
		{path: "/proc/self/cwd", want: c.cwd},
		{path: "/proc/self/root", want: "/"},
		{path: "/proc/self/exe", want: sleepExe},
		{path: "/proc/self", want: ps},
		{path: "/proc/self", flags: NoFollow, want: "/proc/self", mode: unix.S_IFLNK},
		{path: base + "/ts", want: ps + "/task/" + strconv.Itoa(c.pid)},
		{path: "/proc/self/fd/3", flags: NoFollow, want: ps + "/fd/3", mode: unix.S_IFLNK},
		{path: "/proc/self/fd/3", flags: NoMagicLinks, err: unix.ELOOP},
		{path: "/proc/self/fd/3", flags: NoSymlinks, err: unix.ELOOP},
		{path: "/proc/self/fd/3/x", err: unix.ENOTDIR},
		{path: "/proc/self/fd/4/x", err: unix.ENOTDIR},
		{path: "/proc/self/fd/3", flags: Directory, err: unix.ENOTDIR},
		{path: "/proc/self/fd/99", err: unix.ENOENT},
		{path: "proc/self/fd/3", flags: InRoot, err: unix.ENOENT},
	})
	if _, err := os.Stat("/etc/hostname"); err == nil {
		runCases(t, c.ctx, base, []tcase{{path: "/proc/self/root/etc/hostname", want: "/etc/hostname"}})
	}
	// Scoped lookups refuse magic links (nd_jump_link).
	scoped := c.ctx
	scoped.Dir = openPath(t, "/proc")
	runCases(t, scoped, base, []tcase{
		{path: strconv.Itoa(c.pid) + "/fd/3", flags: Beneath, err: unix.EXDEV},
		{path: strconv.Itoa(c.pid) + "/fd/3", flags: InRoot, err: unix.EXDEV},
		{path: "self/fd/3", flags: NoXdev, err: unix.EXDEV},
	})

	// Objects no path reaches: Magic, with the link's canonical /proc path.
	magic := func(p string, fd int, target func(string) bool) {
		t.Helper()
		r, err := Resolve(c.ctx, p, 0)
		if err != nil {
			t.Errorf("Resolve(%q): %v", p, err)
			return
		}
		want := ps + "/fd/" + strconv.Itoa(fd)
		if strings.Contains(p, "thread-self") {
			want = ps + "/task/" + strconv.Itoa(c.pid) + "/fd/" + strconv.Itoa(fd)
		}
		if r.Kind != Magic || r.Path != want || r.LinkPid != c.pid || r.LinkFD != fd || !target(r.Target) {
			t.Errorf("Resolve(%q) = %+v; want Magic %s", p, r, want)
			return
		}
		// The object is the child's, not ours: same as stat through the link.
		st := statOf(t, want, true)
		if r.Dev != uint64(st.Dev) || r.Ino != st.Ino || r.Mode != st.Mode {
			t.Errorf("Resolve(%q): dev/ino %d/%d, link reaches %d/%d", p, r.Dev, r.Ino, st.Dev, st.Ino)
		}
		if _, err := Open(c.ctx, r, unix.O_RDONLY, 0); err != unix.EINVAL {
			t.Errorf("Open(Magic %q): %v", p, err)
		}
	}
	isPipe := func(s string) bool { return strings.HasPrefix(s, "pipe:[") }
	magic("/proc/self/fd/0", 0, isPipe)
	magic(base+"/stdin", 0, isPipe)
	magic("/proc/self/fd/4", 4, isPipe)
	magic("/proc/thread-self/fd/4", 4, isPipe)
	magic("/proc/self/fd/5", 5, func(s string) bool { return s == base+"/deleted (deleted)" })
	magic("/proc/self/fd/6", 6, func(s string) bool { return strings.HasPrefix(s, "/memfd:vigil-test") })
	if _, err := os.Stat("/dev/stdin"); err == nil {
		magic("/dev/stdin", 0, isPipe)
	}
	// Our own stdin is not a pipe with the child's inode.
	var ours unix.Stat_t
	if err := unix.Fstat(0, &ours); err == nil {
		r, _ := Resolve(c.ctx, "/proc/self/fd/0", 0)
		if r.Ino == ours.Ino && r.Dev == uint64(ours.Dev) {
			t.Errorf("/proc/self/fd/0 resolved to the supervisor's stdin")
		}
	}

	// A file that replaced the deleted one's path is not the deleted object.
	mustFile(t, base+"/deleted (deleted)")
	magic("/proc/self/fd/5", 5, func(s string) bool { return s == base+"/deleted (deleted)" })

	// Open of a path result reached through a magic link opens the file.
	fd, r, err := ResolveOpen(c.ctx, "/proc/self/fd/3", 0, unix.O_RDONLY, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); got != c.file || r.Path != c.file {
		t.Errorf("opened %s for %s", got, r.Path)
	}
}
