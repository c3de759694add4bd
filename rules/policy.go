package rules

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Policy is a compiled, immutable policy for one function. It is safe for
// concurrent use. A nil or zero *Policy denies everything.
type Policy struct {
	mode Mode
	c    *compiled
}

// compiled is the immutable part of a Policy, shared by WithMode copies.
type compiled struct {
	file              string
	function          string
	logAllowed        bool
	metrics           bool // metrics = true: EMF denial counts
	backend           string
	dnsMinTTL         int // seconds
	allowWritableExec bool
	runtimeCommand    []string // [runtime] command
	entries           []*entry // the effective rules; an entry's id is its index
	fs, exec          pathIndex
	connect, listen   ipIndex
	connectAbs        []int32 // abstract socket entries, in order
	listenAbs         []int32
	domains           domainIndex
	warnings          []string
}

// entry is one compiled rule.
type entry struct {
	kind    listKind
	text    string // as written
	section string // `functions."orders-*"`, or "" for the base policy
	source  string // "rules.toml:12" or "baseline"
	key     string // `filesystem.read[2]`, for error messages
	line    int
	group   int // 0: base (baseline and top-level lists); i+1: section i
	path    *pathPattern
	net     netRule
	allow   Decision // the decision this rule gives when it decides
	noRead  Decision // kExec: matched, but the program is not readable
}

func (e *entry) ruleText() string {
	if e.section != "" {
		return e.section + "." + listNames[e.kind] + " " + tomlQuote(e.text)
	}
	return listNames[e.kind] + " " + tomlQuote(e.text)
}

// Default-deny and malformed-query decisions.
var (
	noPolicy   = Decision{Rule: "no policy"}
	notClean   = Decision{Rule: "not an absolute, clean path"}
	badAddr    = Decision{Rule: "not a valid address"}
	noReadDec  = Decision{Rule: "no filesystem.read pattern matches"}
	noWriteDec = Decision{Rule: "no filesystem.write pattern matches"}
	noExecDec  = Decision{Rule: "no process.exec pattern matches"}
	noConnDec  = Decision{Rule: "no network.connect rule matches"}
	noListDec  = Decision{Rule: "no network.listen rule matches"}
	noConnAbs  = Decision{Rule: "no network.connect rule matches the abstract socket"}
	noListAbs  = Decision{Rule: "no network.listen rule matches the abstract socket"}
)

// Load reads and compiles the rules file at path. Errors name the path as
// given.
func Load(path string, opt Options) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		if pe, ok := err.(*os.PathError); ok {
			msg = "cannot read: " + pe.Err.Error()
		}
		return nil, Errors{{File: path, Msg: msg}}
	}
	return Parse(path, data, opt)
}

// Parse compiles a rules file held in memory; filename is used in errors
// and in the Source of its rules. A rejected file gives Errors.
func Parse(filename string, data []byte, opt Options) (*Policy, error) {
	raw, errs := decode(filename, data)
	if raw == nil {
		return nil, errs
	}
	b := &builder{file: filename, errs: errs, selected: map[int]bool{0: true}}
	if raw.baseline {
		b.addBaseline()
		if opt.RuntimeAPI != "" {
			aps, err := ParseRuntimeAPI(opt.RuntimeAPI)
			if err != nil {
				b.errs = append(b.errs, err.(*Error))
			}
			for _, ap := range aps {
				b.add(&entry{kind: kConnect, text: ap.String(), source: "baseline", key: "AWS_LAMBDA_RUNTIME_API"}, true)
			}
		}
	}
	b.addLists(raw.lists, "", 0, true)
	for i, s := range raw.sections {
		sel := s.glob != nil && opt.Function != "" && s.glob.match(opt.Function)
		b.addLists(s.lists, "functions."+fmtKeyPiece(s.pattern), i+1, sel)
	}
	b.checkOverlaps(raw.allowWritableExec)
	if len(b.errs) > 0 {
		return nil, b.errs.sorted()
	}
	c := &compiled{
		file:              filename,
		function:          opt.Function,
		logAllowed:        raw.logAllowed,
		metrics:           raw.metrics,
		backend:           raw.backend,
		dnsMinTTL:         raw.dnsMinTTL,
		allowWritableExec: raw.allowWritableExec,
		runtimeCommand:    raw.runtimeCommand,
		entries:           b.active,
		warnings:          b.warnings,
	}
	if c.dnsMinTTL < 0 {
		c.dnsMinTTL = DefaultDNSMinTTL
	}
	c.index()
	return &Policy{mode: raw.mode, c: c}, nil
}

func fmtKeyPiece(s string) string { return fmtKey([]string{s}) }

// builder collects compiled entries and errors.
type builder struct {
	file     string
	errs     Errors
	active   []*entry // the effective policy
	all      []*entry // every entry, selected or not (for the overlap check)
	selected map[int]bool
	warnings []string
}

func (b *builder) add(e *entry, selected bool) {
	if e.kind == kConnect || e.kind == kListen {
		r, err := parseNetEntry(e.text, e.kind == kListen)
		if err != nil {
			b.fail(e, err)
			return
		}
		e.net = r
	} else {
		p, err := compilePath(e.text)
		if err != nil {
			b.fail(e, err)
			return
		}
		e.path = p
	}
	rule := e.ruleText()
	e.allow = Decision{Allow: e.kind != kDeny, Rule: rule, Source: e.source}
	if e.kind == kExec {
		e.noRead = Decision{Rule: rule + " matches, but no filesystem.read pattern does", Source: e.source}
	}
	b.all = append(b.all, e)
	if selected {
		b.active = append(b.active, e)
	}
}

func (b *builder) fail(e *entry, err error) {
	msg := tomlQuote(e.text) + " " + err.Error()
	if err == errEmptyPattern {
		msg = "is empty; write a pattern"
		if e.kind == kConnect || e.kind == kListen {
			msg = "is empty; write an address, CIDR or domain"
		}
	}
	file := b.file
	if e.source == "baseline" && e.line == 0 {
		file = ""
	}
	b.errs = append(b.errs, &Error{File: file, Line: e.line, Key: e.key, Msg: msg})
}

func (b *builder) addLists(lists [nKinds][]rawEntry, section string, group int, selected bool) {
	b.selected[group] = selected
	for k := listKind(0); k < nKinds; k++ {
		for _, r := range lists[k] {
			key := fmt.Sprintf("%s[%d]", listNames[k], r.index)
			if section != "" {
				key = section + "." + key
			}
			b.add(&entry{
				kind: k, text: r.text, section: section,
				source: fmt.Sprintf("%s:%d", b.file, r.line),
				key:    key, line: r.line, group: group,
			}, selected)
		}
	}
}

func (b *builder) addBaseline() {
	for _, e := range baselineEntries() {
		c := *e
		b.add(&c, true)
	}
}

// checkOverlaps rejects (or, with allow_writable_exec, records a warning
// for) every exec pattern that overlaps a write pattern. Pairs are checked
// within the base policy, between the base and each function section,
// within each section, and between sections that are both selected; so a
// section is checked even when this load does not select it.
func (b *builder) checkOverlaps(allowWritableExec bool) {
	var execs, writes []*entry
	for _, e := range b.all {
		switch e.kind {
		case kExec:
			execs = append(execs, e)
		case kWrite:
			writes = append(writes, e)
		}
	}
	for _, x := range execs {
		for _, w := range writes {
			if !(x.group == w.group || x.group == 0 || w.group == 0 || (b.selected[x.group] && b.selected[w.group])) {
				continue
			}
			wit, ok := overlap(x.path, w.path)
			if !ok {
				continue
			}
			wsrc := w.source
			if allowWritableExec {
				if !b.selected[x.group] || !b.selected[w.group] {
					continue // not in this function's policy
				}
				b.warnings = append(b.warnings, fmt.Sprintf(
					"process.allow_writable_exec = true: %s (%s) overlaps %s (%s): both match %s, so the function can write a program there and run it",
					x.ruleText(), x.source, w.ruleText(), wsrc, tomlQuote(wit)))
				continue
			}
			b.errs = append(b.errs, &Error{File: b.file, Line: x.line, Key: x.key, Msg: fmt.Sprintf(
				"%s overlaps %s (%s): both match %s, so the function could write a program there and run it; narrow one of the patterns, or set process.allow_writable_exec = true",
				tomlQuote(x.text), w.ruleText(), wsrc, tomlQuote(wit))})
		}
	}
}

// index builds the lookup structures of the effective policy.
func (c *compiled) index() {
	for i, e := range c.entries {
		id := int32(i)
		switch e.kind {
		case kRead, kWrite, kDeny:
			c.fs.add(e.path, id, e.kind)
		case kExec:
			c.exec.add(e.path, id, e.kind)
		case kConnect:
			if e.net.isAbstract {
				c.connectAbs = append(c.connectAbs, id)
			} else if e.net.domain != "" {
				c.domains.add(e.net.domain, id)
			} else {
				c.connect.add(e.net.prefix, e.net.port, id)
			}
		case kListen:
			if e.net.isAbstract {
				c.listenAbs = append(c.listenAbs, id)
			} else {
				c.listen.add(e.net.prefix, e.net.port, id)
			}
		}
	}
}

// Mode is the policy's mode.
func (p *Policy) Mode() Mode {
	if p == nil {
		return Enforce
	}
	return p.mode
}

// WithMode returns a copy of the policy with its mode replaced (--mode).
// The copy shares the compiled rules; p is not changed.
func (p *Policy) WithMode(m Mode) *Policy {
	if p == nil {
		return nil
	}
	q := *p
	q.mode = m
	return &q
}

// LogAllowed reports whether allowed decisions are logged too (log_allowed).
func (p *Policy) LogAllowed() bool { return p != nil && p.c != nil && p.c.logAllowed }

// Backends are the values of the backend key: how calls are vetted.
// "auto" (the default) tries "notify" (seccomp user notification), then
// ptrace with a seccomp filter, then ptrace alone; "ptrace" is ptrace with
// a filter where the kernel allows one, else alone; "ptrace-seccomp" and
// "ptrace-alone" insist on one of the two.
var Backends = []string{"auto", "notify", "ptrace", "ptrace-seccomp", "ptrace-alone"}

func validBackend(b string) bool {
	for _, x := range Backends {
		if b == x {
			return true
		}
	}
	return false
}

func backendList() string {
	q := make([]string, len(Backends))
	for i, b := range Backends {
		q[i] = tomlQuote(b)
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// ValidBackend reports whether b is one of Backends.
func ValidBackend(b string) bool { return validBackend(b) }

// Backend is the backend key ("auto" when unset).
func (p *Policy) Backend() string {
	if p == nil || p.c == nil || p.c.backend == "" {
		return "auto"
	}
	return p.c.backend
}

// Metrics reports whether Vigil writes a CloudWatch Embedded Metric Format
// line of denial counts per invocation that had any (metrics = true).
func (p *Policy) Metrics() bool { return p != nil && p.c != nil && p.c.metrics }

// RuntimeCommand is the [runtime] command of the file: the program (and
// its arguments) the bootstrap runs as the Lambda runtime when it is the
// custom runtime. nil when the file has none. The caller gets a copy.
func (p *Policy) RuntimeCommand() []string {
	if p == nil || p.c == nil {
		return nil
	}
	return slices.Clone(p.c.runtimeCommand)
}

// Function is the function name the policy was selected for (may be "").
func (p *Policy) Function() string {
	if p == nil || p.c == nil {
		return ""
	}
	return p.c.function
}

// Warnings are the problems the policy was loaded despite: today, each
// exec pattern that overlaps a write pattern under
// process.allow_writable_exec = true. The supervisor should log them at
// start-up.
func (p *Policy) Warnings() []string {
	if p == nil || p.c == nil {
		return nil
	}
	return slices.Clone(p.c.warnings)
}

// CleanPath reports whether path is absolute and clean (no empty, "." or
// ".." segments, no trailing "/", no NUL), the only form the path queries
// can allow.
func CleanPath(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	if path == "/" {
		return true
	}
	if path[len(path)-1] == '/' {
		return false
	}
	for i := 0; i < len(path); {
		j := i + 1
		for j < len(path) && path[j] != '/' {
			if path[j] == 0 {
				return false
			}
			j++
		}
		switch path[i+1 : j] {
		case "", ".", "..":
			return false
		}
		i = j
	}
	return true
}

// canonProc rewrites the caller's own /proc entries to /proc/self:
//
//	/proc/<Pid>/X            -> /proc/self/X
//	/proc/<Tid>/X (Tid≠Pid)  -> /proc/self/task/<Tid>/X
//	/proc/thread-self/X      -> /proc/self/task/<Tid>/X
//
// and returns the thread id that /proc/thread-self patterns stand for.
// Another process's /proc/<pid>/X is left alone, so /proc/self patterns
// never match it.
func canonProc(path string, c Caller) (string, int) {
	tid := c.Tid
	if tid <= 0 {
		tid = c.Pid
	}
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok || c.Pid <= 0 {
		return path, tid
	}
	first, tail := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first, tail = rest[:i], rest[i:]
	}
	if first == "thread-self" {
		return "/proc/self/task/" + itoa(tid) + tail, tid
	}
	n, ok := atoiPos(first)
	switch {
	case !ok:
	case n == c.Pid:
		return "/proc/self" + tail, tid
	case n == tid:
		return "/proc/self/task/" + first + tail, tid
	}
	return path, tid
}

// Open: may the resolved absolute path be opened with this access
// (Read, Write or Read|Write; 0 counts as Read)? deny wins; write implies
// read.
func (p *Policy) Open(path string, acc Access, c Caller) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	if !CleanPath(path) {
		return notClean
	}
	path, tid := canonProc(path, c)
	h := p.c.fs.lookup(path, tid)
	es := p.c.entries
	if h[kDeny] >= 0 {
		return es[h[kDeny]].allow
	}
	if acc&Write != 0 {
		if h[kWrite] >= 0 {
			return es[h[kWrite]].allow
		}
		return noWriteDec
	}
	if h[kRead] >= 0 {
		return es[h[kRead]].allow
	}
	if h[kWrite] >= 0 {
		return es[h[kWrite]].allow
	}
	return noReadDec
}

// Exec: may the program at the resolved absolute path run? It must match a
// process.exec pattern and pass Open(path, Read).
func (p *Policy) Exec(path string, c Caller) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	if !CleanPath(path) {
		return notClean
	}
	path, tid := canonProc(path, c)
	es := p.c.entries
	h := p.c.fs.lookup(path, tid)
	if h[kDeny] >= 0 {
		return es[h[kDeny]].allow
	}
	x := p.c.exec.lookup(path, tid)[kExec]
	if x < 0 {
		return noExecDec
	}
	if h[kRead] < 0 && h[kWrite] < 0 {
		return es[x].noRead
	}
	return es[x].allow
}

// Connect: may a socket connect or send to this address? IPv4-mapped,
// IPv4-compatible and NAT64 (64:ff9b::/96) IPv6 addresses are judged as
// their IPv4 form (see CanonAddr). Only address rules decide here; domain
// rules are found with DomainsFor.
func (p *Policy) Connect(addr netip.AddrPort) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	if !addr.Addr().IsValid() {
		return badAddr
	}
	if id := p.c.connect.lookup(CanonAddr(addr.Addr()), addr.Port()); id >= 0 {
		return p.c.entries[id].allow
	}
	return noConnDec
}

// Listen: may a socket bind or listen on this address? A rule matches only
// its exact address (0.0.0.0 and [::] are addresses like any other); port
// 0 in the query (an ephemeral port) matches only rules without a port.
func (p *Policy) Listen(addr netip.AddrPort) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	if !addr.Addr().IsValid() {
		return badAddr
	}
	if id := p.c.listen.lookup(CanonAddr(addr.Addr()), addr.Port()); id >= 0 {
		return p.c.entries[id].allow
	}
	return noListDec
}

// domainIDs appends the ids of the domain rules that match host (see
// DomainsFor); valid is false for a name no rule could match.
func (c *compiled) domainIDs(host string, out []int32) (ids []int32, valid bool) {
	h, ok := normHost(host)
	if !ok {
		return out, false
	}
	return c.domains.lookup(h, out), true
}

// DomainsFor returns the domain rules that could allow host (any port);
// nil when none could. host is matched case-insensitively, with one
// trailing dot ignored; "*.example.com" matches "a.example.com" and
// "a.b.example.com" but not "example.com".
func (p *Policy) DomainsFor(host string) []DomainRule {
	if p == nil || p.c == nil {
		return nil
	}
	var buf [8]int32
	ids, _ := p.c.domainIDs(host, buf[:0])
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	out := make([]DomainRule, len(ids))
	for i, id := range ids {
		e := p.c.entries[id]
		out[i] = DomainRule{Pattern: e.net.domain, Port: int(e.net.port), Source: e.source}
	}
	return out
}

// DNS answers: how long a learned address stays an answer.
const (
	// DefaultDNSMinTTL is network.dns_min_ttl when the file does not set
	// it: an answer teaches its addresses for at least this many seconds,
	// whatever its own TTL (Cilium's toFQDNs floor).
	DefaultDNSMinTTL = 60
	// MaxDNSMinTTL is the largest network.dns_min_ttl accepted (a day).
	MaxDNSMinTTL = 86400
)

// DNSMinTTL is network.dns_min_ttl in seconds.
func (p *Policy) DNSMinTTL() int {
	if p == nil || p.c == nil {
		return DefaultDNSMinTTL
	}
	return p.c.dnsMinTTL
}

// HasDomains reports whether any network.connect entry is a domain.
func (p *Policy) HasDomains() bool {
	return p != nil && p.c != nil && len(p.c.domains.exact)+len(p.c.domains.wild) > 0
}

var (
	noDomainDec = Decision{Rule: "no network.connect domain pattern matches the name"}
	badNameDec  = Decision{Rule: "not a valid domain name"}
)

// Resolve: may the function look this name up (a DNS query to its
// nameservers)? Yes when a domain rule matches it, whatever the rule's
// port: the name's answers are what connect rules with that port are then
// judged by. host is matched as in DomainsFor.
func (p *Policy) Resolve(host string) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	var buf [8]int32
	ids, valid := p.c.domainIDs(host, buf[:0])
	if !valid {
		return badNameDec
	}
	if len(ids) == 0 {
		return noDomainDec
	}
	return p.c.entries[slices.Min(ids)].allow
}

// ConnectName: may a socket connect or send to port of an address that
// DNS gave as an answer for host? The first domain rule (in file order)
// that matches host and port decides; ok is false when none does.
func (p *Policy) ConnectName(host string, port uint16) (d Decision, ok bool) {
	if p == nil || p.c == nil {
		return noPolicy, false
	}
	var buf [8]int32
	ids, valid := p.c.domainIDs(host, buf[:0])
	if !valid {
		return badNameDec, false
	}
	best := int32(-1)
	for _, id := range ids {
		if r := p.c.entries[id].net.port; (r == 0 || r == port) && (best < 0 || id < best) {
			best = id
		}
	}
	if best < 0 {
		return noConnDec, false
	}
	return p.c.entries[best].allow, true
}

// ConnectAbstract: may a socket connect or send to this AF_UNIX abstract
// name (without its leading NUL byte; any bytes)? Only "@PATTERN" entries
// of network.connect decide; the first that matches wins.
func (p *Policy) ConnectAbstract(name string) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	return p.c.matchAbstract(p.c.connectAbs, name, noConnAbs)
}

// ListenAbstract: may a socket bind this AF_UNIX abstract name? Only
// "@PATTERN" entries of network.listen decide.
func (p *Policy) ListenAbstract(name string) Decision {
	if p == nil || p.c == nil {
		return noPolicy
	}
	return p.c.matchAbstract(p.c.listenAbs, name, noListAbs)
}

func (c *compiled) matchAbstract(ids []int32, name string, none Decision) Decision {
	if len(name) > maxAbstractName {
		return badAddr
	}
	for _, id := range ids {
		if e := c.entries[id]; matchAbstract(e.net.abstract, name) {
			return e.allow
		}
	}
	return none
}
