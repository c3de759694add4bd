// Shared between spawn_linux.c and spawn_linux.go.
#ifndef VIGIL_SPAWN_LINUX_H
#define VIGIL_SPAWN_LINUX_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

// Stages a child can fail at before execve (struct vigil_childerr.stage).
enum {
	VIGIL_STAGE_PDEATHSIG = 1,
	VIGIL_STAGE_DUP = 2,
	VIGIL_STAGE_CHDIR = 3,
	VIGIL_STAGE_CLOSERANGE = 4,
	VIGIL_STAGE_NONEWPRIVS = 5,
	VIGIL_STAGE_SECCOMP = 6,
	VIGIL_STAGE_HANDOFF = 7,
};

// What a failed child writes on the socketpair instead of the listener.
struct vigil_childerr {
	char tag; // 'E'
	char pad;
	uint16_t stage;
	int32_t err;
};

// What the child writes once its filter is loaded: its pid and the
// listener's fd number, for pidfd_getfd.
struct vigil_handoff {
	char tag; // 'L'; 'T': no listener (traced modes), fd is -1
	char pad[3];
	int32_t pid;
	int32_t fd;
	int32_t killable; // the filter has WAIT_KILLABLE_RECV
};

// Everything the child needs, in C memory, prepared before the fork.
struct vigil_spawn {
	const char *path; // the resolved command
	char *const *argv;
	char *const *envp;
	const char *dir; // NULL: stay
	int stdio[3];
	int sock;
	int ppid;
	struct sock_fprog prog;
	uint64_t sigmask; // the command's signal mask
	int restore_nofile;
	uint64_t nofile_cur, nofile_max;
	const char *errprefix; // "vigil: exec ARG0: "
	const char *errsuffix; // after the errno text; NULL: none (JSON: `"}`)
	const char *const *errtab; // errno -> text, as Go prints it
	int nerrtab;
	unsigned int umask; // the command's umask
	int pgrp;           // the supervisor's process group
	int mode;           // VIGIL_MODE_*: what the child loads and hands over
};

// What the child does before its execve (struct vigil_spawn.mode).
enum {
	VIGIL_MODE_NOTIFY = 0,  // filter with a listener; the listener is handed over
	VIGIL_MODE_TRACE = 1,   // filter answering SECCOMP_RET_TRACE; seized by the tracer
	VIGIL_MODE_PTRACE = 2,  // no filter; seized by the tracer, every call stops
};

extern int vigil_test_walk_fds;     // tests: force the pre-5.11 fd walk
extern int vigil_test_no_killable; // tests: no WAIT_KILLABLE_RECV (pre-5.19)

int vigil_spawn(const struct vigil_spawn *s, void *stack, size_t stack_size, int *pidfd);
int vigil_initial_state(uint64_t *mask, uint64_t *nofile_cur, uint64_t *nofile_max);

#endif
