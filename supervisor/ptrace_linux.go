//go:build linux

package supervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"vigil/tracer"
)

// The ptrace backend: the same handler table, decisions and audit lines as
// the notification backend, with the tracer package stopping the calls.
// What differs is how a decision takes effect:
//
//   - a call the handler performed itself (connect, send, bind, listen,
//     every path change) or refused is skipped, and the caller sees the
//     handler's result: race-free as with notification;
//   - an exec is let through and the new image is checked at
//     PTRACE_EVENT_EXEC, before it runs an instruction (as the barrier does);
//   - an open cannot be handed over (there is no ADDFD for a tracee): the
//     handler opens the file as the caller, side effects (O_CREAT, O_EXCL,
//     O_TRUNC) included, and the caller's own call is rewritten into an
//     openat of the same path without them; at its exit the fd it got must
//     be the very file the handler opened (device and inode), else it is
//     closed in the caller and the call fails with EACCES.

// runTraced runs the command under the ptrace backend in mode m.
func (s *supervisor) runTraced(m spawnMode, sp *spawnSpec, sigs chan os.Signal, hook func(string)) (int, error) {
	tmode := tracer.SeccompStops
	if m == modeTraceAlone {
		tmode = tracer.SyscallStops
	}
	prog, err := buildFilter(filterTarget{pid: os.Getpid(), trace: m == modeTraceSeccomp})
	if err != nil {
		return 2, &StartError{Stage: "filter", Err: err}
	}
	dec := &ptraceDecider{s: s}
	if m == modeTraceAlone {
		// No filter in the kernel: the tracer runs the notify filter on
		// every call itself.
		vm, err := newFilterVM(prog)
		if err != nil {
			return 2, &StartError{Stage: "filter", Err: err}
		}
		dec.vm = vm
		prog = nil
	}
	parentSock, childSock, closeChildSock, closeAll, err := handoffPair()
	if err != nil {
		return 2, err
	}
	defer closeAll()
	// Every ptrace stop sends the tracer's process SIGCHLD: the tracer
	// reaps through wait4 itself, so do not wake a goroutine for each.
	<-s.sigReady // else Run's Notify could come after this Reset
	signal.Reset(unix.SIGCHLD)
	s.openRoot()
	defer func() {
		if s.root >= 0 {
			unix.Close(s.root)
			s.root = -1
		}
	}()

	type started struct {
		err  error
		cerr *childFailure
	}
	startc := make(chan started, 1)
	statusc := make(chan unix.WaitStatus, 1)
	go func() {
		// The tracer thread: it seizes the child and makes every ptrace
		// request from here on. It stays locked; when it ends, the thread
		// ends, and PTRACE_O_EXITKILL kills what it still traced.
		tr := tracer.New(tmode, dec, s.log.Named("tracer"))
		dec.pc = newProcCache()
		pid, cerr, err := recvTraced(parentSock)
		if err == nil && cerr == nil {
			if err = tr.Seize(pid); err != nil {
				err = &StartError{Stage: "ptrace", Err: err}
			} else if _, err = unix.Write(parentSock, []byte{ackByte}); err != nil {
				err = &StartError{Stage: "handoff", Err: err}
			}
		}
		if err != nil || cerr != nil || pid == 0 {
			// No ack: the child sees EOF and exits without exec.
			_ = unix.Shutdown(parentSock, unix.SHUT_RDWR)
			startc <- started{err, cerr}
			return
		}
		startc <- started{}
		statusc <- tr.Run()
		dec.pc.close()
	}()
	pid, pidfd, err := startChild(sp, m, childSock, prog, closeChildSock)
	st := <-startc
	if err != nil {
		return 2, &StartError{Stage: "start", Err: err}
	}
	defer unix.Close(pidfd)
	if st.err != nil || st.cerr != nil {
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		s.waitChildOnly(pid)
		if st.cerr != nil {
			return 2, childError(st.cerr.stage, st.cerr.errno, sp.dir)
		}
		var se *StartError
		if errors.As(st.err, &se) {
			return 2, se
		}
		return 2, &StartError{Stage: "handoff", Err: st.err}
	}
	s.log.Debug("command started", "pid", pid, "command", sp.args[0], "backend", m.String())
	if hook != nil {
		hook(m.String())
	}
	for {
		select {
		case sig := <-sigs:
			if sig != unix.SIGCHLD {
				_ = unix.PidfdSendSignal(pidfd, sig.(unix.Signal), nil, 0)
			}
		case ws := <-statusc:
			return exitStatus(ws), nil
		}
	}
}

// recvTraced receives the traced child's pid (or its failure report).
func recvTraced(sock int) (int, *childFailure, error) {
	msg, err := readHandoffMsg(sock)
	switch {
	case err != nil:
		return 0, nil, &StartError{Stage: "handoff", Err: err}
	case len(msg) == 0:
		return 0, nil, nil // the child exited without a word
	}
	if pid, ok := parseTraced(msg); ok {
		return pid, nil, nil
	}
	if stage, errno, ok := parseChildError(msg); ok {
		return 0, &childFailure{stage, errno}, nil
	}
	return 0, nil, &StartError{Stage: "handoff", Err: errors.New("unexpected handoff message")}
}

// ptraceDecider answers the tracer with the handler table.
type ptraceDecider struct {
	s  *supervisor
	vm *filterVM  // ptrace alone: the filter, run here for every call
	pc *procCache // the tracer thread's (synchronous calls only)
}

// asyncCalls may block for long (a connect or send performed for the
// caller): they are decided off the tracer thread.
var asyncCalls = map[int32]bool{
	unix.SYS_CONNECT: true, unix.SYS_SENDTO: true, unix.SYS_SENDMSG: true, unix.SYS_SENDMMSG: true,
}

func (d *ptraceDecider) Async(c *tracer.Call) bool {
	if c.Arch != auditArchNative {
		return false
	}
	if !asyncCalls[c.Nr] && !openMayBlock(c) {
		return false
	}
	return d.vm == nil || d.vm.vetted(c)
}

// openMayBlock: an open the handler performs itself (O_CREAT, O_TRUNC: the
// flags are in a register; openat2's are in memory, so always) could block
// in the handler on a FIFO.
func openMayBlock(c *tracer.Call) bool {
	const effects = unix.O_CREAT | unix.O_TRUNC | oTmpfileFlag
	switch c.Nr {
	case unix.SYS_OPENAT:
		return c.Args[2]&effects != 0
	case unix.SYS_OPENAT2:
		return true
	}
	return legacyOpenMayBlock(c, effects)
}

func (d *ptraceDecider) Enter(c *tracer.Call) tracer.Verdict {
	if d.vm != nil {
		ret := d.vm.run(c)
		switch ret & retActionFull {
		case retAllow, retLog:
			return tracer.Verdict{Kind: tracer.Allow}
		case retErrno:
			return tracer.Verdict{Kind: tracer.Return, Ret: -int64(ret & retData)}
		case retUserNotif, retTrace:
			// Vetted: below.
		default:
			// KILL_PROCESS, KILL_THREAD, TRAP: the process dies (a trap
			// would need SIGSYS emulation; nothing Vigil installs traps).
			return tracer.Verdict{Kind: tracer.Kill}
		}
	}
	s := d.s
	n := &seccompNotif{Pid: uint32(c.Tid), Data: seccompData{Nr: c.Nr, Arch: c.Arch, IP: c.IP, Args: c.Args}}
	r := &request{s: s, n: n, tid: c.Tid, pidfd: -1, traced: true}
	if !d.Async(c) {
		r.pc = d.pc
	}
	defer r.release()
	var res Result
	h := s.table[c.Nr]
	switch {
	case c.Arch != auditArchNative, h == nil:
		res = Errno(unix.ENOSYS)
	default:
		res = s.safeHandle(h, r)
	}
	if res.Event != nil {
		s.completeEvent(r, res.Event)
	}
	v := d.verdict(r, c, &res)
	if res.Event != nil {
		s.audit.Log(*res.Event)
	}
	return v
}

// verdict turns a handler's Result into what the tracer does.
func (d *ptraceDecider) verdict(r *request, c *tracer.Call, res *Result) tracer.Verdict {
	switch res.action {
	case actErrno:
		return tracer.Verdict{Kind: tracer.Return, Ret: -int64(res.errno)}
	case actValue:
		return tracer.Verdict{Kind: tracer.Return, Ret: res.val}
	case actContinue:
		if r.openWant != nil {
			return d.checkedOpen(r, c)
		}
		v := tracer.Verdict{Kind: tracer.Allow}
		if c.Nr == unix.SYS_EXECVE || c.Nr == unix.SYS_EXECVEAT {
			b := res.barrier
			v.AtExec = func(pid int) bool {
				if b == nil {
					return true // audit mode: as is
				}
				ok, why := b.verify(pid)
				if !ok {
					b.logKill(d.s, pid, why)
				} else if barrierVerifiedHook != nil {
					barrierVerifiedHook(pid, b.want)
				}
				return ok
			}
		}
		return v
	case actInjectFD:
		if r.open != nil {
			return d.openVerdict(r, c, res)
		}
		unix.Close(res.fd)
		d.s.log.Error("handler result cannot be carried out under ptrace", "syscall", c.Nr)
		return tracer.Verdict{Kind: tracer.Return, Ret: -int64(unix.EACCES)}
	}
	return tracer.Verdict{Kind: tracer.Return, Ret: -int64(unix.EPERM)}
}

// checkedOpen: an allowed open without side effects runs as the caller
// made it, and at its exit the fd must be the object that was decided
// (r.openWant). openat2 without resolve flags becomes openat with the flags
// that were decided (openat2 keeps them in memory another thread could
// change); with resolve flags it stays, and the access mode the file was
// opened with is checked too.
func (d *ptraceDecider) checkedOpen(r *request, c *tracer.Call) tracer.Verdict {
	want, oc := *r.openWant, r.open
	var rw *tracer.Rewrite
	checkMode := false
	if c.Nr == unix.SYS_OPENAT2 {
		if oc.resolve == 0 {
			rw = &tracer.Rewrite{Nr: unix.SYS_OPENAT, Args: [6]uint64{c.Args[0], c.Args[1], oc.flags}}
		} else {
			checkMode = true
		}
	}
	return tracer.Verdict{Kind: tracer.Allow, Rewrite: rw, AtExit: func(ret int64) tracer.ExitResult {
		out := tracer.ExitResult{Ret: ret, CloseFD: -1}
		if ret < 0 {
			return out
		}
		got := "/proc/" + strconv.Itoa(c.Tid) + "/fd/" + strconv.FormatInt(ret, 10)
		var st unix.Stat_t
		ok := unix.Stat(got, &st) == nil && uint64(st.Dev) == want.dev && st.Ino == want.ino
		if ok && checkMode {
			ok = openedAccMode(c.Tid, int(ret)) == int(oc.flags&unix.O_ACCMODE)
		}
		if ok {
			return out
		}
		return d.openMismatch(r, c, got, ret)
	}}
}

// openedAccMode is the access mode fd of tid was opened with (fdinfo), -1
// if unknown.
func openedAccMode(tid, fd int) int {
	f, ok := fdinfoFlags(tid, fd)
	if !ok {
		return -1
	}
	return int(f & unix.O_ACCMODE)
}

// fdinfoFlags is the "flags:" line of /proc/<tid>/fdinfo/<fd>: the file's
// status flags and, per fd, O_CLOEXEC.
func fdinfoFlags(tid, fd int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, false
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(ln, "flags:"); ok {
			f, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// openMismatch: the caller's open yielded another object than the one
// decided (another thread changed the path, or the tree changed, between
// the decision and the call): the fd is closed in the caller and the call
// fails with EACCES.
func (d *ptraceDecider) openMismatch(r *request, c *tracer.Call, got string, ret int64) tracer.ExitResult {
	pid := c.Tid
	if r.st != nil {
		pid = r.st.tgid
	}
	ev := Event{Op: "open", Path: readLink(got), Pid: pid, Decision: DecisionDeny, Exe: exePath(pid),
		Rule: "the file the call opened is not the one that was vetted (its path changed during the call)",
		Mode: d.s.policy.Mode().String()}
	if r.open != nil {
		ev.Flags = openFlagString(r.open.flags)
	}
	d.s.audit.Log(ev)
	return tracer.ExitResult{Ret: -int64(unix.EACCES), CloseFD: int(ret)}
}

// Flags the handler's own open has carried out: the caller's repeat of
// the open must not do them again.
const openSideEffects = unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC

// openVerdict: the handler opened res.fd as the caller. The caller's call
// becomes openat(dirfd, path, flags without side effects) on its own
// memory, and its result is checked at exit against res.fd.
func (d *ptraceDecider) openVerdict(r *request, c *tracer.Call, res *Result) tracer.Verdict {
	f := res.fd
	var want unix.Stat_t
	if err := unix.Fstat(f, &want); err != nil {
		unix.Close(f)
		return tracer.Verdict{Kind: tracer.Return, Ret: -int64(unix.EACCES)}
	}
	oc := r.open
	tmpfile := oc.flags&oTmpfileFlag != 0
	var rw *tracer.Rewrite
	if !tmpfile {
		atFDCWD := int64(unix.AT_FDCWD)
		dirfd, pathArg := uint64(atFDCWD), c.Args[0]
		if c.Nr == unix.SYS_OPENAT || c.Nr == unix.SYS_OPENAT2 {
			dirfd, pathArg = uint64(int64(int32(uint32(c.Args[0])))), c.Args[1]
		}
		rw = &tracer.Rewrite{Nr: unix.SYS_OPENAT, Args: [6]uint64{dirfd, pathArg, oc.flags &^ openSideEffects}}
	}
	return tracer.Verdict{Kind: tracer.Allow, Rewrite: rw, AtExit: func(ret int64) tracer.ExitResult {
		defer unix.Close(f)
		if ret < 0 {
			return tracer.ExitResult{Ret: ret, CloseFD: -1}
		}
		got := "/proc/" + strconv.Itoa(c.Tid) + "/fd/" + strconv.FormatInt(ret, 10)
		if sameOpenedFile(got, f, &want, tmpfile) {
			return tracer.ExitResult{Ret: ret, CloseFD: -1}
		}
		return d.openMismatch(r, c, got, ret)
	}}
}

// sameOpenedFile reports whether the caller's new fd (its /proc path) is
// the file the handler opened (fd f, stat want). Two O_TMPFILE opens make
// two files: then the directory they were made in must be the same.
func sameOpenedFile(got string, f int, want *unix.Stat_t, tmpfile bool) bool {
	if tmpfile {
		a, b := readLink(got), readLink("/proc/self/fd/"+strconv.Itoa(f))
		return a != "" && filepath.Dir(a) == filepath.Dir(b)
	}
	var st unix.Stat_t
	if err := unix.Stat(got, &st); err != nil {
		return false
	}
	return st.Dev == want.Dev && st.Ino == want.Ino
}

func readLink(p string) string {
	var buf [unix.PathMax]byte
	n, err := unix.Readlink(p, buf[:])
	if err != nil || n <= 0 {
		return ""
	}
	return string(buf[:n])
}

// seccomp return actions (linux/seccomp.h).
const (
	retActionFull = 0xffff0000
	retData       = 0x0000ffff
	retAllow      = 0x7fff0000
	retLog        = 0x7ffc0000
	retTrace      = 0x7ff00000
	retUserNotif  = 0x7fc00000
	retErrno      = 0x00050000
)

// filterVM runs a seccomp program in userspace, for the ptrace backend
// without a filter in the kernel: every call gets the answer the kernel's
// filter would have given.
type filterVM struct{ vm *bpf.VM }

func newFilterVM(raw []byte) (*filterVM, error) {
	prog := decodeProgram(raw)
	insns := make([]bpf.Instruction, len(prog))
	for i, p := range prog {
		insns[i] = bpf.RawInstruction{Op: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, fmt.Errorf("bpf vm: %w", err)
	}
	return &filterVM{vm}, nil
}

// run returns the filter's answer for c (struct seccomp_data as the kernel
// lays it out; bpf.VM loads in network byte order, so each 32-bit word is
// stored big-endian). A program that fails to run answers KILL.
func (v *filterVM) run(c *tracer.Call) uint32 {
	var in [64]byte
	be := binary.BigEndian
	be.PutUint32(in[0:], uint32(c.Nr))
	be.PutUint32(in[4:], c.Arch)
	put64 := func(off int, x uint64) {
		// Native (little-endian) layout: low word first.
		be.PutUint32(in[off:], uint32(x))
		be.PutUint32(in[off+4:], uint32(x>>32))
	}
	put64(8, c.IP)
	for i, a := range c.Args {
		put64(16+8*i, a)
	}
	ret, err := v.vm.Run(in[:])
	if err != nil {
		return 0 // SECCOMP_RET_KILL_THREAD
	}
	return uint32(ret)
}

func (v *filterVM) vetted(c *tracer.Call) bool {
	a := v.run(c) & retActionFull
	return a == retUserNotif || a == retTrace
}
