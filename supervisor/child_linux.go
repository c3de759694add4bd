//go:build linux

package supervisor

/*
#include <stdlib.h>
#include "spawn_linux.h"
*/
import "C"

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child is started by vigil_spawn (spawn_linux.c): a vfork-style
// clone, and in the child only async-signal-safe calls until execve.
// Handoff messages from the child on the socketpair: a struct
// vigil_handoff ('L', pid, listener fd number) = the listener, copied with
// pidfd_getfd; a struct vigil_childerr ('E', stage, errno) = the child failed
// before execve. The parent answers the listener with ackByte; only then
// does the child exec the command.
const (
	msgListener = 'L'
	msgTraced   = 'T' // traced modes: no listener, seize me
	msgError    = 'E'
	ackByte     = 'A'
)

// childStages name the stages of struct vigil_childerr.
var childStages = map[int]string{
	C.VIGIL_STAGE_PDEATHSIG:  "prctl",
	C.VIGIL_STAGE_DUP:        "dup2",
	C.VIGIL_STAGE_CHDIR:      "chdir",
	C.VIGIL_STAGE_CLOSERANGE: "close_range",
	C.VIGIL_STAGE_NONEWPRIVS: "no_new_privs",
	C.VIGIL_STAGE_SECCOMP:    "seccomp",
	C.VIGIL_STAGE_HANDOFF:    "handoff",
}

// childError turns a child's failure report into the StartError Run returns.
func childError(stage int, errno unix.Errno, dir string) *StartError {
	switch stage {
	case C.VIGIL_STAGE_CHDIR:
		return &StartError{Stage: "start", Err: &fs.PathError{Op: "chdir", Path: dir, Err: errno}}
	case C.VIGIL_STAGE_DUP, C.VIGIL_STAGE_CLOSERANGE:
		return &StartError{Stage: "start", Err: errors.New(childStages[stage] + ": " + errno.Error())}
	}
	name, ok := childStages[stage]
	if !ok {
		name = "child"
	}
	return &StartError{Stage: "seccomp", Err: errors.New(name + ": " + errno.Error())}
}

// errTable is errno -> text as Go prints it, in C memory, for the child's
// "vigil: exec CMD: ..." line (built once, never freed).
var errTable = sync.OnceValue(func() **C.char {
	const n = 134
	tab := (*[n]*C.char)(C.calloc(n, C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	for i := 1; i < n; i++ {
		tab[i] = C.CString(syscall.Errno(i).Error())
	}
	return &tab[0]
})

const errTableLen = 134

// cStrings copies ss into a NULL-terminated C array of C strings.
func cStrings(ss []string) **C.char {
	arr := (*[1 << 28]*C.char)(C.calloc(C.size_t(len(ss)+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	for i, s := range ss {
		arr[i] = C.CString(s)
	}
	return &arr[0]
}

func freeCStrings(p **C.char, n int) {
	arr := (*[1 << 28]*C.char)(unsafe.Pointer(p))
	for i := 0; i < n; i++ {
		C.free(unsafe.Pointer(arr[i]))
	}
	C.free(unsafe.Pointer(p))
}

// spawnSpec is what Run hands to spawnChild.
type spawnSpec struct {
	path  string   // resolved command
	args  []string // argv, args[0] as given
	env   []string
	dir   string
	stdio [3]*os.File
	sock  int    // the child's end of the socketpair
	prog  []byte // raw struct sock_filter[]
	umask int    // the command's umask (the supervisor runs with 0)
	json  bool   // the exec failure line is a JSON object (Config.JSONLog)
	mode  spawnMode
}

// childStackSize is the child's stack until execve (it shares our memory).
const childStackSize = 64 << 10

// spawnChild starts the child (spawn_linux.c) and returns once it has
// exec'd the command or exited: the caller must have something else
// receive the listener and answer the child (see Run). It must be called
// on the locked OS thread that lives until the child has exited: the
// parent-death signal is tied to it.
func spawnChild(sp *spawnSpec) (pid, pidfd int, err error) {
	// Everything the child reads is C memory (it shares our address space
	// until execve) and stays allocated until it has exec'd or exited.
	s := (*C.struct_vigil_spawn)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_vigil_spawn{}))))
	defer C.free(unsafe.Pointer(s))
	s.path = C.CString(sp.path)
	defer C.free(unsafe.Pointer(s.path))
	argv := cStrings(sp.args)
	defer freeCStrings(argv, len(sp.args))
	s.argv = argv
	envp := cStrings(sp.env)
	defer freeCStrings(envp, len(sp.env))
	s.envp = envp
	if sp.dir != "" {
		s.dir = C.CString(sp.dir)
		defer C.free(unsafe.Pointer(s.dir))
	}
	var prefix *C.char
	if sp.json {
		// The child writes prefix, errno text, suffix: an open JSON
		// message closed by `"}` (errno texts need no escaping). Keep it
		// well within the child's 512-byte line.
		arg0 := sp.args[0]
		p := jsonLinePrefix("ERROR", "vigil: exec "+arg0+": ")
		for len(p) > 400 {
			arg0 = strings.ToValidUTF8(arg0[:len(arg0)*3/4], "")
			p = jsonLinePrefix("ERROR", "vigil: exec "+arg0+"...: ")
		}
		prefix = C.CString(p)
		suffix := C.CString(`"}`)
		defer C.free(unsafe.Pointer(suffix))
		s.errsuffix = suffix
	} else {
		prefix = C.CString("vigil: exec " + sp.args[0] + ": ")
	}
	defer C.free(unsafe.Pointer(prefix))
	s.errprefix = prefix
	s.errtab = errTable()
	s.nerrtab = errTableLen
	filter := C.CBytes(sp.prog)
	defer C.free(filter)
	s.prog.len = C.ushort(len(sp.prog) / 8)
	s.prog.filter = (*C.struct_sock_filter)(filter)
	for i, f := range sp.stdio {
		// Fd as os/exec does (it puts the file in blocking mode).
		s.stdio[i] = C.int(f.Fd())
	}
	s.sock = C.int(sp.sock)
	s.ppid = C.int(os.Getpid())
	s.umask = C.uint(sp.umask)
	s.pgrp = C.int(unix.Getpgrp())
	s.mode = C.int(sp.mode)

	// The command gets the signal mask and soft RLIMIT_NOFILE this process
	// started with, as with os/exec (Go raises the soft limit at start-up).
	var mask, cur, max C.uint64_t
	if C.vigil_initial_state(&mask, &cur, &max) != 0 {
		s.sigmask = mask
		if cur != max {
			s.restore_nofile = 1
			s.nofile_cur, s.nofile_max = cur, max
		}
	}
	stack := C.malloc(childStackSize)
	defer C.free(stack)

	// No syscall.ForkLock: this call lasts until the child's execve has
	// been vetted, and the child marks every fd but 0-2 close-on-exec.
	var cpidfd C.int = -1
	cpid := C.vigil_spawn(s, stack, childStackSize, &cpidfd)
	runtime.KeepAlive(sp.stdio)
	if cpid < 0 {
		return -1, -1, &os.SyscallError{Syscall: "clone", Err: unix.Errno(-cpid)}
	}
	return int(cpid), int(cpidfd), nil
}

// spawnMode is what the child sets up before its execve: the backend.
type spawnMode int

const (
	modeNotify       spawnMode = C.VIGIL_MODE_NOTIFY
	modeTraceSeccomp spawnMode = C.VIGIL_MODE_TRACE
	modeTraceAlone   spawnMode = C.VIGIL_MODE_PTRACE
)

func (m spawnMode) String() string {
	switch m {
	case modeTraceSeccomp:
		return "ptrace-seccomp"
	case modeTraceAlone:
		return "ptrace-alone"
	}
	return "notify"
}

// backendModes maps a backend name (rules.Backends; "" is "notify") to the
// modes to try, in order.
func backendModes(b string) ([]spawnMode, error) {
	switch b {
	case "", "notify":
		return []spawnMode{modeNotify}, nil
	case "auto":
		return []spawnMode{modeNotify, modeTraceSeccomp, modeTraceAlone}, nil
	case "ptrace":
		return []spawnMode{modeTraceSeccomp, modeTraceAlone}, nil
	case "ptrace-seccomp":
		return []spawnMode{modeTraceSeccomp}, nil
	case "ptrace-alone":
		return []spawnMode{modeTraceAlone}, nil
	}
	return nil, errors.New("unknown backend " + strconv.Quote(b))
}

// parseTraced decodes the traced modes' struct vigil_handoff: the pid.
func parseTraced(b []byte) (pid int, ok bool) {
	if len(b) != int(unsafe.Sizeof(C.struct_vigil_handoff{})) || b[0] != msgTraced {
		return 0, false
	}
	var h C.struct_vigil_handoff
	copy((*[unsafe.Sizeof(h)]byte)(unsafe.Pointer(&h))[:], b)
	if h.pid <= 0 {
		return 0, false
	}
	return int(h.pid), true
}

// parseHandoff decodes a struct vigil_handoff.
func parseHandoff(b []byte) (pid, fd int, killable, ok bool) {
	if len(b) != int(unsafe.Sizeof(C.struct_vigil_handoff{})) || b[0] != msgListener {
		return 0, 0, false, false
	}
	var h C.struct_vigil_handoff
	copy((*[unsafe.Sizeof(h)]byte)(unsafe.Pointer(&h))[:], b)
	if h.pid <= 0 || h.fd < 0 {
		return 0, 0, false, false
	}
	return int(h.pid), int(h.fd), h.killable != 0, true
}

// parseChildError decodes a struct vigil_childerr.
func parseChildError(b []byte) (stage int, errno unix.Errno, ok bool) {
	if len(b) != int(unsafe.Sizeof(C.struct_vigil_childerr{})) || b[0] != msgError {
		return 0, 0, false
	}
	var e C.struct_vigil_childerr
	copy((*[unsafe.Sizeof(e)]byte)(unsafe.Pointer(&e))[:], b)
	return int(e.stage), unix.Errno(e.err), true
}

// lookPath resolves a command name without a slash like exec.LookPath, but
// with the PATH of the command's environment and relative entries taken
// from dir, as the old re-executed child did.
func lookPath(file string, env []string, dir string) (string, error) {
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		check := p
		if !filepath.IsAbs(p) && dir != "" {
			check = filepath.Join(dir, p)
		}
		if findExecutable(check) == nil {
			return p, nil
		}
	}
	return "", errors.New("executable file not found in $PATH")
}

// findExecutable is os/exec's.
func findExecutable(file string) error {
	d, err := os.Stat(file)
	if err != nil {
		return err
	}
	m := d.Mode()
	if m.IsDir() {
		return syscall.EISDIR
	}
	err = unix.Faccessat(unix.AT_FDCWD, file, unix.X_OK, unix.AT_EACCESS)
	if err == nil || (err != syscall.ENOSYS && err != syscall.EPERM) {
		return err
	}
	if m&0111 != 0 {
		return nil
	}
	return fs.ErrPermission
}

// setNoKillable makes children load the filter without
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, as kernels before 5.19 do (AWS
// Lambda's 5.10): a caller parked in the supervisor is then woken by any
// signal, and its call is re-issued. Tests only; not safe during a Run.
func setNoKillable(on bool) {
	if on {
		C.vigil_test_no_killable = 1
	} else {
		C.vigil_test_no_killable = 0
	}
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

// setWalkFDs forces (or stops forcing) the child's pre-5.11 way of marking
// inherited fds close-on-exec (a /proc/self/fd walk instead of
// close_range(CLOSE_RANGE_CLOEXEC)), so that tests on a new kernel cover the
// path AWS Lambda's 5.10 kernel takes. Tests only; not safe during a Run.
func setWalkFDs(on bool) {
	if on {
		C.vigil_test_walk_fds = 1
	} else {
		C.vigil_test_walk_fds = 0
	}
}
