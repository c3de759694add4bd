// demo is `make demo`: it runs the Python fixture function (a stdlib
// Runtime API loop and a handler that does what its event asks) under
// Vigil, as AWS_LAMBDA_EXEC_WRAPPER would, inside AWS's Runtime Interface
// Emulator, sends it a few invocations that the demo policy allows or
// denies, and prints each answer and the audit lines Vigil wrote for it.
//
// Usage: demo REPO_ROOT BOOTSTRAP RULES
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"vigil/lambdatest"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: demo REPO_ROOT BOOTSTRAP RULES")
		os.Exit(2)
	}
	if err := run(os.Stdout, os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type step struct {
	name  string
	event map[string]any
}

func run(w io.Writer, root, boot, rules string) error {
	dir, err := os.MkdirTemp("", "vigil-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rie, err := lambdatest.BuildRIE(root, dir)
	if err != nil {
		return fmt.Errorf("building the Runtime Interface Emulator: %w", err)
	}
	python := "/usr/bin/python3"
	// The function's code goes where Lambda would find it, /var/task on
	// Lambda; here a temporary directory under /tmp (the baseline lets a
	// function read and write /tmp).
	fn := filepath.Join(dir, "task")
	if err := os.Mkdir(fn, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"runtime.py", "handler.py"} {
		b, err := os.ReadFile(filepath.Join(root, "fixtures", "functions", "python", f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(fn, f), b, 0o644); err != nil {
			return err
		}
	}
	cmd := []string{boot, python, filepath.Join(fn, "runtime.py")}
	fmt.Fprintf(w, "== AWS Lambda Runtime Interface Emulator running: %s\n", strings.Join(cmd, " "))
	fmt.Fprintf(w, "== policy: %s\n", rules)
	r, err := lambdatest.Start(lambdatest.Options{RIE: rie, Command: cmd, Dir: dir,
		Env: []string{"VIGIL_RULES=" + rules, "AWS_LAMBDA_FUNCTION_NAME=vigil-demo"}})
	if err != nil {
		return err
	}
	defer r.Stop()
	steps := []step{
		{"echo (allowed)", map[string]any{"action": "echo", "hello": "world"}},
		{"read its own code (allowed)", map[string]any{"action": "read", "path": filepath.Join(fn, "handler.py")}},
		{"read /etc/shadow (denied)", map[string]any{"action": "read", "path": "/etc/shadow"}},
		{"run /usr/bin/id (denied)", map[string]any{"action": "exec", "argv": []string{"/usr/bin/id"}}},
		{"connect 127.0.0.1:9 (denied)", map[string]any{"action": "connect", "host": "127.0.0.1", "port": 9}},
	}
	for i, s := range steps {
		id := fmt.Sprintf("demo-%d", i+1)
		payload, _ := json.Marshal(s.event)
		res, err := r.Invoke(context.Background(), id, payload)
		if err != nil {
			return fmt.Errorf("invoke %s: %w", id, err)
		}
		fmt.Fprintf(w, "\n== invocation %s: %s\n   event:  %s\n   answer: %d %s\n", id, s.name, payload, res.Status, strings.TrimSpace(string(res.Body)))
		// Audit lines are written while the call is denied, before the
		// answer; give the output a moment to arrive.
		time.Sleep(50 * time.Millisecond)
		for _, l := range auditLines(r.Output(), id) {
			fmt.Fprintf(w, "   audit:  %s\n", l)
		}
	}
	return nil
}

// auditLines returns Vigil's audit lines (JSON with a "vigil" decision)
// for one request id.
func auditLines(out, id string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		i := strings.IndexByte(l, '{')
		if i < 0 {
			continue
		}
		var v struct {
			RequestID string `json:"requestId"`
			Vigil     struct {
				Decision string `json:"decision"`
			} `json:"vigil"`
		}
		if json.Unmarshal([]byte(l[i:]), &v) == nil && v.RequestID == id && v.Vigil.Decision != "" {
			lines = append(lines, l[i:])
		}
	}
	return lines
}
