//go:build linux

package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mode says which stops the tracees make.
type Mode int

const (
	// SeccompStops: only calls the tracee's filter answers with
	// SECCOMP_RET_TRACE stop.
	SeccompStops Mode = iota
	// SyscallStops: every call stops, at entry and at exit.
	SyscallStops
)

func (m Mode) String() string {
	if m == SyscallStops {
		return "ptrace-alone"
	}
	return "ptrace-seccomp"
}

// Call is a system call stopped at its entry.
type Call struct {
	Tid  int
	Nr   int32  // as the tracee passed it (x32 bit included)
	Arch uint32 // AUDIT_ARCH_* of the entry
	IP   uint64
	Args [6]uint64
}

// Kind is what a Verdict does with the call.
type Kind uint8

const (
	// Allow lets the kernel run the call (with Rewrite, if set).
	Allow Kind = iota
	// Return skips the call: the caller sees Ret (a negative errno for a
	// failure).
	Return
	// Kill kills the caller's process.
	Kill
)

// Rewrite replaces the call's number and arguments before it runs.
type Rewrite struct {
	Nr   int32
	Args [6]uint64
}

// ExitResult is what an exit check wants the caller to see.
type ExitResult struct {
	Ret int64
	// CloseFD, when >= 0, is closed in the caller before it sees Ret (an
	// fd the call returned that it must not keep).
	CloseFD int
	// Kill kills the caller's process instead.
	Kill bool
}

// Verdict is the Decider's answer for a call at its entry.
type Verdict struct {
	Kind    Kind
	Ret     int64
	Rewrite *Rewrite
	// AtExit, with Allow, runs at the call's exit with the value the call
	// returned (negative errno on failure).
	AtExit func(ret int64) ExitResult
	// AtExec, with Allow on an exec, runs when the new image is in place,
	// before it runs an instruction (PTRACE_EVENT_EXEC), with its pid;
	// false kills it. An exec event without a vetted entry is killed.
	AtExec func(pid int) bool
}

// Decider decides calls. Enter is called on the tracer thread unless
// Async(c) is true; then on a goroutine of its own.
type Decider interface {
	Enter(c *Call) Verdict
	Async(c *Call) bool
}

// Logger is what the tracer logs through (go-hclog's Logger has it).
type Logger interface {
	Debug(msg string, args ...interface{})
	Warn(msg string, args ...interface{})
	Error(msg string, args ...interface{})
}

// ErrKilled is reported when a tracee had to be killed because the tracer
// could not do what a verdict said.
var ErrKilled = errors.New("tracer: tracee killed")

// Options are the ptrace options every tracee gets.
func Options(m Mode) int {
	o := unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
		unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL
	if m == SeccompStops {
		o |= unix.PTRACE_O_TRACESECCOMP
	}
	return o
}

// thread is what the tracer keeps per traced thread.
type thread struct {
	atExit   func(int64) ExitResult
	ret      *int64 // SyscallStops: a skipped call's return, set at its exit
	atExec   func(int) bool
	busy     bool // an async decision is in flight
	execSeen bool // entry of an exec was vetted (for its event)
}

type asyncDone struct {
	tid int
	x   *thread // the thread it was made for: the tid may have been reused since
	v   Verdict
}

// Tracer traces one process tree. Create it with New on the goroutine that
// will run it, which must stay locked to its OS thread.
type Tracer struct {
	mode    Mode
	dec     Decider
	log     Logger
	threads map[int]*thread
	done    chan asyncDone
	pending int
	root    int
	// Calls counts stops handled (tests and benchmarks).
	Calls int
}

// New returns a tracer for mode. It locks the calling goroutine to its OS
// thread for good: every later method must be called from it.
func New(mode Mode, dec Decider, log Logger) *Tracer {
	runtime.LockOSThread()
	return &Tracer{mode: mode, dec: dec, log: log, threads: map[int]*thread{}, done: make(chan asyncDone, 64)}
}

// Seize attaches to pid (running, not yet stopped) with the tracer's
// options. In SyscallStops mode the tracee is interrupted, so that its
// first resume starts syscall stops; Run resumes it.
func (t *Tracer) Seize(pid int) error {
	if err := ptrace(unix.PTRACE_SEIZE, pid, 0, uintptr(Options(t.mode))); err != nil {
		return fmt.Errorf("ptrace PTRACE_SEIZE: %w", err)
	}
	t.threads[pid] = &thread{}
	t.root = pid
	if t.mode == SyscallStops {
		if err := ptrace(unix.PTRACE_INTERRUPT, pid, 0, 0); err != nil {
			return fmt.Errorf("ptrace PTRACE_INTERRUPT: %w", err)
		}
	}
	return nil
}

func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Run serves the tracees until the root process has exited, kills what is
// left of the tree and returns the root's wait status.
func (t *Tracer) Run() unix.WaitStatus {
	var rootStatus unix.WaitStatus
	rootDone := false
	tick := time.NewTimer(time.Hour)
	defer tick.Stop()
	idle := 20 * time.Microsecond
	for {
		var ws unix.WaitStatus
		var wpid int
		var err error
		if t.pending > 0 {
			// A decision is being made elsewhere: poll for stops and
			// results.
			select {
			case d := <-t.done:
				t.finishAsync(d)
				idle = 20 * time.Microsecond
				continue
			default:
			}
			wpid, err = unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == nil && wpid == 0 {
				tick.Reset(idle)
				select {
				case d := <-t.done:
					t.finishAsync(d)
					idle = 20 * time.Microsecond
				case <-tick.C:
					if idle < time.Millisecond {
						idle *= 2
					}
				}
				if !tick.Stop() {
					select {
					case <-tick.C:
					default:
					}
				}
				continue
			}
		} else {
			wpid, err = unix.Wait4(-1, &ws, unix.WALL, nil)
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return rootStatus
		}
		if err != nil {
			t.log.Error("wait for tracees failed", "error", err)
			t.killAll()
			if !rootDone {
				return unix.WaitStatus(unix.SIGKILL)
			}
			return rootStatus
		}
		if ws.Exited() || ws.Signaled() {
			delete(t.threads, wpid)
			if wpid == t.root {
				rootStatus, rootDone = ws, true
				// The command is done: nothing else of it may go on.
				t.killAll()
			}
			continue
		}
		if ws.Stopped() {
			t.Calls++
			t.stopped(wpid, ws)
		}
	}
}

// killAll kills every traced process that is left.
func (t *Tracer) killAll() {
	for tid := range t.threads {
		_ = unix.Kill(tid, unix.SIGKILL)
	}
}

func (t *Tracer) th(tid int) *thread {
	x := t.threads[tid]
	if x == nil {
		x = &thread{}
		t.threads[tid] = x
	}
	return x
}

// resume lets tid go on, with the stops its state needs.
func (t *Tracer) resume(tid int, sig int) {
	x := t.th(tid)
	req := unix.PTRACE_CONT
	if t.mode == SyscallStops || x.atExit != nil || x.ret != nil || x.execSeen {
		req = unix.PTRACE_SYSCALL
	}
	if err := ptrace(req, tid, 0, uintptr(sig)); err != nil && err != unix.ESRCH {
		t.log.Warn("resume tracee failed", "pid", tid, "error", err)
	}
}

func (t *Tracer) stopped(tid int, ws unix.WaitStatus) {
	sig := ws.StopSignal()
	event := int(ws>>16) & 0xff
	x := t.th(tid)
	switch {
	case sig == unix.SIGTRAP|0x80:
		t.syscallStop(tid, x)
	case sig == unix.SIGTRAP && event == unix.PTRACE_EVENT_SECCOMP:
		t.syscallStop(tid, x)
	case sig == unix.SIGTRAP && (event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK || event == unix.PTRACE_EVENT_CLONE):
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
			t.th(int(msg))
		}
		t.resume(tid, 0)
	case sig == unix.SIGTRAP && event == unix.PTRACE_EVENT_EXEC:
		t.execEvent(tid)
	case event == unix.PTRACE_EVENT_STOP:
		switch sig {
		case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			// A group stop: stay stopped until SIGCONT, still traced.
			if err := ptrace(unix.PTRACE_LISTEN, tid, 0, 0); err != nil && err != unix.ESRCH {
				t.resume(tid, 0)
			}
		default:
			// A new tracee's first stop, or an interrupt.
			t.resume(tid, 0)
		}
	case event != 0:
		t.resume(tid, 0)
	default:
		// Signal-delivery stop: deliver it.
		t.resume(tid, int(sig))
	}
}

// syscallInfo is struct ptrace_syscall_info.
type syscallInfo struct {
	op   uint8
	arch uint32
	ip   uint64
	nr   uint64
	args [6]uint64
	rval int64
}

func getSyscallInfo(tid int) (syscallInfo, error) {
	var b [128]byte
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_SYSCALL_INFO, uintptr(tid), uintptr(len(b)), uintptr(unsafe.Pointer(&b[0])), 0, 0)
	if e != 0 {
		return syscallInfo{}, e
	}
	ne := binary.NativeEndian
	si := syscallInfo{op: b[0], arch: ne.Uint32(b[4:]), ip: ne.Uint64(b[8:])}
	switch si.op {
	case unix.PTRACE_SYSCALL_INFO_ENTRY, unix.PTRACE_SYSCALL_INFO_SECCOMP:
		si.nr = ne.Uint64(b[24:])
		for i := range si.args {
			si.args[i] = ne.Uint64(b[32+8*i:])
		}
	case unix.PTRACE_SYSCALL_INFO_EXIT:
		si.rval = int64(ne.Uint64(b[24:]))
	}
	return si, nil
}

func (t *Tracer) syscallStop(tid int, x *thread) {
	si, err := getSyscallInfo(tid)
	if err != nil {
		if err != unix.ESRCH {
			t.log.Error("ptrace PTRACE_GET_SYSCALL_INFO failed", "pid", tid, "error", err)
			t.kill(tid)
		}
		return
	}
	switch si.op {
	case unix.PTRACE_SYSCALL_INFO_ENTRY, unix.PTRACE_SYSCALL_INFO_SECCOMP:
		if x.busy {
			// Cannot happen (the thread waits for our answer); be safe.
			return
		}
		c := &Call{Tid: tid, Nr: int32(uint32(si.nr)), Arch: si.arch, IP: si.ip, Args: si.args}
		if si.nr > 0xffffffff {
			c.Nr = -1 // no such call; the Decider refuses it
		}
		if t.dec.Async(c) {
			x.busy = true
			t.pending++
			go func() {
				runtime.LockOSThread() // handlers may change this thread's credentials
				v := t.dec.Enter(c)
				t.done <- asyncDone{tid, x, v}
				runtime.UnlockOSThread()
			}()
			return
		}
		t.apply(tid, x, t.dec.Enter(c), si.op == unix.PTRACE_SYSCALL_INFO_SECCOMP)
	case unix.PTRACE_SYSCALL_INFO_EXIT:
		t.exitStop(tid, x, si.rval)
	default:
		t.resume(tid, 0)
	}
}

func (t *Tracer) finishAsync(d asyncDone) {
	t.pending--
	x := t.threads[d.tid]
	if x == nil || x != d.x {
		// Gone meanwhile (killed, or replaced by an exec from another
		// thread that took its id): the verdict belongs to nobody now.
		return
	}
	x.busy = false
	t.apply(d.tid, x, d.v, t.mode == SeccompStops)
}

// apply carries out a verdict at a call's entry (seccomp: at its seccomp
// stop).
func (t *Tracer) apply(tid int, x *thread, v Verdict, seccompStop bool) {
	switch v.Kind {
	case Allow:
		if v.Rewrite != nil {
			if err := rewriteCall(tid, v.Rewrite); err != nil {
				t.failed(tid, "rewrite call", err)
				return
			}
		}
		x.atExit = v.AtExit
		x.atExec = v.AtExec
		x.execSeen = v.AtExec != nil
		t.resume(tid, 0)
	case Return:
		if err := skipCall(tid, v.Ret); err != nil {
			t.failed(tid, "skip call", err)
			return
		}
		if !seccompStop {
			// The exit stop follows: the return value is set there too
			// (some kernels reset it after a skipped entry).
			r := v.Ret
			x.ret = &r
		}
		t.resume(tid, 0)
	default:
		t.kill(tid)
	}
}

func (t *Tracer) failed(tid int, what string, err error) {
	if err == unix.ESRCH {
		return // killed meanwhile
	}
	t.log.Error("tracer could not carry out a verdict: killing the tracee", "what", what, "pid", tid, "error", err)
	t.kill(tid)
}

// kill kills tid's process (never resumed again: the exit is reported).
func (t *Tracer) kill(tid int) {
	_ = unix.Kill(tid, unix.SIGKILL)
}

func (t *Tracer) exitStop(tid int, x *thread, rval int64) {
	if x.ret != nil {
		r := *x.ret
		x.ret = nil
		if err := setReturn(tid, r); err != nil {
			t.failed(tid, "set return", err)
			return
		}
	}
	x.execSeen, x.atExec = false, nil
	if f := x.atExit; f != nil {
		x.atExit = nil
		res := f(rval)
		if res.Kill {
			t.kill(tid)
			return
		}
		if res.CloseFD >= 0 {
			if err := t.injectClose(tid, res.CloseFD); err != nil {
				t.failed(tid, "close fd in tracee", err)
				return
			}
		}
		if res.Ret != rval {
			if err := setReturn(tid, res.Ret); err != nil {
				t.failed(tid, "set return", err)
				return
			}
		}
	}
	t.resume(tid, 0)
}

// execEvent: tid's process has a new image (tid is its thread group id; the
// thread that called exec may have had another id).
func (t *Tracer) execEvent(pid int) {
	former := pid
	if msg, err := unix.PtraceGetEventMsg(pid); err == nil {
		former = int(msg)
	}
	x := t.threads[former]
	if former != pid {
		// The other threads, the leader included, are gone; the caller
		// now has the leader's id.
		delete(t.threads, former)
		if x == nil {
			x = &thread{}
		}
		t.threads[pid] = x
	}
	if x == nil || x.atExec == nil {
		t.log.Error("exec without a vetted entry: killing it", "pid", pid)
		t.kill(pid)
		return
	}
	f := x.atExec
	x.atExec = nil
	if !f(pid) {
		t.kill(pid)
		return
	}
	t.resume(pid, 0)
}

// injectClose makes tid, stopped at a syscall exit, run close(fd) before it
// returns: its registers are saved, the syscall instruction is run again
// as close, and the registers are restored. A signal that arrives
// meanwhile is held back and sent again after.
func (t *Tracer) injectClose(tid int, fd int) error {
	var saved, r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &saved); err != nil {
		return err
	}
	r = saved
	prepareInjection(&r, unix.SYS_CLOSE, uint64(fd))
	if err := unix.PtraceSetRegs(tid, &r); err != nil {
		return err
	}
	var held []unix.Signal
	for step := 0; step < 2; {
		if err := ptrace(unix.PTRACE_SYSCALL, tid, 0, 0); err != nil {
			return err
		}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		switch {
		case ws.Exited() || ws.Signaled():
			delete(t.threads, tid)
			if tid == t.root {
				// Cannot be the root's last word unnoticed: kill the rest.
				t.killAll()
			}
			return unix.ESRCH
		case ws.Stopped() && ws.StopSignal() == unix.SIGTRAP|0x80:
			step++
		case ws.Stopped() && int(ws>>16)&0xff == 0 && ws.StopSignal() != unix.SIGTRAP:
			held = append(held, ws.StopSignal())
		default:
			// Anything else (an event) is not expected here.
			return fmt.Errorf("unexpected stop %#x while closing an fd", uint32(ws))
		}
	}
	if err := unix.PtraceSetRegs(tid, &saved); err != nil {
		return err
	}
	for _, s := range held {
		_, _, _ = unix.RawSyscall(unix.SYS_TKILL, uintptr(tid), uintptr(s), 0) // to that thread again
	}
	return nil
}
