package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"vigil/internal/probe"
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
	level, levelOK := lambdaLogLevel(os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
	lw := supervisor.NewLineWriter(auditLevelWriter(os.Stderr, level))
	logger := supervisor.NewLogger(lw, level.hclog())
	log := logger.Named("bootstrap")
	if !levelOK {
		log.Warn("AWS_LAMBDA_LOG_LEVEL is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL; logging at INFO", "value", os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
	}
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
	// init error. The first report wins (in the exec-wrapper form the
	// policy loads while the supervisor starts: both can fail).
	var failMu sync.Mutex
	failed := false
	initFail := func(errorType, msg string) int {
		failMu.Lock()
		defer failMu.Unlock()
		log.Error(msg, "error_type", errorType)
		if proxy != nil && !failed {
			if err := proxy.InitError(errorType, msg); err != nil {
				log.Error("init error not reported", "error", err.Error())
			}
		}
		failed = true
		if proxy != nil {
			return 1
		}
		return 2
	}

	// The custom runtime logs once at init what the kernel allows (the
	// same report as --probe), so that CloudWatch shows which backend can
	// work here. It runs beside the start, from a child process of its own
	// (probe.RunIsolated: the supervisor reaps its own children), and is
	// logged when it is done. VIGIL_PROBE=0 skips it.
	if len(cmd) == 0 && os.Getenv("VIGIL_PROBE") != "0" {
		go func() {
			r := probe.RunIsolated()
			log.Info("kernel probe", "probe", r, "backend_auto_picks", r.Backend())
		}()
	}

	// The backend: $VIGIL_BACKEND, else backend in rules.toml, else auto.
	backend := os.Getenv("VIGIL_BACKEND")
	if backend != "" && !rules.ValidBackend(backend) {
		return initFail(errTypePolicy, fmt.Sprintf("vigil: VIGIL_BACKEND=%q is not a backend, so the function was not started; use one of %s", backend, strings.Join(rules.Backends, ", ")))
	}

	path, tried := policyPath(os.Getenv)
	// load loads the policy; on failure it reports the init error and
	// returns nil with the exit status.
	load := func() (*rules.Policy, int) {
		pol, err := rules.Load(path, rules.Options{Function: function, RuntimeAPI: childAPI})
		if err != nil {
			msg := fmt.Sprintf("vigil: the policy %s does not load, so the function was not started: %v; fix it (bootstrap --check %s lists every problem)", path, err, path)
			if len(tried) > 1 {
				msg = fmt.Sprintf("vigil: no policy, so the function was not started: neither %s exists; put rules.toml beside the function code, add it to a layer at /opt/vigil/rules.toml, or set VIGIL_RULES", strings.Join(tried, " nor "))
			}
			return nil, initFail(errTypePolicy, msg)
		}
		if m := os.Getenv("VIGIL_MODE"); m != "" {
			mode, ok := rules.ParseMode(m)
			if !ok {
				return nil, initFail(errTypePolicy, fmt.Sprintf("vigil: VIGIL_MODE=%q is not a mode, so the function was not started; use enforce or audit", m))
			}
			pol = pol.WithMode(mode)
		}
		return pol, 0
	}

	auditor := supervisor.NewAuditor(lw)
	auditor.SetFunction(function)
	env := os.Environ()
	if proxy != nil {
		env = withEnv(env, "AWS_LAMBDA_RUNTIME_API", childAPI)
	}
	// configure does what needs the loaded policy, before the supervisor
	// makes its first decision.
	configure := func(pol *rules.Policy) {
		log.Info("starting the runtime under Vigil", "policy", path, "mode", pol.Mode().String(), "command", strings.Join(cmd, " "))
		for _, w := range pol.Warnings() {
			log.Warn(w, "policy", path)
		}
		if proxy == nil {
			return
		}
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
				if line := emfLine(time.Now(), level.atLeast(levelInfo), function, inv.RequestID, counter.Take()); line != nil {
					lw.WriteLine(line)
				}
			}
		})
	}

	var policy supervisor.Policy
	loaded := func() {}
	// The exec wrapper starts the supervisor while the policy loads (below),
	// unless the policy may choose the backend: then it is read first.
	if len(cmd) == 0 || (backend == "" && mayNameBackend(path)) {
		// The custom runtime's command may come from the policy.
		pol, code := load()
		if pol == nil {
			return code
		}
		if len(cmd) == 0 {
			if cmd = runtimeCommand(pol, os.Getenv); len(cmd) == 0 {
				return initFail(errTypeNoRuntime, fmt.Sprintf(
					"vigil: no runtime command, so the function was not started; set [runtime] command = [\"/var/task/handler\"] in %s, or VIGIL_RUNTIME, or use Vigil as AWS_LAMBDA_EXEC_WRAPPER", path))
			}
		}
		if backend == "" {
			backend = pol.Backend()
		}
		configure(pol)
		policy = pol
	} else {
		// The exec wrapper knows its command: the supervisor builds its
		// filter and starts the child while the policy loads (on a cold
		// start the two overlap). Every decision, the first being the
		// runtime's own exec, waits for the policy; one that does not load
		// ends the bootstrap before any decision is made.
		lazy := newLazyPolicy()
		go func() {
			pol, code := load()
			if pol == nil {
				os.Exit(code)
			}
			if b := pol.Backend(); b != "auto" && os.Getenv("VIGIL_BACKEND") == "" {
				// Read after the supervisor chose its backend (a policy
				// that is not a regular file): do not run with another one
				// than it asks for.
				os.Exit(initFail(errTypePolicy, fmt.Sprintf("vigil: %s sets backend = %q, which cannot apply: the policy is not a regular file, so it was read after the supervisor started; set VIGIL_BACKEND=%s instead", path, b, b)))
			}
			configure(pol)
			lazy.set(pol)
		}()
		policy = lazy
		// Whatever the supervisor says, a policy that does not load is the
		// error to report (the loader does, and exits).
		loaded = func() { <-lazy.ready }
	}
	if backend == "" {
		backend = "auto"
	}
	status, err := supervisor.Run(supervisor.Config{
		Policy:      policy,
		Args:        cmd,
		Env:         env,
		Auditor:     auditor,
		Logger:      logger,
		JSONLog:     jsonLog,
		Backend:     backend,
		BackendHook: backendLogger(logger, backend),
	})
	loaded()
	if err != nil {
		errorType, hint := errTypeFilter, "Vigil needs seccomp user notification (Linux 5.9+) or ptrace; the error says what the kernel refused for each backend (bootstrap --probe shows what works); check that nothing else (a tracer, a stricter seccomp filter) is in the way"
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

// mayNameBackend reports whether the policy file may set the backend key
// (a cheap look at its text; unreadable: maybe). If it cannot, the exec
// wrapper need not wait for the policy to choose the backend.
func mayNameBackend(path string) bool {
	st, err := os.Stat(path)
	if err == nil && !st.Mode().IsRegular() {
		// A FIFO cannot be peeked at without consuming it: read it while
		// the supervisor starts; a backend it names is then refused
		// (lazyBackendCheck).
		return false
	}
	b, err := os.ReadFile(path)
	return err != nil || bytes.Contains(b, []byte("backend"))
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

// logLevel is one of Lambda's application log levels, the values of
// AWS_LAMBDA_LOG_LEVEL (set by Lambda's advanced logging controls with the
// JSON log format), from the most detailed to the least. Lambda keeps a
// JSON line whose "level" is the configured one or less detailed and drops
// the others; a line with no or an unknown "level" counts as INFO.
type logLevel int

const (
	levelTrace logLevel = iota
	levelDebug
	levelInfo
	levelWarn
	levelError
	levelFatal
)

var levelNames = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

func (l logLevel) String() string { return levelNames[l] }

// atLeast returns the name of the less detailed of l and min: the level a
// line of level min must carry to pass Lambda's filter at l.
func (l logLevel) atLeast(min logLevel) string { return max(l, min).String() }

// hclog is the level of Vigil's own logger: what Lambda would drop is not
// written. hclog has no FATAL, and Vigil logs nothing at that level.
func (l logLevel) hclog() hclog.Level {
	return [...]hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error, hclog.Off}[l]
}

// lambdaLogLevel parses AWS_LAMBDA_LOG_LEVEL (any case). Unset means
// INFO; a value that is not a Lambda log level is INFO too, with ok false.
func lambdaLogLevel(s string) (l logLevel, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return levelInfo, true
	}
	for i, n := range levelNames {
		if strings.EqualFold(s, n) {
			return logLevel(i), true
		}
	}
	return levelInfo, false
}

// auditLevelWriter returns the writer under the LineWriter that audit
// lines and Vigil's log lines share, for Lambda's log level l. Vigil's own
// lines are filtered by their logger and the EMF line is written at a level
// that passes, so only audit lines need it: a denial (deny, kill, or an
// audit-mode "would deny") is a security event and must reach CloudWatch
// whatever the level, so one that Lambda would drop (a WARN line at ERROR
// or FATAL, an ERROR line at FATAL) has its "level" raised to l; an allowed
// decision (INFO, only with log_allowed) is an ordinary line and is dropped
// below l. Below WARN nothing changes and w itself is returned.
func auditLevelWriter(w io.Writer, l logLevel) io.Writer {
	if l < levelWarn {
		return w
	}
	return &levelWriter{w: w, min: l}
}

// levelWriter rewrites or drops audit lines for a log level (see
// auditLevelWriter). Each Write is one whole line: LineWriter writes every
// line in one call.
type levelWriter struct {
	w   io.Writer
	min logLevel
}

var (
	jsonLevelKey  = []byte(`"level":"`)
	auditDecision = []byte(`,"vigil":{"decision":"`)
	decisionAllow = []byte(supervisor.DecisionAllow + `"`)
)

// levelSearchLimit bounds the search for an audit line's "level": it is
// the second member, after a timestamp of fixed size.
const levelSearchLimit = 80

func (lw *levelWriter) Write(line []byte) (int, error) {
	// An unescaped quote only occurs in JSON's structure, never inside a
	// string, so these markers cannot come from a path or a message.
	d := bytes.Index(line, auditDecision)
	if d < 0 {
		return lw.w.Write(line)
	}
	head := line[:min(len(line), levelSearchLimit)]
	k := bytes.Index(head, jsonLevelKey)
	if k < 0 {
		return lw.w.Write(line)
	}
	start := k + len(jsonLevelKey)
	end := bytes.IndexByte(line[start:], '"')
	if end < 0 {
		return lw.w.Write(line)
	}
	end += start
	cur, ok := lambdaLogLevel(string(line[start:end]))
	if !ok || cur >= lw.min {
		return lw.w.Write(line)
	}
	if bytes.HasPrefix(line[d+len(auditDecision):], decisionAllow) {
		return len(line), nil // an allowed decision below the level: dropped, as Lambda would
	}
	out := make([]byte, 0, len(line)+8)
	out = append(out, line[:start]...)
	out = append(out, lw.min.String()...)
	out = append(out, line[end:]...)
	if _, err := lw.w.Write(out); err != nil {
		return 0, err
	}
	return len(line), nil
}

// lazyPolicy is the supervisor's policy while the real one loads: every
// question waits until set has given it one. It never answers on its own,
// so nothing is decided, let alone allowed, without the policy.
type lazyPolicy struct {
	p     atomic.Pointer[rules.Policy]
	ready chan struct{}
}

func newLazyPolicy() *lazyPolicy { return &lazyPolicy{ready: make(chan struct{})} }

// set gives the policy; once.
func (l *lazyPolicy) set(p *rules.Policy) {
	l.p.Store(p)
	close(l.ready)
}

func (l *lazyPolicy) get() *rules.Policy {
	if p := l.p.Load(); p != nil {
		return p
	}
	<-l.ready
	return l.p.Load()
}

func (l *lazyPolicy) Mode() rules.Mode { return l.get().Mode() }
func (l *lazyPolicy) LogAllowed() bool { return l.get().LogAllowed() }
func (l *lazyPolicy) Exec(path string, c rules.Caller) rules.Decision {
	return l.get().Exec(path, c)
}
func (l *lazyPolicy) Open(path string, acc rules.Access, c rules.Caller) rules.Decision {
	return l.get().Open(path, acc, c)
}
func (l *lazyPolicy) Connect(addr netip.AddrPort) rules.Decision { return l.get().Connect(addr) }
func (l *lazyPolicy) Listen(addr netip.AddrPort) rules.Decision  { return l.get().Listen(addr) }
func (l *lazyPolicy) ConnectAbstract(name string) rules.Decision {
	return l.get().ConnectAbstract(name)
}
func (l *lazyPolicy) ListenAbstract(name string) rules.Decision {
	return l.get().ListenAbstract(name)
}

var _ supervisor.Policy = (*lazyPolicy)(nil)
