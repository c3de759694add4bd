// Package lambdatest runs Lambda functions under AWS's Runtime Interface
// Emulator (RIE), built from the Go module proxy, for Vigil's tests.
//
// RIE facts the harness is built around (see docs and the tests):
//   - it listens for invokes on --runtime-interface-emulator-address and
//     serves the Runtime API on --runtime-api-address; both are chosen free
//     on 127.0.0.1 here;
//   - it starts the bootstrap at the first invoke (cold start), passes its
//     whole environment to it, and reads its own flags anywhere on the
//     command line: the harness gives it a clean environment and wraps a
//     command whose arguments look like flags in a script;
//   - two concurrent invokes crash it: Invoke serialises them;
//   - the runtime's stdout and stderr appear on RIE's stdout, mixed with
//     RIE's START/END/REPORT lines: Output returns all of it.
//
// Measured with the tests here (RIE v0.0.0-20261030222936-bef5c4ba774d):
// a runtime that exits mid-invocation gets 502 Runtime.ExitError and RIE
// starts it again at the next invoke; an /init/error is the answer (502) to
// that invoke and every later one; an /invocation/{id}/error posted just
// before the runtime exits is the answer's body (502). RIE buffers invokes:
// a streaming response comes back as the chunks joined, and its error
// trailers are dropped (200). RIE renders no Lambda-Runtime-Trace-Id (its
// tracer is a no-op) but does pass X-Amz-Client-Context (base64),
// X-Amz-Cognito-Identity and X-Amz-Tenant-Id to the runtime's headers.
package lambdatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RIEPackage is the RIE main package; go.mod pins its version as a tool.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// BuildRIE builds RIE into dir from module root moduleDir (the directory of
// the go.mod that pins it) and returns the binary's path.
func BuildRIE(moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "aws-lambda-rie")
	cmd := exec.Command("go", "build", "-o", bin, RIEPackage)
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", RIEPackage, err, out)
	}
	return bin, nil
}

// Options describe one emulated function.
type Options struct {
	RIE     string   // the aws-lambda-rie binary
	Command []string // the bootstrap command (RIE's "last argument is _HANDLER" applies)
	Dir     string   // working directory (RIE's and the runtime's); default: a temp dir
	// Env is added to the clean base environment (BaseEnv), "KEY=VALUE"
	// each. AWS_LAMBDA_FUNCTION_TIMEOUT (seconds) sets
	// the invocation timeout.
	Env []string
	// EmulatorAddr and RuntimeAPIAddr fix RIE's addresses; empty: free
	// ports on 127.0.0.1.
	EmulatorAddr, RuntimeAPIAddr string
	// ScriptDir holds the wrapper script, if one is needed; default: a
	// temp dir.
	ScriptDir string
}

// BaseEnv is the clean environment every RIE gets (PYTHONDONTWRITEBYTECODE
// keeps Python fixtures from writing __pycache__ into the source tree).
func BaseEnv() []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
		"HOME=" + os.TempDir(),
		"TMPDIR=" + os.TempDir(),
		"PYTHONDONTWRITEBYTECODE=1",
	}
}

// RIE is a running emulator.
type RIE struct {
	EmulatorAddr   string // where invokes go
	RuntimeAPIAddr string // the Runtime API RIE serves to the bootstrap

	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{} // closed when RIE exited
	err    error         // RIE's exit error, valid after done
	client *http.Client

	invokeMu sync.Mutex // one invocation at a time: RIE crashes otherwise
	stopOnce sync.Once
	tmpDirs  []string
}

// Result is an invocation's answer.
type Result struct {
	Status   int
	Header   http.Header
	Body     []byte
	Duration time.Duration // request sent to answer read
}

// Start starts RIE and waits until it accepts invokes. Stop it with Stop.
func Start(opts Options) (*RIE, error) {
	if len(opts.Command) == 0 {
		return nil, errors.New("lambdatest: no bootstrap command")
	}
	r := &RIE{
		EmulatorAddr:   opts.EmulatorAddr,
		RuntimeAPIAddr: opts.RuntimeAPIAddr,
		out:            &syncBuffer{},
		done:           make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{
			Proxy:              nil,
			DisableCompression: true,
			MaxIdleConns:       1,
		}},
	}
	var err error
	if r.EmulatorAddr == "" {
		if r.EmulatorAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	if r.RuntimeAPIAddr == "" {
		if r.RuntimeAPIAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = r.tempDir(); err != nil {
			return nil, err
		}
	}
	command := opts.Command
	if needsScript(command) {
		sd := opts.ScriptDir
		if sd == "" {
			if sd, err = r.tempDir(); err != nil {
				return nil, err
			}
		}
		script, err := WriteScript(sd, "bootstrap", nil, command)
		if err != nil {
			r.cleanup()
			return nil, err
		}
		command = []string{script}
	}
	args := append([]string{
		"--runtime-interface-emulator-address", r.EmulatorAddr,
		"--runtime-api-address", r.RuntimeAPIAddr,
	}, command...)
	r.cmd = exec.Command(opts.RIE, args...)
	r.cmd.Dir = dir
	r.cmd.Env = append(BaseEnv(), opts.Env...)
	r.cmd.Stdout = r.out
	r.cmd.Stderr = r.out
	// Its own process group: Stop ends RIE and every runtime process it
	// started, whatever they became.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.WaitDelay = 2 * time.Second
	if err := r.cmd.Start(); err != nil {
		r.cleanup()
		return nil, fmt.Errorf("lambdatest: start RIE: %w", err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	if err := r.waitReady(10 * time.Second); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *RIE) tempDir() (string, error) {
	d, err := os.MkdirTemp("", "lambdatest-")
	if err != nil {
		return "", err
	}
	r.tmpDirs = append(r.tmpDirs, d)
	return d, nil
}

func (r *RIE) cleanup() {
	for _, d := range r.tmpDirs {
		os.RemoveAll(d)
	}
	r.tmpDirs = nil
}

// waitReady waits until RIE accepts connections on its invoke address.
func (r *RIE) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", r.EmulatorAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("lambdatest: RIE exited before it was ready (%v):\n%s", r.err, r.Output())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lambdatest: RIE not ready on %s after %v:\n%s", r.EmulatorAddr, timeout, r.Output())
		}
	}
}

// Invoke sends one invocation with the given request id ("" lets RIE pick
// one) and waits for its answer. Invocations on one RIE are serialised.
func (r *RIE) Invoke(ctx context.Context, requestID string, payload []byte) (*Result, error) {
	return r.InvokeWithHeaders(ctx, requestID, payload, nil)
}

// InvokeWithHeaders is Invoke with extra request headers (X-Amzn-Trace-Id,
// X-Amz-Client-Context, X-Amz-Cognito-Identity, ...).
func (r *RIE) InvokeWithHeaders(ctx context.Context, requestID string, payload []byte, h http.Header) (*Result, error) {
	r.invokeMu.Lock()
	defer r.invokeMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+r.EmulatorAddr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	for k, vv := range h {
		req.Header[k] = vv
	}
	if requestID != "" {
		req.Header.Set("X-Amzn-RequestId", requestID)
	}
	start := time.Now()
	res, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lambdatest: invoke: %w", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("lambdatest: invoke: read answer: %w", err)
	}
	return &Result{Status: res.StatusCode, Header: res.Header, Body: body, Duration: time.Since(start)}, nil
}

// Output is everything RIE wrote so far: its own log, START/END/REPORT
// lines, and the runtime's stdout and stderr.
func (r *RIE) Output() string { return r.out.String() }

// WaitOutput waits until Output contains s.
func (r *RIE) WaitOutput(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.Output(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Exited reports whether RIE has exited.
func (r *RIE) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Stop ends RIE and its runtime processes (SIGTERM to the process group,
// SIGKILL after 2 s) and removes the harness's temporary directories. Safe
// to call more than once.
func (r *RIE) Stop() {
	r.stopOnce.Do(func() {
		pgid := r.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-r.done
		}
		// Runtime processes that outlived RIE in its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		r.client.CloseIdleConnections()
		r.cleanup()
	})
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// needsScript: RIE would read an argument starting with "-" as its own flag.
func needsScript(command []string) bool {
	for _, a := range command {
		if strings.HasPrefix(a, "-") {
			return true
		}
	}
	return false
}

// WriteScript writes an executable sh script dir/name that sets env
// ("KEY=VALUE" each) and execs argv, and returns its path.
func WriteScript(dir, name string, env, argv []string) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", fmt.Errorf("lambdatest: bad environment entry %q", kv)
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	b.WriteString("exec")
	for _, a := range argv {
		b.WriteString(" " + shellQuote(a))
	}
	b.WriteString("\n")
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		return "", err
	}
	return path, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
