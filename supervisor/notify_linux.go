//go:build linux

package supervisor

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI (include/uapi/linux/seccomp.h); x/sys has the ioctl numbers
// but not the structures.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32 // a thread id (trap 7)
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

type seccompNotifAddfd struct {
	ID         uint64
	Flags      uint32
	Srcfd      uint32
	Newfd      uint32
	NewfdFlags uint32
}

// AUDIT_ARCH_* of seccomp_data.arch; auditArchNative (notify_amd64.go,
// notify_arm64.go) is the one the filter lets through.
const (
	auditArchX86_64  = 0xc000003e
	auditArchAArch64 = 0xc00000b7
)

// Compile-time checks that the structures match the ioctl sizes encoded in
// the request numbers.
var (
	_ [unsafe.Sizeof(seccompNotif{}) - 0x50]byte
	_ [0x50 - unsafe.Sizeof(seccompNotif{})]byte
	_ [unsafe.Sizeof(seccompNotifResp{}) - 0x18]byte
	_ [unsafe.Sizeof(seccompNotifAddfd{}) - 0x18]byte
)

func ioctlPtr(fd int, req uint, p unsafe.Pointer) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// notifIDValid reports whether the notification is still pending: the
// caller is still blocked in the call, so its tid still names it and the
// memory we read is the memory of that call.
func notifIDValid(listener int, id uint64) bool {
	for {
		_, err := ioctlPtr(listener, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id))
		if err == unix.EINTR {
			continue
		}
		return err == nil
	}
}

// wakeSignal interrupts receivers blocked in NOTIF_RECV at shutdown. It is a
// real-time signal nobody else sends; Go's runtime ignores it when it is not
// subscribed to (signal 40 = SIGRTMIN+8 in kernel numbering; glibc uses
// 32 and 33).
const wakeSignal = unix.Signal(40)

// receiverSigmask blocks every asynchronous signal on receiver threads.
// Trap 9: an ADDFD|SEND ioctl interrupted by a signal (Go's own SIGURG
// preemption) has already marked the notification replied, and the caller
// then gets 0 instead of the injected fd. With the signals blocked the
// wait inside that ioctl cannot be interrupted. Synchronous fault signals
// stay deliverable, so do glibc's 32/33 (cgo setxid broadcast) and
// wakeSignal.
func receiverSigmask() *unix.Sigset_t {
	var set unix.Sigset_t
	for sig := 1; sig <= 64; sig++ {
		switch unix.Signal(sig) {
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS, unix.SIGKILL, unix.SIGSTOP, wakeSignal:
			continue
		}
		if sig == 32 || sig == 33 {
			continue
		}
		set.Val[(sig-1)/64] |= 1 << (uint(sig-1) % 64)
	}
	return &set
}

// receivers is the self-sizing pool of receiver goroutines. Each is locked
// to its own OS thread for its whole life (never unlocked: the thread dies
// with the goroutine, taking its signal mask and any leftover credential or
// ptrace state with it), blocks in NOTIF_RECV, and handles what it received
// inline. When the last idle receiver takes a notification it starts another
// one (up to max), so a slow connect or a slow open never stalls other
// callers; extra receivers that find others idle exit.
type receivers struct {
	s        *supervisor
	listener int
	base     int32
	max      int32
	idle     atomic.Int32
	total    atomic.Int32
	stopping atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	tids     map[int]struct{}
	peak     atomic.Int32
	spawns   atomic.Int32
	// lastSpawn is when the pool last grew (UnixNano). Extra receivers
	// retire only when it is at least retireAfter ago: a burst that made
	// the pool grow tends to come back, and without this hysteresis a
	// plain sequential caller made the pool spawn and retire a thread
	// every few opens (a receiver still finishing its previous request
	// is not idle yet when the next notification arrives).
	lastSpawn atomic.Int64
}

// retireAfter is how long after the pool last grew extra receivers stay.
const retireAfter = time.Second

// spawnDelay: the pool grows when every receiver has been busy this long.
// Most notifications take tens of microseconds; growing only for slow ones
// (a connect, an exec barrier, a slow filesystem) lets one receiver thread
// serve a sequential caller alone, like a single-threaded C supervisor,
// instead of the kernel handing successive notifications to alternating
// threads.
const spawnDelay = 200 * time.Microsecond

func newReceivers(s *supervisor, listener int, base, max int) *receivers {
	if max < base {
		max = base
	}
	return &receivers{s: s, listener: listener, base: int32(base), max: int32(max), tids: map[int]struct{}{}}
}

func (p *receivers) start() {
	for i := int32(0); i < p.base; i++ {
		p.spawn()
	}
}

func (p *receivers) spawn() bool {
	for {
		t := p.total.Load()
		if t >= p.max || p.stopping.Load() {
			return false
		}
		if p.total.CompareAndSwap(t, t+1) {
			if t+1 > p.peak.Load() {
				p.peak.Store(t + 1)
			}
			break
		}
	}
	p.spawns.Add(1)
	p.lastSpawn.Store(time.Now().UnixNano())
	// Count the new receiver as idle from now on: while its thread is being
	// created, a burst of notifications must not spawn more of them.
	p.idle.Add(1)
	p.wg.Add(1)
	go p.loop()
	return true
}

// retire lets an extra receiver leave when enough others are idle.
func (p *receivers) retire() bool {
	if p.idle.Load() < 2 || time.Now().UnixNano()-p.lastSpawn.Load() < int64(retireAfter) {
		return false
	}
	for {
		t := p.total.Load()
		if t <= p.base {
			return false
		}
		if p.total.CompareAndSwap(t, t-1) {
			return true
		}
	}
}

// liveReceivers counts receiver goroutines in the process (tests check
// that none outlives its Run).
var liveReceivers atomic.Int32

func (p *receivers) loop() {
	runtime.LockOSThread()
	liveReceivers.Add(1)
	defer liveReceivers.Add(-1)
	defer p.wg.Done()
	counted := true
	defer func() {
		if counted {
			p.total.Add(-1)
		}
	}()
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, receiverSigmask(), nil); err != nil {
		p.idle.Add(-1)
		p.s.log.Error("cannot block signals on receiver thread", "error", err)
		return
	}
	tid := unix.Gettid()
	p.mu.Lock()
	p.tids[tid] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.tids, tid)
		p.mu.Unlock()
	}()

	pc := newProcCache()
	defer pc.close()
	// Armed while this receiver handles a notification with no other
	// receiver idle: if the handler is still running spawnDelay later, the
	// pool grows (see spawnDelay). An armed timer counts in wg, so that a
	// late callback never spawns after stop's Wait has returned.
	grow := time.AfterFunc(time.Hour, func() {
		defer p.wg.Done()
		if p.idle.Load() == 0 {
			p.spawn()
		}
	})
	grow.Stop()
	var n seccompNotif
	first := true
	for !p.stopping.Load() {
		n = seccompNotif{} // the kernel requires a zeroed buffer
		if !first {
			p.idle.Add(1)
		}
		first = false
		_, err := ioctlPtr(p.listener, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&n))
		idle := p.idle.Add(-1)
		if err != nil {
			switch err {
			case unix.EINTR:
				continue
			case unix.ENOENT:
				// The caller went away between wake-up and receive, or the
				// filter has no users left: then RECV fails at once for
				// ever (trap 5). Wait for readability or hang-up instead
				// of spinning.
				if p.hungUp() {
					return
				}
				continue
			default:
				if !p.stopping.Load() {
					p.s.log.Error("receive notification failed", "error", err)
				}
				return
			}
		}
		if idle == 0 {
			p.wg.Add(1)
			grow.Reset(spawnDelay)
		}
		ok := p.s.handle(&n, pc)
		if idle == 0 && grow.Stop() {
			p.wg.Done() // stopped before it ran
		}
		if !ok {
			// Leave without unlocking: the runtime destroys the thread.
			return
		}
		if p.retire() {
			counted = false
			return
		}
	}
}

// hungUp polls the listener; true when the filter has no users left or the
// pool is stopping.
func (p *receivers) hungUp() bool {
	for !p.stopping.Load() {
		fds := []unix.PollFd{{Fd: int32(p.listener), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			return false
		}
		if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			return true
		}
	}
	return true
}

// stop makes every receiver leave: receivers blocked in RECV (which the
// kernel does not wake when the filter dies) are interrupted with
// wakeSignal. It waits at most timeout for handlers still running and
// reports whether all have left.
func (p *receivers) stop(timeout time.Duration) bool {
	p.stopping.Store(true)
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	pid := unix.Getpid()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		for tid := range p.tids {
			_ = unix.Tgkill(pid, tid, wakeSignal)
		}
		p.mu.Unlock()
		select {
		case <-done:
			return true
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.s.log.Warn("receivers still busy at exit", "count", p.total.Load())
			return false
		}
	}
}

// respond is the one place that answers the kernel. It closes res.fd,
// except when the answer fails with ENOENT (see replay.go).
// ENOENT means the caller is gone (killed, or its call was interrupted and
// will be re-issued as a new notification): not an error.
func (s *supervisor) respond(id uint64, res *Result) error {
	switch res.action {
	case actInjectFD:
		err := s.injectFD(id, res.fd, res.fdFlags)
		if err == unix.ENOENT || err == unix.ESRCH {
			// The caller is gone or was interrupted: before the ioctl
			// found the notification (ENOENT), or while the fd was queued
			// for it (ESRCH: the kernel cleared the pending ADDFD). Not
			// installed: res.fd stays open for a replay of the re-issued
			// call (replay.go); whoever called respond closes it
			// otherwise.
			return unix.ENOENT
		}
		unix.Close(res.fd)
		res.fd = -1
		if err != nil {
			// Not installed and not replied (e.g. EMFILE in the caller,
			// EBUSY): answer with the error so that the caller never
			// hangs.
			e, _ := err.(unix.Errno)
			if e == 0 {
				e = unix.EACCES
			}
			s.log.Debug("inject fd failed", "error", err)
			return s.send(&seccompNotifResp{ID: id, Error: -int32(e)})
		}
		return err
	case actContinue:
		return s.send(&seccompNotifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
	case actValue:
		return s.send(&seccompNotifResp{ID: id, Val: res.val})
	default:
		e := res.errno
		if e == 0 {
			e = unix.EPERM
		}
		return s.send(&seccompNotifResp{ID: id, Error: -int32(e)})
	}
}

// addfdSendUnsupported is set once the kernel has refused
// SECCOMP_ADDFD_FLAG_SEND (added in Linux 5.14; AWS Lambda runs 5.10).
var addfdSendUnsupported atomic.Bool

// injectFD installs fd in the caller and answers the notification with the
// new fd number. Atomically (ADDFD with SECCOMP_ADDFD_FLAG_SEND) where the
// kernel has it; otherwise in two steps, ADDFD then SEND: if the caller's
// call is abandoned between the two (it was killed, or interrupted and will
// be re-issued), the installed fd stays in the caller unused, which the
// kernel's own documentation accepts for this mode; the answer never
// carries another fd.
func (s *supervisor) injectFD(id uint64, fd int, fdFlags uint32) error {
	a := seccompNotifAddfd{ID: id, Srcfd: uint32(fd), NewfdFlags: fdFlags}
	if !addfdSendUnsupported.Load() {
		a.Flags = unix.SECCOMP_ADDFD_FLAG_SEND
		// No EINTR retry: with signals blocked this ioctl cannot be
		// interrupted, and retrying an interrupted ADDFD|SEND would only
		// get ENOENT (the notification is already marked replied).
		_, err := ioctlPtr(s.listener, unix.SECCOMP_IOCTL_NOTIF_ADDFD, unsafe.Pointer(&a))
		if err != unix.EINVAL {
			return err
		}
		// EINVAL: an unknown flag (before 5.14), since the other fields
		// are ours and valid. Remember it and use two steps.
		addfdSendUnsupported.Store(true)
		s.log.Debug("kernel lacks SECCOMP_ADDFD_FLAG_SEND: injecting fds in two steps")
		a.Flags = 0
	}
	newfd, err := ioctlPtr(s.listener, unix.SECCOMP_IOCTL_NOTIF_ADDFD, unsafe.Pointer(&a))
	if err != nil {
		return err
	}
	return s.send(&seccompNotifResp{ID: id, Val: int64(newfd)})
}

func (s *supervisor) send(r *seccompNotifResp) error {
	for {
		_, err := ioctlPtr(s.listener, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// handler computes the answer to one notification. It must not answer it.
type handler func(r *request) Result

// handle answers one notification: a call re-issued after a signal gets
// the result of its first attempt (replay.go); any other call is handled
// afresh. It reports false when the receiver thread must not be reused
// (its credentials could not be restored).
func (s *supervisor) handle(n *seccompNotif, pc *procCache) bool {
	key := replayKey{tid: n.Pid, nr: n.Data.Nr, args: n.Data.Args}
	if s.replayOff {
		return s.handleNew(n, pc, key, nil)
	}
	for {
		e, first := s.replays.begin(key)
		if first {
			return s.handleNew(n, pc, key, e)
		}
		if !s.awaitReplay(e, n.ID) {
			return true // this notification is gone too: nothing to answer
		}
		res, ok, busy := s.replays.take(key, e)
		if ok {
			err := s.respond(n.ID, &res)
			s.replays.settle(key, e, err)
			if err != nil && err != unix.ENOENT {
				s.log.Warn("answer notification failed", "syscall", n.Data.Nr, "pid", n.Pid, "error", err)
			}
			return true
		}
		// The earlier attempt was answered (a sequential caller repeating
		// the same call is this case: its next call can arrive before the
		// first attempt's bookkeeping is done), or belonged to a recycled
		// thread id: then the call is new. If another receiver is
		// answering the same thread with the kept result, let it finish.
		if busy {
			if !notifIDValid(s.listener, n.ID) {
				return true
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// handleNew runs the handler registered for the call and answers.
func (s *supervisor) handleNew(n *seccompNotif, pc *procCache, key replayKey, e *replayEntry) bool {
	r := &request{s: s, n: n, tid: int(n.Pid), pidfd: -1, pc: pc}
	defer r.release()
	var res Result
	h := s.table[n.Data.Nr]
	switch {
	case n.Data.Arch != auditArchNative:
		// The filter kills other architectures; be defensive anyway.
		res = Errno(unix.ENOSYS)
	case h == nil:
		res = Errno(unix.ENOSYS)
	default:
		res = s.safeHandle(h, r)
	}
	if res.Event != nil {
		s.completeEvent(r, res.Event)
		// Before the answer: the caller may end its invocation at once.
		s.audit.Seal(res.Event)
	}
	var err error
	if res.barrier != nil {
		err = res.barrier.run(s, n.ID, &res)
	} else {
		err = s.respond(n.ID, &res)
	}
	kept := e != nil && s.replays.finish(key, e, res, err)
	if !kept && res.action == actInjectFD && res.fd >= 0 {
		unix.Close(res.fd)
	}
	if err != nil && err != unix.ENOENT {
		s.log.Warn("answer notification failed", "syscall", n.Data.Nr, "pid", n.Pid, "error", err)
	}
	if res.Event != nil {
		s.audit.Log(*res.Event)
	}
	return !r.tainted
}

// safeHandle turns a handler panic into a denial: a bug must never allow.
func (s *supervisor) safeHandle(h handler, r *request) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("handler panic", "syscall", r.n.Data.Nr, "panic", fmt.Sprint(v))
			if res.action == actInjectFD {
				unix.Close(res.fd)
			}
			res = Errno(unix.EPERM)
		}
	}()
	return h(r)
}
