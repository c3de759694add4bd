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
	// Open also decides path changes (mkdir, unlink, rename, chmod, ...:
	// rules.Write) and AF_UNIX sockets bound or reached by path (Write).
	Open(path string, acc rules.Access, c rules.Caller) rules.Decision
	Connect(addr netip.AddrPort) rules.Decision
	// Listen decides bind and listen on an IP address.
	Listen(addr netip.AddrPort) rules.Decision
	// ConnectAbstract and ListenAbstract decide AF_UNIX abstract socket
	// names (without the leading NUL byte).
	ConnectAbstract(name string) rules.Decision
	ListenAbstract(name string) rules.Decision
}

var _ Policy = (*rules.Policy)(nil)
