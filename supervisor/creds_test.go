//go:build linux

package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCallerCredentials: emulated opens run with the caller's credentials,
// not the supervisor's (root): a caller that dropped to nobody cannot read a
// root-only file or create in a root-only directory, even where the policy
// allows it, and a file it creates belongs to it.
func TestCallerCredentials(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	must(t, os.Chmod(root, 0o755))
	must(t, os.Chmod(filepath.Dir(root), 0o755)) // t.TempDir's own parent is 0700
	must(t, os.WriteFile(root+"/ro/private", []byte("p"), 0o600))
	must(t, os.WriteFile(root+"/ro/public", []byte("p"), 0o644))
	must(t, os.Mkdir(root+"/allowed/rootonly", 0o755))
	must(t, os.Mkdir(root+"/allowed/open", 0o777))
	must(t, os.Chmod(root+"/allowed/open", 0o777))
	// t.TempDir's parents must be searchable by nobody.
	for d := filepath.Dir(root); d != "/"; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by others", d)
		}
	}
	nobody := []string{"asuser", "65534", "65534"}
	as := func(args ...string) []string { return append(append([]string{vt}, nobody...), args...) }

	expectOK(t, supervise(t, pol, vt, "open", root+"/ro/private", "r")) // root may
	expectErr(t, supervise(t, pol, as("open", root+"/ro/private", "r")...), "EACCES")
	expectOK(t, supervise(t, pol, as("open", root+"/ro/public", "r")...))
	expectErr(t, supervise(t, pol, as("open", root+"/allowed/rootonly/x", "c")...), "EACCES")
	if _, err := os.Lstat(root + "/allowed/rootonly/x"); err == nil {
		t.Fatal("created with root credentials")
	}
	expectOK(t, supervise(t, pol, as("open", root+"/allowed/open/mine", "c")...))
	st, err := os.Stat(root + "/allowed/open/mine")
	must(t, err)
	if uid := st.Sys().(*syscallStat).Uid; uid != 65534 {
		t.Fatalf("created file belongs to uid %d, want 65534", uid)
	}
	// Credentials are read per call: root first, then nobody, in one run.
	r := supervise(t, pol, vt, "seq", "open", root+"/ro/private", "r", ";", "asuser", "65534", "65534", "open", root+"/ro/private", "r")
	if r.status != 1 || !strings.HasPrefix(r.stdout, "OK") || !strings.Contains(r.stdout, "ERR 13 EACCES") {
		t.Fatalf("status=%d stdout=%q", r.status, r.stdout)
	}
}
