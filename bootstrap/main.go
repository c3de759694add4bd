// Command bootstrap runs a program under Vigil's supervisor.
//
//	bootstrap                        (Lambda custom runtime)
//	bootstrap RUNTIME [ARGS...]      (AWS_LAMBDA_EXEC_WRAPPER)
//	bootstrap --rules FILE [--mode enforce|audit] [--function NAME] -- CMD [ARGS...]
//	bootstrap --check FILE [--function NAME]
//	bootstrap --probe
//
// It exits with CMD's status (128+N if CMD died of signal N). If the policy
// does not load or the filter cannot be installed, CMD does not run and the
// exit status is 2, with one line on stderr.
//
// With no arguments, or a first argument that does not start with "-", it
// is a Lambda runtime (see lambda.go): the policy is $VIGIL_RULES, else
// $LAMBDA_TASK_ROOT/rules.toml (default /var/task), else
// /opt/vigil/rules.toml; the runtime is RUNTIME ARGS..., else [runtime]
// command from the policy, else $VIGIL_RUNTIME. Under Lambda
// (AWS_LAMBDA_RUNTIME_API set) a failure to start is reported as an init
// error and the Runtime API is proxied so that audit lines carry the
// request id.
//
// --probe prints what this kernel allows (internal/probe) as one JSON line
// and then lines for people, all on stdout, and exits 1 when no backend
// works here.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"vigil/internal/probe"
	"vigil/rules"
	"vigil/supervisor"
)

const usage = `usage: bootstrap --rules FILE [--mode enforce|audit] [--function NAME] [--backend B] -- CMD [ARGS...]
       bootstrap --check FILE [--function NAME]
       bootstrap --probe             (what this kernel allows, and the backend auto picks)
       bootstrap                     (Lambda custom runtime; needs AWS_LAMBDA_RUNTIME_API)
       bootstrap RUNTIME [ARGS...]   (Lambda exec wrapper)
backends (--backend, or backend in rules.toml; default auto):
       auto, notify, ptrace, ptrace-seccomp, ptrace-alone`

type options struct {
	rules, check, mode, function, backend string
	functionSet, probe                    bool
	cmd                                   []string
}

func parseArgs(args []string) (options, error) {
	var o options
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.cmd = args[i+1:]
			return o, nil
		}
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "-") {
			// The command starts at the first non-flag argument.
			o.cmd = args[i:]
			return o, nil
		}
		name = strings.TrimLeft(name, "-")
		var dst *string
		switch name {
		case "rules":
			dst = &o.rules
		case "check":
			dst = &o.check
		case "mode":
			dst = &o.mode
		case "function":
			dst = &o.function
			o.functionSet = true
		case "backend":
			dst = &o.backend
		case "probe":
			if hasVal {
				return o, fmt.Errorf("flag %s takes no value", a)
			}
			o.probe = true
			continue
		case "h", "help":
			return o, errors.New(usage)
		default:
			return o, fmt.Errorf("unknown flag %s\n%s", a, usage)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") {
		return runLambda(args)
	}
	lw := supervisor.NewLineWriter(os.Stderr)
	log := supervisor.NewLogger(lw, hclog.Info).Named("bootstrap")

	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		return 2
	}
	if o.probe {
		return runProbe(os.Stdout)
	}
	if !o.functionSet {
		o.function = os.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	}
	ropts := rules.Options{Function: o.function, RuntimeAPI: os.Getenv("AWS_LAMBDA_RUNTIME_API")}

	if o.check != "" {
		p, err := rules.Load(o.check, ropts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vigil:", err)
			return 2
		}
		if err := p.WriteTOML(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "vigil:", err)
			return 2
		}
		return 0
	}
	if o.rules == "" || len(o.cmd) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	p, err := rules.Load(o.rules, ropts)
	if err != nil {
		log.Error("cannot load policy", "file", o.rules, "error", err.Error())
		return 2
	}
	if o.mode != "" {
		m, ok := rules.ParseMode(o.mode)
		if !ok {
			log.Error("bad mode", "mode", o.mode)
			return 2
		}
		p = p.WithMode(m)
	}
	backend := p.Backend()
	if o.backend != "" {
		if !rules.ValidBackend(o.backend) {
			log.Error("bad backend", "backend", o.backend, "valid", strings.Join(rules.Backends, ", "))
			return 2
		}
		backend = o.backend
	}
	auditor := supervisor.NewAuditor(lw)
	slog := supervisor.NewLogger(lw, hclog.Info)
	status, err := supervisor.Run(supervisor.Config{
		Policy:      p,
		Args:        o.cmd,
		Auditor:     auditor,
		Logger:      slog,
		Backend:     backend,
		BackendHook: backendLogger(slog, backend),
	})
	if err != nil {
		log.Error("cannot run command under the filter", "error", err.Error())
		return 2
	}
	return status
}

// backendLogger logs which backend took hold of the command when it is not
// the one asked for by name, nor notify for auto: a fallback worth knowing.
func backendLogger(log hclog.Logger, asked string) func(string) {
	return func(got string) {
		if got != asked && !(asked == "auto" && got == "notify") {
			log.Named("bootstrap").Info("backend in use", "backend", got, "asked", asked)
		}
	}
}

// runProbe prints the probe's report: one JSON line, then its lines for
// people. 1 when no backend works here, else 0.
func runProbe(w io.Writer) int {
	r := probe.Run()
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		return 2
	}
	fmt.Fprintf(w, "%s\n%s\n", b, strings.Join(r.Lines(), "\n"))
	if r.Backend() == probe.BackendNone {
		return 1
	}
	return 0
}
