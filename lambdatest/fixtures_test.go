package lambdatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// step is one invocation of a fixture and what its answer must say.
type step struct {
	id     string
	event  map[string]any
	check  func(t *testing.T, mode string, r *RIE, res *Result, a map[string]any)
	header http.Header // invoke request headers
}

// wantFailure checks a stable error answer: {"ok":false,"error":NAME,"errno":N}.
func wantFailure(name string, errno int) func(*testing.T, string, *RIE, *Result, map[string]any) {
	return func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
		t.Helper()
		if res.Status != 200 || a["ok"] != false || a["error"] != name || a["errno"] != float64(errno) || a["message"] == "" {
			t.Errorf("want %s (errno %d), got %d %s", name, errno, res.Status, res.Body)
		}
	}
}

// acceptOn listens on host:0, accepts and closes every connection until the
// test ends, and returns the port.
func acceptOn(t *testing.T, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// fixtureSteps exercise every action but crash and stream. The answers
// depend on nothing that differs between a direct and a proxied run but
// AWS_LAMBDA_RUNTIME_API, which the comparison leaves out.
func fixtureSteps(t *testing.T) []step {
	dir := t.TempDir()
	text := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(text, []byte("hello vigil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\necho no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := acceptOn(t, "127.0.0.1")
	closedAddr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, closedPort, _ := net.SplitHostPort(closedAddr)
	var closed int
	fmt.Sscan(closedPort, &closed)

	return []step{
		{"fx-echo", map[string]any{"action": "echo", "n": 1, "s": "vigil é", "list": []any{1, "two"}},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				if res.Status != 200 || a["s"] != "vigil é" || a["n"] != float64(1) || a["action"] != "echo" {
					t.Errorf("echo: %d %s", res.Status, res.Body)
				}
			}, nil},
		{"fx-env", map[string]any{"action": "env"},
			func(t *testing.T, mode string, r *RIE, res *Result, a map[string]any) {
				env, _ := a["env"].(map[string]any)
				if res.Status != 200 || a["ok"] != true || env["AWS_LAMBDA_FUNCTION_NAME"] != "test_function" ||
					a["requestId"] != "fx-env" || a["functionArn"] != "arn:aws:lambda:us-east-1:012345678912:function:test_function" {
					t.Errorf("env: %d %s", res.Status, res.Body)
				}
				api, _ := env["AWS_LAMBDA_RUNTIME_API"].(string)
				if (mode == "direct") != (api == r.RuntimeAPIAddr) || !strings.HasPrefix(api, "127.0.0.1:") {
					t.Errorf("%s: the runtime's AWS_LAMBDA_RUNTIME_API is %q, RIE's is %s", mode, api, r.RuntimeAPIAddr)
				}
			}, nil},
		{"fx-read", map[string]any{"action": "read", "path": text},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				if res.Status != 200 || a["ok"] != true || a["data"] != "hello vigil\n" {
					t.Errorf("read: %d %s", res.Status, res.Body)
				}
			}, nil},
		{"fx-read-enoent", map[string]any{"action": "read", "path": filepath.Join(dir, "absent")}, wantFailure("ENOENT", 2), nil},
		{"fx-exec", map[string]any{"action": "exec", "argv": []string{"/bin/echo", "hi"}},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				if res.Status != 200 || a["ok"] != true || a["output"] != "hi\n" || a["exitCode"] != float64(0) {
					t.Errorf("exec: %d %s", res.Status, res.Body)
				}
			}, nil},
		// execve of a file without an execute bit is EACCES even for root:
		// the error a Vigil denial produces, as each runtime reports it.
		{"fx-exec-eacces", map[string]any{"action": "exec", "argv": []string{noExec}}, wantFailure("EACCES", 13), nil},
		{"fx-connect", map[string]any{"action": "connect", "host": "127.0.0.1", "port": open},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				if res.Status != 200 || a["ok"] != true {
					t.Errorf("connect: %d %s", res.Status, res.Body)
				}
			}, nil},
		{"fx-connect-refused", map[string]any{"action": "connect", "host": "127.0.0.1", "port": closed}, wantFailure("ECONNREFUSED", 111), nil},
		// The invoke headers RIE turns into Runtime API headers reach the
		// runtime. RIE renders no Lambda-Runtime-Trace-Id (its tracer is a
		// no-op), so traceId is empty here, behind the proxy or not.
		{"fx-context", map[string]any{"action": "context"},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				custom, _ := a["clientContextCustom"].(map[string]any)
				if res.Status != 200 || a["ok"] != true || a["requestId"] != "fx-context" || a["cognitoIdentityId"] != "id-1" ||
					a["cognitoIdentityPoolId"] != "pool-1" || custom["k"] != "v" || a["tenantId"] != "tenant-1" || a["hasDeadline"] != true {
					t.Errorf("context: %d %s", res.Status, res.Body)
				}
			},
			http.Header{
				"X-Amz-Client-Context":   {base64.StdEncoding.EncodeToString([]byte(`{"custom":{"k":"v"},"client":{},"env":{}}`))},
				"X-Amz-Cognito-Identity": {`{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}`},
				"X-Amz-Tenant-Id":        {"tenant-1"},
				"X-Amzn-Trace-Id":        {"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
			}},
		{"fx-fail", map[string]any{"action": "fail", "message": "on purpose"},
			func(t *testing.T, _ string, _ *RIE, res *Result, a map[string]any) {
				// A handler error: RIE answers 200 with the runtime's error document.
				if res.Status != 200 || a["errorType"] != "FixtureError" || a["errorMessage"] != "fixture failure: on purpose" {
					t.Errorf("fail: %d %s", res.Status, res.Body)
				}
			}, nil},
	}
}

// TestFixtures runs each fixture function's actions under RIE, directly and
// behind the Runtime API proxy (proxyrun), and requires the same answers.
func TestFixtures(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			needFixture(t, f)
			steps := fixtureSteps(t)
			answers := map[string][]string{}
			for _, mode := range []string{"direct", "proxy"} {
				cmd := f.command
				if mode == "proxy" {
					cmd = through(cmd)
				}
				marker := filepath.Join(t.TempDir(), "ran")
				r := startRIE(t, Options{Command: cmd, Env: []string{"FIXTURE_MARKER=" + marker}})
				for _, s := range steps {
					res := invokeWith(t, r, s.id, s.event, s.header)
					a := answer(t, res)
					s.check(t, mode, r, res, a)
					if env, ok := a["env"].(map[string]any); ok {
						delete(env, "AWS_LAMBDA_RUNTIME_API")
					}
					norm, _ := json.Marshal(a)
					answers[mode] = append(answers[mode], fmt.Sprintf("%d %s", res.Status, norm))
				}
				if _, err := os.Stat(marker); err != nil {
					t.Errorf("%s: the function's code left no marker: %v", mode, err)
				}
				for _, s := range steps {
					// RIE's output is read from a pipe: allow it a moment.
					if !r.WaitOutput("END RequestId: "+s.id, 2*time.Second) {
						t.Errorf("%s: RIE's output has no END line for %s", mode, s.id)
					}
				}
				if mode == "proxy" && !r.WaitOutput(`"@message":"invocation started"`, 2*time.Second) {
					t.Errorf("proxy: proxyrun logged no invocation")
				}
			}
			if !reflect.DeepEqual(answers["direct"], answers["proxy"]) {
				t.Errorf("answers differ\ndirect: %q\nproxy:  %q", answers["direct"], answers["proxy"])
			}
		})
	}
}

// TestCrashMidInvocation: a runtime that exits mid-invocation gets RIE's
// Runtime.ExitError (502), the same behind the proxy, and the next
// invocation works (RIE starts the runtime again).
func TestCrashMidInvocation(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			needFixture(t, f)
			var got []string
			for _, mode := range []string{"direct", "proxy"} {
				cmd := f.command
				if mode == "proxy" {
					cmd = through(cmd)
				}
				r := startRIE(t, Options{Command: cmd})
				if res := invoke(t, r, "warm-1", map[string]any{"action": "echo"}); res.Status != 200 {
					t.Fatalf("%s: first invoke: %d %s", mode, res.Status, res.Body)
				}
				res := invoke(t, r, "crash-1", map[string]any{"action": "crash"})
				a := answer(t, res)
				if res.Status != 502 || a["errorType"] != "Runtime.ExitError" ||
					a["errorMessage"] != "RequestId: crash-1 Error: Runtime exited with error: exit status 3" {
					t.Errorf("%s: crash: %d %s", mode, res.Status, res.Body)
				}
				got = append(got, fmt.Sprintf("%d %s", res.Status, res.Body))
				res = invoke(t, r, "after-1", map[string]any{"action": "echo", "after": "crash"})
				if a := answer(t, res); res.Status != 200 || a["after"] != "crash" {
					t.Errorf("%s: invoke after crash: %d %s", mode, res.Status, res.Body)
				}
				if !r.WaitOutput("fixture: crashing on purpose", 2*time.Second) {
					t.Errorf("%s: the runtime's stderr is not in RIE's output", mode)
				}
				if mode == "proxy" && !r.WaitOutput(`"@message":"runtime exited mid-invocation"`, 2*time.Second) {
					t.Errorf("proxy: proxyrun did not see the crash mid-invocation")
				}
			}
			if got[0] != got[1] {
				t.Errorf("crash answers differ: direct %q, proxy %q", got[0], got[1])
			}
		})
	}
}
