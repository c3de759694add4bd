// Package supervisor runs a command under a seccomp user-notification filter
// and vets its exec, open and connect calls against a policy, race-free.
//
// Architecture, in short:
//
//   - The parent (the supervisor) builds the BPF program once with libseccomp
//     and starts the child without re-executing Go (spawn_linux.c): Go
//     prepares everything in C memory (argv, envp, resolved path, the raw
//     program, fds), then a vfork-style clone (CLONE_VM|CLONE_VFORK|
//     CLONE_PIDFD, all signals blocked) runs C code that makes only
//     async-signal-safe calls: every signal Go catches back to SIG_DFL,
//     parent-death signal (and a check that the parent is still there),
//     stdio dup2, chdir, every other fd close-on-exec, no_new_privs, the
//     filter with SECCOMP_FILTER_FLAG_NEW_LISTENER (the child is one
//     thread: no TSYNC), the listener handed back over a socketpair
//     (SCM_RIGHTS) and closed, a one-byte ack from the supervisor, then
//     dumpable, the caller's umask, signal mask and NOFILE limit back, and
//     execve. A failure before execve is reported as (stage, errno) on the
//     socketpair and Run returns a *StartError: the command never ran. The
//     forking thread is locked and sleeps until the child has exec'd (the
//     handoff and the vetting of that execve run on other threads), and it
//     lives until Run returns: the parent-death signal is tied to it.
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
