// The child start: a vfork-style clone and, in the child, only
// async-signal-safe calls up to execve. Everything the child reads was
// allocated by the parent (C memory) before the clone and stays allocated
// until it has exec'd or exited; the child never runs Go code and writes
// nothing but its own stack and the (sleeping) forking thread's errno.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spawn_linux.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

// vigil_test_walk_fds makes cloexec_from skip close_range, so that tests on
// a new kernel exercise the walk that older kernels need. Tests only.
int vigil_test_walk_fds;
// vigil_test_no_killable loads the filter without WAIT_KILLABLE_RECV, as on
// kernels before 5.19 (AWS Lambda's 5.10). Tests only.
int vigil_test_no_killable;

struct vigil_dirent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

// cloexec_from marks every fd >= low close-on-exec. close_range with
// CLOSE_RANGE_CLOEXEC needs Linux 5.11; AWS Lambda runs 5.10, where it
// fails with EINVAL, so the fallback walks /proc/self/fd with raw
// getdents64 into a stack buffer: no malloc, nothing but syscalls, which is
// all this vfork child may do. A failure is a start failure (fail closed:
// an fd we could not mark would leak into the command).
static int cloexec_from(int low) {
	if (!vigil_test_walk_fds) {
		if (syscall(SYS_close_range, (unsigned)low, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			return -1;
	}
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	char buf[2048] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
		if (n < 0) {
			int e = errno;
			close(dfd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct vigil_dirent64 *d = (struct vigil_dirent64 *)(buf + off);
			off += d->reclen;
			const char *p = d->name;
			if (*p < '0' || *p > '9')
				continue; // "." and ".."
			long fd = 0;
			for (; *p >= '0' && *p <= '9'; p++)
				fd = fd * 10 + (*p - '0');
			if (fd < low || fd == dfd)
				continue;
			if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0 && errno != EBADF) {
				int e = errno;
				close(dfd);
				errno = e;
				return -1;
			}
		}
	}
	close(dfd);
	return 0;
}

// The process's signal mask and RLIMIT_NOFILE as inherited, captured before
// the Go runtime starts (it unblocks some signals and raises the soft
// NOFILE limit; os/exec gives a child the original values back).
static int vigil_initial_ok;
static uint64_t vigil_initial_mask;
static struct rlimit vigil_initial_nofile;

__attribute__((constructor)) static void vigil_capture_initial(void) {
	uint64_t m = 0;
	if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, sizeof m) != 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &vigil_initial_nofile) != 0)
		return;
	vigil_initial_mask = m;
	vigil_initial_ok = 1;
}

int vigil_initial_state(uint64_t *mask, uint64_t *nofile_cur, uint64_t *nofile_max) {
	*mask = vigil_initial_mask;
	*nofile_cur = vigil_initial_nofile.rlim_cur;
	*nofile_max = vigil_initial_nofile.rlim_max;
	return vigil_initial_ok;
}

// Kernel struct sigaction for rt_sigaction (glibc's differs, and glibc
// refuses its own internal signals 32 and 33).
struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static size_t slen(const char *s) {
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

// fail reports stage and errno to the parent and exits.
static __attribute__((noreturn)) void fail(int sock, int stage, int err) {
	struct vigil_childerr e;
	memset(&e, 0, sizeof e);
	e.tag = 'E';
	e.stage = (uint16_t)stage;
	e.err = err;
	ssize_t r;
	do {
		r = write(sock, &e, sizeof e);
	} while (r < 0 && errno == EINTR);
	_exit(2);
}

static __attribute__((noreturn)) void exec_command(const struct vigil_spawn *s);

// handoff_and_exec writes the handoff message, waits for the supervisor's
// ack (it holds the listener, or has seized us), closes the child's copy of
// the listener (lfd, -1 if none) and execs the command. Without the ack
// nothing runs.
static __attribute__((noreturn)) void handoff_and_exec(const struct vigil_spawn *s, int sock, const struct vigil_handoff *h, int lfd) {
	ssize_t r;
	do {
		r = write(sock, h, sizeof *h);
	} while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof *h) {
		// The filter is loaded but nobody will answer: never exec.
		if (lfd >= 0)
			close(lfd);
		fail(sock, VIGIL_STAGE_HANDOFF, r < 0 ? errno : EIO);
	}
	char ack = 0;
	do {
		r = read(sock, &ack, 1);
	} while (r < 0 && errno == EINTR);
	// Trap 4: a child still holding the listener hangs if the parent dies.
	if (lfd >= 0)
		close(lfd);
	if (r != 1 || ack != 'A')
		_exit(2);
	close(sock);
	exec_command(s);
}

// traced_child is the end of the child's start in the traced modes: load
// the filter that answers the vetted calls with SECCOMP_RET_TRACE
// (VIGIL_MODE_TRACE; with no tracer attached they fail with ENOSYS) or none
// (VIGIL_MODE_PTRACE), say so, and exec only once the tracer has seized
// this process (the ack). Dumpable for the seize, as for the handoff.
static __attribute__((noreturn)) void traced_child(const struct vigil_spawn *s, int sock) {
	if (s->mode == VIGIL_MODE_TRACE && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &s->prog) != 0)
		fail(sock, VIGIL_STAGE_SECCOMP, errno);
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	struct vigil_handoff h;
	memset(&h, 0, sizeof h);
	h.tag = 'T';
	h.pid = (int32_t)syscall(SYS_getpid);
	h.fd = -1;
	handoff_and_exec(s, sock, &h, -1);
}

static __attribute__((noreturn)) void child(const struct vigil_spawn *s) {
	uint64_t all = ~(uint64_t)0;
	// Everything blocked (32 and 33 too: raw syscall), then every caught
	// signal back to SIG_DFL: no Go handler can ever run here. Ignored
	// signals stay ignored, as with os/exec.
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof all);
	for (int sig = 1; sig <= 64; sig++) {
		struct ksigaction old, dfl;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(uint64_t)) != 0)
			continue;
		if (old.handler == (void *)SIG_DFL || old.handler == (void *)SIG_IGN)
			continue;
		memset(&dfl, 0, sizeof dfl);
		dfl.handler = (void *)SIG_DFL;
		syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
	}

	int sock = s->sock;
	// Die with the parent thread that forked us, and make sure the parent
	// is not gone already.
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		fail(sock, VIGIL_STAGE_PDEATHSIG, errno);
	if (getppid() != s->ppid)
		_exit(2);

	// Move every fd we need above all of them, then onto 0, 1, 2, so that
	// no dup2 can overwrite a source (the socket could be fd 0..2 if the
	// supervisor was started with a closed stdio fd).
	int next = 3;
	for (int i = 0; i < 3; i++)
		if (s->stdio[i] >= next)
			next = s->stdio[i] + 1;
	if (sock >= next)
		next = sock + 1;
	int moved[3];
	for (int i = 0; i < 3; i++) {
		moved[i] = fcntl(s->stdio[i], F_DUPFD_CLOEXEC, next);
		if (moved[i] < 0)
			fail(sock, VIGIL_STAGE_DUP, errno);
	}
	int nsock = fcntl(sock, F_DUPFD_CLOEXEC, next);
	if (nsock < 0)
		fail(sock, VIGIL_STAGE_DUP, errno);
	sock = nsock;
	for (int i = 0; i < 3; i++) {
		if (dup2(moved[i], i) < 0) // clears FD_CLOEXEC on i
			fail(sock, VIGIL_STAGE_DUP, errno);
	}
	// Its own process group, so that kill(0, sig) and killpg from the
	// command reach the command's processes, never the supervisor (kill of
	// the supervisor's group is refused, see signal.go). When the
	// supervisor is the terminal's foreground group, the command's group
	// takes its place (SIGTTOU is blocked here, so tcsetpgrp proceeds).
	if (setpgid(0, 0) == 0 && s->pgrp > 0 && tcgetpgrp(0) == s->pgrp)
		tcsetpgrp(0, (pid_t)syscall(SYS_getpid));
	if (s->dir != NULL && chdir(s->dir) != 0)
		fail(sock, VIGIL_STAGE_CHDIR, errno);
	// Nothing but 0, 1, 2 survives the exec.
	if (cloexec_from(3) != 0)
		fail(sock, VIGIL_STAGE_CLOSERANGE, errno);
	if (s->restore_nofile) {
		struct rlimit r = {s->nofile_cur, s->nofile_max};
		setrlimit(RLIMIT_NOFILE, &r); // best effort, as os/exec
	}

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail(sock, VIGIL_STAGE_NONEWPRIVS, errno);
	if (s->mode != VIGIL_MODE_NOTIFY)
		traced_child(s, sock);
	// This process is single-threaded: no TSYNC needed (trap 2 cannot
	// happen). WAIT_KILLABLE_RECV needs 5.19; without it, retry.
	unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
	if (!vigil_test_no_killable)
		flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	long listener;
	for (;;) {
		listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &s->prog);
		if (listener >= 0)
			break;
		if (errno == EINVAL && (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)) {
			flags &= ~(unsigned long)SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
			continue;
		}
		fail(sock, VIGIL_STAGE_SECCOMP, errno);
	}

	// From here on, only execve (and execveat) of the calls made below is
	// notified: write, read, close, prctl, umask, rt_sigprocmask are not
	// (trap 3). sendmsg is notified (send paths are vetted), so the
	// listener is not passed with SCM_RIGHTS: the child writes its pid and
	// the listener's number, and the supervisor copies the fd with
	// pidfd_getfd while the child still holds it (it waits for the ack
	// below, so neither the pid nor the fd can change meanwhile).
	//
	// Dumpable first: a supervisor that is not root needs ptrace access to
	// this process for pidfd_getfd now, and to seize it at execve. The
	// flag belongs to the memory map, which this child shares with the
	// supervisor until execve: the supervisor makes itself non-dumpable
	// again once vigil_spawn returns (the command is dumpable after execve
	// like any exec'd program).
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	struct vigil_handoff h;
	memset(&h, 0, sizeof h);
	h.tag = 'L';
	h.pid = (int32_t)syscall(SYS_getpid);
	h.fd = (int32_t)listener;
	h.killable = (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) != 0;
	// Wait until the supervisor holds the listener.
	handoff_and_exec(s, sock, &h, (int)listener);
}

// exec_command gives the command its umask and signal mask and execs it;
// if the exec fails it says why and exits like a shell.
static __attribute__((noreturn)) void exec_command(const struct vigil_spawn *s) {
	ssize_t r;
	umask((mode_t)s->umask); // the supervisor runs with 0
	uint64_t mask = s->sigmask;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, sizeof mask);
	execve(s->path, s->argv, s->envp);
	int e = errno;

	// execve failed (denied or missing): say so and exit like a shell.
	char line[512];
	size_t n = 0;
	const char *parts[4] = {s->errprefix, (e > 0 && e < s->nerrtab && s->errtab[e]) ? s->errtab[e] : "exec failed", s->errsuffix ? s->errsuffix : "", "\n"};
	for (int i = 0; i < 4; i++) {
		size_t l = slen(parts[i]);
		if (l > sizeof line - 1 - n)
			l = sizeof line - 1 - n;
		memcpy(line + n, parts[i], l);
		n += l;
	}
	if (n > 0 && line[n - 1] != '\n')
		line[n++] = '\n';
	do {
		r = write(2, line, n);
	} while (r < 0 && errno == EINTR);
	_exit(e == ENOENT ? 127 : 126);
}

static int child_main(void *arg) {
	child((const struct vigil_spawn *)arg);
}

int vigil_spawn(const struct vigil_spawn *s, void *stack, size_t stack_size, int *pidfd) {
	sigset_t all, old;
	sigfillset(&all);
	// No Go signal handler may run in the child before its own reset:
	// clone with every signal blocked on this thread.
	pthread_sigmask(SIG_SETMASK, &all, &old);
	// CLONE_VM|CLONE_VFORK, as posix_spawn and os/exec: no page tables to
	// copy. This thread sleeps until the child has exec'd or exited; the
	// child runs on its own stack and, besides it, writes only this
	// thread's errno. Other threads keep running (they answer the child's
	// handoff and its execve); the child never touches Go memory.
	pid_t pid = clone(child_main, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, (void *)s, pidfd);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		return -e;
	return pid;
}
