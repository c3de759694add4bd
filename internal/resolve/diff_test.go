package resolve

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The differential tests compare Resolve with the kernel: the test process
// is the caller, the kernel opens the same path with openat2(O_PATH) and the
// same RESOLVE_* flags, and the object it opened (readlink of its
// /proc/self/fd entry, fstat) must be the one Resolve named, or both must
// fail with the same errno.

// diffFlags are the flags the kernel can check directly with O_PATH.
var diffFlags = []Flags{NoFollow, Directory, Beneath, InRoot, NoSymlinks, NoMagicLinks, NoXdev}

func kernelHow(flags Flags) *unix.OpenHow {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC}
	if flags&NoFollow != 0 {
		how.Flags |= unix.O_NOFOLLOW
	}
	if flags&Directory != 0 {
		how.Flags |= unix.O_DIRECTORY
	}
	for _, m := range []struct {
		f Flags
		r uint64
	}{{Beneath, unix.RESOLVE_BENEATH}, {InRoot, unix.RESOLVE_IN_ROOT}, {NoSymlinks, unix.RESOLVE_NO_SYMLINKS},
		{NoMagicLinks, unix.RESOLVE_NO_MAGICLINKS}, {NoXdev, unix.RESOLVE_NO_XDEV}} {
		if flags&m.f != 0 {
			how.Resolve |= m.r
		}
	}
	return how
}

// compareWithKernel returns a description of the difference, or "".
func compareWithKernel(ctx Context, path string, flags Flags) string {
	r, rerr := Resolve(ctx, path, flags)
	kfd, kerr := unix.Openat2(ctx.Dir, path, kernelHow(flags))
	if kerr == unix.EAGAIN {
		return "" // a scoped ".." raced something; nothing to compare
	}
	if kerr != nil || rerr != nil {
		if kerr == nil {
			unix.Close(kfd)
		}
		if kerr != rerr {
			return fmt.Sprintf("Resolve(%q, %#x) = %+v, %v; kernel: %v", path, flags, r, rerr, kerr)
		}
		return ""
	}
	defer unix.Close(kfd)
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(kfd))
	if err != nil {
		return "readlink: " + err.Error()
	}
	var st unix.Stat_t
	if err := unix.Fstat(kfd, &st); err != nil {
		return "fstat: " + err.Error()
	}
	name := r.Path
	if r.Kind == Magic {
		name = r.Target
	}
	if name != link || r.Dev != uint64(st.Dev) || r.Ino != st.Ino || r.Mode != st.Mode || !r.Exists {
		return fmt.Sprintf("Resolve(%q, %#x) = %+v; kernel opened %s dev %d ino %d mode %o",
			path, flags, r, link, st.Dev, st.Ino, st.Mode)
	}
	return ""
}

var names = []string{"a", "b", "c", "d", "e"}

// randomTree builds dirs, files and symlinks (relative, absolute, through
// "..", dangling, looping, with trailing slashes, through /proc magic links)
// under base.
func randomTree(t testing.TB, rng *rand.Rand, base string, dirfd int) []string {
	t.Helper()
	dirs := []string{base}
	var all []string
	relPath := func() string {
		n := 1 + rng.Intn(4)
		parts := make([]string, n)
		for i := range parts {
			switch x := rng.Intn(10); {
			case x == 0:
				parts[i] = ".."
			case x == 1:
				parts[i] = "."
			default:
				parts[i] = names[rng.Intn(len(names))]
			}
		}
		s := strings.Join(parts, "/")
		if rng.Intn(6) == 0 {
			s += "/"
		}
		return s
	}
	for i := 0; i < 60; i++ {
		parent := dirs[rng.Intn(len(dirs))]
		p := parent + "/" + names[rng.Intn(len(names))]
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		var err error
		switch x := rng.Intn(10); {
		case x < 3:
			if err = os.Mkdir(p, 0o755); err == nil {
				dirs = append(dirs, p)
			}
		case x < 5:
			err = os.WriteFile(p, nil, 0o644)
		case x < 8:
			err = os.Symlink(relPath(), p)
		case x == 8:
			err = os.Symlink(base+"/"+relPath(), p)
		default:
			targets := []string{"/", "/proc/self/root" + base, "/proc/self/fd/" + strconv.Itoa(dirfd), "/" + relPath(),
				"/proc/thread-self/fd/" + strconv.Itoa(dirfd) + "/" + relPath()}
			err = os.Symlink(targets[rng.Intn(len(targets))], p)
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, strings.TrimPrefix(p, base+"/"))
	}
	return all
}

func randomPath(rng *rand.Rand, base string) string {
	n := 1 + rng.Intn(7)
	parts := make([]string, n)
	for i := range parts {
		switch x := rng.Intn(14); {
		case x == 0:
			parts[i] = ".."
		case x == 1:
			parts[i] = "."
		case x == 2:
			parts[i] = ""
		default:
			parts[i] = names[rng.Intn(len(names))]
		}
	}
	s := strings.Join(parts, "/")
	switch rng.Intn(8) {
	case 0:
		s = base + "/" + s
	case 1:
		s = "/" + s
	}
	if rng.Intn(8) == 0 {
		s += "/"
	}
	return s
}

func randomFlags(rng *rand.Rand) Flags {
	var f Flags
	for _, x := range diffFlags {
		if rng.Intn(5) == 0 {
			f |= x
		}
	}
	return f
}

func TestDifferential(t *testing.T) { bothWalks(t, testDifferential) }

func testDifferential(t *testing.T) {
	runtime.LockOSThread() // /proc/thread-self must be this thread for the kernel too
	defer runtime.UnlockOSThread()
	trees, per := 40, 500
	if testing.Short() {
		trees = 5
	}
	var compared, failures, succeeded int
	for seed := int64(0); seed < int64(trees); seed++ {
		rng := rand.New(rand.NewSource(seed))
		base := tempBase(t)
		ctx := selfCtx(t, base)
		existing := randomTree(t, rng, base, ctx.Dir)
		for i := 0; i < per; i++ {
			p := randomPath(rng, base)
			if len(existing) > 0 && rng.Intn(2) == 0 {
				// Start from an entry that exists, so that more walks
				// get deep and through links.
				p = existing[rng.Intn(len(existing))]
				if rng.Intn(2) == 0 {
					p += "/" + randomPath(rng, base)
				}
			}
			f := randomFlags(rng)
			compared++
			if d := compareWithKernel(ctx, p, f); d != "" {
				failures++
				if failures < 20 {
					t.Errorf("seed %d: %s", seed, d)
				}
			} else if _, err := Resolve(ctx, p, f); err == nil {
				succeeded++
			}
		}
	}
	t.Logf("%d resolutions compared with the kernel (%d succeeded), %d differences", compared, succeeded, failures)
}

// fuzzTree is the fixed tree FuzzResolve runs over.
func fuzzTree(t testing.TB, base string, dirfd int) {
	buildTree(t, base)
	mustLink(t, "/proc/self/root"+base+"/a", base+"/pa")
	mustLink(t, "/proc/self/fd/"+strconv.Itoa(dirfd)+"/a/b", base+"/pb")
	mustLink(t, "../../../../../../../../..", base+"/a/b/c/high")
	mustLink(t, "b/c/g/", base+"/a/gslash")
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"a/f", "l_rel/..", "chain1/c/g", "loop1", "n0", "n1", "dang", "a/f/", "lslash",
		"a/b/up/a/b/up/..", "pa/b/c/../f", "pb/c/g", "a/b/c/high/tmp", "a/gslash", "toroot", "rootabs/f",
		"/", "//a", "", ".", "..", "../..", "x/../a", strings.Repeat("a/b/up/", 30) + "a"} {
		for _, fl := range []uint8{0, 1, 2, 4, 8, 16, 32, 64, 0x7f} {
			f.Add(s, fl)
		}
	}
	// One tree for the whole run, built before f.Fuzz (F methods may not
	// be called from the fuzz function).
	base := tempBaseF(f)
	ctx := Context{Pid: os.Getpid(), Root: openPathF(f, "/"), Dir: openPathF(f, base)}
	fuzzTree(f, base, ctx.Dir)
	f.Fuzz(func(t *testing.T, path string, fl uint8) {
		// /proc/self/fd/<n> and /dev/fd/<n> of the test process itself
		// change as Resolve opens and closes fds: not comparable.
		if strings.Contains(path, "proc") || strings.Contains(path, "dev") || strings.Contains(path, "\x00") {
			return
		}
		var flags Flags
		for i, x := range diffFlags {
			if fl&(1<<i) != 0 {
				flags |= x
			}
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c := ctx
		c.Tid = unix.Gettid()
		if d := compareWithKernel(c, path, flags); d != "" {
			t.Error(d)
		}
	})
}

func tempBaseF(f *testing.F) string {
	b, err := filepath.EvalSymlinks(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func openPathF(f *testing.F, p string) int {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { unix.Close(fd) })
	return fd
}
