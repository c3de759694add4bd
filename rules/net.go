package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// netRule is a compiled network entry: an address prefix or a domain, and
// a port (0: any).
type netRule struct {
	prefix netip.Prefix // valid for address rules (canonical, see canonPrefix)
	domain string       // "api.example.com" or "*.example.com"
	port   uint16
	// abstract is an AF_UNIX abstract socket name pattern ("@name" in the
	// rules file, stored without the "@"; "*" matches any run of bytes).
	abstract   string
	isAbstract bool
}

// maxAbstractName is the longest abstract socket name: sun_path is 108
// bytes, the first of which is the NUL that marks the name abstract.
const maxAbstractName = 107

// parseAbstract validates the pattern of an "@name" entry (without "@").
func parseAbstract(s string) (netRule, error) {
	if s == "" {
		return netRule{}, errors.New(`is "@" alone; write "@NAME" for one abstract socket or "@*" for any`)
	}
	if len(s) > maxAbstractName {
		return netRule{}, fmt.Errorf("is an abstract socket name of %d bytes; the longest is %d", len(s), maxAbstractName)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return netRule{}, fmt.Errorf("has byte %q in an abstract socket name; names in rules are printable ASCII without spaces (match other bytes with \"*\")", string(rune(c)))
		}
	}
	if strings.Contains(s, "**") {
		return netRule{}, fmt.Errorf(`has "**"; in abstract socket names one "*" already matches any run of bytes`)
	}
	return netRule{abstract: s, isAbstract: true}, nil
}

// matchAbstract matches an abstract socket name (any bytes) against a
// pattern in which "*" matches any run of bytes, including none.
func matchAbstract(pat, name string) bool {
	// Iterative wildcard match with one backtrack point.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pat) && pat[p] == '*':
			star, mark = p, n
			p++
		case p < len(pat) && pat[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// QuoteAbstract renders an abstract socket name for messages and audit
// lines: "@" followed by the name, with bytes outside printable ASCII
// (NUL included) written as \xHH and "\\" doubled.
func QuoteAbstract(name string) string {
	var b strings.Builder
	b.WriteByte('@')
	const hex = "0123456789abcdef"
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c < 0x20 || c > 0x7e:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	mappedPfx   = netip.MustParsePrefix("::ffff:0:0/96")
	compatPfx   = netip.MustParsePrefix("::/96")
)

// CanonAddr returns the address a query is judged as: IPv4-mapped
// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, other than :: and ::1) and
// NAT64 well-known-prefix (64:ff9b::a.b.c.d) addresses become the IPv4
// address a.b.c.d; zones are dropped.
func CanonAddr(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if !a.Is6() {
		return a
	}
	if a.Is4In6() {
		return a.Unmap()
	}
	b := a.As16()
	if nat64Prefix.Contains(a) || (compatPfx.Contains(a) && !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1)) {
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return a
}

// canonPrefix maps a rule prefix that lies within the IPv4-mapped or NAT64
// space to its IPv4 form.
func canonPrefix(p netip.Prefix) (netip.Prefix, error) {
	a := p.Addr()
	if !a.Is6() || p.Bits() < 96 {
		return p, nil
	}
	if mappedPfx.Contains(a) || nat64Prefix.Contains(a) {
		b := a.As16()
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), p.Bits()-96), nil
	}
	if compatPfx.Contains(a) && !(p.Bits() == 128 && CanonAddr(a) == a) {
		return p, errors.New("is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated); write the IPv4 address")
	}
	return p, nil
}

// parsePort parses the text after the last ':' ("*" or 1-65535).
func parsePort(s string) (uint16, error) {
	if s == "*" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("has port %q, which is not a number; write a port 1-65535, \":*\" or no port for any port", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("has port %d, which is out of range; write a port 1-65535, \":*\" or no port for any port", n)
	}
	return uint16(n), nil
}

// parseNetEntry parses a network.connect (listen=false) or network.listen
// entry. The error is phrased to follow the quoted entry.
func parseNetEntry(s string, listen bool) (netRule, error) {
	var r netRule
	if s == "" {
		return r, errEmptyPattern
	}
	if name, ok := strings.CutPrefix(s, "@"); ok {
		return parseAbstract(name)
	}
	host, portText, hasPort := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return r, errors.New(`has "[" without "]"; write IPv6 as "[2001:db8::1]:443"`)
		}
		host = s[1:end]
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			portText, hasPort = rest[1:], true
		default:
			return r, fmt.Errorf("has %q after \"]\"; only \":PORT\" or \":*\" may follow", rest)
		}
		if !strings.Contains(host, ":") {
			return r, errors.New(`uses brackets, which are for IPv6 addresses only`)
		}
	} else {
		if strings.Count(s, ":") > 1 {
			return r, fmt.Errorf("looks like an IPv6 address without brackets; write %q", "["+s+"]")
		}
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, portText, hasPort = s[:i], s[i+1:], true
		}
	}
	if hasPort {
		p, err := parsePort(portText)
		if err != nil {
			return r, err
		}
		r.port = p
	}
	if host == "" {
		return r, errors.New("has no address or domain")
	}
	if strings.ContainsRune(host, '%') {
		return r, errors.New("has an IPv6 zone (%...); zones are not supported")
	}
	if strings.Contains(host, "/") {
		if listen {
			return r, errors.New("is a CIDR; network.listen takes a single bind address (0.0.0.0 and [::] mean exactly those addresses)")
		}
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return r, fmt.Errorf("is not a valid CIDR (%v)", trimNetipErr(err))
		}
		if p.Masked() != p {
			return r, fmt.Errorf("is a CIDR with host bits set; write %q", strings.Replace(s, host, p.Masked().String(), 1))
		}
		if p, err = canonPrefix(p); err != nil {
			return r, err
		}
		r.prefix = p
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		p, err := canonPrefix(netip.PrefixFrom(a, a.BitLen()))
		if err != nil {
			return r, err
		}
		r.prefix = p
		return r, nil
	} else if looksNumeric(host) {
		return r, fmt.Errorf("is not a valid IP address (%v)", trimNetipErr(err))
	}
	if listen {
		return r, errors.New("is a domain; network.listen takes an IP address")
	}
	if err := checkDomain(host); err != nil {
		return r, err
	}
	r.domain = host
	return r, nil
}

func trimNetipErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// looksNumeric: digits, dots and colons only (so a failed IP, not a domain).
func looksNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// checkDomain validates a domain rule: LDH labels of 1-63 characters,
// lowercase, at most 253 characters, "*." only as the whole first label.
func checkDomain(s string) error {
	name := s
	if strings.HasPrefix(name, "*.") {
		name = name[2:]
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("ends in \".\"; write %q", strings.TrimSuffix(s, "."))
	}
	if len(name) > 253 {
		return errors.New("is longer than 253 characters, which no domain is")
	}
	if strings.ToLower(name) != name {
		return fmt.Errorf("has upper case; write %q", strings.ToLower(s))
	}
	if strings.Contains(name, "*") {
		return errors.New(`has "*" other than as a whole first label; write "*.example.com"`)
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" {
			return errors.New("has an empty label (\"..\" or a leading \".\")")
		}
		if len(l) > 63 {
			return fmt.Errorf("has a label longer than 63 characters (%q)", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("has a label that starts or ends with \"-\" (%q)", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("has %q, which is not a letter, digit or \"-\"; write an IP address, a CIDR, a domain or *.domain", string(rune(c)))
			}
		}
	}
	return nil
}

// normHost lowercases a host name and drops one trailing dot; ok is false
// for a name that no domain rule could match.
func normHost(h string) (string, bool) {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			h = strings.ToLower(h)
			break
		}
	}
	return h, true
}

// ---- address index: a binary trie per family ----

type ipRule struct {
	id   int32
	port uint16
}

type ipNode struct {
	kid   [2]int32 // 0: none (the root is never a child)
	rules []ipRule
}

type ipIndex struct {
	v4, v6 []ipNode
}

func (ix *ipIndex) add(p netip.Prefix, port uint16, id int32) {
	nodes := &ix.v6
	if p.Addr().Is4() {
		nodes = &ix.v4
	}
	if len(*nodes) == 0 {
		*nodes = append(*nodes, ipNode{})
	}
	b := p.Addr().AsSlice()
	n := int32(0)
	for depth := 0; depth < p.Bits(); depth++ {
		bit := (b[depth/8] >> (7 - depth%8)) & 1
		next := (*nodes)[n].kid[bit]
		if next == 0 {
			*nodes = append(*nodes, ipNode{})
			next = int32(len(*nodes) - 1)
			(*nodes)[n].kid[bit] = next
		}
		n = next
	}
	(*nodes)[n].rules = append((*nodes)[n].rules, ipRule{id, port})
}

// lookup returns the first (lowest id) rule matching a canonical address
// and port, or -1.
func (ix *ipIndex) lookup(a netip.Addr, port uint16) int32 {
	var b [16]byte
	var nodes []ipNode
	bits := 0
	if a.Is4() {
		b4 := a.As4()
		copy(b[:], b4[:])
		nodes, bits = ix.v4, 32
	} else {
		b = a.As16()
		nodes, bits = ix.v6, 128
	}
	best := int32(-1)
	if len(nodes) == 0 {
		return best
	}
	n := int32(0)
	for depth := 0; ; depth++ {
		for _, r := range nodes[n].rules {
			if (r.port == 0 || r.port == port) && (best < 0 || r.id < best) {
				best = r.id
			}
		}
		if depth == bits {
			break
		}
		next := nodes[n].kid[(b[depth/8]>>(7-depth%8))&1]
		if next == 0 {
			break
		}
		n = next
	}
	return best
}

// ---- domain index ----

type domainIndex struct {
	exact map[string][]int32 // "api.example.com"
	wild  map[string][]int32 // "example.com" for "*.example.com"
}

func (dx *domainIndex) add(domain string, id int32) {
	if dx.exact == nil {
		dx.exact, dx.wild = map[string][]int32{}, map[string][]int32{}
	}
	if rest, ok := strings.CutPrefix(domain, "*."); ok {
		dx.wild[rest] = append(dx.wild[rest], id)
	} else {
		dx.exact[domain] = append(dx.exact[domain], id)
	}
}

// lookup appends the ids of the rules that could allow host (normalized).
func (dx *domainIndex) lookup(host string, out []int32) []int32 {
	if dx.exact == nil {
		return out
	}
	out = append(out, dx.exact[host]...)
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			out = append(out, dx.wild[host[i+1:]]...)
		}
	}
	return out
}

// ParseRuntimeAPI parses AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001",
// "[::1]:9001" or "localhost:9001") into the addresses connect is allowed
// to.
func ParseRuntimeAPI(s string) ([]netip.AddrPort, error) {
	bad := func(why string) ([]netip.AddrPort, error) {
		return nil, &Error{Key: "AWS_LAMBDA_RUNTIME_API", Msg: fmt.Sprintf("%q %s", s, why)}
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return bad(`has no port; it should look like "127.0.0.1:9001"`)
	}
	host, portText := s[:i], s[i+1:]
	if portText == "*" {
		return bad("has port *; it needs a port number")
	}
	port, err := parsePort(portText)
	if err != nil {
		return bad(err.Error())
	}
	if host == "localhost" {
		return []netip.AddrPort{
			netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
			netip.AddrPortFrom(netip.IPv6Loopback(), port),
		}, nil
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return bad("has an IPv6 address without brackets")
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return bad("does not have an IP address or localhost as its host")
	}
	return []netip.AddrPort{netip.AddrPortFrom(CanonAddr(a), port)}, nil
}
