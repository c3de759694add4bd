package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// permissive allows everything a normal program does, so that a run under
// Vigil must behave exactly like a native one: every call still goes
// through the supervisor (opens emulated, connects performed on a copy of
// the socket, execs verified), only the answers are all "allow".
const permissive = `
mode = "enforce"
[process]
exec = ["/**"]
allow_writable_exec = true   # this test policy lets anything run
[filesystem]
read  = ["/**"]
write = ["/tmp/**", "/dev/**", "/proc/self/**"]
[network]
connect = ["0.0.0.0/0", "[::/0]"]
listen  = ["127.0.0.1", "[::1]"]
`

// sameAsNative runs argv natively and under Vigil with the permissive
// policy, and requires the same stdout and exit status and no audit line.
func sameAsNative(t *testing.T, stdin string, argv ...string) result {
	t.Helper()
	pol := writePolicy(t, permissive)
	native := run(t, "", nil, stdin, argv...)
	vigil := run(t, pol, nil, stdin, argv...)
	if vigil.stdout != native.stdout || vigil.code != native.code {
		t.Fatalf("%v under Vigil differs from native:\nnative: code %d stdout %q\nvigil:  code %d stdout %q\nvigil stderr: %s",
			argv, native.code, native.stdout, vigil.code, vigil.stdout, vigil.stderr)
	}
	if a := vigil.audits(); len(a) != 0 {
		t.Fatalf("%v: unexpected audit lines under a permissive policy: %+v", argv, a)
	}
	return vigil
}

func TestPythonImportsAsNative(t *testing.T) {
	py := realPython(t)
	r := sameAsNative(t, "", py, "-c", "import json, ssl, sqlite3, urllib.request, email, subprocess; print(subprocess.run(['/bin/echo','sub-ok'],capture_output=True).stdout.decode().strip()); print('ok')")
	if !strings.Contains(r.stdout, "sub-ok\nok") {
		t.Fatalf("python did not run to the end: %q", r.stdout)
	}
}

func TestNodeRequireAsNative(t *testing.T) {
	node := realNode(t)
	r := sameAsNative(t, "", node, "-e", `require("https"); require("fs").readFileSync("/etc/hostname"); console.log("ok")`)
	if r.stdout != "ok\n" {
		t.Fatalf("node did not run to the end: %q", r.stdout)
	}
}

func TestShellPipelineAsNative(t *testing.T) {
	r := sameAsNative(t, "hello from stdin\n", "/bin/sh", "-c",
		`cat | tr a-z A-Z; cat /etc/hostname | wc -c; ls /usr/bin | head -3; echo $((6*7)) > /tmp/vigil-e2e-$$ && cat /tmp/vigil-e2e-$$ && rm /tmp/vigil-e2e-$$`)
	if !strings.HasPrefix(r.stdout, "HELLO FROM STDIN\n") || !strings.Contains(r.stdout, "42\n") {
		t.Fatalf("pipeline output: %q", r.stdout)
	}
}

func TestExitStatusAsNative(t *testing.T) {
	sameAsNative(t, "", "/bin/sh", "-c", "exit 7")
	r := sameAsNative(t, "", "/bin/sh", "-c", "kill -TERM $$")
	if r.code != 143 {
		t.Fatalf("killed by SIGTERM: want 143, got %d", r.code)
	}
}

func TestGoProgramAsNative(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "goprog")
	cmd := exec.Command("go", "build", "-o", bin, "./fixtures/goprog")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello-tcp\n"))
			c.Close()
		}
	}()
	r := sameAsNative(t, "", bin, "/etc/hostname", ln.Addr().String())
	for _, want := range []string{"concurrent open failures: 0", `dial: got "hello-tcp\n"`, `child: "child-ok\n" <nil>`} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("goprog output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestPythonDeniedOpenIsExplained: a realistic function reading a secret it
// was not given gets PermissionError, and stderr carries one audit line
// saying what, who and which rule.
func TestPythonDeniedOpenIsExplained(t *testing.T) {
	py := realPython(t)
	pyRoot := filepath.Dir(filepath.Dir(py)) // .../versions/3.x.y
	secret := secretFile(t)
	pol := writePolicy(t, `
mode = "enforce"
[process]
exec = ["`+py+`"]
[filesystem]
read = ["`+pyRoot+`/**", "/usr/**", "/etc/**"]
`)
	r := run(t, pol, nil, "", py, "-c", `
try:
    open("`+secret+`").read()
    print("read it")
except PermissionError as e:
    print("denied", e.errno)
`)
	if r.stdout != "denied 13\n" {
		t.Fatalf("want the read denied with EACCES, got stdout %q code %d\nstderr: %s", r.stdout, r.code, r.stderr)
	}
	var found bool
	for _, a := range r.audits() {
		if a.Vigil.Op == "open" && a.Vigil.Path == secret {
			found = true
			if a.Vigil.Decision != "deny" || a.Level != "WARN" || a.Vigil.Pid <= 0 || a.Vigil.Exe != py ||
				a.Vigil.Rule == "" || a.Vigil.Mode != "enforce" || a.Timestamp == "" {
				t.Fatalf("audit line incomplete: %+v", a)
			}
		}
	}
	if !found {
		t.Fatalf("no audit line for the denied open; stderr:\n%s", r.stderr)
	}
}

// TestAuditModeDeniesNothing: the same policy in audit mode lets the read
// through and logs what it would have denied.
func TestAuditModeDeniesNothing(t *testing.T) {
	secret := secretFile(t)
	pol := writePolicy(t, `
mode = "audit"
[process]
exec = ["/usr/bin/cat", "/bin/cat"]
[filesystem]
read = ["/usr/**", "/etc/**"]
`)
	r := run(t, pol, nil, "", "/bin/cat", secret)
	if r.stdout != "s3cr3t" || r.code != 0 {
		t.Fatalf("audit mode must not deny: stdout %q code %d stderr %s", r.stdout, r.code, r.stderr)
	}
	var found bool
	for _, a := range r.audits() {
		if a.Vigil.Op == "open" && a.Vigil.Path == secret && a.Vigil.Mode == "audit" {
			found = true
		}
	}
	if !found {
		t.Fatalf("audit mode did not log the open it would deny; stderr:\n%s", r.stderr)
	}
}

// secretFile writes a file outside every tree the baseline allows (/tmp is
// readable and writable by the baseline, so t.TempDir() will not do).
func secretFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "vigil-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(p, []byte("s3cr3t"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
