//go:build linux && cgo

/* The capability probe. Whatever changes a process for good (no_new_privs,
 * seccomp filters, PTRACE_TRACEME) happens in children forked here; they run
 * raw system calls only (no malloc, no stdio, all signals blocked), talk to
 * the parent over a SOCK_SEQPACKET socketpair and are always killed and
 * reaped before vp_run returns (by pid: a concurrent wait4(-1) could steal them). Every wait is bounded by one deadline: a
 * child that hangs is reported as VP_TIMEOUT, never waited for.
 *
 * Three children, started together and serviced one after the other:
 *   plain:   the parent opens a pidfd on it, takes its end of the socketpair
 *            with pidfd_getfd, reads its memory with process_vm_readv and
 *            seizes it with PTRACE_SEIZE (TRACESECCOMP|EXITKILL), then
 *            interrupts it and sees the ptrace stop.
 *   seccomp: no_new_privs, an allow-all filter, then a filter with a listener
 *            (NEW_LISTENER|WAIT_KILLABLE_RECV, else NEW_LISTENER) that
 *            notifies getppid only; the listener goes to the parent by
 *            SCM_RIGHTS, the child calls getppid, the parent receives the
 *            notification, injects a pipe's write end with
 *            SECCOMP_IOCTL_NOTIF_ADDFD and answers with its number, and the
 *            child writes a marker into it that the parent reads back.
 *   traceme: PTRACE_TRACEME, then SIGSTOP, which the parent must see.
 * openat2, Landlock and io_uring are probed in the parent: they change
 * nothing that lasts. */
#define _GNU_SOURCE
#include "probe_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Numbers and constants newer than some headers (the same on every arch). */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif
#define VP_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define VP_RESOLVE_NO_SYMLINKS 0x04
#define VP_RESOLVE_NO_MAGICLINKS 0x02

#if defined(__x86_64__)
#define VP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define VP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* struct open_how and struct io_uring_params, as the kernel has them. */
struct vp_open_how {
	uint64_t flags, mode, resolve;
};
struct vp_io_uring_params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3];
	uint32_t sq_off[10];
	uint32_t cq_off[10];
};

static const char vp_marker[8] = "vigil-ok";

static const char *const vp_step_names[VP_STEP_COUNT] = {
	[VP_STEP_NONE] = "",
	[VP_STEP_FORK] = "fork",
	[VP_STEP_NNP] = "prctl(PR_SET_NO_NEW_PRIVS)",
	[VP_STEP_SECCOMP] = "seccomp(SECCOMP_SET_MODE_FILTER)",
	[VP_STEP_SECCOMP_LISTENER] = "seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)",
	[VP_STEP_SECCOMP_WKR] = "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER|WAIT_KILLABLE_RECV)",
	[VP_STEP_NOTIF_RECV] = "ioctl(SECCOMP_IOCTL_NOTIF_RECV)",
	[VP_STEP_ADDFD] = "ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)",
	[VP_STEP_NOTIF_SEND] = "ioctl(SECCOMP_IOCTL_NOTIF_SEND)",
	[VP_STEP_ADDFD_CHILD] = "the injected fd in the child",
	[VP_STEP_PIDFD_OPEN] = "pidfd_open",
	[VP_STEP_PIDFD_GETFD] = "pidfd_getfd",
	[VP_STEP_PROCESS_VM_READV] = "process_vm_readv",
	[VP_STEP_TRACEME] = "ptrace(PTRACE_TRACEME)",
	[VP_STEP_TRACEME_STOP] = "the tracee's SIGSTOP",
	[VP_STEP_SEIZE] = "ptrace(PTRACE_SEIZE, PTRACE_O_TRACESECCOMP|PTRACE_O_EXITKILL)",
	[VP_STEP_INTERRUPT] = "ptrace(PTRACE_INTERRUPT)",
	[VP_STEP_OPENAT2] = "openat2",
	[VP_STEP_LANDLOCK] = "landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION)",
	[VP_STEP_IO_URING] = "io_uring_setup",
	[VP_STEP_NEEDS_FILTER] = "seccomp filter",
	[VP_STEP_NEEDS_LISTENER] = "seccomp listener",
	[VP_STEP_NEEDS_PIDFD_OPEN] = "pidfd_open",
};

const char *vp_step_name(int step) {
	return step >= 0 && step < VP_STEP_COUNT && vp_step_names[step] ? vp_step_names[step] : "?";
}

static struct vp_check vp_ok(void) { return (struct vp_check){0, VP_STEP_NONE}; }
static struct vp_check vp_fail(int code, int step) { return (struct vp_check){code, step}; }
/* The errno of a failed call, as a check. */
static struct vp_check vp_errno(int step) { return vp_fail(errno ? errno : VP_BROKEN, step); }

static int64_t vp_now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int vp_left_ms(int64_t deadline) {
	int64_t left = deadline - vp_now_ms();
	return left < 0 ? 0 : (int)left;
}

/* Waits until fd is readable: 0, VP_TIMEOUT or an errno. */
static int vp_wait_readable(int fd, int64_t deadline) {
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, vp_left_ms(deadline));
		if (n > 0) return 0;
		if (n == 0) return VP_TIMEOUT;
		if (errno != EINTR) return errno;
	}
}

/* One message of exactly n bytes, with at most one fd (-1 for none). Used by
 * the children too: sendmsg is async-signal-safe. */
static int vp_send(int chan, const void *buf, size_t n, int fd) {
	struct iovec iov = {(void *)buf, n};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&c, 0, sizeof c);
		mh.msg_control = c.b;
		mh.msg_controllen = sizeof c.b;
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof(int));
	}
	for (;;) {
		ssize_t k = sendmsg(chan, &mh, MSG_NOSIGNAL);
		if (k == (ssize_t)n) return 0;
		if (k < 0 && errno == EINTR) continue;
		return k < 0 ? errno : VP_BROKEN;
	}
}

/* Receives one message of exactly n bytes before the deadline; *fd gets a
 * passed descriptor or -1. 0, VP_TIMEOUT, VP_BROKEN (the child closed its end:
 * it died) or an errno. */
static int vp_recv(int chan, void *buf, size_t n, int *fd, int64_t deadline) {
	if (fd) *fd = -1;
	int rc = vp_wait_readable(chan, deadline);
	if (rc) return rc;
	struct iovec iov = {buf, n};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof c.b};
	ssize_t k;
	do k = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	if (k < 0) return errno;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int))) {
			int got;
			memcpy(&got, CMSG_DATA(h), sizeof got);
			if (fd) *fd = got;
			else close(got);
		}
	}
	return k == (ssize_t)n ? 0 : VP_BROKEN;
}

struct vp_child {
	pid_t pid;  /* > 0 when running */
	int chan;   /* the parent's end */
	int err;    /* errno of socketpair or fork */
};

/* Starts fn in a forked child with every signal blocked (Go's handlers must
 * never run there); fn gets its end of the socketpair and the child exits
 * with _exit(0) when fn returns. With hang, the child only waits for SIGKILL. */
static struct vp_child vp_spawn(void (*fn)(int chan), int hang) {
	struct vp_child c = {.pid = -1, .chan = -1};
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		c.err = errno;
		return c;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		if (hang)
			for (;;) pause();
		fn(sv[1]);
		_exit(0);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		c.err = e;
		return c;
	}
	c.pid = pid;
	c.chan = sv[0];
	return c;
}

/* Kills the child (a tracee or a hung one alike); vp_reap reaps it later, so
 * that its teardown overlaps the next probe. */
static void vp_kill(struct vp_child *c) {
	if (c->pid > 0) kill(c->pid, SIGKILL);
	if (c->chan >= 0) close(c->chan);
	c->chan = -1;
}

static void vp_reap(struct vp_child *c) {
	if (c->pid <= 0) return;
	int st;
	while (waitpid(c->pid, &st, __WALL) < 0 && errno == EINTR) {
	}
	c->pid = -1;
}

/* Waits for the child to stop under ptrace (it is our tracee): the raw wait
 * status in *st; 0, VP_TIMEOUT, VP_BROKEN (it exited) or an errno. */
static int vp_wait_stop(pid_t pid, int *st, int64_t deadline) {
	for (;;) {
		pid_t w = waitpid(pid, st, WNOHANG | __WALL);
		if (w == pid) return WIFSTOPPED(*st) ? 0 : VP_BROKEN;
		if (w < 0 && errno != EINTR) return errno;
		if (vp_now_ms() >= deadline) return VP_TIMEOUT;
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
}

/* ---- the plain child ---- */

static volatile uint64_t vp_mem;

struct vp_plain_hello {
	uint64_t addr;
	int chan;
};

static void vp_child_plain(int chan) {
	vp_mem = 0x5669676c50726f62ULL ^ (uint64_t)syscall(__NR_getpid);
	struct vp_plain_hello h = {(uint64_t)(uintptr_t)&vp_mem, chan};
	if (vp_send(chan, &h, sizeof h, -1)) return;
	/* Wait to be killed. pidfd_getfd needs this end open in here. */
	char b;
	while (read(chan, &b, 1) < 0 && errno == EINTR) {
	}
}

static void vp_probe_plain(struct vp_report *r, struct vp_child *c, int64_t deadline) {
	struct vp_plain_hello h;
	int rc = vp_recv(c->chan, &h, sizeof h, NULL, deadline);
	if (rc) {
		r->pidfd_open = r->pidfd_getfd = r->process_vm_readv = r->ptrace_seize = vp_fail(rc, VP_STEP_NONE);
		return;
	}

	int pidfd = syscall(__NR_pidfd_open, c->pid, 0);
	if (pidfd < 0) {
		r->pidfd_open = vp_errno(VP_STEP_PIDFD_OPEN);
		r->pidfd_getfd = vp_fail(VP_SKIPPED, VP_STEP_NEEDS_PIDFD_OPEN);
	} else {
		r->pidfd_open = vp_ok();
		/* The child's end of the socketpair: a byte sent on it must arrive here. */
		int fd = syscall(__NR_pidfd_getfd, pidfd, h.chan, 0);
		if (fd < 0) {
			r->pidfd_getfd = vp_errno(VP_STEP_PIDFD_GETFD);
		} else {
			char b = 'x', got = 0;
			rc = vp_send(fd, &b, 1, -1);
			if (!rc) rc = vp_recv(c->chan, &got, 1, NULL, deadline);
			if (!rc && got != b) rc = VP_MISMATCH;
			r->pidfd_getfd = rc ? vp_fail(rc, VP_STEP_PIDFD_GETFD) : vp_ok();
			close(fd);
		}
		close(pidfd);
	}

	uint64_t got = 0;
	struct iovec local = {&got, sizeof got}, remote = {(void *)(uintptr_t)h.addr, sizeof got};
	ssize_t k = process_vm_readv(c->pid, &local, 1, &remote, 1, 0);
	if (k < 0)
		r->process_vm_readv = vp_errno(VP_STEP_PROCESS_VM_READV);
	else if (k != sizeof got || got != (0x5669676c50726f62ULL ^ (uint64_t)c->pid))
		r->process_vm_readv = vp_fail(VP_MISMATCH, VP_STEP_PROCESS_VM_READV);
	else
		r->process_vm_readv = vp_ok();

	if (ptrace(PTRACE_SEIZE, c->pid, 0, (void *)(uintptr_t)(PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL)) < 0) {
		r->ptrace_seize = vp_errno(VP_STEP_SEIZE);
		return;
	}
	if (ptrace(PTRACE_INTERRUPT, c->pid, 0, 0) < 0) {
		r->ptrace_seize = vp_errno(VP_STEP_INTERRUPT);
		return;
	}
	int st;
	rc = vp_wait_stop(c->pid, &st, deadline);
	if (!rc && (st >> 16) != PTRACE_EVENT_STOP) rc = VP_MISMATCH;
	r->ptrace_seize = rc ? vp_fail(rc, VP_STEP_INTERRUPT) : vp_ok();
}

/* ---- the seccomp child ---- */

struct vp_seccomp_hello {
	struct vp_check filter, listener, wkr;
};

static long vp_seccomp(unsigned flags, struct sock_fprog *prog) {
	return syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
}

static void vp_child_seccomp(int chan) {
	struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
	struct sock_filter notify[] = {
#ifdef VP_AUDIT_ARCH
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VP_AUDIT_ARCH, 0, 3),
#endif
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog allow_prog = {sizeof allow / sizeof allow[0], allow};
	struct sock_fprog notify_prog = {sizeof notify / sizeof notify[0], notify};
	struct vp_seccomp_hello h;
	struct vp_check skipped = vp_fail(VP_SKIPPED, VP_STEP_NEEDS_FILTER);
	int lfd = -1;
	errno = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		h.filter = vp_errno(VP_STEP_NNP);
		h.listener = h.wkr = skipped;
	} else if (vp_seccomp(0, &allow_prog) < 0) {
		h.filter = vp_errno(VP_STEP_SECCOMP);
		h.listener = h.wkr = skipped;
	} else {
		h.filter = vp_ok();
		lfd = vp_seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &notify_prog);
		if (lfd >= 0) {
			h.listener = h.wkr = vp_ok();
		} else if (errno == EINVAL) {
			/* An unknown flag (before 5.19): a listener without it. */
			h.wkr = vp_errno(VP_STEP_SECCOMP_WKR);
			lfd = vp_seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER, &notify_prog);
			h.listener = lfd >= 0 ? vp_ok() : vp_errno(VP_STEP_SECCOMP_LISTENER);
		} else {
			h.wkr = vp_errno(VP_STEP_SECCOMP_WKR);
			h.listener = vp_errno(VP_STEP_SECCOMP_LISTENER);
		}
	}
	if (vp_send(chan, &h, sizeof h, lfd) || lfd < 0) return;
	/* The parent holds the listener now (the message keeps it alive); ours
	 * must not outlive the parent, or a notified call would hang forever. */
	close(lfd);
	long fd = syscall(__NR_getppid); /* notified: the parent injects an fd and returns its number */
	int code = 0;
	if (fd < 0)
		code = errno;
	else if (write((int)fd, vp_marker, sizeof vp_marker) != sizeof vp_marker)
		code = VP_MISMATCH;
	vp_send(chan, &code, sizeof code, -1);
}

/* The parent's half of the ADDFD round trip on listener lfd. */
static struct vp_check vp_addfd(struct vp_child *c, int lfd, int64_t deadline) {
	int rc = vp_wait_readable(lfd, deadline);
	if (rc) return vp_fail(rc, VP_STEP_NOTIF_RECV);
	struct seccomp_notif n;
	memset(&n, 0, sizeof n);
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0) return vp_errno(VP_STEP_NOTIF_RECV);
	if ((pid_t)n.pid != c->pid || n.data.nr != __NR_getppid) return vp_fail(VP_MISMATCH, VP_STEP_NOTIF_RECV);
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return vp_errno(VP_STEP_ADDFD);
	struct seccomp_notif_addfd a = {.id = n.id, .flags = 0, .srcfd = (uint32_t)p[1], .newfd = 0, .newfd_flags = O_CLOEXEC};
	int cfd = ioctl(lfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
	struct vp_check res = vp_ok();
	if (cfd < 0) {
		res = vp_errno(VP_STEP_ADDFD);
		goto out;
	}
	close(p[1]);
	p[1] = -1;
	struct seccomp_notif_resp resp = {.id = n.id, .val = cfd, .error = 0, .flags = 0};
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0) {
		res = vp_errno(VP_STEP_NOTIF_SEND);
		goto out;
	}
	int code;
	rc = vp_recv(c->chan, &code, sizeof code, NULL, deadline);
	if (rc || code) {
		res = vp_fail(rc ? rc : code, VP_STEP_ADDFD_CHILD);
		goto out;
	}
	/* The child wrote before it answered: the marker is in the pipe or the
	 * fd it got was not ours. */
	char got[sizeof vp_marker];
	if (read(p[0], got, sizeof got) != sizeof got || memcmp(got, vp_marker, sizeof got) != 0)
		res = vp_fail(VP_MISMATCH, VP_STEP_ADDFD_CHILD);
out:
	close(p[0]);
	if (p[1] >= 0) close(p[1]);
	return res;
}

static void vp_probe_seccomp(struct vp_report *r, struct vp_child *c, int64_t deadline) {
	struct vp_seccomp_hello h;
	int lfd;
	int rc = vp_recv(c->chan, &h, sizeof h, &lfd, deadline);
	if (rc) {
		r->seccomp_filter = r->seccomp_listener = r->wait_killable_recv = r->seccomp_addfd = vp_fail(rc, VP_STEP_NONE);
		if (lfd >= 0) close(lfd);
		return;
	}
	r->seccomp_filter = h.filter;
	r->seccomp_listener = h.listener;
	r->wait_killable_recv = h.wkr;
	if (lfd < 0) {
		r->seccomp_addfd = vp_fail(VP_SKIPPED, h.filter.code ? VP_STEP_NEEDS_FILTER : VP_STEP_NEEDS_LISTENER);
		return;
	}
	r->seccomp_addfd = vp_addfd(c, lfd, deadline);
	close(lfd);
}

/* ---- the traceme child ---- */

static void vp_child_traceme(int chan) {
	int code = 0;
	errno = 0;
	if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0) code = errno ? errno : VP_BROKEN;
	if (vp_send(chan, &code, sizeof code, -1) || code) return;
	syscall(__NR_kill, syscall(__NR_getpid), SIGSTOP);
}

static void vp_probe_traceme(struct vp_report *r, struct vp_child *c, int64_t deadline) {
	int code;
	int rc = vp_recv(c->chan, &code, sizeof code, NULL, deadline);
	if (rc || code) {
		r->ptrace_traceme = vp_fail(rc ? rc : code, rc ? VP_STEP_NONE : VP_STEP_TRACEME);
		return;
	}
	int st;
	rc = vp_wait_stop(c->pid, &st, deadline);
	if (!rc && WSTOPSIG(st) != SIGSTOP) rc = VP_MISMATCH;
	r->ptrace_traceme = rc ? vp_fail(rc, VP_STEP_TRACEME_STOP) : vp_ok();
}

/* ---- in the parent: nothing that lasts ---- */

static void vp_probe_here(struct vp_report *r) {
	struct vp_open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = VP_RESOLVE_NO_SYMLINKS | VP_RESOLVE_NO_MAGICLINKS};
	errno = 0;
	int fd = syscall(__NR_openat2, AT_FDCWD, "/", &how, sizeof how);
	r->openat2 = fd < 0 ? vp_errno(VP_STEP_OPENAT2) : vp_ok();
	if (fd >= 0) close(fd);

	errno = 0;
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, VP_LANDLOCK_CREATE_RULESET_VERSION);
	r->landlock = abi < 1 ? vp_errno(VP_STEP_LANDLOCK) : vp_ok();
	r->landlock_abi = abi < 1 ? 0 : (int)abi;

	struct vp_io_uring_params p;
	memset(&p, 0, sizeof p);
	errno = 0;
	fd = syscall(__NR_io_uring_setup, 1, &p);
	r->io_uring = fd < 0 ? vp_errno(VP_STEP_IO_URING) : vp_ok();
	if (fd >= 0) close(fd);
}

void vp_run(struct vp_report *r, int timeout_ms, int hang) {
	memset(r, 0, sizeof *r);
	int64_t deadline = vp_now_ms() + timeout_ms;
	struct {
		void (*child)(int chan);
		void (*probe)(struct vp_report *r, struct vp_child *c, int64_t deadline);
		int hang;
		struct vp_check *checks[5]; /* what it reports, for a child that did not start */
		struct vp_child c;
	} kids[] = {
		{vp_child_plain, vp_probe_plain, VP_HANG_PLAIN, {&r->pidfd_open, &r->pidfd_getfd, &r->process_vm_readv, &r->ptrace_seize}},
		{vp_child_seccomp, vp_probe_seccomp, VP_HANG_SECCOMP, {&r->seccomp_filter, &r->seccomp_listener, &r->wait_killable_recv, &r->seccomp_addfd}},
		{vp_child_traceme, vp_probe_traceme, VP_HANG_TRACEME, {&r->ptrace_traceme}},
	};
	const int n = sizeof kids / sizeof kids[0];
	for (int i = 0; i < n; i++) kids[i].c = vp_spawn(kids[i].child, hang & kids[i].hang);
	vp_probe_here(r);
	for (int i = 0; i < n; i++) {
		if (kids[i].c.pid > 0)
			kids[i].probe(r, &kids[i].c, deadline);
		else
			for (struct vp_check **k = kids[i].checks; k < kids[i].checks + 5 && *k; k++) **k = vp_fail(kids[i].c.err ? kids[i].c.err : VP_BROKEN, VP_STEP_FORK);
		vp_kill(&kids[i].c);
	}
	for (int i = 0; i < n; i++) vp_reap(&kids[i].c);
}

/* vp_run_isolated is vp_run in a child of its own, which sends the report
 * back on a pipe: the probe children are that child's, so a caller whose
 * process reaps any of its children (Vigil's supervisor, its tracer) cannot
 * take them or their ptrace stops. A child that does not answer in time is
 * killed, and every check reports VP_TIMEOUT. */
void vp_run_isolated(struct vp_report *r, int timeout_ms, int hang) {
	memset(r, 0, sizeof *r);
	struct vp_check *all[] = {&r->seccomp_filter, &r->seccomp_listener, &r->seccomp_addfd, &r->wait_killable_recv,
		&r->pidfd_open, &r->pidfd_getfd, &r->openat2, &r->ptrace_traceme, &r->ptrace_seize, &r->process_vm_readv,
		&r->landlock, &r->io_uring};
	const int nall = sizeof all / sizeof all[0];
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		int e = errno;
		for (int i = 0; i < nall; i++) *all[i] = vp_fail(e, VP_STEP_FORK);
		return;
	}
	sigset_t blocked, old;
	sigfillset(&blocked);
	pthread_sigmask(SIG_SETMASK, &blocked, &old);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		struct vp_report rr;
		vp_run(&rr, timeout_ms, hang);
		const char *b = (const char *)&rr;
		size_t done = 0;
		while (done < sizeof rr) {
			ssize_t n = write(p[1], b + done, sizeof rr - done);
			if (n < 0 && errno == EINTR) continue;
			if (n <= 0) break;
			done += (size_t)n;
		}
		_exit(0);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		for (int i = 0; i < nall; i++) *all[i] = vp_fail(e, VP_STEP_FORK);
		return;
	}
	/* Its own deadline covers vp_run's; allow a little more for the trip. */
	int64_t deadline = vp_now_ms() + timeout_ms + 500;
	struct vp_report got;
	size_t done = 0;
	while (done < sizeof got) {
		if (vp_wait_readable(p[0], deadline) != 0) break;
		ssize_t n = read(p[0], (char *)&got + done, sizeof got - done);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		done += (size_t)n;
	}
	close(p[0]);
	kill(pid, SIGKILL); /* gone already, normally */
	/* By pid; ECHILD if the caller's reaper was first, which is fine. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
	}
	if (done == sizeof got) {
		*r = got;
		return;
	}
	for (int i = 0; i < nall; i++) *all[i] = vp_fail(VP_TIMEOUT, VP_STEP_FORK);
}
