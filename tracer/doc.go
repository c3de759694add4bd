// Package tracer is Vigil's ptrace backend: the mechanics of tracing a
// process tree (seizing, following forks, clones and execs, stopping at
// vetted system calls, skipping them with a return value, rewriting their
// arguments, checking their results at exit, closing a file descriptor in
// the tracee) with no policy of its own. What to do with each call is
// asked of a Decider: Vigil's supervisor package supplies one that runs
// the same handlers, and writes the same audit lines, as its seccomp
// user-notification backend.
//
// Two modes:
//
//   - SeccompStops: the tracee's seccomp filter returns SECCOMP_RET_TRACE
//     for the vetted calls (PTRACE_O_TRACESECCOMP): only they stop; every
//     other call runs in the kernel, and refused calls are refused by the
//     filter. Without a tracer the filter's TRACE answers ENOSYS: nothing
//     runs unvetted if the tracer is gone.
//   - SyscallStops: no seccomp at all (PTRACE_SYSCALL): every call stops at
//     entry and exit; the Decider sees every entry and decides what a
//     filter would have.
//
// All ptrace requests come from one goroutine locked to its OS thread
// (ptrace binds a tracee to the thread that attached it). Decisions that
// may block (a connect performed on the caller's behalf) run on other
// goroutines; the tracer thread goes on serving the other tracees
// meanwhile.
package tracer
