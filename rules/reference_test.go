package rules

import (
	"path"
	"strings"
)

// refMatch is a simple, independent reference for the compiled path
// matcher: path.Match per segment ('!' negation rewritten to '^'), and
// plain recursion for "**". It handles /proc/thread-self only as text.
func refMatch(pattern, name string) bool {
	ps := strings.Split(pattern, "/")[1:]
	ns := strings.Split(name, "/")[1:]
	if pattern == "/" {
		ps = nil
	}
	if name == "/" {
		ns = nil
	}
	memo := map[[2]int]bool{}
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(ps):
			r = j == len(ns)
		case ps[i] == "**":
			for n := j; n <= len(ns) && !r; n++ {
				r = rec(i+1, n)
			}
		case j == len(ns):
			r = false
		default:
			ok, err := path.Match(bangToCaret(ps[i]), ns[j])
			r = err == nil && ok && rec(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return rec(0, 0)
}

// bangToCaret rewrites an unescaped "[!" to "[^" (path.Match's negation).
func bangToCaret(p string) string {
	b := []byte(p)
	inClass := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++
		case !inClass && b[i] == '[':
			inClass = true
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
			}
		case inClass && b[i] == ']':
			inClass = false
		}
	}
	return string(b)
}
