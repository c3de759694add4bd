package rules

import (
	"strings"
	"testing"
)

func TestPathMatch(t *testing.T) {
	cases := []struct {
		pat string
		yes []string
		no  []string
	}{
		{"/", []string{"/"}, []string{"/a"}},
		{"/**", []string{"/", "/a", "/a/b/c"}, nil},
		{"/a", []string{"/a"}, []string{"/", "/b", "/a/b", "/ab"}},
		{"/a/**", []string{"/a", "/a/b", "/a/b/c/d"}, []string{"/", "/ab", "/b/a"}},
		{"/a/*", []string{"/a/b", "/a/.hidden", "/a/*"}, []string{"/a", "/a/b/c"}},
		{"/a/*/c", []string{"/a/b/c", "/a/xyz/c"}, []string{"/a/c", "/a/b/b/c"}},
		{"/a/**/c", []string{"/a/c", "/a/b/c", "/a/b/b/c"}, []string{"/a/b", "/a/c/d", "/c"}},
		{"/**/c", []string{"/c", "/a/c", "/a/b/c"}, []string{"/a/cc", "/"}},
		{"/a/**/b/**/c", []string{"/a/b/c", "/a/x/b/y/c", "/a/b/b/c/c", "/a/b/x/b/c"}, []string{"/a/c", "/a/b", "/a/x/c"}},
		{"/**/**", []string{"/", "/a", "/a/b"}, nil},
		{"/a/*.py", []string{"/a/x.py", "/a/.py"}, []string{"/a/x.pyc", "/a/x/y.py"}},
		{"/a/x*y*z", []string{"/a/xyz", "/a/xaybz", "/a/xyyzz", "/a/xzyz"}, []string{"/a/xy", "/a/xzy"}},
		{"/a/?", []string{"/a/b", "/a/é"}, []string{"/a", "/a/bc"}},
		{"/a/??", []string{"/a/bc", "/a/éé"}, []string{"/a/b", "/a/bcd"}},
		{"/a/[bc]d", []string{"/a/bd", "/a/cd"}, []string{"/a/ad", "/a/bcd"}},
		{"/a/[a-c]", []string{"/a/a", "/a/b", "/a/c"}, []string{"/a/d", "/a/A"}},
		{"/a/[!a-c]", []string{"/a/d", "/a/Z", "/a/é"}, []string{"/a/a", "/a/c", "/a/dd"}},
		{"/a/[^a-c]", []string{"/a/d"}, []string{"/a/b"}},
		{"/a/[\\]\\-]", []string{"/a/]", "/a/-"}, []string{"/a/\\"}},
		{"/a/\\*", []string{"/a/*"}, []string{"/a/b"}},
		{"/a/\\[x]", []string{"/a/[x]"}, []string{"/a/x"}},
		{"/python3*", []string{"/python3", "/python3.12"}, []string{"/python"}},
		{"/var/lang/bin/python3*", []string{"/var/lang/bin/python3.12"}, []string{"/var/lang/bin/python2"}},
		{"/x/*/**", []string{"/x/a", "/x/a/b"}, []string{"/x"}},
	}
	for _, c := range cases {
		p, err := compilePath(c.pat)
		if err != nil {
			t.Fatalf("compile %q: %v", c.pat, err)
		}
		var ix pathIndex
		ix.add(p, 0, kRead)
		for _, y := range c.yes {
			if !p.matches(y, 0) {
				t.Errorf("%q should match %q", c.pat, y)
			}
			if ix.lookup(y, 0)[kRead] != 0 {
				t.Errorf("index: %q should match %q", c.pat, y)
			}
			if !refMatch(c.pat, y) {
				t.Errorf("reference: %q should match %q", c.pat, y)
			}
		}
		for _, n := range c.no {
			if p.matches(n, 0) {
				t.Errorf("%q should not match %q", c.pat, n)
			}
			if ix.lookup(n, 0)[kRead] >= 0 {
				t.Errorf("index: %q should not match %q", c.pat, n)
			}
			if refMatch(c.pat, n) {
				t.Errorf("reference: %q should not match %q", c.pat, n)
			}
		}
	}
}

func TestPathPatternLiteralPrefix(t *testing.T) {
	for pat, n := range map[string]int{"/": 0, "/a/b": 2, "/a/*/c": 1, "/**": 0, "/a\\*b/c": 2, "/proc/thread-self/x": 3} {
		p, err := compilePath(pat)
		if err != nil {
			t.Fatal(err)
		}
		if p.nlit != n {
			t.Errorf("%q: %d literal segments, want %d", pat, p.nlit, n)
		}
	}
}

func TestNameGlob(t *testing.T) {
	cases := []struct {
		pat     string
		yes, no []string
	}{
		{"orders-*", []string{"orders-", "orders-api", "orders-a-b"}, []string{"orders", "xorders-api"}},
		{"billing", []string{"billing"}, []string{"billing2", "Billing"}},
		{"fn-?", []string{"fn-1"}, []string{"fn-12", "fn-"}},
		{"fn-[0-9]", []string{"fn-3"}, []string{"fn-a"}},
		{"*", []string{"a", "anything-at_all"}, nil},
	}
	for _, c := range cases {
		g, err := compileNameGlob(c.pat)
		if err != nil {
			t.Fatal(err)
		}
		for _, y := range c.yes {
			if !g.match(y) {
				t.Errorf("%q should match %q", c.pat, y)
			}
		}
		for _, n := range c.no {
			if g.match(n) {
				t.Errorf("%q should not match %q", c.pat, n)
			}
		}
	}
	for _, bad := range []string{"", "a/b", "a**", "[", "a\\"} {
		if _, err := compileNameGlob(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOverlap(t *testing.T) {
	cases := []struct {
		a, b string
		ok   bool
	}{
		{"/tmp/**", "/tmp/bin/*", true},
		{"/tmp/**", "/tmp", true},
		{"/tmp/**", "/tmpx", false},
		{"/usr/bin/git", "/usr/bin/git", true},
		{"/usr/bin/git", "/usr/bin/gitk", false},
		{"/usr/bin/*", "/usr/bin/git", true},
		{"/usr/bin/*", "/usr/bin/x/y", false},
		{"/usr/**", "/usr/bin/x/y", true},
		{"/a/*/c", "/a/b/*", true},
		{"/a/*/c", "/a/b/d", false},
		{"/a/**/c", "/a/b/**/d", false},
		{"/a/**/c", "/a/b/**", true},
		{"/a/**/x/**", "/**/y/**/z", true},
		{"/**", "/anything/at/all", true},
		{"/a/**", "/b/**", false},
		{"/a/*.sh", "/a/run.*", true},
		{"/a/*.sh", "/a/*.py", false},
		{"/a/x*", "/a/*y", true},
		{"/a/[abc]", "/a/[cde]", true},
		{"/a/[ab]", "/a/[cd]", false},
		{"/a/[!a]", "/a/a", false},
		{"/a/[!a]", "/a/b", true},
		{"/a/[^a-y]", "/a/[x-z]", true},
		{"/a/[^a-z]", "/a/[x-z]", false},
		{"/a/?", "/a/[é]", true},
		{"/a/?", "/a/bc", false},
		{"/a/??", "/a/*c", true},
		{"/a/*", "/a/**", true},
		{"/a/*", "/a", false},
		{"/a/*/**", "/a", false},
		{"/proc/thread-self/comm", "/proc/self/task/*/comm", true},
		{"/proc/thread-self/comm", "/proc/self/task/abc/comm", false},
		{"/proc/thread-self/comm", "/proc/self/comm", false},
		{"/a/x*x", "/a/*y", false},
		{"/a/x*x*x", "/a/*y*", true},
		{"/a/x*x*x", "/a/*xxx*", true},
	}
	for _, c := range cases {
		a, err1 := compilePath(c.a)
		b, err2 := compilePath(c.b)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		for _, pair := range [][2]*pathPattern{{a, b}, {b, a}} {
			w, ok := overlap(pair[0], pair[1])
			if ok != c.ok {
				t.Errorf("overlap(%q, %q) = %v (%q), want %v", pair[0].text, pair[1].text, ok, w, c.ok)
				continue
			}
			if ok && !strings.Contains(c.a+c.b, "thread-self") && (!pair[0].matches(w, 0) || !pair[1].matches(w, 0)) {
				t.Errorf("overlap(%q, %q): witness %q does not match both", pair[0].text, pair[1].text, w)
			}
		}
	}
}
