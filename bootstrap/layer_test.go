package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLayer runs `make layer` into a temporary DIST and checks what Lambda
// would extract to /opt: bootstrap (executable, statically linked: an ELF
// with no PT_INTERP) at the zip's root and vigil/rules.toml, and that the
// bootstrap validates that policy in a root holding nothing but the layer.
func TestLayer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static layer (about 10-30 s)")
	}
	for _, tool := range []string{"make", "zip", "file"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make layer-deps installs zip and file): %v", tool, err)
		}
	}
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "-s", "layer", "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make layer: %v\n%s", err, out)
	}

	zr, err := zip.OpenReader(filepath.Join(dist, "vigil-layer-x86_64.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	opt := filepath.Join(t.TempDir(), "opt")
	want := map[string]os.FileMode{"bootstrap": 0o755, "vigil/": os.ModeDir | 0o755, "vigil/rules.toml": 0o644}
	for _, f := range zr.File {
		mode, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected entry %q in the layer", f.Name)
			continue
		}
		delete(want, f.Name)
		if got := f.Mode(); got != mode {
			t.Errorf("%s: mode %v, want %v (Lambda runs the function as an unprivileged user)", f.Name, got, mode)
		}
		dst := filepath.Join(opt, f.Name)
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		extract(t, f, dst)
	}
	for name := range want {
		t.Errorf("the layer lacks %q", name)
	}
	if t.Failed() {
		t.FailNow()
	}

	boot := filepath.Join(opt, "bootstrap")
	ef, err := elf.Open(boot)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if ef.Type != elf.ET_EXEC || ef.Machine != elf.EM_X86_64 {
		t.Errorf("bootstrap is %v for %v, want a static ET_EXEC for x86-64", ef.Type, ef.Machine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("bootstrap has %v: it is dynamically linked", p.Type)
		}
	}
	if out, _ := exec.Command("ldd", boot).CombinedOutput(); !strings.Contains(string(out), "not a dynamic executable") {
		t.Errorf("ldd bootstrap: %s", out)
	}

	// The policy check in a root that holds only the layer, as /opt: no
	// loader, no libc, no libseccomp.so.
	check := exec.Command("/opt/bootstrap", "--check", "/opt/vigil/rules.toml")
	if os.Geteuid() == 0 {
		root := filepath.Dir(opt)
		check.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		check.Dir = "/"
	} else {
		t.Log("not root: running --check outside a chroot")
		check = exec.Command(boot, "--check", filepath.Join(opt, "vigil", "rules.toml"))
	}
	check.Env = []string{}
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap --check in a root holding only the layer: %v\n%s", err, out)
	}
	for _, s := range []string{`mode = "audit"`, `"/var/lang/bin/*"`, "/opt/vigil/rules.toml:"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("the effective policy lacks %s:\n%s", s, out)
		}
	}

	t.Run("GoFunctionUnderRIE", func(t *testing.T) { layerUnderRIE(t, filepath.Dir(opt)) })
}

// layerUnderRIE runs the SAM example's Go function (fixtures/functions/go
// as /var/task/handler with fixtures/sam/go.rules.toml) in a chroot that
// holds only the extracted layer, the function and AWS's Runtime Interface
// Emulator (static builds, so no libc either), with a private /proc. RIE,
// given no bootstrap, falls back to /opt/bootstrap as Lambda does when the
// function ships none.
func layerUnderRIE(t *testing.T, root string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, mount namespace)")
	}
	for _, tool := range []string{"unshare", "chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	task := filepath.Join(root, "var", "task")
	for _, d := range []string{task, filepath.Join(root, "proc"), filepath.Join(root, "dev")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"null", "urandom"} {
		if out, err := exec.Command("cp", "-a", "/dev/"+dev, filepath.Join(root, "dev", dev)).CombinedOutput(); err != nil {
			t.Fatalf("cp /dev/%s: %v\n%s", dev, err, out)
		}
	}
	static := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	build := exec.Command("go", "build", "-o", filepath.Join(root, "rie"), "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie")
	build.Dir, build.Env = "..", static
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build RIE: %v\n%s", err, out)
	}
	build = exec.Command("go", "build", "-tags", "lambda.norpc", "-o", filepath.Join(task, "handler"), ".")
	build.Dir, build.Env = "../fixtures/functions/go", static
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fixtures/functions/go: %v\n%s", err, out)
	}
	pol, err := os.ReadFile("../fixtures/sam/go.rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"rules.toml": pol, ".env": []byte("SECRET=1\n"), "allowed.txt": []byte("allowed\n")} {
		if err := os.WriteFile(filepath.Join(task, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	emu, api := freeAddr(t), freeAddr(t)
	var out lockedBuffer
	rie := exec.Command("unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
		`mount -t proc proc "$1/proc" && exec chroot "$1" /rie --runtime-interface-emulator-address "$2" --runtime-api-address "$3"`,
		"sh", root, emu, api)
	rie.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "AWS_LAMBDA_FUNCTION_NAME=layer-go"}
	rie.Stdout, rie.Stderr = &out, &out
	rie.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	rie.WaitDelay = 2 * time.Second
	if err := rie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-rie.Process.Pid, syscall.SIGKILL)
		rie.Wait()
		if t.Failed() {
			t.Logf("RIE output:\n%s", out.String())
		}
	})

	client := &http.Client{Timeout: 15 * time.Second}
	invoke := func(id, event string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+emu+"/2015-03-31/functions/function/invocations", strings.NewReader(event))
		req.Header.Set("X-Amzn-RequestId", id)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("invoke %s: %v", id, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var a map[string]any
		if res.StatusCode != 200 || json.Unmarshal(body, &a) != nil {
			t.Fatalf("invoke %s: %d %s", id, res.StatusCode, body)
		}
		return a
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", emu, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RIE does not listen on %s", emu)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if a := invoke("layer-read", `{"action":"read","path":"/var/task/allowed.txt"}`); a["ok"] != true || a["data"] != "allowed\n" {
		t.Errorf("allowed read: %v", a)
	}
	if a := invoke("layer-deny", `{"action":"read","path":"/var/task/.env"}`); a["error"] != "EACCES" {
		t.Errorf("read of the denied /var/task/.env: %v, want EACCES", a)
	}
	if a := invoke("layer-exec", `{"action":"exec","argv":["/opt/bootstrap","--check","/opt/vigil/rules.toml"]}`); a["error"] != "EACCES" {
		t.Errorf("exec of a program the policy does not list: %v, want EACCES", a)
	}
	time.Sleep(100 * time.Millisecond)
	log := out.String()
	for _, s := range []string{
		`"policy":"/var/task/rules.toml"`, `"command":"/var/task/handler"`,
		`"requestId":"layer-deny"`, `"path":"/var/task/.env"`, `"function":"layer-go"`,
		`"requestId":"layer-exec"`, `"op":"exec","path":"/opt/bootstrap"`,
	} {
		if !strings.Contains(log, s) {
			t.Errorf("RIE's output lacks %s", s)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func extract(t *testing.T, f *zip.File, dst string) {
	t.Helper()
	r, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, f.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLayerArm64UnderQemu builds the arm64 layer (`make layer-arm64`) and
// runs its bootstrap under qemu-user (qemu-aarch64-static, installed by
// `make test`): the policy check works there exactly as on x86-64 (same
// effective policy, same errors). The supervisor cannot run under
// qemu-user, which does not emulate seccomp (libseccomp's architecture
// probe fails): the command is then not started, exit 2 with one line
// naming the filter, as on any host without seccomp notification.
func TestLayerArm64UnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the arm64 layer (about 30 s)")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Skipf("qemu-aarch64-static not installed (make test installs qemu-user-static): %v", err)
	}
	dist := t.TempDir()
	if out, err := exec.Command("make", "-C", "..", "-s", "layer-arm64", "DIST="+dist).CombinedOutput(); err != nil {
		t.Fatalf("make layer-arm64: %v\n%s", err, out)
	}
	boot := filepath.Join(dist, "layer-arm64", "bootstrap")
	ef, err := elf.Open(boot)
	if err != nil {
		t.Fatal(err)
	}
	if ef.Machine != elf.EM_AARCH64 {
		t.Fatalf("the arm64 layer's bootstrap is for %v", ef.Machine)
	}
	ef.Close()

	for _, policy := range []string{"../rules.example.toml", "../fixtures/layer/rules.toml", "../fixtures/sam/rules.toml"} {
		code, out, errOut := runProg(t, qemu, boot, "--check", policy)
		wantCode, want, wantErr := runBin(t, "--check", policy)
		if code != 0 || code != wantCode || out != want || errOut != wantErr {
			t.Errorf("--check %s under qemu: exit %d, %d bytes, stderr %q; on x86-64: exit %d, %d bytes", policy, code, len(out), errOut, wantCode, len(want))
		}
	}
	bad := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(bad, []byte("moed = \"enforce\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runProg(t, qemu, boot, "--check", bad)
	if _, _, wantErr := runBin(t, "--check", bad); code != 2 || errOut != wantErr || !strings.Contains(errOut, "moed: unknown key") {
		t.Errorf("--check of a bad policy under qemu: exit %d, %q (x86-64: %q)", code, errOut, wantErr)
	}

	marker := filepath.Join(t.TempDir(), "ran")
	code, _, errOut = runProg(t, qemu, boot, "--rules", "../rules.example.toml", "--", "/bin/sh", "-c", "echo > "+marker)
	// (qemu-user refuses the supervisor's own prctls and seccomp: which
	// comes first does not matter, only that it fails closed, in one line.)
	if code != 2 || !strings.Contains(errOut, "cannot start under the filter (") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("supervised run under qemu-user: exit %d, %q; want exit 2 and one line naming what failed", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without its filter")
	}
}
