//go:build linux

package supervisor

import (
	"os"
	"strings"
	"testing"

	"vigil/rules"
)

// TestWithRulesPolicy runs the supervisor with a real compiled policy.
func TestWithRulesPolicy(t *testing.T) {
	root, _ := tree(t)
	src := `mode = "enforce"
baseline = false
[process]
exec = ["` + fixtures + `/**"]
[filesystem]
read = ["` + fixtures + `/**", "/etc/ld.so.cache", "/usr/lib/**", "/lib/**", "/lib64/**", "` + root + `/ro/**"]
write = ["` + root + `/allowed/**"]
deny = ["` + root + `/secret/**"]
`
	p, err := rules.Parse("test.toml", []byte(src), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vt := fixture("vtool")
	expectOK(t, supervise(t, p, vt, "open", root+"/ro/file", "r"))
	r := supervise(t, p, vt, "open", root+"/secret/file", "r")
	expectErr(t, r, "EACCES")
	e := findEvent(auditEvents(t, r), "deny", "open", root+"/secret/file")
	if e == nil || !strings.Contains(e.Rule, "filesystem.deny") || !strings.HasPrefix(e.Source, "test.toml:") {
		t.Fatalf("audit: %s", r.audit)
	}
	expectOK(t, supervise(t, p, vt, "open", root+"/allowed/new", "c"))
	expectErr(t, supervise(t, p, vt, "open", root+"/ro/new", "c"), "EACCES")
	if _, err := os.Stat(root + "/ro/new"); err == nil {
		t.Fatal("denied create left a file")
	}
	r = supervise(t, p.WithMode(rules.Audit), vt, "open", root+"/secret/file", "r")
	expectOK(t, r)
	if findEvent(auditEvents(t, r), "audit", "open", root+"/secret/file") == nil {
		t.Fatal(r.audit)
	}
}
