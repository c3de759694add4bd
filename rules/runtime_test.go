package rules

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRuntimeCommand(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"table", "[runtime]\ncommand = [\"/var/task/handler\", \"--flag\", \"x y\"]\n", []string{"/var/task/handler", "--flag", "x y"}},
		{"dotted", "runtime.command = [\"python3\"]\n", []string{"python3"}},
		{"inline", "runtime = { command = [\"/opt/rt\"] }\n", []string{"/opt/rt"}},
		{"absent", "mode = \"audit\"\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("rules.toml", []byte(tc.src), Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := p.RuntimeCommand()
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("RuntimeCommand() = %q, want %q", got, tc.want)
			}
			if got != nil {
				got[0] = "changed"
				if p.RuntimeCommand()[0] == "changed" {
					t.Error("RuntimeCommand returns the policy's own slice")
				}
				if q := p.WithMode(Audit); !reflect.DeepEqual(q.RuntimeCommand(), tc.want) {
					t.Errorf("WithMode lost the command: %q", q.RuntimeCommand())
				}
			}
		})
	}
	var nilPolicy *Policy
	if nilPolicy.RuntimeCommand() != nil {
		t.Error("nil policy has a command")
	}
}

func TestRuntimeCommandErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"string", "[runtime]\ncommand = \"/var/task/handler\"\n", `rules.toml:2: runtime.command: must be a non-empty array of strings`},
		{"empty", "[runtime]\ncommand = []\n", `rules.toml:2: runtime.command: must be a non-empty array of strings`},
		{"number", "[runtime]\ncommand = [\"/a\",\n  3]\n", `rules.toml:3: runtime.command[1]: must be a string, not`},
		{"empty element", "[runtime]\ncommand = [\"\"]\n", `rules.toml:2: runtime.command[0]: must be a non-empty string`},
		{"unknown key", "[runtime]\ncmd = [\"/a\"]\n", `rules.toml:2: runtime.cmd: unknown key; runtime takes command`},
		{"in a function section", "[functions.f.runtime]\ncommand = [\"/a\"]\n", `unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rules.toml", []byte(tc.src), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestRuntimeCommandRoundTrip: --check's output keeps [runtime] command.
func TestRuntimeCommandRoundTrip(t *testing.T) {
	p, err := Parse("rules.toml", []byte("[runtime]\ncommand = [\"/var/lang/bin/python3\", \"-m\", \"a \\\"b\\\"\"]\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := p.WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	q, err := Parse("check.toml", []byte(b.String()), Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got, want := q.RuntimeCommand(), p.RuntimeCommand(); !slices.Equal(got, want) || len(got) != 3 {
		t.Fatalf("round trip: %q, want %q", got, want)
	}
}
