// Package supervisor runs a command under a seccomp user-notification filter
// and vets its exec, open and connect calls against a policy, race-free.
//
// Architecture, in short:
//
//   - The parent (the supervisor) builds the BPF program once with libseccomp
//     and re-executes itself as the child; the child only reads the raw
//     program from an inherited fd, loads it on a locked OS thread with
//     SECCOMP_FILTER_FLAG_NEW_LISTENER, hands the listener back over a
//     socketpair (SCM_RIGHTS), closes its copy and execs the command.
//   - Notifications are received by a small, self-sizing pool of receiver
//     goroutines, each locked to an OS thread with asynchronous signals
//     blocked. A receiver handles the notification it received inline and
//     sends the answer itself: no hand-off between threads. One receiver
//     serves a sequential caller alone; the pool grows only when every
//     receiver has been busy for spawnDelay (a slow connect or exec).
//   - One table maps a syscall number to its handler (exec.go, open.go,
//     connect.go). A handler only computes a Result; respond() is the one
//     place that talks back to the kernel (NOTIF_SEND or NOTIF_ADDFD).
//   - Opens and connects are emulated: the supervisor resolves the path in
//     the caller's context, decides on the canonical path, opens it itself
//     (with the caller's credentials and umask) and injects the fd; connect is
//     performed on a pidfd_getfd copy of the caller's socket with the
//     supervisor's copy of the address. Nothing the child can change after
//     the decision is ever used. Fast path: a plain absolute path (no ".",
//     "..", "//") that the policy allows as written is opened directly with
//     RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS; success proves the object
//     is the one at that path, and any symlink on the way (ELOOP) or a
//     lexical denial sends the open through the full resolve-decide-open. The one exception is O_PATH: the kernel
//     cannot inject an O_PATH file (ADDFD refuses it with EBADF), so an
//     O_PATH open is decided and then CONTINUEd; an O_PATH fd grants
//     nothing by itself, and every use of it (as a dirfd, through
//     /proc/self/fd/N, with execveat) is resolved to its object and judged.
//   - Exec cannot be emulated: the supervisor decides on the resolved file,
//     seizes the calling thread with ptrace before letting the call continue
//     and, at PTRACE_EVENT_EXEC (before the new image runs one instruction),
//     compares /proc/PID/exe with the file it allowed; a mismatch is killed.
package supervisor
