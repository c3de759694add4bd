package rules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The seed corpora live under fixtures/fuzz/ (and fixtures/rules/), and are
// added with f.Add, so a plain `go test` runs every seed.

func parseSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, g := range []string{"../fixtures/fuzz/parse/*", "../fixtures/rules/*.toml", "../rules.example.toml"} {
		files, _ := filepath.Glob(g)
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, data)
		}
	}
	if len(out) == 0 {
		f.Fatal("no parse seeds")
	}
	return out
}

// lineSeeds reads a seed file of whitespace-separated Go-quoted fields.
func lineSeeds(f *testing.F, name string, nfields int) [][]string {
	fh, err := os.Open(name)
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	var out [][]string
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := make([]string, nfields)
		ptrs := make([]any, nfields)
		for i := range fields {
			ptrs[i] = &fields[i]
		}
		if _, err := fmt.Sscanf(line, strings.TrimSpace(strings.Repeat("%q ", nfields)), ptrs...); err != nil {
			f.Fatalf("%s:%d: %v", name, n, err)
		}
		out = append(out, fields)
	}
	if len(out) == 0 {
		f.Fatalf("%s: no seeds", name)
	}
	return out
}

// FuzzParse: Parse never panics; it either rejects the input with errors
// that carry a line, or gives a policy whose WriteTOML output re-parses to
// an equivalent policy. The position scanner finds every key the TOML
// library reports.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds(f) {
		f.Add(s, "orders-api")
	}
	f.Fuzz(func(t *testing.T, data []byte, fn string) {
		p, err := Parse("f.toml", data, Options{Function: fn, RuntimeAPI: "127.0.0.1:9001"})
		var m map[string]any
		if md, terr := toml.Decode(string(data), &m); terr == nil {
			pos := scanPositions(string(data))
			for _, k := range md.Keys() {
				if pos.keys[keyID(k)] == 0 {
					t.Fatalf("scanner has no line for key %q", k)
				}
				if v, ok := lookup(m, k); ok {
					if arr, ok := v.([]any); ok && len(pos.elems[keyID(k)]) != len(arr) {
						t.Fatalf("scanner found %d elements for %q, the library %d", len(pos.elems[keyID(k)]), k, len(arr))
					}
				}
			}
		}
		if err != nil {
			if p != nil {
				t.Fatal("policy and error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			for _, e := range es {
				if e.File == "f.toml" && e.Line <= 0 {
					t.Fatalf("error without a line: %v", e)
				}
			}
			return
		}
		var buf bytes.Buffer
		if err := p.WriteTOML(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := Parse("g.toml", buf.Bytes(), Options{Function: fn})
		if err != nil {
			t.Fatalf("WriteTOML output does not re-parse: %v\n%s", err, buf.String())
		}
		if ok, why := equivalent(p, q); !ok {
			t.Fatalf("not equivalent: %s\n%s", why, buf.String())
		}
	})
}

// FuzzPathMatch: the compiled matcher (directly and through the index)
// agrees with the reference implementation; overlap is sound (a path
// matched by both patterns means they overlap) and its witness is matched
// by both.
func FuzzPathMatch(f *testing.F) {
	for _, s := range lineSeeds(f, "../fixtures/fuzz/path/seeds.txt", 3) {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pat1, pat2, name string) {
		compileNameGlob(pat1) // must not panic
		p1, err := compilePath(pat1)
		if err != nil {
			return
		}
		thread := strings.HasPrefix(pat1, "/proc/thread-self")
		if CleanPath(name) {
			got := p1.matches(name, 0)
			if !thread {
				if want := refMatch(pat1, name); got != want {
					t.Fatalf("match(%q, %q) = %v, reference says %v", pat1, name, got, want)
				}
			}
			var ix pathIndex
			ix.add(p1, 0, kRead)
			if (ix.lookup(name, 0)[kRead] == 0) != got {
				t.Fatalf("index disagrees on %q %q", pat1, name)
			}
		}
		p2, err := compilePath(pat2)
		if err != nil {
			return
		}
		w, ok := overlap(p1, p2)
		w2, ok2 := overlap(p2, p1)
		if ok != ok2 {
			t.Fatalf("overlap not symmetric: %q %q", pat1, pat2)
		}
		if CleanPath(name) && p1.matches(name, 0) && p2.matches(name, 0) && !ok {
			t.Fatalf("overlap(%q, %q) = false, but both match %q", pat1, pat2, name)
		}
		if ok && !thread && !strings.HasPrefix(pat2, "/proc/thread-self") {
			for _, wit := range []string{w, w2} {
				if CleanPath(wit) && (!p1.matches(wit, 0) || !p2.matches(wit, 0)) {
					t.Fatalf("overlap(%q, %q) witness %q is not matched by both", pat1, pat2, wit)
				}
			}
		}
	})
}

func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

// FuzzAddrMatch: an address rule matches exactly when netip.Prefix.Contains
// says so (after the IPv4-in-IPv6 canonicalization), and an IPv4 address
// is judged the same in its IPv4-mapped, IPv4-compatible and NAT64 forms.
func FuzzAddrMatch(f *testing.F) {
	for _, s := range lineSeeds(f, "../fixtures/fuzz/addr/seeds.txt", 5) {
		var bits, port, rport int
		fmt.Sscan(s[1], &bits)
		fmt.Sscan(s[3], &port)
		fmt.Sscan(s[4], &rport)
		f.Add(addrBytes(netip.MustParseAddr(s[0])), bits, addrBytes(netip.MustParseAddr(s[2])), uint16(port), uint16(rport))
	}
	f.Fuzz(func(t *testing.T, ruleIP []byte, bits int, queryIP []byte, port, rport uint16) {
		ra, ok1 := netip.AddrFromSlice(ruleIP)
		qa, ok2 := netip.AddrFromSlice(queryIP)
		if !ok1 || !ok2 {
			return
		}
		if bits < 0 {
			bits = -bits
		}
		bits %= ra.BitLen() + 1
		pfx := netip.PrefixFrom(ra, bits).Masked()
		text := pfx.String()
		if ra.Is6() {
			text = "[" + text + "]"
		}
		if rport != 0 {
			text += fmt.Sprintf(":%d", rport)
		}
		r, err := parseNetEntry(text, false)
		if err != nil {
			if !(ra.Is6() && compatPfx.Contains(ra) && bits >= 96) {
				t.Fatalf("parseNetEntry(%q): %v", text, err)
			}
			return
		}
		p := mustParse(t, fmt.Sprintf("baseline = false\nnetwork.connect = [%q]\n", text), Options{})
		judge := func(a netip.Addr) bool { return p.Connect(netip.AddrPortFrom(a, port)).Allow }

		cq := CanonAddr(qa)
		want := r.prefix.Contains(cq) && (rport == 0 || rport == port)
		if got := judge(qa); got != want {
			t.Fatalf("rule %q (%v), query %v:%d (canon %v): got %v want %v", text, r.prefix, qa, port, cq, got, want)
		}
		// A rule written in IPv4 is the same as its mapped IPv6 form.
		if pfx.Addr().Is4() && rport != 0 {
			m := netip.PrefixFrom(netip.AddrFrom16(pfx.Addr().As16()), pfx.Bits()+96)
			r2, err := parseNetEntry(fmt.Sprintf("[%s]:%d", m, rport), false)
			if err != nil || r2 != r {
				t.Fatalf("mapped rule %v: %+v %v, want %+v", m, r2, err, r)
			}
		}
		// An IPv4 query is judged alike in every IPv6 form that embeds it.
		if cq.Is4() {
			b := cq.As4()
			forms := []netip.Addr{
				netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
				netip.AddrFrom16([16]byte{0: 0, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}),
			}
			if !(b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] <= 1) {
				forms = append(forms, netip.AddrFrom16([16]byte{12: b[0], 13: b[1], 14: b[2], 15: b[3]}))
			}
			for _, fa := range forms {
				if judge(fa) != want {
					t.Fatalf("%v and %v judged differently under %q", cq, fa, text)
				}
			}
		}
	})
}
