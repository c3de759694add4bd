//go:build linux

package supervisor

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Replay of emulated results.
//
// Without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (kernels before 5.19, AWS
// Lambda's 5.10 among them) a caller parked in the supervisor is woken by
// any signal, Go's SIGURG preemption above all; its call is abandoned (our
// answer gets ENOENT) and, with SA_RESTART, re-issued as a new notification
// with the same registers. The supervisor may already have performed the
// call: created the O_EXCL file, connected the socket, sent the datagram,
// renamed the file. Doing it again would fail (EEXIST, EISCONN) or repeat
// the side effect. So every emulated call is registered under the thread
// and its registers while it runs; a re-issued notification that finds it
// waits for the first attempt and answers with its result instead of
// performing the call again. The result of an abandoned call is kept for
// replayTTL; only results of calls the supervisor performed are kept
// (Continue is the kernel's to redo).
//
// A result is replayed only to the same thread (tid and start time): a
// recycled thread id never gets another thread's answer.
type replays struct {
	mu        sync.Mutex
	m         map[replayKey]*replayEntry
	nextSweep time.Time
}

type replayKey struct {
	tid  uint32
	nr   int32
	args [6]uint64
}

type replayEntry struct {
	done      chan struct{} // closed when the first attempt has finished
	abandoned bool          // its answer found the caller gone: res is kept
	busy      bool          // a re-issued notification is being answered with res
	res       Result        // kept result (an injected fd stays open here)
	start     uint64        // the thread's start time, when abandoned
	expires   time.Time
}

// replayTTL is how long the result of an abandoned call waits for the call
// to be re-issued (normally microseconds: the signal handler runs, then the
// call restarts).
const replayTTL = 10 * time.Second

// replayPoll is how often a re-issued notification waiting for the first
// attempt checks that it is still pending itself.
const replayPoll = 2 * time.Millisecond

// replayed counts results answered to a re-issued call (tests).
var replayed atomic.Int64

// forceReplay keeps replay on even when the filter has
// WAIT_KILLABLE_RECV (tests and measurements).
var forceReplay bool

// disableReplay is for tests that show what replay prevents: every
// notification is handled as a new call.
var disableReplay bool

func newReplays() *replays { return &replays{m: map[replayKey]*replayEntry{}} }

// begin registers the call; first reports whether it is new (the caller of
// begin performs it and must call finish). Otherwise e is the earlier
// attempt's entry.
func (p *replays) begin(k replayKey) (e *replayEntry, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.After(p.nextSweep) {
		p.sweepLocked(now)
		p.nextSweep = now.Add(replayTTL)
	}
	if e := p.m[k]; e != nil && !disableReplay {
		return e, false
	}
	e = &replayEntry{done: make(chan struct{})}
	p.m[k] = e
	return e, true
}

// finish records the first attempt's outcome: answered (err is not
// ENOENT), or abandoned with res kept for a re-issue. It reports whether
// res was kept (then its fd must not be closed by the caller).
func (p *replays) finish(k replayKey, e *replayEntry, res Result, err error) bool {
	keep := false
	// Not kept: Continue (the kernel redoes the call) and ENOENT, which is
	// what a handler answers when it found the caller gone before any side
	// effect (r.valid() failed); no performed call has ENOENT as its result
	// after a side effect, so the re-issued call is simply handled anew.
	if err == unix.ENOENT && res.action != actContinue && !(res.action == actErrno && res.errno == unix.ENOENT) &&
		!(res.action == actInjectFD && res.fd < 0) {
		if start, ok := threadStart(int(k.tid)); ok {
			keep = true
			e.start = start
		}
	}
	p.mu.Lock()
	if keep {
		e.abandoned, e.res, e.expires = true, res, time.Now().Add(replayTTL)
	} else if p.m[k] == e {
		delete(p.m, k)
	}
	p.mu.Unlock()
	close(e.done)
	return keep
}

// await waits until the earlier attempt has finished, or until this
// notification is no longer pending (the caller was interrupted again or
// killed: then there is nothing to answer and await reports false).
func (s *supervisor) awaitReplay(e *replayEntry, id uint64) bool {
	// The usual case is a sequential caller whose next, identical call
	// arrives while the first attempt's bookkeeping is finishing:
	// microseconds. Spin a little before sleeping on the channel.
	for i := 0; i < 200; i++ {
		select {
		case <-e.done:
			return true
		default:
		}
		runtime.Gosched()
	}
	t := time.NewTicker(replayPoll)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return true
		case <-t.C:
			if !notifIDValid(s.listener, id) {
				return false
			}
		}
	}
}

// take hands out a kept result for the re-issued call of the same thread;
// ok is false when there is none (the earlier attempt was answered, or the
// thread is another one with a recycled id): the call is then new. busy:
// another receiver is answering the same thread with it right now.
func (p *replays) take(k replayKey, e *replayEntry) (res Result, ok, busy bool) {
	p.mu.Lock()
	if e.busy && p.m[k] == e {
		p.mu.Unlock()
		return res, false, true
	}
	if p.m[k] != e || !e.abandoned {
		p.mu.Unlock()
		return res, false, false
	}
	e.busy = true
	p.mu.Unlock()
	if start, alive := threadStart(int(k.tid)); !alive || start != e.start {
		p.drop(k, e)
		return res, false, false
	}
	replayed.Add(1)
	return e.res, true, false
}

// settle records how answering with a kept result went: answered (the
// entry goes; respond closed the fd), or abandoned once more (kept).
func (p *replays) settle(k replayKey, e *replayEntry, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.busy = false
	if err == unix.ENOENT {
		e.expires = time.Now().Add(replayTTL)
		return
	}
	if p.m[k] == e {
		delete(p.m, k)
	}
	e.res.fd = -1
}

// drop forgets an entry and closes what it kept.
func (p *replays) drop(k replayKey, e *replayEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[k] == e {
		delete(p.m, k)
	}
	e.busy = false
	e.closeLocked()
}

func (e *replayEntry) closeLocked() {
	if e.res.action == actInjectFD && e.res.fd >= 0 {
		unix.Close(e.res.fd)
		e.res.fd = -1
	}
}

func (p *replays) sweepLocked(now time.Time) {
	for k, e := range p.m {
		if e.abandoned && !e.busy && now.After(e.expires) {
			delete(p.m, k)
			e.closeLocked()
		}
	}
}

// closeAll releases every kept result (at the end of a run).
func (p *replays) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.m {
		if e.abandoned && !e.busy {
			delete(p.m, k)
			e.closeLocked()
		}
	}
}

// threadStart is a thread's start time (field 22 of /proc/<tid>/stat).
func threadStart(tid int) (uint64, bool) {
	var buf [1024]byte
	b := readProcStat(tid, buf[:])
	if b == nil {
		return 0, false
	}
	return parseStatStart(b)
}

// parseStatStart reads field 22 (starttime) of /proc/<pid>/stat, counting
// fields after the last ')' (comm may hold anything).
func parseStatStart(b []byte) (uint64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false
	}
	var v uint64
	for _, c := range f[19] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
