package rules

import (
	"testing"

	"github.com/BurntSushi/toml"
)

const scanSrc = "\xef\xbb\xbf# a comment with [brackets] and \"quotes\" and = signs\r\n" + `mode = "audit" # trailing comment
'log_allowed' = false
date = 1979-05-27 07:32:00Z
multi = """
line "with" quotes ""
and [brackets] and # hash
"""""
lit = '''
x ' '' y
'''
[filesystem]
read = [
  # a comment line
  "/var/task/**",   # line 15

  '/opt/**', "/a\"b]#c",
  """/multi""",
  ]
write = ["/tmp/**", [ "nested", ["deeper"] ], {a = 1}, 3, 1979-05-27 07:32:00]

[ functions . "orders-*" ]
filesystem.write = [
  "/tmp/orders/**",
]
network = { connect = [
  "a.com",
  "b.com"], listen = ["127.0.0.1:80"] }
"quoted.key".x = 1
[functions."a\u0062c".process]
exec = []
[[arr]]
x = 1
[[arr]]
x = [1,
 2]
`

func TestScanPositions(t *testing.T) {
	pos := scanPositions(scanSrc)
	keys := []struct {
		k    []string
		line int
	}{
		{[]string{"mode"}, 2},
		{[]string{"log_allowed"}, 3},
		{[]string{"date"}, 4},
		{[]string{"multi"}, 5},
		{[]string{"lit"}, 9},
		{[]string{"filesystem"}, 12},
		{[]string{"filesystem", "read"}, 13},
		{[]string{"filesystem", "write"}, 20},
		{[]string{"functions", "orders-*"}, 22},
		{[]string{"functions", "orders-*", "filesystem", "write"}, 23},
		{[]string{"functions", "orders-*", "network"}, 26},
		{[]string{"functions", "orders-*", "network", "connect"}, 26},
		{[]string{"functions", "orders-*", "network", "listen"}, 28},
		{[]string{"functions", "orders-*", "quoted.key", "x"}, 29},
		{[]string{"functions", "abc", "process"}, 30},
		{[]string{"functions", "abc", "process", "exec"}, 31},
		{[]string{"arr"}, 32},
		{[]string{"arr", "x"}, 33},
	}
	for _, c := range keys {
		if got := pos.keys[keyID(c.k)]; got != c.line {
			t.Errorf("key %q: line %d, want %d", c.k, got, c.line)
		}
	}
	elems := []struct {
		k     []string
		lines []int
	}{
		{[]string{"filesystem", "read"}, []int{15, 17, 17, 18}},
		{[]string{"filesystem", "write"}, []int{20, 20, 20, 20, 20}},
		{[]string{"functions", "orders-*", "filesystem", "write"}, []int{24}},
		{[]string{"functions", "orders-*", "network", "connect"}, []int{27, 28}},
		{[]string{"functions", "orders-*", "network", "listen"}, []int{28}},
		{[]string{"functions", "abc", "process", "exec"}, nil},
	}
	for _, c := range elems {
		got := pos.elems[keyID(c.k)]
		if len(got) != len(c.lines) {
			t.Errorf("elems %q: %v, want %v", c.k, got, c.lines)
			continue
		}
		for i := range got {
			if got[i] != c.lines[i] {
				t.Errorf("elems %q: %v, want %v", c.k, got, c.lines)
				break
			}
		}
	}
	// Every key the TOML library reports has a line.
	var m map[string]any
	md, err := toml.Decode(scanSrc, &m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range md.Keys() {
		if pos.keys[keyID(k)] == 0 {
			t.Errorf("library key %q has no line", k)
		}
	}
}

// TestSourceLinesThroughParse: the Source of each rule is the line of its
// element, in multi-line arrays with comments and blank lines.
func TestSourceLinesThroughParse(t *testing.T) {
	src := `baseline = false
[filesystem]
read = [
  # first
  "/a",

  "/b", "/c",
  # "/commented-out",
  '/d' # after
]
deny = ["/e"]
`
	p := mustParse(t, src, Options{})
	for path, want := range map[string]string{"/a": "rules.toml:5", "/b": "rules.toml:7", "/c": "rules.toml:7", "/d": "rules.toml:9", "/e": "rules.toml:11"} {
		if d := p.Open(path, Read, Caller{}); d.Source != want {
			t.Errorf("%s: source %q, want %q (%+v)", path, d.Source, want, d)
		}
	}
}

func TestUnescapeBasic(t *testing.T) {
	for in, want := range map[string]string{`a\u0062c`: "abc", `\"q\"`: `"q"`, `a\\b`: `a\b`, `\U0001F600`: "😀", `\x41`: "A", `\t\n`: "\t\n", `\q`: `\q`} {
		if got := unescapeBasic(in); got != want {
			t.Errorf("unescapeBasic(%q) = %q, want %q", in, got, want)
		}
	}
}
