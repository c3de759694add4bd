package rules

import (
	"errors"
	"io"
	"net/netip"
)

// STUB: the rules issue replaces this file's bodies; the signatures are the
// contract (see api.go).

// Policy is a compiled, immutable policy for one function. It is safe for
// concurrent use.
type Policy struct {
	mode Mode
}

var errStub = errors.New("rules: not implemented")

// Load reads and compiles the rules file at path.
func Load(path string, opt Options) (*Policy, error) { return nil, errStub }

// Parse compiles a rules file held in memory; filename is used in errors.
func Parse(filename string, data []byte, opt Options) (*Policy, error) { return nil, errStub }

// Mode is the policy's mode.
func (p *Policy) Mode() Mode { return p.mode }

// WithMode returns a copy of the policy with its mode replaced (--mode).
func (p *Policy) WithMode(m Mode) *Policy { q := *p; q.mode = m; return &q }

// LogAllowed reports whether allowed decisions are logged too (log_allowed).
func (p *Policy) LogAllowed() bool { return false }

// Exec: may the program at the resolved absolute path run? It must match a
// process.exec pattern and pass Open(path, Read).
func (p *Policy) Exec(path string, c Caller) Decision { return Decision{} }

// Open: may the resolved absolute path be opened with this access
// (Read, Write or Read|Write)? deny wins; write implies read.
func (p *Policy) Open(path string, acc Access, c Caller) Decision { return Decision{} }

// Connect: may a socket connect or send to this address? IPv4-mapped IPv6
// addresses are judged as their IPv4 form.
func (p *Policy) Connect(addr netip.AddrPort) Decision { return Decision{} }

// Listen: may a socket bind or listen on this address?
func (p *Policy) Listen(addr netip.AddrPort) Decision { return Decision{} }

// DomainsFor returns the domain rules that could allow host (any port);
// nil when none could.
func (p *Policy) DomainsFor(host string) []DomainRule { return nil }

// WriteTOML writes the effective policy (baseline and function sections
// merged) as TOML, for --check.
func (p *Policy) WriteTOML(w io.Writer) error { return errStub }
