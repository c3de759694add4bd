package rules

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConnect(t *testing.T) {
	p := mustParse(t, `baseline = false
[network]
connect = [
  "10.0.0.0/8:5432",
  "192.0.2.7",
  "198.51.100.0/24:*",
  "[2001:db8::/32]:443",
  "[2001:db8:1::5]",
  "[::ffff:203.0.113.0/120]:80",
  "[64:ff9b::198.18.0.1]:53",
  "api.example.com:443",
  "*.amazonaws.com",
  "[::1]:9000",
]
listen = ["127.0.0.1:8080", "0.0.0.0:9090", "[::]:7070", "[::1]"]
`, Options{})
	type c struct {
		addr  string
		allow bool
		rule  string
	}
	cases := []c{
		{"10.1.2.3:5432", true, `network.connect "10.0.0.0/8:5432"`},
		{"10.1.2.3:5433", false, "no network.connect rule matches"},
		{"11.1.2.3:5432", false, "no network.connect rule matches"},
		{"192.0.2.7:1", true, `network.connect "192.0.2.7"`},
		{"192.0.2.7:65535", true, `network.connect "192.0.2.7"`},
		{"192.0.2.8:80", false, "no network.connect rule matches"},
		{"198.51.100.255:22", true, `network.connect "198.51.100.0/24:*"`},
		{"[2001:db8:ffff::1]:443", true, `network.connect "[2001:db8::/32]:443"`},
		{"[2001:db8:ffff::1]:80", false, "no network.connect rule matches"},
		{"[2001:db9::1]:443", false, "no network.connect rule matches"},
		{"[2001:db8:1::5]:80", true, `network.connect "[2001:db8::/32]:443"`[:0] + `network.connect "[2001:db8:1::5]"`},
		// IPv4-mapped addresses are judged as IPv4, both ways.
		{"[::ffff:10.1.2.3]:5432", true, `network.connect "10.0.0.0/8:5432"`},
		{"[::ffff:192.0.2.7]:9", true, `network.connect "192.0.2.7"`},
		{"[::ffff:11.1.2.3]:5432", false, "no network.connect rule matches"},
		{"203.0.113.9:80", true, `network.connect "[::ffff:203.0.113.0/120]:80"`},
		{"[::ffff:203.0.113.9]:80", true, `network.connect "[::ffff:203.0.113.0/120]:80"`},
		// IPv4-compatible and NAT64 addresses too.
		{"[::10.1.2.3]:5432", true, `network.connect "10.0.0.0/8:5432"`},
		{"[64:ff9b::10.1.2.3]:5432", true, `network.connect "10.0.0.0/8:5432"`},
		{"[64:ff9b::11.1.2.3]:5432", false, "no network.connect rule matches"},
		{"198.18.0.1:53", true, `network.connect "[64:ff9b::198.18.0.1]:53"`},
		{"[::ffff:198.18.0.1]:53", true, `network.connect "[64:ff9b::198.18.0.1]:53"`},
		// ::1 stays IPv6 loopback, :: stays unspecified.
		{"[::1]:9000", true, `network.connect "[::1]:9000"`},
		{"127.0.0.1:9000", false, "no network.connect rule matches"},
		{"[::]:9000", false, "no network.connect rule matches"},
		// Zones are ignored.
		{"[2001:db8:1::5%eth0]:1", true, `network.connect "[2001:db8:1::5]"`},
	}
	for _, x := range cases {
		d := p.Connect(netip.MustParseAddrPort(x.addr))
		if d.Allow != x.allow || d.Rule != x.rule {
			t.Errorf("Connect(%s) = %+v; want %v %s", x.addr, d, x.allow, x.rule)
		}
		if x.allow && d.Source == "" {
			t.Errorf("Connect(%s): no source", x.addr)
		}
	}
	if d := p.Connect(netip.AddrPort{}); d.Allow || d.Rule != "not a valid address" {
		t.Errorf("zero AddrPort: %+v", d)
	}
	listen := []c{
		{"127.0.0.1:8080", true, `network.listen "127.0.0.1:8080"`},
		{"[::ffff:127.0.0.1]:8080", true, `network.listen "127.0.0.1:8080"`},
		{"127.0.0.1:8081", false, "no network.listen rule matches"},
		{"127.0.0.1:0", false, "no network.listen rule matches"},
		{"0.0.0.0:8080", false, "no network.listen rule matches"},
		{"0.0.0.0:9090", true, `network.listen "0.0.0.0:9090"`},
		{"127.0.0.1:9090", false, "no network.listen rule matches"},
		{"[::]:7070", true, `network.listen "[::]:7070"`},
		{"0.0.0.0:7070", false, "no network.listen rule matches"},
		{"[::1]:0", true, `network.listen "[::1]"`},
		{"[::1]:1234", true, `network.listen "[::1]"`},
		{"10.1.2.3:5432", false, "no network.listen rule matches"},
	}
	for _, x := range listen {
		d := p.Listen(netip.MustParseAddrPort(x.addr))
		if d.Allow != x.allow || d.Rule != x.rule {
			t.Errorf("Listen(%s) = %+v; want %v %s", x.addr, d, x.allow, x.rule)
		}
	}
	// Domains never match in Connect; DomainsFor finds them.
	doms := map[string][]DomainRule{
		"api.example.com":          {{"api.example.com", 443, "rules.toml:11"}},
		"API.Example.COM.":         {{"api.example.com", 443, "rules.toml:11"}},
		"example.com":              nil,
		"x.api.example.com":        nil,
		"s3.amazonaws.com":         {{"*.amazonaws.com", 0, "rules.toml:12"}},
		"a.b.s3.amazonaws.com":     {{"*.amazonaws.com", 0, "rules.toml:12"}},
		"amazonaws.com":            nil,
		"evilamazonaws.com":        nil,
		"s3.amazonaws.com.evil.io": nil,
		"":                         nil,
		".":                        nil,
	}
	for h, want := range doms {
		got := p.DomainsFor(h)
		if len(got) != len(want) {
			t.Errorf("DomainsFor(%q) = %+v, want %+v", h, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("DomainsFor(%q) = %+v, want %+v", h, got, want)
			}
		}
	}
}

func TestDomainsForOrderAndBoth(t *testing.T) {
	p := mustParse(t, `baseline = false
network.connect = ["*.example.com:443", "a.example.com:80", "*.a.example.com"]
`, Options{})
	got := p.DomainsFor("x.a.example.com")
	if len(got) != 2 || got[0].Pattern != "*.example.com" || got[1].Pattern != "*.a.example.com" {
		t.Errorf("%+v", got)
	}
	got = p.DomainsFor("a.example.com")
	if len(got) != 2 || got[0].Pattern != "*.example.com" || got[1] != (DomainRule{"a.example.com", 80, "rules.toml:2"}) {
		t.Errorf("%+v", got)
	}
	// The returned slice is a copy.
	got[0].Pattern = "changed"
	if p.DomainsFor("a.example.com")[0].Pattern != "*.example.com" {
		t.Errorf("DomainsFor exposes internal state")
	}
}

func TestParseNetEntry(t *testing.T) {
	ok := map[string]netRule{
		"10.0.0.0/8:5432":      {prefix: netip.MustParsePrefix("10.0.0.0/8"), port: 5432},
		"10.0.0.1":             {prefix: netip.MustParsePrefix("10.0.0.1/32")},
		"10.0.0.1:*":           {prefix: netip.MustParsePrefix("10.0.0.1/32")},
		"0.0.0.0/0":            {prefix: netip.MustParsePrefix("0.0.0.0/0")},
		"[::/0]:443":           {prefix: netip.MustParsePrefix("::/0"), port: 443},
		"[2001:db8::1]:1":      {prefix: netip.MustParsePrefix("2001:db8::1/128"), port: 1},
		"[::ffff:10.0.0.1]":    {prefix: netip.MustParsePrefix("10.0.0.1/32")},
		"[::ffff:0:0/96]":      {prefix: netip.MustParsePrefix("0.0.0.0/0")},
		"[64:ff9b::/96]:53":    {prefix: netip.MustParsePrefix("0.0.0.0/0"), port: 53},
		"[64:ff9b::a00:0/104]": {prefix: netip.MustParsePrefix("10.0.0.0/8")},
		"[::1]":                {prefix: netip.MustParsePrefix("::1/128")},
		"[::]:80":              {prefix: netip.MustParsePrefix("::/128"), port: 80},
		"example.com":          {domain: "example.com"},
		"*.example.com:65535":  {domain: "*.example.com", port: 65535},
		"localhost:9001":       {domain: "localhost", port: 9001},
		"xn--bcher-kva.de":     {domain: "xn--bcher-kva.de"},
	}
	for in, want := range ok {
		got, err := parseNetEntry(in, false)
		if err != nil || got != want {
			t.Errorf("parseNetEntry(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

func TestCanonAddr(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4": "1.2.3.4", "::ffff:1.2.3.4": "1.2.3.4", "::1.2.3.4": "1.2.3.4", "64:ff9b::1.2.3.4": "1.2.3.4",
		"::1": "::1", "::": "::", "2001:db8::1": "2001:db8::1", "64:ff9b:1::1.2.3.4": "64:ff9b:1::102:304",
		"fe80::1%eth0": "fe80::1", "::2": "0.0.0.2",
	} {
		if got := CanonAddr(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("CanonAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestParseRuntimeAPI(t *testing.T) {
	got, err := ParseRuntimeAPI("127.0.0.1:9001")
	if err != nil || len(got) != 1 || got[0].String() != "127.0.0.1:9001" {
		t.Errorf("%v %v", got, err)
	}
	got, err = ParseRuntimeAPI("[::1]:9001")
	if err != nil || len(got) != 1 || got[0].String() != "[::1]:9001" {
		t.Errorf("%v %v", got, err)
	}
	got, err = ParseRuntimeAPI("localhost:9001")
	if err != nil || len(got) != 2 {
		t.Errorf("%v %v", got, err)
	}
}

func TestParseAbstractEntry(t *testing.T) {
	for in, want := range map[string]string{"@foo": "foo", "@*": "*", "@/tmp/.X11-unix/X0": "/tmp/.X11-unix/X0", "@dbus-*": "dbus-*"} {
		for _, listen := range []bool{false, true} {
			got, err := parseNetEntry(in, listen)
			if err != nil || !got.isAbstract || got.abstract != want {
				t.Errorf("parseNetEntry(%q, %v) = %+v, %v", in, listen, got, err)
			}
		}
	}
	for in, frag := range map[string]string{
		"@":                            `"@" alone`,
		"@a b":                         "printable ASCII without spaces",
		"@a\x00b":                      "printable ASCII",
		"@a**":                         `"**"`,
		"@" + strings.Repeat("x", 108): "the longest is 107",
	} {
		if _, err := parseNetEntry(in, false); err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("parseNetEntry(%q) error %v; want it to mention %q", in, err, frag)
		}
	}
}

func TestMatchAbstract(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"foo", "foo", true}, {"foo", "foo2", false}, {"foo", "fo", false},
		{"*", "", true}, {"*", "\x00\xff", true}, {"a*", "a", true}, {"a*", "ab\x00c", true},
		{"*b", "aab", true}, {"*b", "aba", false}, {"a*c*e", "abcde", true}, {"a*c*e", "abcd", false},
		{"a*b*c", "aXbXbXc", true}, {"", "", true}, {"", "x", false},
	}
	for _, c := range cases {
		if got := matchAbstract(c.pat, c.name); got != c.want {
			t.Errorf("matchAbstract(%q, %q) = %v", c.pat, c.name, got)
		}
	}
	if q := QuoteAbstract("a\x00b\\c"); q != `@a\x00b\\c` {
		t.Errorf("QuoteAbstract = %s", q)
	}
}
