package rules

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Overlap: do two path patterns match a common path? The answer is exact
// for the glob language, with two conservative simplifications (they can
// only report an overlap that no real path has, never miss one): a "."
// or ".." segment counts as a possible segment, and a /proc/thread-self
// thread id counts as any segment of digits.
//
// The test is a breadth-first search over the product of the two patterns,
// first over segments ("**" may absorb any number of the other pattern's
// segments) and, for a pair of single segments, over the product of their
// token automata. The search keeps parent links so that it can return a
// witness path matched by both, which error messages show.

// charset is a sorted list of disjoint rune ranges.
type charset []runeRange

const maxRune = utf8.MaxRune

// universe: any rune that may appear in a path segment.
// (NUL and '/' never are; surrogate halves cannot be encoded.)
var universe = charset{{1, '/' - 1}, {'/' + 1, 0xD7FF}, {0xE000, maxRune}}

func (t *tok) charset() charset {
	switch t.kind {
	case tokAny, tokStar:
		return universe
	case tokClass:
		rs := append([]runeRange(nil), t.ranges...)
		sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
		var merged charset
		for _, r := range rs {
			if n := len(merged); n > 0 && r.lo <= merged[n-1].hi+1 {
				if r.hi > merged[n-1].hi {
					merged[n-1].hi = r.hi
				}
				continue
			}
			merged = append(merged, r)
		}
		if t.neg {
			var comp charset
			next := rune(0)
			for _, r := range merged {
				if r.lo > next {
					comp = append(comp, runeRange{next, r.lo - 1})
				}
				next = r.hi + 1
			}
			if next <= maxRune {
				comp = append(comp, runeRange{next, maxRune})
			}
			merged = comp
		}
		return intersect(merged, universe)
	}
	return nil
}

func intersect(a, b charset) charset {
	var out charset
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		lo, hi := max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
		if lo <= hi {
			out = append(out, runeRange{lo, hi})
		}
		if a[i].hi < b[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// pick chooses a readable rune from a non-empty charset.
func (c charset) pick() rune {
	for _, pref := range []runeRange{{'a', 'z'}, {'0', '9'}, {'A', 'Z'}, {'!', '~'}} {
		for _, r := range c {
			lo, hi := max(r.lo, pref.lo), min(r.hi, pref.hi)
			if lo <= hi {
				return lo
			}
		}
	}
	return c[0].lo
}

// item is one step of a segment automaton: a star, or one rune of a set.
type item struct {
	star bool
	set  charset
}

func (g *segGlob) items() []item {
	var out []item
	for i := range g.toks {
		t := &g.toks[i]
		switch t.kind {
		case tokLit:
			for _, r := range t.lit {
				out = append(out, item{set: charset{{r, r}}})
			}
		case tokStar:
			out = append(out, item{star: true})
		default:
			out = append(out, item{set: t.charset()})
		}
	}
	return out
}

var tidItems = []item{{set: charset{{'1', '9'}}}, {star: true}}

func (sg *seg) items() []item {
	switch sg.kind {
	case segLit:
		var out []item
		for _, r := range sg.lit {
			out = append(out, item{set: charset{{r, r}}})
		}
		return out
	case segPat:
		return sg.g.items()
	case segTID:
		return tidItems
	}
	return nil
}

// segIntersect returns a non-empty string matched by both item lists.
func segIntersect(a, b []item) (string, bool) {
	type state struct{ p, q, ne int }
	type link struct {
		from state
		r    rune // 0: epsilon
	}
	start := state{0, 0, 0}
	seen := map[state]link{start: {from: state{-1, -1, -1}}}
	queue := []state{start}
	push := func(s state, from state, r rune) {
		if _, ok := seen[s]; !ok {
			seen[s] = link{from, r}
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s.p == len(a) && s.q == len(b) && s.ne == 1 {
			var rs []rune
			for cur := s; cur != start; {
				l := seen[cur]
				if l.r != 0 {
					rs = append(rs, l.r)
				}
				cur = l.from
			}
			var sb strings.Builder
			for i := len(rs) - 1; i >= 0; i-- {
				sb.WriteRune(rs[i])
			}
			return sb.String(), true
		}
		if s.p < len(a) && a[s.p].star {
			push(state{s.p + 1, s.q, s.ne}, s, 0)
		}
		if s.q < len(b) && b[s.q].star {
			push(state{s.p, s.q + 1, s.ne}, s, 0)
		}
		if s.p < len(a) && s.q < len(b) {
			sa, sb := a[s.p].set, b[s.q].set
			if a[s.p].star {
				sa = universe
			}
			if b[s.q].star {
				sb = universe
			}
			if c := intersect(sa, sb); len(c) > 0 {
				np, nq := s.p+1, s.q+1
				if a[s.p].star {
					np = s.p
				}
				if b[s.q].star {
					nq = s.q
				}
				push(state{np, nq, 1}, s, c.pick())
			}
		}
	}
	return "", false
}

var starItems = []item{{star: true}}

// overlap reports whether some path matches both patterns, and one such path.
func overlap(a, b *pathPattern) (string, bool) {
	type state struct{ i, j int }
	type link struct {
		from state
		seg  string
		emit bool
	}
	A, B := a.segs, b.segs
	memo := map[state]struct {
		w  string
		ok bool
	}{}
	both := func(i, j int) (string, bool) {
		k := state{i, j}
		if r, ok := memo[k]; ok {
			return r.w, r.ok
		}
		w, ok := segIntersect(A[i].items(), B[j].items())
		memo[k] = struct {
			w  string
			ok bool
		}{w, ok}
		return w, ok
	}
	start := state{0, 0}
	seen := map[state]link{start: {from: state{-1, -1}}}
	queue := []state{start}
	push := func(s, from state, w string, emit bool) {
		if _, ok := seen[s]; !ok {
			seen[s] = link{from, w, emit}
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s.i == len(A) && s.j == len(B) {
			var segs []string
			for cur := s; cur != start; {
				l := seen[cur]
				if l.emit {
					segs = append(segs, l.seg)
				}
				cur = l.from
			}
			var sb strings.Builder
			for k := len(segs) - 1; k >= 0; k-- {
				sb.WriteByte('/')
				sb.WriteString(segs[k])
			}
			if sb.Len() == 0 {
				return "/", true
			}
			return sb.String(), true
		}
		aAny := s.i < len(A) && A[s.i].kind == segAny
		bAny := s.j < len(B) && B[s.j].kind == segAny
		if aAny {
			push(state{s.i + 1, s.j}, s, "", false)
			if s.j < len(B) && !bAny {
				if w, ok := segIntersect(B[s.j].items(), starItems); ok {
					push(state{s.i, s.j + 1}, s, w, true)
				}
			}
		}
		if bAny {
			push(state{s.i, s.j + 1}, s, "", false)
			if s.i < len(A) && !aAny {
				if w, ok := segIntersect(A[s.i].items(), starItems); ok {
					push(state{s.i + 1, s.j}, s, w, true)
				}
			}
		}
		if s.i < len(A) && s.j < len(B) && !aAny && !bAny {
			if w, ok := both(s.i, s.j); ok {
				push(state{s.i + 1, s.j + 1}, s, w, true)
			}
		}
	}
	return "", false
}
