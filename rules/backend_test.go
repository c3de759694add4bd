package rules

import (
	"strings"
	"testing"
)

// TestBackendKey checks the top-level backend key: "auto" when unset, each
// valid value kept and written back by --check's writer, anything else an
// error naming the line and the key.
func TestBackendKey(t *testing.T) {
	if b := mustParse(t, "", Options{}).Backend(); b != "auto" {
		t.Errorf("default backend = %q, want auto", b)
	}
	for _, b := range Backends {
		p := mustParse(t, "backend = \""+b+"\"\n", Options{})
		if p.Backend() != b {
			t.Errorf("backend %q parsed as %q", b, p.Backend())
		}
		var sb strings.Builder
		if err := p.WriteTOML(&sb); err != nil {
			t.Fatal(err)
		}
		again, err := Parse("again.toml", []byte(sb.String()), Options{})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", sb.String(), err)
		}
		if again.Backend() != b {
			t.Errorf("backend %q written and re-parsed as %q", b, again.Backend())
		}
	}
	for _, tc := range []struct{ src, want string }{
		{"\n\nbackend = \"seccomp\"\n", `rules.toml:3: backend: "seccomp" is not a backend; use "auto", "notify", "ptrace", "ptrace-seccomp" or "ptrace-alone"`},
		{"backend = 1\n", `rules.toml:1: backend: must be a string`},
	} {
		_, err := Parse("rules.toml", []byte(tc.src), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.src, err, tc.want)
		}
	}
}
