package rules

import (
	"sort"
	"strings"
)

// Error is one problem found in a rules file. Its text is
// "FILE:LINE: KEY: what is wrong; what to do", for example
//
//	rules.toml:12: filesystem.read[2]: "var/task/**" is not absolute; patterns are absolute paths like "/var/task/**"
//
// Line is 0 when the problem has no line (the file cannot be read, or the
// problem is in AWS_LAMBDA_RUNTIME_API); Key is empty when it concerns no
// key (a TOML syntax error).
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a rules file, in line order. Parse and
// Load return it (never empty) when a file is rejected; its text is one
// Error per line. errors.As finds the individual *Error values.
type Errors []*Error

// maxErrors caps how many problems one load reports.
const maxErrors = 50

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap lets errors.Is and errors.As see each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	if len(es) > maxErrors {
		es = es[:maxErrors]
	}
	return es
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
