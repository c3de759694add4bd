package supervisor

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"vigil/rules"
)

func buildQuery(t testing.TB, id uint16, name string, typ dnsmessage.Type, response bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true, Response: response})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type testRR struct {
	owner string
	ttl   uint32
	cname string
	addr  string
}

func buildAnswer(t testing.TB, id uint16, qname string, qtype dnsmessage.Type, rrs ...testRR) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RecursionAvailable: true})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(qname), Type: qtype, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	for _, r := range rrs {
		h := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(r.owner), Class: dnsmessage.ClassINET, TTL: r.ttl}
		var err error
		switch {
		case r.cname != "":
			err = b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(r.cname)})
		case netip.MustParseAddr(r.addr).Is4():
			err = b.AResource(h, dnsmessage.AResource{A: netip.MustParseAddr(r.addr).As4()})
		default:
			err = b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(r.addr).As16()})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseDNSQuery(t *testing.T) {
	q, err := parseDNSQuery(buildQuery(t, 7, "Api.Example.TEST.", dnsmessage.TypeAAAA, false))
	if err != nil {
		t.Fatal(err)
	}
	if q.id != 7 || q.name != "api.example.test" || q.qtype != dnsmessage.TypeAAAA || !q.rd || q.typeName() != "AAAA" {
		t.Errorf("query = %+v", q)
	}
	bad := map[string][]byte{
		"a response":   buildQuery(t, 7, "a.test.", dnsmessage.TypeA, true),
		"garbage":      []byte("GET / HTTP/1.1\r\n\r\n"),
		"empty":        nil,
		"header only":  make([]byte, 12),
		"truncated":    buildQuery(t, 7, "a.test.", dnsmessage.TypeA, false)[:20],
		"two question": twoQuestions(t),
	}
	for what, b := range bad {
		if _, err := parseDNSQuery(b); err == nil {
			t.Errorf("%s: parsed as a query", what)
		}
	}
}

func twoQuestions(t *testing.T) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	_ = b.StartQuestions()
	for _, n := range []string{"a.test.", "exfil.evil."} {
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(n), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseDNSAnswer(t *testing.T) {
	q, err := parseDNSQuery(buildQuery(t, 42, "www.example.test.", dnsmessage.TypeA, false))
	if err != nil {
		t.Fatal(err)
	}
	// A chain of aliases: only addresses on the chain from the question's
	// name count, and the TTL is the smallest on the way.
	b := buildAnswer(t, 42, "WWW.example.test.", dnsmessage.TypeA,
		testRR{owner: "www.example.test.", ttl: 300, cname: "edge.cdn.test."},
		testRR{owner: "edge.cdn.test.", ttl: 20, addr: "192.0.2.1"},
		testRR{owner: "edge.cdn.test.", ttl: 90, addr: "192.0.2.2"},
		testRR{owner: "other.test.", ttl: 90, addr: "198.51.100.9"})
	a, ok := parseDNSAnswer(q, b)
	if !ok {
		t.Fatal("answer not recognised")
	}
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	if !slices.Equal(a.addrs, want) || a.ttl != 20 || a.rcode != 0 || a.truncated {
		t.Errorf("answer = %+v, want %v ttl 20", a, want)
	}
	// Not the answer to this query.
	for what, b := range map[string][]byte{
		"other id":       buildAnswer(t, 43, "www.example.test.", dnsmessage.TypeA, testRR{owner: "www.example.test.", ttl: 5, addr: "192.0.2.1"}),
		"other name":     buildAnswer(t, 42, "evil.test.", dnsmessage.TypeA, testRR{owner: "evil.test.", ttl: 5, addr: "192.0.2.1"}),
		"other type":     buildAnswer(t, 42, "www.example.test.", dnsmessage.TypeAAAA),
		"a query":        buildQuery(t, 42, "www.example.test.", dnsmessage.TypeA, false),
		"truncated body": b[:len(b)-3],
	} {
		if _, ok := parseDNSAnswer(q, b); ok {
			t.Errorf("%s: taken as the answer", what)
		}
	}
	// A record for another owner on its own teaches nothing.
	a, ok = parseDNSAnswer(q, buildAnswer(t, 42, "www.example.test.", dnsmessage.TypeA, testRR{owner: "evil.test.", ttl: 5, addr: "203.0.113.5"}))
	if !ok || len(a.addrs) != 0 {
		t.Errorf("unrelated owner: %+v", a)
	}
	// A CNAME loop ends.
	a, ok = parseDNSAnswer(q, buildAnswer(t, 42, "www.example.test.", dnsmessage.TypeA,
		testRR{owner: "www.example.test.", ttl: 5, cname: "loop.test."},
		testRR{owner: "loop.test.", ttl: 5, cname: "www.example.test."}))
	if !ok || len(a.addrs) != 0 {
		t.Errorf("loop: %+v", a)
	}
}

func TestDNSReply(t *testing.T) {
	q, _ := parseDNSQuery(buildQuery(t, 9, "blocked.test.", dnsmessage.TypeA, false))
	var p dnsmessage.Parser
	h, err := p.Start(dnsReply(q, dnsmessage.RCodeRefused))
	if err != nil || !h.Response || h.ID != 9 || h.RCode != dnsmessage.RCodeRefused {
		t.Fatalf("reply header %+v, %v", h, err)
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || dnsName(qs[0].Name) != "blocked.test" {
		t.Errorf("reply question %v, %v", qs, err)
	}
}

func TestParseResolvConf(t *testing.T) {
	servers, timeout := parseResolvConf([]byte("# c\nsearch x.test\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver ::ffff:10.0.0.3\nnameserver bogus\noptions ndots:2 timeout:2 attempts:1\n"))
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("10.0.0.3")}
	if !slices.Equal(servers, want) || timeout != 2*time.Second {
		t.Errorf("got %v %v, want %v 2s", servers, timeout, want)
	}
	servers, timeout = parseResolvConf(nil)
	if len(servers) != 2 || servers[0] != loopback4 || timeout != dnsDefaultTimeout {
		t.Errorf("defaults: %v %v", servers, timeout)
	}
	_, timeout = parseResolvConf([]byte("nameserver 10.0.0.2\noptions timeout:600\n"))
	if timeout != dnsMaxTimeout {
		t.Errorf("timeout cap: %v", timeout)
	}
}

func TestDNSCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDNSCache()
	c.now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	c.learn("api.example.test", []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.1")}, 10*time.Second)
	if live, _ := c.names(a, nil); !slices.Equal(live, []string{"api.example.test"}) {
		t.Fatalf("live = %v (a v4-mapped answer is its IPv4 address)", live)
	}
	now = now.Add(11 * time.Second)
	if live, expired := c.names(a, nil); len(live) != 0 || expired != "api.example.test" {
		t.Errorf("after the TTL: live %v expired %q", live, expired)
	}
	// A fresh answer renews it.
	c.learn("api.example.test", []netip.Addr{a}, 10*time.Second)
	if live, _ := c.names(a, nil); len(live) != 1 {
		t.Errorf("renewed: %v", live)
	}
	// At most maxAddrsPerName addresses per name.
	var many []netip.Addr
	for i := 0; i < maxAddrsPerName+10; i++ {
		many = append(many, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	c.learn("many.test", many, time.Minute)
	if n := c.perName["many.test"]; n != maxAddrsPerName {
		t.Errorf("many.test holds %d addresses, want %d", n, maxAddrsPerName)
	}
	// Expired ones make room.
	now = now.Add(2 * time.Minute)
	c.learn("many.test", many[maxAddrsPerName:], time.Minute)
	if live, _ := c.names(many[maxAddrsPerName+1], nil); len(live) != 1 {
		t.Errorf("after expiry, new addresses of many.test are not learned: %v", live)
	}
}

func TestDecideLearned(t *testing.T) {
	pol, err := rules.Parse("rules.toml", []byte("baseline = false\n[network]\nconnect = [\"api.example.test:443\", \"*.wild.test\", \"10.0.0.0/8:5432\"]\ndns_min_ttl = 5\n"), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c := newDNSCache()
	c.now = func() time.Time { return now }
	c.learn("api.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.1")}, 5*time.Second)
	c.learn("a.b.wild.test", []netip.Addr{netip.MustParseAddr("2001:db8::7")}, 5*time.Second)
	none := pol.Connect(netip.MustParseAddrPort("192.0.2.1:443"))
	cases := []struct {
		ap      string
		allow   bool
		domain  string
		ruleHas string
	}{
		{"192.0.2.1:443", true, "api.example.test", `"api.example.test:443"`},
		{"192.0.2.1:80", false, "api.example.test", "no network.connect rule matches this port"},
		{"[2001:db8::7]:8080", true, "a.b.wild.test", `"*.wild.test"`},
		{"192.0.2.9:443", false, "", "no network.connect rule matches"},
	}
	for _, k := range cases {
		d, dom := decideLearned(c, pol, netip.MustParseAddrPort(k.ap), none)
		if d.Allow != k.allow || dom != k.domain || !strings.Contains(d.Rule, k.ruleHas) {
			t.Errorf("%s: %+v domain %q, want allow=%v domain %q rule ~ %q", k.ap, d, dom, k.allow, k.domain, k.ruleHas)
		}
	}
	now = now.Add(6 * time.Second)
	d, dom := decideLearned(c, pol, netip.MustParseAddrPort("192.0.2.1:443"), none)
	if d.Allow || dom != "api.example.test" || !strings.Contains(d.Rule, "expired") {
		t.Errorf("after the TTL: %+v %q", d, dom)
	}
}
