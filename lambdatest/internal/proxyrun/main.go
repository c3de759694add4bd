// Command proxyrun runs a Lambda runtime behind Vigil's Runtime API proxy,
// without Vigil's supervisor: the shape the bootstrap will have. It is a
// test helper for package lambdatest, started by RIE as the bootstrap:
//
//	proxyrun [-log-level LEVEL] [-on-crash exit|fail] [-fail-type TYPE] [-init-error TYPE] [-init-message MSG] -- CMD [ARGS...]
//
// It serves the Runtime API on 127.0.0.1 for CMD (AWS_LAMBDA_RUNTIME_API
// points at it) and forwards to the real one. It logs each invocation start
// and end, with the proxy's Current(), as hclog JSON lines on stderr.
//
// -init-error reports an init error through the proxy and exits 1 without
// running CMD. When CMD exits while an invocation is in flight, -on-crash
// exit (the default) exits with CMD's status, leaving the error to Lambda
// (Runtime.ExitError); -on-crash fail first reports the invocation as
// failed with FailCurrent (errorType -fail-type, default Runtime.ExitError).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"vigil/runtimeapi"
)

func main() { os.Exit(run()) }

func run() int {
	onCrash := flag.String("on-crash", "exit", "what to do when the runtime exits mid-invocation: exit or fail")
	initError := flag.String("init-error", "", "report this init error type and exit without running the runtime")
	initMessage := flag.String("init-message", "init failed", "the message of -init-error")
	failType := flag.String("fail-type", "Runtime.ExitError", "the errorType -on-crash fail reports")
	logLevel := flag.String("log-level", "info", "hclog level: trace, debug, info, warn, error, off")
	flag.Parse()
	log := hclog.New(&hclog.LoggerOptions{Name: "proxyrun", Output: os.Stderr, JSONFormat: true, Level: hclog.LevelFromString(*logLevel)})
	if *onCrash != "exit" && *onCrash != "fail" {
		log.Error("bad -on-crash", "value", *onCrash)
		return 2
	}
	upstream := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	p, err := runtimeapi.New(upstream, log)
	if err != nil {
		log.Error("cannot start proxy", "error", err)
		return 1
	}
	defer p.Close()

	if *initError != "" {
		if err := p.InitError(*initError, *initMessage); err != nil {
			log.Error("init error not reported", "error", err)
		}
		return 1
	}
	argv := flag.Args()
	if len(argv) == 0 {
		_ = p.InitError("Vigil.NoRuntime", "proxyrun: no runtime command")
		return 2
	}
	p.OnInvoke(func(runtimeapi.Invocation) {
		log.Info("invocation started", "request_id", p.Current().RequestID)
	})
	p.OnDone(func(inv runtimeapi.Invocation) {
		log.Info("invocation done", "request_id", inv.RequestID, "current", p.Current().RequestID)
	})

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = withEnv(os.Environ(), "AWS_LAMBDA_RUNTIME_API", p.Addr())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		_ = p.InitError("Runtime.InvalidEntrypoint", fmt.Sprintf("proxyrun: start %s: %v", argv[0], err))
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	close(sigs)

	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		code = 1
	}
	if cur := p.Current(); cur.RequestID != "" {
		log.Info("runtime exited mid-invocation", "request_id", cur.RequestID, "status", cmd.ProcessState.String())
		if *onCrash == "fail" {
			msg := fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", cur.RequestID, cmd.ProcessState.String())
			if err := p.FailCurrent(*failType, msg); err != nil {
				log.Error("invocation error not reported", "error", err)
			}
		}
	}
	return code
}

// withEnv returns env with key set to value.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}
