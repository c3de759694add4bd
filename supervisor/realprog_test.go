//go:build linux

package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealPrograms: under a permissive policy, real programs behave as they
// do without Vigil (same status, same output).
func TestRealPrograms(t *testing.T) {
	gobin := filepath.Join(t.TempDir(), "goprog")
	gosrc := filepath.Join(t.TempDir(), "main.go")
	must(t, os.WriteFile(gosrc, []byte(`package main

import (
	"fmt"
	"net"
	"os"
	"sync"
)

func main() {
	var wg sync.WaitGroup
	n := 0
	var mu sync.Mutex
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if b, err := os.ReadFile("/etc/hostname"); err == nil && len(b) > 0 {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	_, err := net.Dial("tcp", "127.0.0.1:1")
	fmt.Println("reads", n, "dial error:", err != nil)
}
`), 0o644))
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	build := exec.Command(goTool, "build", "-o", gobin, gosrc)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"python3", []string{"/usr/bin/python3", "-c", "import json, ssl, sqlite3, urllib.request; print(json.dumps({'ok': ssl.OPENSSL_VERSION[:7]}))"}},
		{"node", []string{"/usr/bin/node", "-e", "require('https'); console.log('node ok', typeof require('crypto').createHash)"}},
		{"go", []string{gobin}},
		{"sh pipeline", []string{"/bin/sh", "-c", "echo hello world | tr a-z A-Z | wc -c; ls / | sort | head -3; cat /etc/hostname >/dev/null && echo done"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := os.Stat(c.args[0]); err != nil {
				t.Skipf("%s not installed", c.args[0])
			}
			cmd := exec.Command(c.args[0], c.args[1:]...)
			want, werr := cmd.Output()
			wantStatus := 0
			if ee, ok := werr.(*exec.ExitError); ok {
				wantStatus = ee.ExitCode()
			}
			r := supervise(t, permissive(), c.args...)
			if r.err != nil || r.status != wantStatus || r.stdout != string(want) {
				t.Fatalf("under vigil: status=%d err=%v stdout=%q stderr=%q\nwithout: status=%d stdout=%q", r.status, r.err, r.stdout, r.stderr, wantStatus, want)
			}
			if strings.Contains(r.audit, `"level":"ERROR"`) || strings.Contains(r.audit, `"level":"WARN"`) {
				t.Fatalf("unexpected log lines: %s", r.audit)
			}
		})
	}
}
