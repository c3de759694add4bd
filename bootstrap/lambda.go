package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"vigil/rules"
	"vigil/runtimeapi"
	"vigil/supervisor"
)

// Init error types the bootstrap reports to /runtime/init/error. The
// function never runs when one is reported.
const (
	errTypePolicy    = "Vigil.PolicyError"       // the policy does not load
	errTypeFilter    = "Vigil.FilterError"       // the filter cannot be installed
	errTypeNoRuntime = "Vigil.NoRuntimeCommand"  // custom runtime without a command
	errTypeStart     = "Vigil.RuntimeStartError" // the runtime command does not exist
	errTypeExit      = "Runtime.ExitError"       // the runtime died mid-invocation
)

// policyPath is where the Lambda modes read the policy: $VIGIL_RULES, else
// $LAMBDA_TASK_ROOT/rules.toml (default /var/task) if it exists, else
// /opt/vigil/rules.toml. It also returns the places looked at, for the
// error message when none exists.
func policyPath(getenv func(string) string) (string, []string) {
	if p := getenv("VIGIL_RULES"); p != "" {
		return p, []string{p}
	}
	root := getenv("LAMBDA_TASK_ROOT")
	if root == "" {
		root = "/var/task"
	}
	task := filepath.Join(root, "rules.toml")
	const layer = "/opt/vigil/rules.toml"
	if _, err := os.Stat(task); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return task, []string{task}
	}
	return layer, []string{task, layer}
}

// runtimeCommand is the custom runtime's command: [runtime] command from
// the policy, else $VIGIL_RUNTIME split on spaces.
func runtimeCommand(p *rules.Policy, getenv func(string) string) []string {
	if c := p.RuntimeCommand(); len(c) > 0 {
		return c
	}
	return strings.Fields(getenv("VIGIL_RUNTIME"))
}

// runLambda runs the custom runtime (cmd empty) or the exec wrapper (cmd
// is the runtime Lambda asked for). With AWS_LAMBDA_RUNTIME_API set it puts
// the Runtime API proxy between the runtime and Lambda: the runtime's
// AWS_LAMBDA_RUNTIME_API points at the proxy, audit lines carry the
// current request id, start failures are init errors and a runtime that
// dies mid-invocation fails that invocation. Nothing runs unguarded: any
// failure before the filter is in place ends the bootstrap without
// starting the runtime.
func runLambda(cmd []string) int {
	upstream := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	jsonLog := supervisor.LogFormatJSON(os.Getenv)
	if upstream == "" && len(cmd) == 0 {
		fmt.Fprintf(os.Stderr, "%s\n", supervisor.FormatLine(jsonLog, "ERROR", usage))
		return 2
	}
	lw := supervisor.NewLineWriter(os.Stderr)
	logger := supervisor.NewLogger(lw, hclog.Info)
	log := logger.Named("bootstrap")
	function := os.Getenv("AWS_LAMBDA_FUNCTION_NAME")

	var proxy *runtimeapi.Proxy
	childAPI := upstream
	if upstream != "" {
		var err error
		if proxy, err = runtimeapi.New(upstream, logger); err != nil {
			// Nothing can be reported through a proxy that does not run;
			// exiting before the runtime starts is Lambda's init failure.
			log.Error("cannot start the Runtime API proxy; the function was not started", "error", err.Error())
			return 1
		}
		defer proxy.Close()
		childAPI = proxy.Addr()
	}
	// initFail logs why the runtime was not started and reports it as an
	// init error.
	initFail := func(errorType, msg string) int {
		log.Error(msg, "error_type", errorType)
		if proxy != nil {
			if err := proxy.InitError(errorType, msg); err != nil {
				log.Error("init error not reported", "error", err.Error())
			}
			return 1
		}
		return 2
	}

	path, tried := policyPath(os.Getenv)
	pol, err := rules.Load(path, rules.Options{Function: function, RuntimeAPI: childAPI})
	if err != nil {
		msg := fmt.Sprintf("vigil: the policy %s does not load, so the function was not started: %v; fix it (bootstrap --check %s lists every problem)", path, err, path)
		if len(tried) > 1 {
			msg = fmt.Sprintf("vigil: no policy, so the function was not started: neither %s exists; put rules.toml beside the function code, add it to a layer at /opt/vigil/rules.toml, or set VIGIL_RULES", strings.Join(tried, " nor "))
		}
		return initFail(errTypePolicy, msg)
	}
	if m := os.Getenv("VIGIL_MODE"); m != "" {
		mode, ok := rules.ParseMode(m)
		if !ok {
			return initFail(errTypePolicy, fmt.Sprintf("vigil: VIGIL_MODE=%q is not a mode, so the function was not started; use enforce or audit", m))
		}
		pol = pol.WithMode(mode)
	}
	if len(cmd) == 0 {
		if cmd = runtimeCommand(pol, os.Getenv); len(cmd) == 0 {
			return initFail(errTypeNoRuntime, fmt.Sprintf(
				"vigil: no runtime command, so the function was not started; set [runtime] command = [\"/var/task/handler\"] in %s, or VIGIL_RUNTIME, or use Vigil as AWS_LAMBDA_EXEC_WRAPPER", path))
		}
	}

	auditor := supervisor.NewAuditor(lw)
	auditor.SetFunction(function)
	env := os.Environ()
	if proxy != nil {
		var counter *supervisor.DenialCounter
		if pol.Metrics() {
			counter = new(supervisor.DenialCounter)
			auditor.SetCounter(counter)
		}
		proxy.OnInvoke(func(inv runtimeapi.Invocation) {
			if counter != nil {
				counter.Take() // denials before this invocation (init) are not its own
			}
			auditor.SetRequestID(inv.RequestID)
		})
		proxy.OnDone(func(inv runtimeapi.Invocation) {
			auditor.SetRequestID(proxy.Current().RequestID)
			if counter != nil {
				if line := emfLine(time.Now(), function, inv.RequestID, counter.Take()); line != nil {
					lw.WriteLine(line)
				}
			}
		})
		env = withEnv(env, "AWS_LAMBDA_RUNTIME_API", childAPI)
	}
	log.Info("starting the runtime under Vigil", "policy", path, "mode", pol.Mode().String(), "command", strings.Join(cmd, " "))
	status, err := supervisor.Run(supervisor.Config{
		Policy:  pol,
		Args:    cmd,
		Env:     env,
		Auditor: auditor,
		Logger:  logger,
		JSONLog: jsonLog,
	})
	if err != nil {
		errorType, hint := errTypeFilter, "Vigil needs Linux 5.9+ with seccomp user notification; check the kernel and that nothing else (a tracer, a stricter seccomp filter) is in the way"
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			errorType, hint = errTypeStart, "check the runtime command's path"
		}
		return initFail(errorType, fmt.Sprintf("vigil: cannot start %q under the filter, so the function was not started: %v; %s", cmd[0], err, hint))
	}
	if proxy != nil {
		if cur := proxy.Current(); cur.RequestID != "" {
			msg := fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %s", cur.RequestID, describeStatus(status))
			log.Error("the runtime exited mid-invocation", "request_id", cur.RequestID, "status", describeStatus(status))
			if err := proxy.FailCurrent(errTypeExit, msg); err != nil {
				log.Error("invocation error not reported", "error", err.Error())
			}
			if status == 0 {
				status = 1 // Lambda must start a fresh runtime
			}
		}
	}
	return status
}

// describeStatus says how the runtime ended, as Go's ProcessState does
// ("exit status 3", "signal: killed").
func describeStatus(status int) string {
	if status > 128 && status < 128+65 {
		return "signal: " + signalName(status-128)
	}
	return fmt.Sprintf("exit status %d", status)
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
