//go:build linux

package supervisor

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testSupervisorRoot opens the supervisor's root the way Run does.
func testSupervisorRoot(t *testing.T) *supervisor {
	t.Helper()
	s := &supervisor{root: -1}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	var stx unix.Statx_t
	must(t, unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_MNT_ID, &stx))
	s.root, s.rootIno, s.rootMnt = fd, stx.Ino, stx.Mnt_id
	t.Cleanup(func() { unix.Close(fd) })
	return s
}

// onChrootedThread runs fn(tid) while another OS thread of this process is
// chrooted into dir (unshare(CLONE_FS) makes the root that thread's own).
func onChrootedThread(t *testing.T, dir string, fn func(tid int)) {
	t.Helper()
	ready := make(chan int)
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine, taking its
		// root with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Chroot(dir); err != nil {
			errc <- err
			return
		}
		ready <- unix.Gettid()
		<-done
	}()
	select {
	case err := <-errc:
		t.Skipf("cannot chroot a thread: %v", err)
	case tid := <-ready:
		defer close(done)
		fn(tid)
	}
}

// TestSameRoot: a caller whose root is the supervisor's shares its root fd;
// a chrooted caller gets its own root, and resolves in it.
func TestSameRoot(t *testing.T) {
	s := testSupervisorRoot(t)
	pc := newProcCache()
	defer pc.close()
	r := &request{s: s, tid: unix.Gettid(), pidfd: -1, pc: pc, st: &procStatus{tgid: os.Getpid()}}
	if !r.sameRoot() {
		t.Fatal("own thread: root not recognised as the supervisor's")
	}
	ctx, closeCtx, e := callerContext(r, unix.AT_FDCWD, "/etc/hostname", false)
	if e != 0 || ctx.Root != s.root {
		t.Fatalf("own thread: root fd %d, want the shared %d (errno %v)", ctx.Root, s.root, e)
	}
	closeCtx()
	if _, err := unix.FcntlInt(uintptr(s.root), unix.F_GETFD, 0); err != nil {
		t.Fatal("the shared root fd was closed")
	}

	dir := t.TempDir()
	must(t, os.WriteFile(dir+"/only-in-chroot", []byte("x"), 0o644))
	onChrootedThread(t, dir, func(tid int) {
		r := &request{s: s, tid: tid, pidfd: -1, pc: pc, st: &procStatus{tgid: os.Getpid()}}
		if r.sameRoot() {
			t.Fatal("chrooted thread: root taken for the supervisor's")
		}
		ctx, closeCtx, e := callerContext(r, unix.AT_FDCWD, "/only-in-chroot", false)
		if e != 0 {
			t.Fatal(e)
		}
		defer closeCtx()
		if ctx.Root == s.root {
			t.Fatal("chrooted thread got the supervisor's root fd")
		}
		how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS}
		fd, err := unix.Openat2(ctx.Root, "only-in-chroot", &how)
		if err != nil {
			t.Fatalf("the caller's root is not its chroot: %v", err)
		}
		unix.Close(fd)
	})
}

// TestIdent: PIDFD_GET_INFO gives what /proc/<tid>/status says.
func TestIdent(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pc := newProcCache()
	defer pc.close()
	tid := unix.Gettid()
	id, ok, err := pc.ident(tid)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("no PIDFD_GET_INFO on this kernel")
	}
	st, err := readStatus(tid)
	must(t, err)
	if id.tgid != st.tgid || id.fsuid != st.fsuid || id.fsgid != st.fsgid {
		t.Fatalf("ident %+v, status tgid=%d fsuid=%d fsgid=%d", id, st.tgid, st.fsuid, st.fsgid)
	}
	// A thread that is gone: the cached pidfd fails, no stale answer.
	// Go wedges the main thread (tid == pid) instead of ending it when a
	// goroutine exits locked to it: pick a goroutine that ran elsewhere.
	c := make(chan int)
	dead := os.Getpid()
	for dead == os.Getpid() {
		go func() { runtime.LockOSThread(); c <- unix.Gettid() }() // exits locked: the thread dies
		dead = <-c
	}
	// The thread ends once its goroutine has: wait for it (no skip).
	for i := 0; ; i++ {
		if _, err := os.Stat("/proc/self/task/" + itoa(dead)); err != nil {
			break
		}
		if i == 2000 {
			t.Fatal("a goroutine that exited locked to its thread left the thread alive for 2 s")
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := pc.ident(dead); err == nil {
		t.Fatal("ident of a dead thread succeeded")
	}
}

func TestGroupsIrrelevant(t *testing.T) {
	for _, c := range []struct {
		status string
		want   bool
	}{
		{"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\nCapPrm:\t000001ffffffffff\nCapAmb:\t0000000000000000\n", true},
		{"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000000\nCapAmb:\t0000000000000000\n", true},
		{"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000001\nCapPrm:\t0000000000000001\nCapAmb:\t0000000000000000\n", false},
		{"Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000000\nCapAmb:\t0000000000000000\n", true},
		{"Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000040\nCapAmb:\t0000000000000000\n", false},
		{"Uid:\t1000\t0\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000000\nCapAmb:\t0000000000000000\n", false},
		{"Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t5\t1000\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000000\nCapAmb:\t0000000000000000\n", false},
		{"CapEff:\t0000000000000000\n", false},
	} {
		if got := groupsIrrelevant([]byte(c.status)); got != c.want {
			t.Errorf("groupsIrrelevant(%q) = %v, want %v", c.status, got, c.want)
		}
	}
}

// TestWithoutPidfdInfo: on kernels without PIDFD_THREAD / PIDFD_GET_INFO
// (before 6.9 / 6.13; AWS Lambda runs 5.10) the caller's thread group and
// credentials come from /proc/<tid>/status. Forced here: opens, creation
// with the caller's umask, and the caller's credentials still hold.
func TestWithoutPidfdInfo(t *testing.T) {
	noPidfdInfo.Store(true)
	defer noPidfdInfo.Store(false)
	TestOpenReadWriteCreate(t)
	TestOpenProcSelf(t)
	TestCallerCredentials(t)
}
