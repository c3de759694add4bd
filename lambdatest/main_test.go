package lambdatest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	repoRoot    string // module vigil's root
	rieBin      string // aws-lambda-rie, built by TestMain
	proxyrunBin string // lambdatest/internal/proxyrun, built by TestMain
	tcprelayBin string // lambdatest/internal/tcprelay, built by TestMain
	goFixture   string // fixtures/functions/go, built by TestMain
	rieSkip     string // why RIE-based tests cannot run, if they cannot
	goSkip      string // why the Go fixture could not be built, if it could not
)

func TestMain(m *testing.M) {
	if runtime.GOOS != "linux" {
		fmt.Println("lambdatest: Lambda runs Linux; nothing to run")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "lambdatest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "lambdatest: build:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// noModuleProxy tells a build that failed for want of the Go module proxy
// (a machine without network) from one that is broken.
func noModuleProxy(out string) bool {
	for _, s := range []string{"dial tcp", "proxy.golang.org", "GOPROXY", "GOFLAGS=-mod=mod", "missing go.sum entry", "no required module", "lookup ", "i/o timeout", "connection refused"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

func build(dir string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repoRoot = filepath.Dir(wd)
	if rieBin, err = BuildRIE(repoRoot, dir); err != nil {
		if !noModuleProxy(err.Error()) {
			return err
		}
		rieSkip = "aws-lambda-rie cannot be built without the Go module proxy: " + firstLine(err.Error())
	}
	proxyrunBin = filepath.Join(dir, "proxyrun")
	tcprelayBin = filepath.Join(dir, "tcprelay")
	cmd := exec.Command("go", "build", "-o", dir, "./lambdatest/internal/proxyrun", "./lambdatest/internal/tcprelay")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build proxyrun, tcprelay: %v\n%s", err, out)
	}
	// The Go fixture is its own module (so that vigil does not depend on
	// aws-lambda-go), built as Lambda's provided.al2023 runtime wants it.
	goFixture = filepath.Join(dir, "go-fixture", "bootstrap")
	cmd = exec.Command("go", "build", "-tags", "lambda.norpc", "-o", goFixture, ".")
	cmd.Dir = filepath.Join(repoRoot, "fixtures", "functions", "go")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		if !noModuleProxy(string(out)) {
			return fmt.Errorf("go build fixtures/functions/go: %v\n%s", err, out)
		}
		goSkip = "the Go fixture cannot be built without the Go module proxy: " + firstLine(string(out))
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// fixture is one of the fixture functions.
type fixture struct {
	name    string
	command []string
	skip    string // why it cannot run here, if it cannot
}

func fixtures() []fixture {
	fns := filepath.Join(repoRoot, "fixtures", "functions")
	return []fixture{
		{name: "go", command: []string{goFixture}, skip: goSkip},
		{name: "python", command: []string{filepath.Join(fns, "python", "bootstrap")}, skip: missing("python3")},
		{name: "node", command: []string{filepath.Join(fns, "node", "bootstrap")}, skip: missing("node")},
	}
}

func fixtureNamed(t testing.TB, name string) fixture {
	for _, f := range fixtures() {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %q", name)
	return fixture{}
}

// missing says why prog is not usable on the clean PATH the runtimes get.
func missing(prog string) string {
	for _, d := range strings.Split(strings.TrimPrefix(BaseEnv()[0], "PATH="), ":") {
		if fi, err := os.Stat(filepath.Join(d, prog)); err == nil && fi.Mode()&0o111 != 0 {
			return ""
		}
	}
	return prog + " is not installed on " + BaseEnv()[0]
}

// through returns the command that runs cmd behind the proxy (proxyrun),
// with proxyrun's own flags first.
func through(cmd []string, flags ...string) []string {
	out := append([]string{proxyrunBin}, flags...)
	out = append(out, "--")
	return append(out, cmd...)
}

// startRIE starts RIE on fresh ports for the test and stops it (and logs
// its output when the test failed) at cleanup.
func startRIE(t testing.TB, opts Options) *RIE {
	t.Helper()
	if rieSkip != "" {
		t.Skip(rieSkip)
	}
	opts.RIE = rieBin
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	r, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("RIE output:\n%s", r.Output())
		}
	})
	return r
}

func needFixture(t testing.TB, f fixture) {
	t.Helper()
	if rieSkip != "" {
		t.Skip(rieSkip)
	}
	if f.skip != "" {
		t.Skip(f.skip)
	}
}

// invoke sends event (marshalled to JSON) and returns the answer.
func invoke(t testing.TB, r *RIE, requestID string, event any) *Result {
	t.Helper()
	return invokeWith(t, r, requestID, event, nil)
}

// invokeWith is invoke with invoke request headers.
func invokeWith(t testing.TB, r *RIE, requestID string, event any, h http.Header) *Result {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := r.InvokeWithHeaders(ctx, requestID, payload, h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// answer decodes a JSON answer.
func answer(t testing.TB, res *Result) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatalf("answer (status %d) is not a JSON object: %q", res.Status, res.Body)
	}
	return m
}
