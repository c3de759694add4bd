package rules

import (
	"errors"
	"strings"
	"testing"
)

// TestParseErrors checks every rejection path and its exact message:
// file, line, key, what is wrong and what to do.
func TestParseErrors(t *testing.T) {
	opt := Options{}
	cases := []struct {
		name, src, want string
	}{
		// Syntax.
		{"syntax", "mode = \n", `rules.toml:1: invalid TOML: `},
		{"duplicate key", "mode = \"audit\"\nmode = \"audit\"\n", `rules.toml:2: invalid TOML: `},
		// Unknown keys, at every level.
		{"unknown top", "\n\nmoed = \"audit\"\n", `rules.toml:3: moed: unknown key; the top level takes mode, baseline, log_allowed, metrics, backend, [process], [filesystem], [network], [runtime] and [functions."NAME"]`},
		{"unknown fs", "[filesystem]\nreed = [\"/a\"]\n", `rules.toml:2: filesystem.reed: unknown key; filesystem takes read, write and deny`},
		{"unknown fs dotted", "filesystem.exec = [\"/a\"]\n", `rules.toml:1: filesystem.exec: unknown key; filesystem takes read, write and deny`},
		{"unknown process", "[process]\nexecs = []\n", `rules.toml:2: process.execs: unknown key; process takes exec and allow_writable_exec`},
		{"unknown network", "[network]\nbind = []\n", `rules.toml:2: network.bind: unknown key; network takes connect, listen and dns_min_ttl`},
		{"unknown table", "[files]\nread = []\n", `rules.toml:1: files: unknown key; the top level takes`},
		{"unknown in section", "[functions.\"a\"]\nmode = \"audit\"\n", `rules.toml:2: functions.a.mode: unknown key; a function section takes process.exec, filesystem.read, filesystem.write, filesystem.deny, network.connect and network.listen`},
		{"allow_writable_exec in section", "[functions.\"a\".process]\nallow_writable_exec = true\n", `rules.toml:2: functions.a.process.allow_writable_exec: unknown key; process in a function section takes exec only`},
		{"baseline in section", "[functions.x]\nbaseline = false\n", `rules.toml:2: functions.x.baseline: unknown key`},
		// Wrong types.
		{"mode int", "mode = 1\n", `rules.toml:1: mode: must be a string, "enforce" or "audit", not an integer`},
		{"mode unknown", "\nmode = \"block\"\n", `rules.toml:2: mode: "block" is not a mode; use "enforce" or "audit"`},
		{"baseline string", "baseline = \"no\"\n", `rules.toml:1: baseline: must be true or false, not a string`},
		{"log_allowed int", "log_allowed = 1\n", `rules.toml:1: log_allowed: must be true or false, not an integer`},
		{"awe string", "[process]\nallow_writable_exec = \"yes\"\n", `rules.toml:2: process.allow_writable_exec: must be true or false, not a string`},
		{"list string", "[filesystem]\nread = \"/var/task/**\"\n", `rules.toml:2: filesystem.read: must be an array of strings, like ["..."], not a string`},
		{"list table", "[filesystem.read]\nx = 1\n", `rules.toml:1: filesystem.read: must be an array of strings, like ["..."], not a table`},
		{"list element int", "[filesystem]\nread = [\n  \"/a\",\n  2,\n]\n", `rules.toml:4: filesystem.read[1]: must be a string, not an integer`},
		{"table int", "process = 3\n", `rules.toml:1: process: must be a table, not an integer`},
		{"array of tables", "[[filesystem]]\nread = []\n", `rules.toml:1: filesystem: must be a table, not an array of tables`},
		{"functions int", "functions = 1\n", `rules.toml:1: functions: must be a table, not an integer`},
		{"section int", "functions.a = 1\n", `rules.toml:1: functions.a: must be a table, not an integer`},
		{"date", "mode = 1979-05-27\n", `rules.toml:1: mode: must be a string, "enforce" or "audit", not a date/time`},
		// Path patterns.
		{"relative", "[filesystem]\nread = [\"/a\", \"/b\",\n \"var/task/**\"]\n", `rules.toml:3: filesystem.read[2]: "var/task/**" is not absolute; patterns are absolute paths like "/var/task/**"`},
		{"relative dot", "filesystem.read = [\"./x\"]\n", `rules.toml:1: filesystem.read[0]: "./x" is not absolute; patterns are absolute paths like "/x"`},
		{"empty", "filesystem.write = [\"\"]\n", `rules.toml:1: filesystem.write[0]: is empty; write a pattern`},
		{"double slash", "filesystem.read = [\"/a//b\"]\n", `rules.toml:1: filesystem.read[0]: "/a//b" contains "//"; write a single "/"`},
		{"dotdot", "filesystem.read = [\"/a/../b\"]\n", `rules.toml:1: filesystem.read[0]: "/a/../b" contains a ".." segment; write the resolved path`},
		{"dot", "filesystem.deny = [\"/a/./b\"]\n", `rules.toml:1: filesystem.deny[0]: "/a/./b" contains a "." segment`},
		{"escaped dot", "filesystem.deny = [\"/a/\\\\./b\"]\n", `rules.toml:1: filesystem.deny[0]: "/a/\\./b" contains a "." segment`},
		{"trailing slash", "filesystem.read = [\"/var/task/\"]\n", `rules.toml:1: filesystem.read[0]: "/var/task/" ends in "/"; write "/var/task" for the directory itself or "/var/task/**" for it and everything below`},
		{"nul", "filesystem.read = [\"/a\\u0000b\"]\n", `rules.toml:1: filesystem.read[0]: "/a\u0000b" contains a NUL byte`},
		{"star star in segment", "process.exec = [\"/usr/**bin\"]\n", `rules.toml:1: process.exec[0]: "/usr/**bin" has "**" inside a segment; "**" must be a whole path segment (like "/a/**/b"); use "*" within a segment`},
		{"triple star", "process.exec = [\"/usr/***\"]\n", `has "**" inside a segment`},
		{"bad class", "filesystem.read = [\"/a/[b\"]\n", `rules.toml:1: filesystem.read[0]: "/a/[b" has a bad character class: missing "]"`},
		{"empty class", "filesystem.read = [\"/a/[]\"]\n", `"/a/[]" has a bad character class: "-" and "]" inside a class must be escaped with "\"`},
		{"reversed range", "filesystem.read = [\"/a/[z-a]\"]\n", `"/a/[z-a]" has a bad character class: range 'z'-'a' is reversed`},
		{"lone backslash", "filesystem.read = ['/a/b\\']\n", `"/a/b\\" ends in a lone "\"; write "\\" for a backslash`},
		{"slash in class", "filesystem.read = [\"/a[/]b\"]\n", `"/a[/]b" has a bad character class: missing "]"`},
		// Network entries.
		{"cidr host bits", "network.connect = [\"10.0.0.1/8:5432\"]\n", `rules.toml:1: network.connect[0]: "10.0.0.1/8:5432" is a CIDR with host bits set; write "10.0.0.0/8:5432"`},
		{"cidr host bits v6", "network.connect = [\"[2001:db8::1/32]\"]\n", `"[2001:db8::1/32]" is a CIDR with host bits set; write "[2001:db8::/32]"`},
		{"bad cidr", "network.connect = [\"10.0.0.0/33\"]\n", `rules.toml:1: network.connect[0]: "10.0.0.0/33" is not a valid CIDR`},
		{"bad ip", "network.connect = [\"10.0.0.256:80\"]\n", `rules.toml:1: network.connect[0]: "10.0.0.256:80" is not a valid IP address`},
		{"port range", "network.connect = [\"10.0.0.1:65536\"]\n", `rules.toml:1: network.connect[0]: "10.0.0.1:65536" has port 65536, which is out of range; write a port 1-65535, ":*" or no port for any port`},
		{"port zero", "network.connect = [\"10.0.0.1:0\"]\n", `"10.0.0.1:0" has port 0, which is out of range`},
		{"port text", "network.connect = [\"example.com:https\"]\n", `"example.com:https" has port "https", which is not a number`},
		{"port sign", "network.connect = [\"example.com:+443\"]\n", `"example.com:+443" has port "+443", which is not a number`},
		{"port empty", "network.connect = [\"example.com:\"]\n", `"example.com:" has port "", which is not a number`},
		{"ipv6 unbracketed", "network.connect = [\"2001:db8::1\"]\n", `"2001:db8::1" looks like an IPv6 address without brackets; write "[2001:db8::1]"`},
		{"ipv6 no close", "network.connect = [\"[2001:db8::1:443\"]\n", `has "[" without "]"`},
		{"ipv6 junk", "network.connect = [\"[2001:db8::1]443\"]\n", `"[2001:db8::1]443" has "443" after "]"; only ":PORT" or ":*" may follow`},
		{"ipv4 bracketed", "network.connect = [\"[10.0.0.1]:80\"]\n", `"[10.0.0.1]:80" uses brackets, which are for IPv6 addresses only`},
		{"zone", "network.connect = [\"[fe80::1%eth0]:80\"]\n", `has an IPv6 zone`},
		{"compat", "network.connect = [\"[::10.0.0.1]:80\"]\n", `"[::10.0.0.1]:80" is an IPv4-compatible IPv6 address (::a.b.c.d, deprecated); write the IPv4 address`},
		{"domain upper", "network.connect = [\"API.example.com:443\"]\n", `"API.example.com:443" has upper case; write "api.example.com"`},
		{"domain trailing dot", "network.connect = [\"example.com.\"]\n", `"example.com." ends in "."; write "example.com"`},
		{"domain star middle", "network.connect = [\"api.*.com\"]\n", `"api.*.com" has "*" other than as a whole first label; write "*.example.com"`},
		{"domain star only", "network.connect = [\"*\"]\n", `"*" has "*" other than as a whole first label`},
		{"domain bad char", "network.connect = [\"ex_ample.com\"]\n", `"ex_ample.com" has "_", which is not a letter, digit or "-"`},
		{"domain hyphen", "network.connect = [\"-a.com\"]\n", `"-a.com" has a label that starts or ends with "-" ("-a")`},
		{"domain empty label", "network.connect = [\"a..com\"]\n", `"a..com" has an empty label`},
		{"domain long label", "network.connect = [\"" + strings.Repeat("a", 64) + ".com\"]\n", `has a label longer than 63 characters`},
		{"domain too long", "network.connect = [\"" + strings.Repeat("abcdefghi.", 26) + "com\"]\n", `is longer than 253 characters`},
		{"net empty", "network.connect = [\"\"]\n", `rules.toml:1: network.connect[0]: is empty; write an address, CIDR or domain`},
		{"listen cidr", "network.listen = [\"10.0.0.0/8:80\"]\n", `rules.toml:1: network.listen[0]: "10.0.0.0/8:80" is a CIDR; network.listen takes a single bind address`},
		{"listen domain", "network.listen = [\"localhost:80\"]\n", `rules.toml:1: network.listen[0]: "localhost:80" is a domain; network.listen takes an IP address`},
		// Function sections.
		{"section bad glob", "[functions.\"a[\"]\nfilesystem.read = []\n", `rules.toml:1: functions."a[": "a[" has a bad character class: missing "]"`},
		{"section star star", "[functions.\"a**\"]\n", `rules.toml:1: functions."a**": "a**" has "**"; a function name has no segments, use "*"`},
		{"section empty", "[functions.\"\"]\n", `rules.toml:1: functions."": the function name pattern is empty`},
		{"section entry", "[functions.\"orders-*\"]\nfilesystem.write = [\"tmp/x\"]\n", `rules.toml:2: functions."orders-*".filesystem.write[0]: "tmp/x" is not absolute`},
		// Exec overlapping write, naming both patterns.
		{"exec under tmp", "[process]\nexec = [\"/tmp/bin/*\"]\n", `rules.toml:2: process.exec[0]: "/tmp/bin/*" overlaps filesystem.write "/tmp/**" (baseline): both match "/tmp/bin/a", so the function could write a program there and run it; narrow one of the patterns, or set process.allow_writable_exec = true`},
		{"exec vs file write", "baseline = false\n[process]\nexec = [\"/opt/bin/*\"]\n[filesystem]\nwrite = [\"/opt/**/tool\"]\n", `rules.toml:3: process.exec[0]: "/opt/bin/*" overlaps filesystem.write "/opt/**/tool" (rules.toml:5): both match "/opt/bin/tool"`},
		{"exec vs section write", "baseline = false\nprocess.exec = [\"/opt/x\"]\n[functions.\"other\"]\nfilesystem.write = [\"/opt/*\"]\n", `rules.toml:2: process.exec[0]: "/opt/x" overlaps functions.other.filesystem.write "/opt/*" (rules.toml:4)`},
		{"section exec vs write", "baseline = false\n[functions.\"b\"]\nprocess.exec = [\"/data/[a-c]x\"]\nfilesystem.write = [\"/data/*\"]\n", `rules.toml:3: functions.b.process.exec[0]: "/data/[a-c]x" overlaps functions.b.filesystem.write "/data/*" (rules.toml:4): both match "/data/ax"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse("rules.toml", []byte(c.src), opt)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.src)
			}
			if p != nil {
				t.Errorf("returned a policy with an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n got: %s\nwant: %s", err, c.want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Errorf("error is %T, not Errors", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "rules.toml" && e.File != "" {
				t.Errorf("errors.As(*Error) failed or wrong file: %#v", e)
			}
		})
	}
}

// TestParseErrorsAll: every problem is reported, in line order.
func TestParseErrorsAll(t *testing.T) {
	src := "mode = \"x\"\n[filesystem]\nread = [\"a\", \"/ok\", \"b\"]\nwrite = 1\nbogus = 2\n"
	_, err := Parse("f.toml", []byte(src), Options{})
	want := `f.toml:1: mode: "x" is not a mode; use "enforce" or "audit"
f.toml:3: filesystem.read[0]: "a" is not absolute; patterns are absolute paths like "/a"
f.toml:3: filesystem.read[2]: "b" is not absolute; patterns are absolute paths like "/b"
f.toml:4: filesystem.write: must be an array of strings, like ["..."], not an integer
f.toml:5: filesystem.bogus: unknown key; filesystem takes read, write and deny`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load("/nonexistent/rules.toml", Options{})
	if err == nil || err.Error() != "/nonexistent/rules.toml: cannot read: no such file or directory" {
		t.Errorf("got %v", err)
	}
	_, err = Parse("rules.toml", []byte(""), Options{RuntimeAPI: "9001"})
	if err == nil || err.Error() != `AWS_LAMBDA_RUNTIME_API: "9001" has no port; it should look like "127.0.0.1:9001"` {
		t.Errorf("got %v", err)
	}
	for _, bad := range []string{"127.0.0.1:x", "127.0.0.1:0", "example.com:9001", "::1:9001", "127.0.0.1:*", "[fe80::1%eth0]:9001"} {
		if _, err := Parse("rules.toml", nil, Options{RuntimeAPI: bad}); err == nil || !strings.HasPrefix(err.Error(), "AWS_LAMBDA_RUNTIME_API: ") {
			t.Errorf("RuntimeAPI %q: got %v", bad, err)
		}
	}
	// Without the baseline the Runtime API is not used, so not checked.
	if _, err := Parse("rules.toml", []byte("baseline = false"), Options{RuntimeAPI: "junk"}); err != nil {
		t.Errorf("baseline off: %v", err)
	}
}
