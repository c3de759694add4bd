package supervisor

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestBackendsAgree runs the same allowed and denied calls under the three
// backends in one test and compares what the program saw and what the audit
// lines say (decision, operation, path or address, flags, rule). The whole
// package also runs once per backend (make test, VIGIL_TEST_BACKEND); this
// test puts the answers side by side.
func TestBackendsAgree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	setup := func() (*fakePolicy, string, [][]string) {
		root, pol := tree(t) // a fresh tree per backend: the cases change it
		pol.logAllowed = true
		pol.exec = append(pol.exec, fixture("hello"))
		pol.connect = append(pol.connect, "127.0.0.1:"+port)
		vt, fd, nd := fixture("vtool"), fixture("fsdoor"), fixture("netdoor")
		return pol, root, [][]string{
			{vt, "open", root + "/ro/file", "r"},
			{vt, "open", root + "/secret/file", "r"},
			{vt, "open", root + "/ro/file", "w"},
			{vt, "open", root + "/allowed/new", "c"},
			{vt, "open", root + "/ro/new", "c"},
			{vt, "openat2", root + "/ro/file", "r", "0"},
			{vt, "exec", fixture("hello")},
			{vt, "exec", "/bin/true"},
			{vt, "connect", "127.0.0.1", port},
			{vt, "connect", "127.0.0.1", "9"},
			{fd, "mkdir", root + "/allowed/dir", "0755"},
			{fd, "mkdir", root + "/ro/dir", "0755"},
			{fd, "unlink", root + "/ro/file"},
			{nd, "udp", "sendto", "127.0.0.1", "9"},
			{nd, "udp", "sendmsg", "127.0.0.1", "9"},
		}
	}
	type outcome struct {
		Status int
		Stdout string
		Events []Event
	}
	fdNum := regexp.MustCompile(`(fd|ino)=\d+`)
	var cases [][]string
	runAll := func(t *testing.T, backend string) []outcome {
		var pol *fakePolicy
		var root string
		pol, root, cases = setup()
		old := testBackend
		testBackend = backend
		defer func() { testBackend = old }()
		var out []outcome
		for _, args := range cases {
			r := supervise(t, pol, args...)
			if r.err != nil {
				t.Fatalf("%v under %s: %v", args, backend, r.err)
			}
			o := outcome{Status: r.status, Stdout: fdNum.ReplaceAllString(r.stdout, "$1=N")}
			for _, e := range auditEvents(t, r) {
				out := Event{Decision: e.Decision, Op: e.Op, Path: strings.ReplaceAll(e.Path, root, "ROOT"), Address: e.Address, Flags: e.Flags, Rule: e.Rule}
				o.Events = append(o.Events, out)
			}
			// Order apart: notify answers on several threads, and logs
			// an exec after its check.
			sort.Slice(o.Events, func(i, j int) bool { return fmt.Sprint(o.Events[i]) < fmt.Sprint(o.Events[j]) })
			out = append(out, o)
		}
		return out
	}
	want := runAll(t, "notify")
	for _, b := range []string{"ptrace-seccomp", "ptrace-alone"} {
		got := runAll(t, b)
		for i := range cases {
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Errorf("%v:\n notify:  %+v\n %s: %+v", cases[i][1:], want[i], b, got[i])
			}
		}
	}
	// The cases did what they are for: each denied one has its deny line.
	for i, o := range want {
		n := 0
		for _, e := range o.Events {
			if e.Decision == DecisionDeny {
				n++
			}
		}
		t.Logf("%v: status %d, %d denials: %s", cases[i][1:], o.Status, n, o.Stdout)
		if (n > 0) != (o.Status != 0) {
			t.Errorf("%v: status %d with %d denials", cases[i][1:], o.Status, n)
		}
	}
}
