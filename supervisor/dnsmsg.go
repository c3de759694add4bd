package supervisor

import (
	"errors"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS messages as the supervisor reads them: the caller's queries (judged
// by their one question's name) and the nameserver's answers (the
// addresses a name was given, learned for connect decisions). Only
// answers the supervisor itself received from the nameserver are read;
// nothing the caller wrote is believed but its question.

// maxDNSQuery is the largest query the supervisor expects over UDP (RFC
// 1035's 512 bytes; a query is a header, one question of at most 255 name
// bytes and an EDNS record). sendto calls without an address up to this
// size are notified (filter_linux.go).
const maxDNSQuery = 512

// maxCNAMEChain bounds how many aliases an answer may chain.
const maxCNAMEChain = 8

// dnsQuestion is a query's one question.
type dnsQuestion struct {
	id    uint16
	name  string // lower case, no trailing dot, escaped as dnsmessage does
	qtype dnsmessage.Type
	class dnsmessage.Class
	rd    bool // recursion desired, echoed in a refusal
}

var errNotQuery = errors.New("not a standard DNS query with one question")

// parseDNSQuery reads a standard query (QR=0, opcode 0) with exactly one
// question and no answer or authority records (an OPT record in the
// additional section is allowed).
func parseDNSQuery(b []byte) (dnsQuestion, error) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil || h.Response || h.OpCode != 0 {
		return dnsQuestion{}, errNotQuery
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return dnsQuestion{}, errNotQuery
	}
	if err := p.SkipAllAnswers(); err != nil {
		return dnsQuestion{}, errNotQuery
	}
	if n, err := countRest(&p); err != nil || n.authorities > 0 {
		return dnsQuestion{}, errNotQuery
	}
	q := qs[0]
	return dnsQuestion{id: h.ID, name: dnsName(q.Name), qtype: q.Type, class: q.Class, rd: h.RecursionDesired}, nil
}

// maxDNSMessage is the largest DNS message (TCP's 16-bit length).
const maxDNSMessage = 65535

type restCounts struct{ authorities, additionals int }

// countRest walks the authority and additional sections.
func countRest(p *dnsmessage.Parser) (restCounts, error) {
	var n restCounts
	for {
		_, err := p.AuthorityHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return n, err
		}
		n.authorities++
		if err := p.SkipAuthority(); err != nil {
			return n, err
		}
	}
	for {
		_, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return n, err
		}
		n.additionals++
		if err := p.SkipAdditional(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// dnsName is a name for matching: lower case, without the root's dot.
func dnsName(n dnsmessage.Name) string {
	return strings.ToLower(strings.TrimSuffix(n.String(), "."))
}

func (q dnsQuestion) typeName() string {
	s := q.qtype.String()
	return strings.TrimPrefix(s, "Type")
}

// dnsReply builds an answer to q with rcode and no records: REFUSED for a
// name the policy does not allow, SERVFAIL when the nameserver did not
// answer. It is sent on the supervisor's own proxy sockets only.
func dnsReply(q dnsQuestion, rcode dnsmessage.RCode) []byte {
	name, err := dnsmessage.NewName(q.name + ".")
	if err != nil {
		name = dnsmessage.MustNewName(".")
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: q.id, Response: true, RecursionDesired: q.rd, RecursionAvailable: true, RCode: rcode})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: q.qtype, Class: q.class})
	out, err := b.Finish()
	if err != nil {
		// Only a name that does not fit could fail; answer without the
		// question, which every resolver rejects as not its answer.
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: q.id, Response: true, RCode: rcode})
		out, _ = b.Finish()
	}
	return out
}

// dnsAnswer is what an answer to a question says.
type dnsAnswer struct {
	rcode     dnsmessage.RCode
	truncated bool
	addrs     []netip.Addr // A and AAAA records of the name (through CNAMEs)
	ttl       uint32       // the smallest TTL on the way to them
}

// parseDNSAnswer reads b as the answer to q: the same id, the same one
// question (names compared without case), QR set. ok is false for
// anything else. Address records count when their owner is the question's
// name or an alias the answer chains to from it (at most maxCNAMEChain).
func parseDNSAnswer(q dnsQuestion, b []byte) (a dnsAnswer, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil || !h.Response || h.ID != q.id || h.OpCode != 0 {
		return a, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || dnsName(qs[0].Name) != q.name || qs[0].Type != q.qtype || qs[0].Class != q.class {
		return a, false
	}
	a.rcode, a.truncated = h.RCode, h.Truncated
	type rec struct {
		owner string
		ttl   uint32
		cname string
		addr  netip.Addr
	}
	var recs []rec
	for {
		rh, err := p.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return a, false
		}
		r := rec{owner: dnsName(rh.Name), ttl: rh.TTL}
		switch {
		case rh.Class != dnsmessage.ClassINET:
			err = p.SkipAnswer()
		case rh.Type == dnsmessage.TypeA:
			var x dnsmessage.AResource
			if x, err = p.AResource(); err == nil {
				r.addr = netip.AddrFrom4(x.A)
			}
		case rh.Type == dnsmessage.TypeAAAA:
			var x dnsmessage.AAAAResource
			if x, err = p.AAAAResource(); err == nil {
				r.addr = netip.AddrFrom16(x.AAAA)
			}
		case rh.Type == dnsmessage.TypeCNAME:
			var x dnsmessage.CNAMEResource
			if x, err = p.CNAMEResource(); err == nil {
				r.cname = dnsName(x.CNAME)
			}
		default:
			err = p.SkipAnswer()
		}
		if err != nil {
			return a, false
		}
		if r.addr.IsValid() || r.cname != "" {
			recs = append(recs, r)
		}
	}
	// Follow the chain from the question's name.
	owner, ttl := q.name, ^uint32(0)
	a.ttl = ^uint32(0)
	for hop := 0; hop <= maxCNAMEChain; hop++ {
		next := ""
		for _, r := range recs {
			if r.owner != owner {
				continue
			}
			if r.cname != "" && next == "" {
				next, ttl = r.cname, min(ttl, r.ttl)
			}
			if r.addr.IsValid() {
				a.addrs = append(a.addrs, r.addr)
				a.ttl = min(a.ttl, ttl, r.ttl)
			}
		}
		if next == "" || next == owner {
			break
		}
		owner = next
	}
	if len(a.addrs) == 0 {
		a.ttl = 0
	}
	return a, true
}
