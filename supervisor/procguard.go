//go:build linux

package supervisor

import (
	"strings"

	"vigil/rules"
)

// ruleSupervisorProc is the rule of every refused path under the
// supervisor's own /proc entries.
const ruleSupervisorProc = "the supervisor's /proc entries are closed to the command"

// decidePath is policy.Open for every path a call reaches (opens, path
// changes, AF_UNIX sockets), with one thing no policy can allow: the
// supervisor's own /proc/<pid> (or any of its threads' /proc/<tid>). A
// /proc/<pid> directory fd is a pidfd for pidfd_send_signal, and its fd,
// mem and environ entries would be the supervisor's; whatever a policy
// says about /proc/**, these stay closed.
func (r *request) decidePath(path string, acc rules.Access) rules.Decision {
	if n, ok := procPid(path); ok && n != r.tid && (r.st == nil || n != r.st.tgid) && tgidOf(n) == r.s.self {
		return rules.Decision{Rule: ruleSupervisorProc}
	}
	return r.s.policy.Open(path, acc, r.caller())
}

// procPid returns N for "/proc/N" and "/proc/N/...".
func procPid(path string) (int, bool) {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	n := atoi([]byte(rest))
	return n, n > 0
}
