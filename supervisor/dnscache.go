package supervisor

import (
	"bufio"
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"vigil/rules"
)

// dnsCache holds what DNS answers taught: address -> the names it was an
// answer for, each until its TTL (floored at network.dns_min_ttl) runs
// out. Bounded: at most maxAddrsPerName addresses per name (the first of
// each answer), at most maxLearned (address, name) pairs in all; expired
// pairs are dropped as new ones come.
type dnsCache struct {
	mu      sync.Mutex
	byAddr  map[netip.Addr][]learnedName
	perName map[string]int // live pairs per name
	pairs   int
	now     func() time.Time
}

type learnedName struct {
	name  string
	until time.Time
}

const (
	maxAddrsPerName = 64
	maxLearned      = 1 << 16
)

func newDNSCache() *dnsCache {
	return &dnsCache{byAddr: map[netip.Addr][]learnedName{}, perName: map[string]int{}, now: time.Now}
}

// learn records that name resolved to addrs for ttl.
func (c *dnsCache) learn(name string, addrs []netip.Addr, ttl time.Duration) {
	if len(addrs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	until := now.Add(ttl)
	if c.pairs+len(addrs) > maxLearned {
		c.sweep(now)
	}
	for _, a := range addrs {
		a = rules.CanonAddr(a)
		list := c.byAddr[a]
		found := false
		for i := range list {
			if list[i].name == name {
				if until.After(list[i].until) {
					list[i].until = until
				}
				found = true
				break
			}
		}
		if found {
			continue
		}
		if c.perName[name] >= maxAddrsPerName {
			c.sweep(now)
		}
		if c.perName[name] >= maxAddrsPerName || c.pairs >= maxLearned {
			continue
		}
		c.byAddr[a] = append(list, learnedName{name, until})
		c.perName[name]++
		c.pairs++
	}
}

// sweep drops expired pairs. c.mu is held.
func (c *dnsCache) sweep(now time.Time) {
	for a, list := range c.byAddr {
		kept := list[:0]
		for _, l := range list {
			if l.until.After(now) {
				kept = append(kept, l)
				continue
			}
			c.perName[l.name]--
			if c.perName[l.name] <= 0 {
				delete(c.perName, l.name)
			}
			c.pairs--
		}
		if len(kept) == 0 {
			delete(c.byAddr, a)
		} else {
			c.byAddr[a] = kept
		}
	}
}

// names returns the names a was a live answer for, and (when there is
// none) one it was an answer for that has expired, or "".
func (c *dnsCache) names(a netip.Addr, out []string) (live []string, expired string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, l := range c.byAddr[rules.CanonAddr(a)] {
		if l.until.After(now) {
			out = append(out, l.name)
		} else if expired == "" {
			expired = l.name
		}
	}
	return out, expired
}

// domainPolicy is what DNS-learned decisions ask of the policy
// (*rules.Policy has it; the small fakes of tests do not, and without it
// nameserver traffic is judged as any other).
type domainPolicy interface {
	Resolve(host string) rules.Decision
	ConnectName(host string, port uint16) (rules.Decision, bool)
	DNSMinTTL() int
}

var _ domainPolicy = (*rules.Policy)(nil)

// decideLearned decides a connect or send to ap that no address rule
// allowed: allowed when ap's address is a live answer for a name that a
// domain rule with ap's port matches. domain is the name the decision is
// about ("" when DNS never gave this address).
func decideLearned(c *dnsCache, pol domainPolicy, ap netip.AddrPort, none rules.Decision) (d rules.Decision, domain string) {
	var buf [4]string
	live, expired := c.names(ap.Addr(), buf[:0])
	for _, n := range live {
		if d, ok := pol.ConnectName(n, ap.Port()); ok {
			return d, n
		}
	}
	switch {
	case len(live) > 0:
		return rules.Decision{Rule: "no network.connect rule matches this port of " + live[0]}, live[0]
	case expired != "":
		return rules.Decision{Rule: "the DNS answer for " + expired + " that gave this address has expired (TTL and network.dns_min_ttl)"}, expired
	}
	return none, ""
}

const (
	dnsDefaultTimeout = 5 * time.Second
	dnsMaxTimeout     = 30 * time.Second
	dnsSockIdle       = 10 * time.Minute
	dnsMaxSocks       = 1024
)

// loopback4 is where the proxy listens.
var loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// parseResolvConf returns the nameservers (glibc's and Go's default,
// 127.0.0.1 and ::1, when there is none) and the query timeout (options
// timeout:N, default 5 s).
func parseResolvConf(b []byte) ([]netip.Addr, time.Duration) {
	var servers []netip.Addr
	timeout := dnsDefaultTimeout
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			h := f[1]
			if i := strings.IndexByte(h, '%'); i >= 0 {
				h = h[:i]
			}
			if a, err := netip.ParseAddr(h); err == nil {
				servers = append(servers, rules.CanonAddr(a))
			}
		case "options":
			for _, o := range f[1:] {
				if v, ok := strings.CutPrefix(o, "timeout:"); ok {
					if n, err := strconv.Atoi(v); err == nil && n > 0 {
						timeout = min(time.Duration(n)*time.Second, dnsMaxTimeout)
					}
				}
			}
		}
	}
	if len(servers) == 0 {
		servers = []netip.Addr{loopback4, netip.IPv6Loopback()}
	}
	return servers, timeout
}
