package rules

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The TOML library reports key positions only in its own errors, so this
// small scanner walks the (already successfully parsed) source again and
// records the line of every key and of every element of every array. It
// understands exactly as much TOML as it needs to stay in step: comments,
// the four string forms, table and array-of-table headers, dotted and
// quoted keys, arrays (over any number of lines), inline tables and bare
// values (including "date time" values with a space).
//
// It never fails: on input it does not understand it makes progress one
// byte at a time, and a key it cannot find simply has no line.

// positions holds the lines found by scanPositions.
type positions struct {
	keys  map[string]int   // keyID(path) -> line of the key
	elems map[string][]int // keyID(path) -> line of each array element
}

// keyID encodes a key path unambiguously.
func keyID(k []string) string {
	var b strings.Builder
	for _, p := range k {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

type scanner struct {
	s    string
	i    int
	line int
	pos  *positions
}

func scanPositions(src string) *positions {
	sc := &scanner{s: src, line: 1, pos: &positions{keys: map[string]int{}, elems: map[string][]int{}}}
	// Skip a byte order mark, as the TOML library does.
	switch {
	case strings.HasPrefix(src, "\xff\xfe"), strings.HasPrefix(src, "\xfe\xff"):
		sc.i = 2
	case strings.HasPrefix(src, "\xef\xbb\xbf"):
		sc.i = 3
	}
	var ctx []string
	for sc.i < len(sc.s) {
		start := sc.i
		sc.skipSpaceNL()
		if sc.i >= len(sc.s) {
			break
		}
		if sc.s[sc.i] == '[' {
			double := sc.i+1 < len(sc.s) && sc.s[sc.i+1] == '['
			sc.i++
			if double {
				sc.i++
			}
			line := sc.line
			k := sc.key()
			sc.record(k, line)
			ctx = k
			sc.skipSpace()
			if sc.i < len(sc.s) && sc.s[sc.i] == ']' {
				sc.i++
			}
			if double && sc.i < len(sc.s) && sc.s[sc.i] == ']' {
				sc.i++
			}
		} else {
			line := sc.line
			k := sc.key()
			full := concat(ctx, k)
			sc.record(full, line)
			sc.skipSpace()
			if sc.i < len(sc.s) && sc.s[sc.i] == '=' {
				sc.i++
			}
			sc.skipSpace()
			sc.value(full)
		}
		if sc.i == start {
			sc.advance()
		}
	}
	return sc.pos
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// record notes the line of k and of each of its prefixes, first seen wins.
func (sc *scanner) record(k []string, line int) {
	for n := 1; n <= len(k); n++ {
		id := keyID(k[:n])
		if _, ok := sc.pos.keys[id]; !ok {
			sc.pos.keys[id] = line
		}
	}
}

func (sc *scanner) advance() {
	if sc.s[sc.i] == '\n' {
		sc.line++
	}
	sc.i++
}

func (sc *scanner) skipSpace() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// skipSpaceNL skips blanks, newlines and comments.
func (sc *scanner) skipSpaceNL() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\r':
			sc.i++
		case '\n':
			sc.line++
			sc.i++
		case '#':
			for sc.i < len(sc.s) && sc.s[sc.i] != '\n' {
				sc.i++
			}
		default:
			return
		}
	}
}

// key reads a (possibly dotted, possibly quoted) key.
func (sc *scanner) key() []string {
	var k []string
	for sc.i < len(sc.s) {
		sc.skipSpace()
		if sc.i >= len(sc.s) {
			break
		}
		switch sc.s[sc.i] {
		case '"':
			start := sc.i + 1
			sc.basicString()
			end := sc.i - 1
			if end < start {
				end = start
			}
			k = append(k, unescapeBasic(sc.s[start:end]))
		case '\'':
			start := sc.i + 1
			sc.literalString()
			end := sc.i - 1
			if end < start {
				end = start
			}
			k = append(k, sc.s[start:end])
		default:
			start := sc.i
			for sc.i < len(sc.s) && !strings.ContainsRune(" \t\r\n.=[]#,{}\"'", rune(sc.s[sc.i])) {
				sc.i++
			}
			if sc.i == start {
				return k
			}
			k = append(k, sc.s[start:sc.i])
		}
		sc.skipSpace()
		if sc.i < len(sc.s) && sc.s[sc.i] == '.' {
			sc.i++
			continue
		}
		break
	}
	return k
}

// value skips one value; for arrays under a known key it records the line
// of each element, and for inline tables the lines of their keys.
func (sc *scanner) value(k []string) {
	if sc.i >= len(sc.s) {
		return
	}
	switch sc.s[sc.i] {
	case '"':
		if strings.HasPrefix(sc.s[sc.i:], `"""`) {
			sc.multiString('"')
		} else {
			sc.basicString()
		}
	case '\'':
		if strings.HasPrefix(sc.s[sc.i:], `'''`) {
			sc.multiString('\'')
		} else {
			sc.literalString()
		}
	case '[':
		sc.i++
		var lines []int
		for sc.i < len(sc.s) {
			sc.skipSpaceNL()
			if sc.i >= len(sc.s) {
				break
			}
			if sc.s[sc.i] == ']' {
				sc.i++
				break
			}
			start := sc.i
			lines = append(lines, sc.line)
			if sc.s[sc.i] == '{' {
				sc.value(k) // the library names keys of tables in arrays after the array
			} else {
				sc.value(nil)
			}
			sc.skipSpaceNL()
			if sc.i < len(sc.s) && sc.s[sc.i] == ',' {
				sc.i++
			}
			if sc.i == start {
				sc.advance()
			}
		}
		if k != nil {
			id := keyID(k)
			if _, ok := sc.pos.elems[id]; !ok {
				sc.pos.elems[id] = lines
			}
		}
	case '{':
		sc.i++
		for sc.i < len(sc.s) {
			sc.skipSpaceNL()
			if sc.i >= len(sc.s) {
				break
			}
			if sc.s[sc.i] == '}' {
				sc.i++
				break
			}
			start := sc.i
			line := sc.line
			kk := sc.key()
			var full []string
			if k != nil {
				full = concat(k, kk)
				sc.record(full, line)
			}
			sc.skipSpace()
			if sc.i < len(sc.s) && sc.s[sc.i] == '=' {
				sc.i++
			}
			sc.skipSpace()
			sc.value(full)
			sc.skipSpaceNL()
			if sc.i < len(sc.s) && sc.s[sc.i] == ',' {
				sc.i++
			}
			if sc.i == start {
				sc.advance()
			}
		}
	default:
		start := sc.i
		for sc.i < len(sc.s) && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
			sc.i++
		}
		// "1979-05-27 07:32:00": a date, a space, a time.
		if tok := sc.s[start:sc.i]; isDate(tok) && sc.i+1 < len(sc.s) && sc.s[sc.i] == ' ' && isDigit(sc.s[sc.i+1]) {
			sc.i++
			for sc.i < len(sc.s) && !strings.ContainsRune(" \t\r\n,]}#", rune(sc.s[sc.i])) {
				sc.i++
			}
		}
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// basicString skips "...", starting at the opening quote.
func (sc *scanner) basicString() {
	sc.i++
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '\\':
			sc.i += 2
			continue
		case '"':
			sc.i++
			return
		case '\n':
			return // not valid TOML; stop at the line end
		}
		sc.i++
	}
	if sc.i > len(sc.s) {
		sc.i = len(sc.s)
	}
}

// literalString skips '...', starting at the opening quote.
func (sc *scanner) literalString() {
	sc.i++
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case '\'':
			sc.i++
			return
		case '\n':
			return
		}
		sc.i++
	}
}

// multiString skips """...""" or ”'...”', counting lines. The closing
// delimiter may be followed by up to two more quotes that belong to the
// string.
func (sc *scanner) multiString(q byte) {
	delim := strings.Repeat(string(q), 3)
	sc.i += 3
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		if c == '\\' && q == '"' {
			if sc.i+1 < len(sc.s) && sc.s[sc.i+1] == '\n' {
				sc.line++
			}
			sc.i += 2
			continue
		}
		if strings.HasPrefix(sc.s[sc.i:], delim) {
			sc.i += 3
			for n := 0; n < 2 && sc.i < len(sc.s) && sc.s[sc.i] == q; n++ {
				sc.i++
			}
			return
		}
		if c == '\n' {
			sc.line++
		}
		sc.i++
	}
	if sc.i > len(sc.s) {
		sc.i = len(sc.s)
	}
}

// unescapeBasic decodes the escapes of a TOML basic string (1.0 and 1.1).
func unescapeBasic(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"':
			b.WriteByte('"')
		case '\\':
			b.WriteByte('\\')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i]]
			if i+1+n <= len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(s[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
