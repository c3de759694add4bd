//go:build linux && cgo

/* The capability probe's C half: see probe_linux.c. */
#ifndef VIGIL_PROBE_H
#define VIGIL_PROBE_H

/* A check's code: 0 works, > 0 the errno the kernel returned, or one of: */
#define VP_TIMEOUT (-1)  /* the probe child did not answer in time; it was killed */
#define VP_SKIPPED (-2)  /* not tried: a check it needs failed (step names which) */
#define VP_BROKEN (-3)   /* the probe child died or broke the protocol */
#define VP_MISMATCH (-4) /* the call succeeded but did not do what it should (step says what) */

/* Where a check failed: the call, or for VP_SKIPPED the check it needed. */
enum vp_step {
	VP_STEP_NONE,
	VP_STEP_FORK,
	VP_STEP_NNP,
	VP_STEP_SECCOMP,
	VP_STEP_SECCOMP_LISTENER,
	VP_STEP_SECCOMP_WKR,
	VP_STEP_NOTIF_RECV,
	VP_STEP_ADDFD,
	VP_STEP_NOTIF_SEND,
	VP_STEP_ADDFD_CHILD,
	VP_STEP_PIDFD_OPEN,
	VP_STEP_PIDFD_GETFD,
	VP_STEP_PROCESS_VM_READV,
	VP_STEP_TRACEME,
	VP_STEP_TRACEME_STOP,
	VP_STEP_SEIZE,
	VP_STEP_INTERRUPT,
	VP_STEP_OPENAT2,
	VP_STEP_LANDLOCK,
	VP_STEP_IO_URING,
	VP_STEP_NEEDS_FILTER,
	VP_STEP_NEEDS_LISTENER,
	VP_STEP_NEEDS_PIDFD_OPEN,
	VP_STEP_COUNT
};

struct vp_check {
	int code;
	int step;
};

struct vp_report {
	struct vp_check seccomp_filter, seccomp_listener, seccomp_addfd, wait_killable_recv;
	struct vp_check pidfd_open, pidfd_getfd, openat2;
	struct vp_check ptrace_traceme, ptrace_seize, process_vm_readv;
	struct vp_check landlock, io_uring;
	int landlock_abi;
};

/* Which probe children hang instead of probing (tests of the timeout). */
#define VP_HANG_PLAIN 1
#define VP_HANG_SECCOMP 2
#define VP_HANG_TRACEME 4

void vp_run(struct vp_report *r, int timeout_ms, int hang);
void vp_run_isolated(struct vp_report *r, int timeout_ms, int hang);
const char *vp_step_name(int step);

#endif
