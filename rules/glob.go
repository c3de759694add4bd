package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file holds the glob engine: a segment-aware compiled matcher for path
// patterns, a single-segment matcher (also used for function names), and the
// intersection test used to reject exec patterns that overlap write patterns.
//
// Syntax, per segment (a segment is the text between two slashes):
//
//	*        any run of characters (possibly empty) within the segment
//	?        exactly one character (a UTF-8 rune, or one byte of invalid UTF-8)
//	[abc]    one character of the class; ranges a-z; [!...] or [^...] negates
//	\c       the character c itself
//	**       (a whole segment only) zero or more segments
//
// Class syntax is that of Go's path.Match, plus '!' as a synonym of '^':
// '-' and ']' inside a class must be escaped with '\'.

// runeRange is an inclusive range of runes.
type runeRange struct{ lo, hi rune }

type tokKind uint8

const (
	tokLit   tokKind = iota // a run of literal text (lit)
	tokAny                  // ?
	tokStar                 // *
	tokClass                // [...]
)

type tok struct {
	kind   tokKind
	neg    bool        // tokClass: negated
	lit    string      // tokLit
	ranges []runeRange // tokClass
}

// segGlob is one compiled segment glob.
type segGlob struct {
	toks []tok
}

type segKind uint8

const (
	segLit segKind = iota // literal segment: lit
	segPat                // glob segment: g
	segAny                // **
	segTID                // the caller's thread id (from /proc/thread-self)
)

type seg struct {
	kind segKind
	lit  string
	g    *segGlob
}

// pathPattern is a compiled absolute path pattern.
type pathPattern struct {
	text string // as written
	segs []seg
	nlit int // number of leading literal segments
}

var errEmptyPattern = errors.New("is empty")

// compileSegGlob compiles one segment of glob text (no '/').
// It rejects "**" (a whole-segment "**" is handled by compilePath before
// this is called) and malformed classes or escapes.
func compileSegGlob(s string) (*segGlob, error) {
	g := &segGlob{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			g.toks = append(g.toks, tok{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case '*':
			if i+1 < len(s) && s[i+1] == '*' {
				return nil, errors.New(`has "**" inside a segment; "**" must be a whole path segment (like "/a/**/b"); use "*" within a segment`)
			}
			flush()
			g.toks = append(g.toks, tok{kind: tokStar})
			i++
		case '?':
			flush()
			g.toks = append(g.toks, tok{kind: tokAny})
			i++
		case '[':
			flush()
			t, n, err := parseClass(s[i:])
			if err != nil {
				return nil, err
			}
			g.toks = append(g.toks, t)
			i += n
		case '\\':
			if i+1 >= len(s) {
				return nil, errors.New(`ends in a lone "\"; write "\\" for a backslash`)
			}
			_, w := utf8.DecodeRuneInString(s[i+1:])
			lit.WriteString(s[i+1 : i+1+w])
			i += 1 + w
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return g, nil
}

// parseClass parses a class starting at s[0] == '['; it returns the token and
// the number of bytes consumed.
func parseClass(s string) (tok, int, error) {
	bad := func(why string) (tok, int, error) {
		return tok{}, 0, fmt.Errorf("has a bad character class: %s", why)
	}
	t := tok{kind: tokClass}
	i := 1
	if i < len(s) && (s[i] == '^' || s[i] == '!') {
		t.neg = true
		i++
	}
	getc := func() (rune, error) {
		if i >= len(s) {
			return 0, errors.New(`missing "]"`)
		}
		if s[i] == '-' || s[i] == ']' {
			return 0, errors.New(`"-" and "]" inside a class must be escaped with "\"`)
		}
		if s[i] == '\\' {
			i++
			if i >= len(s) {
				return 0, errors.New(`missing "]"`)
			}
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			return 0, errors.New("invalid UTF-8")
		}
		i += w
		return r, nil
	}
	for {
		if i < len(s) && s[i] == ']' && len(t.ranges) > 0 {
			i++
			return t, i, nil
		}
		lo, err := getc()
		if err != nil {
			return bad(err.Error())
		}
		hi := lo
		if i < len(s) && s[i] == '-' {
			i++
			if hi, err = getc(); err != nil {
				return bad(err.Error())
			}
			if hi < lo {
				return bad(fmt.Sprintf("range %q-%q is reversed", lo, hi))
			}
		}
		t.ranges = append(t.ranges, runeRange{lo, hi})
	}
}

// hasMeta reports whether s contains glob syntax (so is not a plain literal).
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// compilePath compiles an absolute path pattern. The error says what is
// wrong (the caller adds file, line and key).
func compilePath(text string) (*pathPattern, error) {
	if text == "" {
		return nil, errEmptyPattern
	}
	if strings.IndexByte(text, 0) >= 0 {
		return nil, errors.New("contains a NUL byte")
	}
	if !utf8.ValidString(text) {
		return nil, errors.New("is not valid UTF-8")
	}
	if text[0] != '/' {
		return nil, fmt.Errorf("is not absolute; patterns are absolute paths like %q", "/"+strings.TrimLeft(text, "./"))
	}
	p := &pathPattern{text: text}
	if text == "/" {
		return p, nil
	}
	if strings.HasSuffix(text, "/") {
		return nil, fmt.Errorf(`ends in "/"; write %q for the directory itself or %q for it and everything below`,
			strings.TrimRight(text, "/"), strings.TrimRight(text, "/")+"/**")
	}
	parts := strings.Split(text[1:], "/")
	for _, part := range parts {
		switch part {
		case "":
			return nil, errors.New(`contains "//"; write a single "/"`)
		case ".", "..":
			return nil, fmt.Errorf("contains a %q segment; write the resolved path (patterns match paths after symlinks and \"..\" are resolved)", part)
		case "**":
			p.segs = append(p.segs, seg{kind: segAny})
			continue
		}
		if !hasMeta(part) {
			p.segs = append(p.segs, seg{kind: segLit, lit: part})
			continue
		}
		g, err := compileSegGlob(part)
		if err != nil {
			return nil, err
		}
		// An escaped literal (like "a\*b") is still a literal segment.
		if len(g.toks) == 1 && g.toks[0].kind == tokLit {
			lit := g.toks[0].lit
			if lit == "." || lit == ".." {
				return nil, fmt.Errorf("contains a %q segment; write the resolved path", lit)
			}
			p.segs = append(p.segs, seg{kind: segLit, lit: lit})
			continue
		}
		p.segs = append(p.segs, seg{kind: segPat, g: g})
	}
	// /proc/thread-self/X means /proc/self/task/<caller's tid>/X.
	if len(p.segs) >= 2 && p.segs[0].kind == segLit && p.segs[0].lit == "proc" &&
		p.segs[1].kind == segLit && p.segs[1].lit == "thread-self" {
		segs := make([]seg, 0, len(p.segs)+2)
		segs = append(segs, p.segs[0], seg{kind: segLit, lit: "self"}, seg{kind: segLit, lit: "task"}, seg{kind: segTID})
		p.segs = append(segs, p.segs[2:]...)
	}
	for p.nlit < len(p.segs) && p.segs[p.nlit].kind == segLit {
		p.nlit++
	}
	return p, nil
}

// compileNameGlob compiles a single-segment glob (a function name pattern).
func compileNameGlob(text string) (*segGlob, error) {
	if text == "" {
		return nil, errEmptyPattern
	}
	if strings.ContainsAny(text, "/\x00") {
		return nil, errors.New(`contains "/" or NUL, which a function name cannot`)
	}
	if strings.Contains(text, "**") {
		return nil, errors.New(`has "**"; a function name has no segments, use "*"`)
	}
	return compileSegGlob(text)
}

// ---- matching ----

// match reports whether the segment s (non-empty, no '/') matches g.
func (g *segGlob) match(s string) bool {
	toks := g.toks
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) && toks[ti].kind == tokStar {
			starTi, starSi = ti, si
			ti++
			continue
		}
		if ti == len(toks) && si == len(s) {
			return true
		}
		if ti < len(toks) && si < len(s) {
			t := &toks[ti]
			switch t.kind {
			case tokLit:
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					ti++
					continue
				}
			case tokAny:
				_, w := utf8.DecodeRuneInString(s[si:])
				si += w
				ti++
				continue
			case tokClass:
				r, w := utf8.DecodeRuneInString(s[si:])
				if t.classMatch(r) {
					si += w
					ti++
					continue
				}
			}
		}
		// Mismatch: let the last star absorb one more rune.
		if starTi < 0 || starSi >= len(s) {
			return false
		}
		_, w := utf8.DecodeRuneInString(s[starSi:])
		starSi += w
		ti, si = starTi+1, starSi
	}
}

func (t *tok) classMatch(r rune) bool {
	in := false
	for _, rr := range t.ranges {
		if rr.lo <= r && r <= rr.hi {
			in = true
			break
		}
	}
	return in != t.neg
}

// matchSeg matches one path segment against a pattern segment.
func (sg *seg) matchSeg(s string, tid int) bool {
	switch sg.kind {
	case segLit:
		return s == sg.lit
	case segPat:
		return sg.g.match(s)
	case segTID:
		n, ok := atoiPos(s)
		return ok && tid > 0 && n == tid
	}
	return false
}

// matchRest matches segs against rest, which is "" (no segments) or a run of
// "/seg" elements of a clean path. A "**" segment matches zero or more
// segments; the classic last-star backtracking keeps it linear per star.
func matchRest(segs []seg, rest string, tid int) bool {
	pi, si := 0, 0
	starPi, starSi := -1, 0
	for {
		if pi < len(segs) && segs[pi].kind == segAny {
			if pi == len(segs)-1 {
				return true // a trailing ** matches whatever remains
			}
			starPi, starSi = pi, si
			pi++
			continue
		}
		if si == len(rest) {
			if pi == len(segs) {
				return true
			}
			return false // remaining pattern needs segments; ** cannot help
		}
		end := nextSeg(rest, si)
		if pi < len(segs) && segs[pi].matchSeg(rest[si+1:end], tid) {
			pi++
			si = end
			continue
		}
		if starPi < 0 || starSi >= len(rest) {
			return false
		}
		starSi = nextSeg(rest, starSi)
		pi, si = starPi+1, starSi
	}
}

// nextSeg returns the end of the segment that starts at rest[si] == '/'.
func nextSeg(rest string, si int) int {
	if j := strings.IndexByte(rest[si+1:], '/'); j >= 0 {
		return si + 1 + j
	}
	return len(rest)
}

// matches reports whether the clean absolute path matches the pattern.
func (p *pathPattern) matches(path string, tid int) bool {
	if path == "/" {
		return matchRest(p.segs, "", tid)
	}
	return matchRest(p.segs, path, tid)
}

// atoiPos parses a positive decimal without leading zeros.
func atoiPos(s string) (int, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
