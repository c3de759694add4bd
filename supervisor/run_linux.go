//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// supervisor is one run.
type supervisor struct {
	policy   Policy
	audit    *Auditor
	log      hclog.Logger
	listener int
	table    map[int32]handler
	creds    fsCreds
	pool     *receivers
	// groupsIrrelevant: see request.quickStatus.
	groupsIrrelevant bool
	// root is an O_PATH fd of the supervisor's own root, with its inode
	// and mount id: a caller whose /proc/<tid>/root is the same mount and
	// inode resolves in it without opening its own (see callerRoot).
	root             int
	rootIno, rootMnt uint64
	replays          *replays
	// replayOff: the filter has WAIT_KILLABLE_RECV, so no call is
	// re-issued after the supervisor received it (replay.go).
	replayOff bool
	// self and pgrp: the supervisor's pid and process group (signal.go).
	self, pgrp int

	// The exec barrier and the reaper must not both wait for the same
	// process: a wait by the real parent would consume the ptrace stops
	// the barrier waits for. Barriers register the thread group before
	// PTRACE_SEIZE; the reaper skips registered ones.
	mu      sync.Mutex
	tracing map[int]int // tgid -> barriers in progress
	exited  map[int]int // pid -> exit status, reaped by a barrier
	wake    chan struct{}
	// sigReady is closed once Run's signal.Notify has taken effect.
	sigReady chan struct{}
	// dns judges DNS queries and remembers their answers (dns_linux.go);
	// nil for a policy without domain rules support (tests' fakes).
	dns *dnsState
}

var runMu sync.Mutex

// Run starts cfg.Args under the filter, supervises it and returns its exit
// status (128+N if it died of signal N) once it has exited and every other
// descendant has been killed. A *StartError means the command never ran.
// Only one Run may be active per process (it reaps the process's children).
func Run(cfg Config) (int, error) {
	if !runMu.TryLock() {
		return 2, errors.New("vigil: supervisor already running in this process")
	}
	defer runMu.Unlock()
	if cfg.Policy == nil {
		return 2, &StartError{Stage: "policy", Err: errors.New("no policy")}
	}
	if len(cfg.Args) == 0 {
		return 2, &StartError{Stage: "command", Err: errors.New("no command")}
	}
	lw := NewLineWriter(os.Stderr)
	if cfg.Auditor == nil {
		cfg.Auditor = NewAuditor(lw)
	}
	if cfg.Logger == nil {
		cfg.Logger = NewLogger(lw, hclog.Info)
	}
	if cfg.MaxReceivers <= 0 {
		cfg.MaxReceivers = 64
	}
	s := &supervisor{
		root:    -1,
		policy:  cfg.Policy,
		audit:   cfg.Auditor,
		log:     cfg.Logger.Named("supervisor"),
		tracing: map[int]int{},
		exited:  map[int]int{},
		wake:    make(chan struct{}, 1),
		replays: newReplays(),
		self:    os.Getpid(),
		pgrp:    unix.Getpgrp(),
	}
	s.table = handlerTable()
	if dp, ok := cfg.Policy.(domainPolicy); ok {
		s.dns = newDNS(s, dp, "/etc/resolv.conf")
	}
	creds, err := ownCreds()
	if err != nil {
		return 2, &StartError{Stage: "credentials", Err: err}
	}
	s.creds = creds
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		s.groupsIrrelevant = groupsIrrelevant(b)
	}

	// The supervisor's own hardening. Non-dumpable: the child cannot open
	// our /proc entries or ptrace us. Subreaper: orphans of the command
	// come to us, so that we can kill them. Umask 0: the caller's umask is
	// applied to the mode explicitly.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return 2, &StartError{Stage: "prctl", Err: err}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 2, &StartError{Stage: "prctl", Err: err}
	}
	// PR_SET_PDEATHSIG fires when the parent *thread* that forked the child
	// exits: fork from a locked thread that lives until Run returns.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// signal.Notify hands each signal to the runtime's signal-mask thread
	// and waits for it to be unblocked there: from this locked thread that
	// cost the cold start 0.6-2.4 ms here, so it runs beside the start.
	// The command is not started before it has taken effect (s.sigReady);
	// a signal that comes earlier has its default effect (SIGTERM ends the
	// bootstrap, and the child with it: it has a parent-death signal).
	sigs := make(chan os.Signal, 16)
	s.sigReady = make(chan struct{})
	go func() {
		defer close(s.sigReady)
		signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGCHLD)
	}()
	defer func() {
		// Likewise beside the exit: nothing is forwarded any more, and
		// a later Run's Notify is on a channel of its own.
		go func(ready chan struct{}) {
			<-ready
			signal.Stop(sigs)
		}(s.sigReady)
	}()

	env := cfg.Env
	if env == nil {
		env = os.Environ()
	}
	stderr := orStd(cfg.Stderr, os.Stderr)
	// Resolve the command before the filter exists (a PATH lookup would be
	// notified opens otherwise). The execve itself is vetted.
	path := cfg.Args[0]
	if !strings.Contains(path, "/") {
		p, err := lookPath(path, env, cfg.Dir)
		if err != nil {
			// Not a filter failure: behave like a shell. Nothing ran.
			_, _ = stderr.Write(append(FormatLine(cfg.JSONLog, "ERROR", fmt.Sprintf("vigil: %s: command not found", path)), '\n'))
			return 127, nil
		}
		path = p
	}
	// Umask 0 for the supervisor, set before the child starts (the handoff
	// below runs while it starts); the child gives the command the
	// caller's umask back. The caller's umask is applied to the creation
	// mode explicitly.
	oldMask := unix.Umask(0)
	defer unix.Umask(oldMask)

	// The backends to try, in order: a failure to install the filter or to
	// take hold of the child (nothing of the command ran) moves on to the
	// next one.
	modes, err := backendModes(cfg.Backend)
	if err != nil {
		return 2, &StartError{Stage: "backend", Err: err}
	}
	sp := &spawnSpec{
		path:  path,
		args:  cfg.Args,
		env:   env,
		dir:   cfg.Dir,
		stdio: [3]*os.File{orStd(cfg.Stdin, os.Stdin), orStd(cfg.Stdout, os.Stdout), stderr},
		umask: oldMask,
		json:  cfg.JSONLog,
	}
	var refused []string
	for i, m := range modes {
		var status int
		var err error
		if m == modeNotify {
			status, err = s.runNotify(cfg, sp, sigs)
		} else {
			status, err = s.runTraced(m, sp, sigs, cfg.BackendHook)
		}
		if err != nil && i < len(modes)-1 && fallbackable(err) {
			s.log.Warn("backend refused, trying the next one", "backend", m.String(), "error", err)
			refused = append(refused, m.String()+": "+err.Error())
			continue
		}
		if err != nil && len(refused) > 0 {
			var se *StartError
			if errors.As(err, &se) {
				se.Refused = refused
			}
		}
		return status, err
	}
	return 2, &StartError{Stage: "backend", Err: errors.New("no backend")}
}

// runNotify runs the command under the seccomp user-notification backend.
func (s *supervisor) runNotify(cfg Config, sp *spawnSpec, sigs chan os.Signal) (int, error) {
	prog, err := buildFilter(filterTarget{pid: os.Getpid()})
	if err != nil {
		return 2, &StartError{Stage: "filter", Err: err}
	}
	parentSock, childSock, closeChildSock, closeAll, err := handoffPair()
	if err != nil {
		return 2, err
	}
	defer closeAll()
	// spawnChild returns only once the child has exec'd the command (which
	// needs the listener held and a receiver running) or exited: the
	// handoff runs on another goroutine.
	type handoffResult struct {
		listener int
		cerr     *childFailure
		err      error
	}
	hc := make(chan handoffResult, 1)
	go func() {
		listener, killable, cerr, err := recvListener(parentSock)
		if err == nil && listener >= 0 {
			s.listener = listener
			// A caller parked in a killable wait is never interrupted
			// and re-issued: no replay bookkeeping is needed.
			s.replayOff = killable && !forceReplay
			s.setSyncWakeUp()
			s.openRoot()
			// The child execs the command only after this byte, and
			// only once signals are forwarded to it.
			<-s.sigReady
			if _, err = unix.Write(parentSock, []byte{ackByte}); err != nil {
				unix.Close(listener)
				listener = -1
			} else {
				s.pool = newReceivers(s, listener, 1, cfg.MaxReceivers)
				s.pool.start()
			}
		}
		if listener < 0 {
			// No ack will come: the child must see EOF and exit rather
			// than wait (spawnChild returns only once it has).
			_ = unix.Shutdown(parentSock, unix.SHUT_RDWR)
		}
		hc <- handoffResult{listener, cerr, err}
	}()
	pid, pidfd, err := startChild(sp, modeNotify, childSock, prog, closeChildSock)
	h := <-hc
	if h.listener >= 0 {
		defer unix.Close(h.listener)
	}
	if err != nil {
		// No child: the handoff got EOF.
		return 2, &StartError{Stage: "start", Err: err}
	}
	// Signals are forwarded through the pidfd (from clone): never a
	// recycled pid.
	defer unix.Close(pidfd)
	if h.err != nil || h.listener < 0 {
		// No listener: the child failed before exec (cerr says where) or
		// died. Nothing of the command ran.
		if h.err != nil {
			_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		}
		status := s.waitChildOnly(pid)
		if s.root >= 0 {
			unix.Close(s.root)
		}
		if h.cerr != nil {
			return 2, childError(h.cerr.stage, h.cerr.errno, cfg.Dir)
		}
		if h.err != nil {
			return 2, &StartError{Stage: "handoff", Err: h.err}
		}
		return status, nil
	}
	s.log.Debug("command started", "pid", pid, "command", cfg.Args[0], "backend", "notify")
	if cfg.BackendHook != nil {
		cfg.BackendHook("notify")
	}

	status := s.supervise(pid, pidfd, sigs)
	s.killDescendants()
	if s.pool.stop(250 * time.Millisecond) {
		// Only once no receiver can still use them (the numbers could
		// be reused by then).
		if s.root >= 0 {
			unix.Close(s.root)
		}
		s.replays.closeAll()
	}
	s.log.Debug("command exited", "pid", pid, "status", status, "peak_receivers", s.pool.peak.Load(), "receivers_started", s.pool.spawns.Load())
	return status, nil
}

// openRoot keeps the supervisor's root, for callers whose root it is
// (sameRoot).
func (s *supervisor) openRoot() {
	if fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		var stx unix.Statx_t
		if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_MNT_ID, &stx) == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
			s.root, s.rootIno, s.rootMnt = fd, stx.Ino, stx.Mnt_id
		} else {
			unix.Close(fd)
		}
	}
}

// setSyncWakeUp asks the kernel to wake the caller on the receiver's CPU
// when it is answered (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 6.6+): the
// notification round trip then needs no cross-CPU wake-up (measured: a
// minimal C round trip 27.5 us -> 17.2 us). Best effort: an older kernel
// refuses the ioctl (ENOTTY/EINVAL) and everything works without it.
func (s *supervisor) setSyncWakeUp() {
	if _, err := ioctlPtrVal(s.listener, unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP); err != nil {
		s.log.Debug("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP not available", "error", err)
	}
}

func orStd(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

func ioctlPtrVal(fd int, req uint, v uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), v)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// childFailure is what a child reported instead of the listener.
type childFailure struct {
	stage int
	errno unix.Errno
}

// startChild spawns the child in mode m (see spawnChild). Once it has
// exec'd or exited: the supervisor is made non-dumpable again (the child
// shared its memory map until execve and made it dumpable for the handoff,
// spawn_linux.c), and the child's end of the socketpair is closed, so that
// a handoff still waiting sees EOF.
func startChild(sp *spawnSpec, m spawnMode, sock int, prog []byte, closeChild func()) (pid, pidfd int, err error) {
	spec := *sp
	spec.sock, spec.prog, spec.mode = sock, prog, m
	pid, pidfd, err = spawnChild(&spec)
	if perr := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); perr != nil && err == nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		err = fmt.Errorf("prctl PR_SET_DUMPABLE: %w", perr)
	}
	closeChild()
	return pid, pidfd, err
}

// handoffPair makes the socketpair of the child's handoff: closeChild
// closes the child's end (once it has its copy), closeAll both.
func handoffPair() (parent, child int, closeChild, closeAll func(), err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, nil, nil, &StartError{Stage: "handoff", Err: err}
	}
	open := true
	closeChild = func() {
		if open {
			unix.Close(pair[1])
			open = false
		}
	}
	closeAll = func() {
		closeChild()
		unix.Close(pair[0])
	}
	return pair[0], pair[1], closeChild, closeAll, nil
}

// readHandoffMsg reads one message of the child's handoff (empty at EOF).
func readHandoffMsg(sock int) ([]byte, error) {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(sock, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// recvListener receives the listener (or the child's failure report): the
// child writes its pid and the listener's fd number (struct
// vigil_handoff) and holds the fd until the ack, and the supervisor copies
// it with pidfd_getfd. (SCM_RIGHTS would need sendmsg, which the filter
// notifies: the child would wait for an answer nobody can give yet.)
func recvListener(sock int) (int, bool, *childFailure, error) {
	msg, err := readHandoffMsg(sock)
	if err != nil {
		return -1, false, nil, err
	}
	if len(msg) == 0 {
		return -1, false, nil, nil // EOF: the child exited without a word
	}
	if pid, fd, killable, ok := parseHandoff(msg); ok {
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return -1, false, nil, fmt.Errorf("pidfd_open of the child: %w", err)
		}
		l, err := unix.PidfdGetfd(pidfd, fd, 0)
		unix.Close(pidfd)
		if err != nil {
			return -1, false, nil, fmt.Errorf("pidfd_getfd of the listener: %w", err)
		}
		return l, killable, nil, nil
	}
	if stage, errno, ok := parseChildError(msg); ok {
		return -1, false, &childFailure{stage, errno}, nil
	}
	return -1, false, nil, fmt.Errorf("unexpected handoff message")
}

// waitChildOnly reaps the child when no listener was handed over.
func (s *supervisor) waitChildOnly(pid int) int {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 2
		}
		return exitStatus(ws)
	}
}

func exitStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 2
}

// supervise forwards signals and reaps children until the direct child
// exits; it returns the child's status.
func (s *supervisor) supervise(pid, pidfd int, sigs chan os.Signal) int {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	full := false
	for {
		if st, ok := s.reap(pid, full); ok {
			return st
		}
		full = false
		select {
		case sig := <-sigs:
			if sig != unix.SIGCHLD {
				// Through the pidfd: never a recycled pid. The child is
				// not reaped before this loop ends, so it is still ours.
				_ = unix.PidfdSendSignal(pidfd, sig.(unix.Signal), nil, 0)
			}
		case <-s.wake:
		case <-tick.C:
			// Safety net: SIGCHLD coalesces, a barrier may have held a
			// process while its signal came, and barriers may trace
			// without a break (see reap).
			full = true
		}
	}
}

// children lists the supervisor's own children (including zombies and the
// orphans reparented to it as subreaper): the children file of each of its
// threads. (filepath.Glob would read every thread's /proc directory to find
// the one name: 4-5 ms at exit with some fifteen threads here.)
func children() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if v, err := strconv.Atoi(f); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// noChildren reports whether the supervisor has no child at all, not even
// a zombie or a tracee (nothing is consumed: WNOWAIT). With no child there
// is no descendant either: orphans are reparented to the supervisor (a
// subreaper) before their parent becomes a zombie.
func noChildren() bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return err == unix.ECHILD
	}
}

// reap collects exited children that no exec barrier is tracing; it
// reports the direct child's status once it has exited.
//
// A wait by any thread of the supervisor also reports the ptrace stops of
// the processes a barrier traces (the tracer is in the real parent's
// thread group), and would consume the very stop the barrier waits for. So:
//   - while no barrier traces anything, wait4(-1, WNOHANG) collects every
//     exited child at the cost of one call each: s.mu is held, and a
//     barrier registers (trace) under it before PTRACE_SEIZE, so nothing
//     can become traced meanwhile. This is the usual case, and the only one
//     on the runtime's start (the barrier's own stops send SIGCHLD: a scan
//     of /proc for each of them cost a cold start about 1-2 ms of CPU here);
//   - while one does, the direct child (if it is not the one traced) is
//     waited for by pid, and the others are left for untrace's wake-up,
//     which comes when the barrier ends; full (the periodic tick) also
//     waits for each untraced child listed in /proc, so that barriers
//     without a break cannot keep zombies or the direct child's exit
//     unseen for long.
func (s *supervisor) reap(direct int, full bool) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.exited[direct]; ok {
		return st, true
	}
	var status int
	found := false
	collect := func(pid int) bool {
		var ws unix.WaitStatus
		for {
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || got <= 0 {
				return false
			}
			if (ws.Exited() || ws.Signaled()) && got == direct {
				status, found = exitStatus(ws), true
			}
			return true
		}
	}
	if len(s.tracing) == 0 {
		for collect(-1) {
		}
		return status, found
	}
	if direct > 0 && s.tracing[direct] == 0 {
		collect(direct)
	}
	if full {
		for _, c := range children() {
			if c != direct && s.tracing[c] == 0 {
				collect(c)
			}
		}
	}
	return status, found
}

// killDescendants SIGKILLs everything left below the supervisor: its
// children, then the orphans that reparent to it, until none is left.
func (s *supervisor) killDescendants() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if noChildren() {
			return
		}
		kids := children()
		if len(kids) == 0 {
			return
		}
		for _, k := range kids {
			_ = unix.Kill(k, unix.SIGKILL)
		}
		s.reap(-1, true)
		time.Sleep(200 * time.Microsecond)
	}
	s.log.Warn("descendants left after kill", "pids", fmt.Sprint(children()))
}

// barrier bookkeeping
func (s *supervisor) trace(tgid int) {
	s.mu.Lock()
	s.tracing[tgid]++
	s.mu.Unlock()
}

func (s *supervisor) untrace(tgid int) {
	s.mu.Lock()
	if s.tracing[tgid]--; s.tracing[tgid] <= 0 {
		delete(s.tracing, tgid)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// recordExit stores the status of a process a barrier reaped (it was
// traced, so the barrier's wait consumed its exit).
func (s *supervisor) recordExit(pid, status int) {
	s.mu.Lock()
	s.exited[pid] = status
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
