package rules

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// listKind names one of the six pattern lists.
type listKind uint8

const (
	kRead listKind = iota
	kWrite
	kDeny
	kExec
	kConnect
	kListen
	nKinds
)

var listNames = [nKinds]string{
	kRead:    "filesystem.read",
	kWrite:   "filesystem.write",
	kDeny:    "filesystem.deny",
	kExec:    "process.exec",
	kConnect: "network.connect",
	kListen:  "network.listen",
}

// rawEntry is one string of a list, with where it was written.
type rawEntry struct {
	text  string
	line  int
	index int // position in its array
}

// rawSection is one [functions."PATTERN"] table.
type rawSection struct {
	pattern string
	line    int
	glob    *segGlob
	lists   [nKinds][]rawEntry
}

// rawFile is a decoded, type-checked rules file (its strings not yet
// validated).
type rawFile struct {
	mode              Mode
	baseline          bool
	logAllowed        bool
	metrics           bool   // metrics: EMF denial counts per invocation
	backend           string // backend: "" (auto) or one of Backends
	dnsMinTTL         int    // network.dns_min_ttl in seconds; -1: not set
	allowWritableExec bool
	runtimeCommand    []string // [runtime] command
	lists             [nKinds][]rawEntry
	sections          []*rawSection
}

// schema nodes: a container (kids/anyKid) or a leaf.
type leafType uint8

const (
	notLeaf leafType = iota
	leafMode
	leafBool
	leafList
	leafCommand // [runtime] command: an array of non-empty strings
	leafBackend // backend: one of Backends
	leafSeconds // network.dns_min_ttl: a whole number of seconds
)

type schemaNode struct {
	leaf   leafType
	kind   listKind // leafList
	kids   map[string]*schemaNode
	anyKid *schemaNode // functions."PATTERN"
	hint   string      // what a container takes, for unknown-key errors
}

var schemaRoot = func() *schemaNode {
	list := func(k listKind) *schemaNode { return &schemaNode{leaf: leafList, kind: k} }
	fs := func() *schemaNode {
		return &schemaNode{hint: "filesystem takes read, write and deny", kids: map[string]*schemaNode{
			"read": list(kRead), "write": list(kWrite), "deny": list(kDeny)}}
	}
	nw := func() *schemaNode {
		return &schemaNode{hint: "network takes connect and listen", kids: map[string]*schemaNode{
			"connect": list(kConnect), "listen": list(kListen)}}
	}
	section := &schemaNode{
		hint: "a function section takes process.exec, filesystem.read, filesystem.write, filesystem.deny, network.connect and network.listen",
		kids: map[string]*schemaNode{
			"process":    {hint: "process in a function section takes exec only", kids: map[string]*schemaNode{"exec": list(kExec)}},
			"filesystem": fs(),
			"network":    nw(),
		}}
	return &schemaNode{
		hint: `the top level takes mode, baseline, log_allowed, metrics, backend, [process], [filesystem], [network], [runtime] and [functions."NAME"]`,
		kids: map[string]*schemaNode{
			"mode":        {leaf: leafMode},
			"baseline":    {leaf: leafBool},
			"log_allowed": {leaf: leafBool},
			"metrics":     {leaf: leafBool},
			"backend":     {leaf: leafBackend},
			"process": {hint: "process takes exec and allow_writable_exec", kids: map[string]*schemaNode{
				"exec": list(kExec), "allow_writable_exec": {leaf: leafBool}}},
			"filesystem": fs(),
			"network": {hint: "network takes connect, listen and dns_min_ttl", kids: map[string]*schemaNode{
				"connect": list(kConnect), "listen": list(kListen), "dns_min_ttl": {leaf: leafSeconds}}},
			"functions": {hint: `functions holds [functions."NAME"] tables`, anyKid: section},
			"runtime": {hint: "runtime takes command", kids: map[string]*schemaNode{
				"command": {leaf: leafCommand}}},
		}}
}()

// fmtKey formats a key path for messages: functions."orders-*".filesystem.write
func fmtKey(k []string) string {
	var b strings.Builder
	for i, p := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		if isBare(p) {
			b.WriteString(p)
		} else {
			b.WriteString(tomlQuote(p))
		}
	}
	return b.String()
}

func isBare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// typeName describes a decoded TOML value for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date/time"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// decoder turns TOML text into a rawFile, collecting errors.
type decoder struct {
	file     string
	pos      *positions
	errs     Errors
	reported map[string]bool
	raw      *rawFile
	sections map[string]*rawSection
}

func (d *decoder) lineOf(k []string) int {
	for n := len(k); n > 0; n-- {
		if l, ok := d.pos.keys[keyID(k[:n])]; ok {
			return l
		}
	}
	return 0
}

func (d *decoder) errorf(line int, key string, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// decode parses and type-checks a rules file.
func decode(file string, data []byte) (*rawFile, Errors) {
	var m map[string]any
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			if line <= 0 {
				line = pe.Line
			}
			if line <= 0 { // some lexer errors carry only an offset
				start := min(max(pe.Position.Start, 0), len(data))
				line = 1 + bytes.Count(data[:start], []byte("\n"))
			}
			return nil, Errors{{File: file, Line: line, Msg: "invalid TOML: " + pe.Message}}
		}
		return nil, Errors{{File: file, Msg: "invalid TOML: " + err.Error()}}
	}
	d := &decoder{
		file:     file,
		pos:      scanPositions(string(data)),
		reported: map[string]bool{},
		raw:      &rawFile{baseline: true, dnsMinTTL: -1},
		sections: map[string]*rawSection{},
	}
	for _, k := range md.Keys() {
		d.key(m, k)
	}
	return d.raw, d.errs
}

// lookup finds the value at key path k.
func lookup(m map[string]any, k []string) (any, bool) {
	var cur any = m
	for _, p := range k {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = t[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// key checks one key (as listed by the TOML library, in document order)
// against the schema and stores its value.
func (d *decoder) key(m map[string]any, k []string) {
	n := schemaRoot
	for i, p := range k {
		if n.leaf != notLeaf {
			// A leaf used as a table (filesystem.read.x = ...).
			d.leafValue(m, k[:i], n)
			return
		}
		child := n.kids[p]
		if child == nil {
			child = n.anyKid
		}
		if child == nil {
			id := keyID(k[:i+1])
			if !d.reported[id] {
				d.reported[id] = true
				d.errorf(d.lineOf(k[:i+1]), fmtKey(k[:i+1]), "unknown key; %s", n.hint)
			}
			return
		}
		if n == schemaRoot.kids["functions"] {
			d.section(k[:i+1])
		}
		n = child
	}
	if n.leaf != notLeaf {
		d.leafValue(m, k, n)
		return
	}
	v, _ := lookup(m, k)
	if _, ok := v.(map[string]any); !ok {
		id := keyID(k)
		if !d.reported[id] {
			d.reported[id] = true
			d.errorf(d.lineOf(k), fmtKey(k), "must be a table, not %s", typeName(v))
		}
	}
}

// section registers functions."PATTERN" on first sight.
func (d *decoder) section(k []string) *rawSection {
	name := k[1]
	if s, ok := d.sections[name]; ok {
		return s
	}
	s := &rawSection{pattern: name, line: d.lineOf(k)}
	d.sections[name] = s
	d.raw.sections = append(d.raw.sections, s)
	g, err := compileNameGlob(name)
	if err != nil {
		msg := fmt.Sprintf("%s %s", tomlQuote(name), err)
		if err == errEmptyPattern {
			msg = `the function name pattern is empty; write a name or a glob like "orders-*"`
		}
		d.errorf(s.line, fmtKey(k), "%s", msg)
	}
	s.glob = g
	return s
}

// leafValue type-checks and stores the value of a leaf key.
func (d *decoder) leafValue(m map[string]any, k []string, n *schemaNode) {
	id := keyID(k)
	if d.reported[id] {
		return
	}
	d.reported[id] = true
	v, _ := lookup(m, k)
	line, key := d.lineOf(k), fmtKey(k)
	switch n.leaf {
	case leafMode:
		s, ok := v.(string)
		if !ok {
			d.errorf(line, key, `must be a string, "enforce" or "audit", not %s`, typeName(v))
			return
		}
		mode, ok := ParseMode(s)
		if !ok {
			d.errorf(line, key, `%s is not a mode; use "enforce" or "audit"`, tomlQuote(s))
			return
		}
		d.raw.mode = mode
	case leafBool:
		b, ok := v.(bool)
		if !ok {
			d.errorf(line, key, "must be true or false, not %s", typeName(v))
			return
		}
		switch k[len(k)-1] {
		case "baseline":
			d.raw.baseline = b
		case "log_allowed":
			d.raw.logAllowed = b
		case "metrics":
			d.raw.metrics = b
		case "allow_writable_exec":
			d.raw.allowWritableExec = b
		}
	case leafBackend:
		b, ok := v.(string)
		if !ok {
			d.errorf(line, key, "must be a string, %s, not %s", backendList(), typeName(v))
			return
		}
		if !validBackend(b) {
			d.errorf(line, key, "%s is not a backend; use %s", tomlQuote(b), backendList())
			return
		}
		d.raw.backend = b
	case leafSeconds:
		n, ok := v.(int64)
		if !ok {
			d.errorf(line, key, "must be a whole number of seconds, like 60, not %s", typeName(v))
			return
		}
		if n < 0 || n > MaxDNSMinTTL {
			d.errorf(line, key, "is %d; it takes 0 to %d seconds (the floor under the TTL of a learned DNS answer)", n, MaxDNSMinTTL)
			return
		}
		d.raw.dnsMinTTL = int(n)
	case leafCommand:
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			d.errorf(line, key, `must be a non-empty array of strings, the runtime's command and arguments, like ["/var/task/handler"], not %s`, typeName(v))
			return
		}
		lines := d.pos.elems[id]
		cmd := make([]string, 0, len(arr))
		bad := false
		for i, e := range arr {
			eline := line
			if i < len(lines) {
				eline = lines[i]
			}
			s, ok := e.(string)
			switch {
			case !ok:
				d.errorf(eline, fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", typeName(e))
				bad = true
			case s == "" || strings.ContainsRune(s, 0):
				d.errorf(eline, fmt.Sprintf("%s[%d]", key, i), "must be a non-empty string without NUL bytes")
				bad = true
			}
			cmd = append(cmd, s)
		}
		if !bad {
			d.raw.runtimeCommand = cmd
		}
	case leafList:
		arr, ok := v.([]any)
		if !ok {
			d.errorf(line, key, `must be an array of strings, like ["..."], not %s`, typeName(v))
			return
		}
		lines := d.pos.elems[id]
		var entries []rawEntry
		for i, e := range arr {
			eline := line
			if i < len(lines) {
				eline = lines[i]
			}
			s, ok := e.(string)
			if !ok {
				d.errorf(eline, fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", typeName(e))
				continue
			}
			entries = append(entries, rawEntry{text: s, line: eline, index: i})
		}
		if k[0] == "functions" {
			s := d.section(k[:2])
			s.lists[n.kind] = append(s.lists[n.kind], entries...)
		} else {
			d.raw.lists[n.kind] = append(d.raw.lists[n.kind], entries...)
		}
	}
}
