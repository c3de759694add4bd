//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child is this same binary, re-executed with childEnv set to the
// parent's pid. It inherits the raw BPF program on fd childProgFD and one
// end of a socketpair on childSockFD.
const (
	childEnv    = "_VIGIL_SUPERVISOR_CHILD"
	childProgFD = 3
	childSockFD = 4
)

// Handoff messages from the child on the socketpair: "L" + rights = the
// listener; "E" + text = the child could not install the filter.
const (
	msgListener = 'L'
	msgError    = 'E'
)

func init() {
	// In the child, keep the main goroutine on the main (leader) thread:
	// that thread carries the parent-death signal set at fork, loads the
	// filter (which covers only the loading thread without TSYNC) and
	// calls execve. "All init functions run on the startup thread; calling
	// LockOSThread from an init function makes main run on that thread."
	if os.Getenv(childEnv) != "" {
		runtime.LockOSThread()
	}
}

// MaybeRunChild must be the first thing main (or TestMain) does. When this
// process is the supervisor's re-executed child, it loads the filter, hands
// the listener to the parent and execs the command; it never returns then.
// Otherwise it returns at once.
func MaybeRunChild() {
	parent := os.Getenv(childEnv)
	if parent == "" {
		return
	}
	runChild(parent)
}

// childFail reports a start-up failure to the parent (which prints the one
// line and exits 2) and exits.
func childFail(stage string, err error) {
	msg := append([]byte{msgError}, stage+": "+err.Error()...)
	_, _ = unix.Write(childSockFD, msg)
	os.Exit(2)
}

func runChild(parent string) {
	ppid, err := strconv.Atoi(parent)
	if err != nil {
		childFail("child", fmt.Errorf("bad %s", childEnv))
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, childEnv+"=") {
			env = append(env, kv)
		}
	}
	args := os.Args[1:]
	if len(args) == 0 {
		childFail("child", errors.New("no command"))
	}
	// Resolve the command before the filter exists (PATH lookups would be
	// notified opens/execs otherwise). The execve itself is vetted.
	path := args[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil && !errors.Is(err, exec.ErrDot) {
			// Not a filter failure: behave like a shell.
			// Not a filter failure: behave like a shell (the parent sees
			// no listener and returns this status).
			fmt.Fprintf(os.Stderr, "vigil: %s: command not found\n", path)
			os.Exit(127)
		}
		path = p
	}

	prog, err := readProgram(childProgFD)
	if err != nil {
		childFail("filter", err)
	}

	// Die with the parent thread that forked us (set at fork too; again
	// here in case of an exec in between), and make sure it did not die
	// already.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		childFail("prctl", err)
	}
	if os.Getppid() != ppid {
		os.Exit(2)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		childFail("no_new_privs", err)
	}
	listener, err := loadFilter(prog)
	if err != nil {
		childFail("seccomp", err)
	}
	// From here on, any notified call would block until the parent holds
	// the listener: sendmsg, close and execve are the only calls left and
	// only execve is notified.
	if err := unix.Sendmsg(childSockFD, []byte{msgListener}, unix.UnixRights(listener), nil, 0); err != nil {
		// The filter is loaded but nobody will answer: exit, never exec.
		os.Exit(2)
	}
	// Trap 4: a child still holding the listener hangs if the parent dies.
	unix.Close(listener)
	unix.Close(childSockFD)
	unix.Close(childProgFD)
	err = syscall.Exec(path, args, env)
	// execve failed (denied or missing): exit like a shell would.
	fmt.Fprintf(os.Stderr, "vigil: exec %s: %v\n", args[0], err)
	if errors.Is(err, unix.ENOENT) {
		os.Exit(127)
	}
	os.Exit(126)
}

func readProgram(fd int) ([]unix.SockFilter, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size <= 0 || st.Size%8 != 0 || st.Size > 4096*8 {
		return nil, fmt.Errorf("bad program size %d", st.Size)
	}
	buf := make([]byte, st.Size)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		return nil, err
	}
	if n != len(buf) {
		return nil, fmt.Errorf("short program read")
	}
	return decodeProgram(buf), nil
}

// decodeProgram turns the raw struct sock_filter array into instructions
// (native byte order: libseccomp exports it for the running machine).
func decodeProgram(buf []byte) []unix.SockFilter {
	prog := make([]unix.SockFilter, len(buf)/8)
	for i := range prog {
		b := buf[i*8 : i*8+8]
		prog[i] = unix.SockFilter{
			Code: *(*uint16)(unsafe.Pointer(&b[0])),
			Jt:   b[2],
			Jf:   b[3],
			K:    *(*uint32)(unsafe.Pointer(&b[4])),
		}
	}
	return prog
}

// loadFilter installs prog on the calling (locked) thread and returns the
// listener. WAIT_KILLABLE_RECV (5.19+) keeps a received notification from
// being interrupted by non-fatal signals; without it the call is retried.
func loadFilter(prog []unix.SockFilter) (int, error) {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	for {
		fd, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
		runtime.KeepAlive(prog)
		if errno == 0 {
			return int(fd), nil
		}
		if errno == unix.EINVAL && flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
			flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
			continue
		}
		return -1, errno
	}
}
