package supervisor

import (
	"net/netip"

	"vigil/rules"
)

// Policy is what the supervisor asks. *rules.Policy satisfies it; tests use
// small fakes.
type Policy interface {
	Mode() rules.Mode
	LogAllowed() bool
	Exec(path string, c rules.Caller) rules.Decision
	Open(path string, acc rules.Access, c rules.Caller) rules.Decision
	Connect(addr netip.AddrPort) rules.Decision
}

var _ Policy = (*rules.Policy)(nil)
