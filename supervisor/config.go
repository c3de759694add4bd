package supervisor

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// Config is one supervised run.
type Config struct {
	// Policy decides; required.
	Policy Policy
	// Args is the command and its arguments. Args[0] without a slash is
	// looked up in the PATH of Env by the child before the filter is loaded;
	// the execve of the command is itself vetted (policy.Exec).
	Args []string
	// Env is the command's environment; nil means os.Environ().
	Env []string
	// Dir is the command's working directory; "" keeps the current one.
	Dir string
	// Stdin, Stdout, Stderr are passed to the command untouched; nil means
	// the supervisor's own.
	Stdin, Stdout, Stderr *os.File
	// Auditor receives audit events; nil writes them to os.Stderr.
	Auditor *Auditor
	// Logger is Vigil's own logger; nil logs JSON to os.Stderr.
	Logger hclog.Logger
	// JSONLog makes the supervisor's own plain-text lines (the command not
	// found, the child's failed exec) JSON objects with timestamp and level,
	// for AWS_LAMBDA_LOG_FORMAT=JSON (see LogFormatJSON).
	JSONLog bool
	// MaxReceivers caps the receiver goroutines (each on its own OS thread);
	// 0 means 64.
	MaxReceivers int
	// Backend says how calls are vetted: "notify" (seccomp user
	// notification; also ""), "ptrace-seccomp" (ptrace, stops at the calls a
	// seccomp filter marks), "ptrace-alone" (ptrace, every call stops),
	// "ptrace" (the first of the two the kernel allows) or "auto" (notify,
	// then the ptrace ones). See rules.Backends.
	Backend string
	// BackendHook, when set, is called with the backend that took hold of
	// the command, before it runs ("notify", "ptrace-seccomp", "ptrace-alone").
	BackendHook func(name string)
}
