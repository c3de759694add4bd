package runtimeapi_test

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/hashicorp/go-hclog"

	"vigil/runtimeapi"
)

// The bootstrap's use: serve the Runtime API to the runtime it starts, know
// the invocation in flight, and report failures the runtime cannot.
func Example() {
	log := hclog.New(&hclog.LoggerOptions{Name: "vigil", Output: os.Stderr})
	p, err := runtimeapi.New(os.Getenv("AWS_LAMBDA_RUNTIME_API"), log)
	if err != nil {
		log.Error("runtime api proxy failed", "error", err)
		os.Exit(1)
	}
	defer p.Close()

	// A policy that cannot load: the function must not run unguarded.
	if policyErr := error(nil); policyErr != nil {
		_ = p.InitError("Vigil.PolicyError", policyErr.Error())
		os.Exit(1)
	}

	p.OnDone(func(inv runtimeapi.Invocation) { /* per-invocation metrics */ })
	cmd := exec.Command("/var/task/function")
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+p.Addr()) // later entries win
	if err := cmd.Run(); err != nil {
		// Audit lines carry p.Current().RequestID; a runtime that died
		// mid-invocation fails that invocation.
		_ = p.FailCurrent("Runtime.ExitError", fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %v", p.Current().RequestID, err))
	}
}
