package lambdatest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"vigil/runtimeapi"
)

// TestCurrentDuringInvocation runs the proxy in the test process between
// RIE and the Go fixture: while an invocation is in flight, Current() holds
// the request id the invoker set, RIE's trace id, function ARN and deadline;
// afterwards it is empty, and each hook ran once.
func TestCurrentDuringInvocation(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	apiAddr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := runtimeapi.New(apiAddr, hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var invoked, done []runtimeapi.Invocation
	p.OnInvoke(func(inv runtimeapi.Invocation) { mu.Lock(); invoked = append(invoked, inv); mu.Unlock() })
	p.OnDone(func(inv runtimeapi.Invocation) { mu.Lock(); done = append(done, inv); mu.Unlock() })

	// RIE starts a script that points the runtime at the proxy.
	script, err := WriteScript(t.TempDir(), "bootstrap", []string{"AWS_LAMBDA_RUNTIME_API=" + p.Addr()}, f.command)
	if err != nil {
		t.Fatal(err)
	}
	r := startRIE(t, Options{Command: []string{script}, RuntimeAPIAddr: apiAddr, Env: []string{"AWS_LAMBDA_FUNCTION_TIMEOUT=30"}})

	if res := invoke(t, r, "cur-warm", map[string]any{"action": "echo"}); res.Status != 200 {
		t.Fatalf("warm-up: %d %s", res.Status, res.Body)
	}
	const trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	type outcome struct {
		res *Result
		err error
	}
	resc := make(chan outcome, 1)
	start := time.Now()
	go func() {
		h := http.Header{"X-Amzn-Trace-Id": {trace}}
		res, err := r.InvokeWithHeaders(context.Background(), "cur-1", []byte(`{"action":"sleep","ms":400}`), h)
		resc <- outcome{res, err}
	}()
	var cur runtimeapi.Invocation
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cur = p.Current(); cur.RequestID == "cur-1" {
			break
		}
	}
	if cur.RequestID != "cur-1" {
		t.Fatalf("Current() during the invocation = %+v", cur)
	}
	// RIE renders no Lambda-Runtime-Trace-Id: TraceID stays empty here
	// (runtimeapi's unit tests cover it).
	if cur.FunctionARN != "arn:aws:lambda:us-east-1:012345678912:function:test_function" {
		t.Errorf("Current() = %+v", cur)
	}
	if d := cur.Deadline.Sub(start); d < 29*time.Second || d > 31*time.Second+time.Since(start) {
		t.Errorf("deadline %v after the invoke was sent, want about 30s (AWS_LAMBDA_FUNCTION_TIMEOUT)", d)
	}
	o := <-resc
	if o.err != nil || o.res.Status != 200 || !strings.Contains(string(o.res.Body), `"action":"sleep"`) {
		t.Fatalf("invoke: %v %+v", o.err, o.res)
	}
	// The answer can reach the invoker a moment before the proxy has the
	// upstream's 202 for /response.
	for deadline := time.Now().Add(2 * time.Second); p.Current().RequestID != "" && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	if c := p.Current(); c.RequestID != "" {
		t.Errorf("Current() after the invocation = %+v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	ids := func(invs []runtimeapi.Invocation) (s []string) {
		for _, i := range invs {
			s = append(s, i.RequestID)
		}
		return s
	}
	if fmt.Sprint(ids(invoked)) != "[cur-warm cur-1]" || fmt.Sprint(ids(done)) != "[cur-warm cur-1]" {
		t.Errorf("OnInvoke saw %v, OnDone saw %v", ids(invoked), ids(done))
	}
}

// TestFailCurrentThroughRIE: when the runtime dies mid-invocation and the
// proxy reports it with FailCurrent, RIE answers with the posted error, and
// the next invocation works.
func TestFailCurrentThroughRIE(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	r := startRIE(t, Options{Command: through(f.command, "-on-crash", "fail", "-fail-type", "Vigil.RuntimeDied")})
	if res := invoke(t, r, "fc-warm", map[string]any{"action": "echo"}); res.Status != 200 {
		t.Fatalf("warm-up: %d %s", res.Status, res.Body)
	}
	res := invoke(t, r, "fc-crash", map[string]any{"action": "crash"})
	a := answer(t, res)
	t.Logf("RIE's answer after FailCurrent: %d %s", res.Status, res.Body)
	// The error document is the proxy's, not RIE's Runtime.ExitError. RIE
	// answers 502 when it sees the runtime exit before it answered the
	// invoker (proxyrun exits right after FailCurrent), 200 otherwise.
	if (res.Status != 502 && res.Status != 200) || a["errorType"] != "Vigil.RuntimeDied" ||
		a["errorMessage"] != "RequestId: fc-crash Error: Runtime exited with error: exit status 3" {
		t.Errorf("crash: %d %s", res.Status, res.Body)
	}
	res = invoke(t, r, "fc-after", map[string]any{"action": "echo", "after": "fail"})
	if a := answer(t, res); res.Status != 200 || a["after"] != "fail" {
		t.Errorf("invoke after crash: %d %s", res.Status, res.Body)
	}
}

// TestInitErrorThroughRIE: an init error reported with InitError before the
// runtime starts (what the bootstrap does when the policy cannot load) is
// RIE's answer to the invocation and to the next one, and the function's
// code never ran.
func TestInitErrorThroughRIE(t *testing.T) {
	f := fixtureNamed(t, "go")
	needFixture(t, f)
	marker := filepath.Join(t.TempDir(), "ran")
	const msg = `rules.toml:3: unknown key "exex": fix the policy`
	r := startRIE(t, Options{
		Command: through(f.command, "-init-error", "Vigil.PolicyError", "-init-message", msg),
		Env:     []string{"FIXTURE_MARKER=" + marker},
	})
	for _, id := range []string{"ie-1", "ie-2"} {
		res := invoke(t, r, id, map[string]any{"action": "echo"})
		var doc map[string]string
		if err := json.Unmarshal(res.Body, &doc); err != nil || res.Status != 502 ||
			doc["errorType"] != "Vigil.PolicyError" || doc["errorMessage"] != msg {
			t.Errorf("%s: %d %s", id, res.Status, res.Body)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the function's code ran despite the init error (marker: %v)", err)
	}
}

// TestStreamingThroughRIE sends a streaming response (chunked, with the
// response-mode header, chunks 30 ms apart, then the error trailers) from
// the Node.js fixture, directly and behind the proxy, and requires RIE's
// answers to match. RIE buffers invocations (it has no streaming invoke
// API): it answers with the chunks joined, and drops the error trailers
// (200 with the partial body), directly or behind the proxy.
func TestStreamingThroughRIE(t *testing.T) {
	f := fixtureNamed(t, "node")
	needFixture(t, f)
	events := []map[string]any{
		{"action": "stream", "chunks": []string{"alpha ", "beta ", "gamma"}, "delayMs": 30},
		{"action": "stream", "chunks": []string{"partial "}, "errorType": "Function.StreamError", "errorMessage": "broke mid-stream"},
	}
	var got [2][]string
	for i, mode := range []string{"direct", "proxy"} {
		cmd := f.command
		if mode == "proxy" {
			cmd = through(cmd)
		}
		r := startRIE(t, Options{Command: cmd})
		for j, ev := range events {
			res := invoke(t, r, fmt.Sprintf("stream-%d", j), ev)
			t.Logf("%s: %v -> %d %q", mode, ev["chunks"], res.Status, res.Body)
			got[i] = append(got[i], fmt.Sprintf("%d %s", res.Status, res.Body))
			if j == 0 && (res.Status != 200 || string(res.Body) != "alpha beta gamma") {
				t.Errorf("%s: streamed answer %d %q, want the chunks joined", mode, res.Status, res.Body)
			}
			// Streaming or not, the function stays usable.
			if res := invoke(t, r, fmt.Sprintf("after-stream-%d", j), map[string]any{"action": "echo"}); res.Status != 200 {
				t.Errorf("%s: invoke after stream: %d %s", mode, res.Status, res.Body)
			}
		}
	}
	if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
		t.Errorf("streaming answers differ:\ndirect %q\nproxy  %q", got[0], got[1])
	}
}
