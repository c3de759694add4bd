// Package rules parses, validates and compiles a Vigil rules.toml into an
// immutable Policy, and answers the questions the supervisor and the tracer
// ask of it: may this program run, may this path be opened for reading or
// writing, may this address be connected to or listened on.
//
// Every answer is a Decision that names the rule that decided it, so that an
// audit line can say why.
//
// CONTRACT: the exported names in this file are used by supervisor/, tracer/
// and bootstrap/. Keep their signatures; add to them rather than change them.
package rules

// Mode says what a denial does.
type Mode int

const (
	// Enforce denies (EACCES) and logs.
	Enforce Mode = iota
	// Audit logs what would be denied and denies nothing.
	Audit
)

// String returns "enforce" or "audit".
func (m Mode) String() string {
	if m == Audit {
		return "audit"
	}
	return "enforce"
}

// ParseMode parses "enforce" or "audit".
func ParseMode(s string) (Mode, bool) {
	switch s {
	case "enforce":
		return Enforce, true
	case "audit":
		return Audit, true
	}
	return Enforce, false
}

// Access is what an open asks for.
type Access uint8

const (
	// Read: the file may be read (or, for O_PATH, referred to).
	Read Access = 1 << iota
	// Write: the file may be created, written, truncated, renamed, linked,
	// removed, chmod'ed or chown'ed.
	Write
)

// Options select and complete a policy at load time.
type Options struct {
	// Function is the function name (AWS_LAMBDA_FUNCTION_NAME); it selects
	// the [functions."PATTERN"] sections whose lists are added to the base.
	// Empty selects none.
	Function string
	// RuntimeAPI is AWS_LAMBDA_RUNTIME_API ("host:port"); when set and the
	// baseline is on, connect to it is allowed.
	RuntimeAPI string
}

// Caller identifies the process a question is asked for; paths under
// /proc/<Pid>/ and /proc/<Tid>/ match patterns written under /proc/self/
// (and /proc/thread-self/), and never those of another process.
type Caller struct {
	Pid int // thread group id
	Tid int // thread id (0: same as Pid)
}

// Decision is the answer to one question.
type Decision struct {
	Allow bool
	// Rule says which rule decided: for a match, the list and the pattern
	// (`filesystem.deny "/tmp/secrets/**"`); for a default deny, the reason
	// (`no filesystem.read pattern matches`).
	Rule string
	// Source is where the rule came from: "rules.toml:12" (file:line),
	// "baseline", or "" for a default deny.
	Source string
}

// DomainRule is a connect rule written as a domain or *.domain.
type DomainRule struct {
	Pattern string // "api.example.com" or "*.amazonaws.com" (lowercase)
	Port    int    // 0: any port
	Source  string // file:line or "baseline"
}
