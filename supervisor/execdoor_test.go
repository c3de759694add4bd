//go:build linux

package supervisor

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ---- pure parts ----

func TestLoaderProgramParse(t *testing.T) {
	cases := []struct {
		argv []string
		want int // -1: no program
	}{
		{[]string{"ld.so", "/bin/true"}, 1},
		{[]string{"ld.so"}, -1},
		{[]string{}, -1},
		{[]string{""}, -1},
		{[]string{"ld.so", "--library-path", "/x", "/bin/true", "a"}, 3},
		{[]string{"ld.so", "--library-path", "/bin/true"}, -1},
		{[]string{"ld.so", "--preload", "a.so", "--audit", "b.so", "--argv0", "/ok", "/bad"}, 7},
		{[]string{"ld.so", "--inhibit-rpath", "x", "--glibc-hwcaps-prepend", "y", "--glibc-hwcaps-mask", "z", "p"}, 7},
		{[]string{"ld.so", "--list", "--verify", "--inhibit-cache", "./p"}, 4},
		{[]string{"ld.so", "--help"}, -1},
		{[]string{"ld.so", "--version", "/p"}, 2},
		{[]string{"ld.so", "--library-path=/x", "/p"}, 2}, // musl's inline form
		{[]string{"ld.so", "--unknown", "/p"}, 2},
		{[]string{"ld.so", "--", "--p"}, 2},
		{[]string{"ld.so", "--"}, -1},
		{[]string{"ld.so", "-x", "/p"}, 1},
		{[]string{"ld.so", "p", "--library-path", "x"}, 1},
	}
	for _, c := range cases {
		i, ok := loaderProgram(c.argv)
		if !ok {
			i = -1
		}
		if i != c.want {
			t.Errorf("loaderProgram(%q) = %d, want %d", c.argv, i, c.want)
		}
	}
}

func TestParseShebang(t *testing.T) {
	long := "#!/" + strings.Repeat("x", 300)
	cases := []struct {
		in         string
		name, arg  string
		hasArg, ok bool
	}{
		{"#!/bin/sh\necho", "/bin/sh", "", false, true},
		{"#! /bin/sh -e -x \nrest", "/bin/sh", "-e -x", true, true},
		{"#!\t/usr/bin/env python3\n", "/usr/bin/env", "python3", true, true},
		{"#!/bin/sh   \n", "/bin/sh", "", false, true},
		{"#!/bin/sh", "/bin/sh", "", false, true}, // short file: NUL padded
		{"#!\n", "", "", false, false},
		{"#!   \n", "", "", false, false},
		{"#!/a\x00b c\n", "/a", "", false, true}, // a NUL ends the name and the line
		{"#!/a b\x00c\n", "/a", "b", true, true},
		{"#!rel arg\n", "rel", "arg", true, true},
		{"\x7fELF", "", "", false, false},
		{long, "", "", false, false}, // the name is truncated: ENOEXEC
		{"#!/bin/sh " + strings.Repeat("y", 300), "/bin/sh", strings.Repeat("y", 256-1-len("#!/bin/sh ")), true, true},
	}
	for _, c := range cases {
		name, arg, hasArg, ok := parseShebang([]byte(c.in))
		if name != c.name || arg != c.arg || hasArg != c.hasArg || ok != c.ok {
			t.Errorf("parseShebang(%q) = %q %q %v %v, want %q %q %v %v", c.in, name, arg, hasArg, ok, c.name, c.arg, c.hasArg, c.ok)
		}
	}
	if got := scriptArgv("/i", "a b", true, "/s", []string{"x", "1", "2"}); strings.Join(got, "|") != "/i|a b|/s|1|2" {
		t.Errorf("scriptArgv = %q", got)
	}
	if got := scriptArgv("/i", "", false, "/s", []string{""}); strings.Join(got, "|") != "/i|/s" {
		t.Errorf("scriptArgv = %q", got)
	}
}

func TestSplitCmdline(t *testing.T) {
	a, tr, err := splitCmdline([]byte("a\x00\x00b\x00"), 100)
	if err != nil || tr || strings.Join(a, "|") != "a||b" {
		t.Fatalf("%q %v %v", a, tr, err)
	}
	a, tr, err = splitCmdline([]byte("aa\x00bb\x00cc\x00"), 5)
	if err != nil || !tr || strings.Join(a, "|") != "aa" {
		t.Fatalf("%q %v %v", a, tr, err)
	}
}

func ldso(t *testing.T) string {
	t.Helper()
	p, err := filepath.EvalSymlinks("/lib64/ld-linux-x86-64.so.2")
	must(t, err)
	return p
}

func elfOf(t *testing.T, p string) elfInfo {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	info, err := parseELF(f)
	must(t, err)
	return info
}

func TestIsLoader(t *testing.T) {
	ld := ldso(t)
	dir := t.TempDir()
	info := elfOf(t, ld)
	if !info.elf64 || info.typ != etDyn || info.hasInterp || info.soname != "ld-linux-x86-64.so.2" || !isLoader(ld, info) {
		t.Fatalf("ld.so: %+v", info)
	}
	// A renamed copy is still a loader (its SONAME).
	cp := filepath.Join(dir, "innocent")
	copyFile(t, ld, cp)
	if !isLoader(cp, elfOf(t, cp)) {
		t.Fatal("renamed copy of ld.so not detected")
	}
	// A dynamic executable (PT_INTERP) and a static-pie (ET_DYN, no
	// PT_INTERP, no SONAME) are not loaders; neither is a script.
	if info := elfOf(t, fixture("hello")); !info.hasInterp || isLoader(fixture("hello"), info) {
		t.Fatalf("hello: %+v", info)
	}
	src := filepath.Join(dir, "sp.c")
	must(t, os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644))
	sp := filepath.Join(dir, "sp")
	if b, err := exec.Command("gcc", "-static-pie", "-o", sp, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc -static-pie: %v %s", err, b)
	}
	if info := elfOf(t, sp); info.typ != etDyn || info.hasInterp || info.soname != "" || isLoader(sp, info) {
		t.Fatalf("static-pie: %+v", info)
	}
	// Named like a loader: a loader even without SONAME.
	if !isLoader("/lib/ld-musl-x86_64.so.1", elfInfo{elf64: true, typ: etDyn}) {
		t.Fatal("ld-musl name")
	}
	sh := filepath.Join(dir, "s")
	must(t, os.WriteFile(sh, []byte("#!/bin/sh\n"), 0o755))
	if isLoader(sh, elfOf(t, sh)) {
		t.Fatal("script")
	}
	// Garbage does not crash the parser.
	for _, b := range [][]byte{nil, []byte("\x7fELF\x02\x01"), append([]byte("\x7fELF\x02\x01\x01"), bytes.Repeat([]byte{0xff}, 100)...)} {
		if _, err := parseELF(bytes.NewReader(b)); err != nil {
			t.Errorf("parseELF(%q): %v", b, err)
		}
	}
}

// ---- integration ----

// execTree: dir/exec/ (exec allowed: good = hello, and what tests add),
// dir/other/ (not exec allowed: bad = marker). Everything readable,
// dir/ writable.
func execTree(t *testing.T) (dir string, pol *fakePolicy) {
	t.Helper()
	d := t.TempDir()
	dir, err := filepath.EvalSymlinks(d)
	must(t, err)
	must(t, os.MkdirAll(dir+"/exec", 0o755))
	must(t, os.MkdirAll(dir+"/other", 0o755))
	copyFile(t, fixture("hello"), dir+"/exec/good")
	copyFile(t, fixture("marker"), dir+"/other/bad")
	pol = newPolicy()
	pol.exec = []string{fixture("execdoor"), dir + "/exec/"}
	pol.read = append(pol.read, dir+"/")
	pol.write = append(pol.write, dir+"/", "/dev/null")
	return dir, pol
}

func noFile(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); err == nil {
		t.Fatalf("%s exists: the forbidden program ran", p)
	}
}

func expectHello(t *testing.T, r runResult) {
	t.Helper()
	if r.err != nil || r.status != 0 || r.stdout != "hello\n" {
		t.Fatalf("want hello: status=%d err=%v stdout=%q stderr=%q audit=%s", r.status, r.err, r.stdout, r.stderr, r.audit)
	}
}

func expectAudit(t *testing.T, r runResult, want string) {
	t.Helper()
	if !strings.Contains(r.audit, want) {
		t.Fatalf("audit lacks %q: %s", want, r.audit)
	}
}

func TestExecLoader(t *testing.T) {
	dir, pol := execTree(t)
	ld := ldso(t)
	pol.exec = append(pol.exec, ld)
	ed := fixture("execdoor")
	good, bad, mark := dir+"/exec/good", dir+"/other/bad", dir+"/mark"
	for _, loader := range []string{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ld} {
		t.Run("plain "+loader, func(t *testing.T) {
			expectHello(t, supervise(t, pol, ed, "exec", loader, good))
			r := supervise(t, pol, ed, "exec", loader, bad, mark)
			expectErr(t, r, "EACCES")
			expectAudit(t, r, "program run by the dynamic loader "+bad)
			noFile(t, mark)
		})
	}
	for _, opts := range [][]string{
		{"--library-path", dir + "/other"},
		{"--inhibit-cache"},
		{"--argv0", good},
		{"--inhibit-rpath", "x", "--glibc-hwcaps-mask", "x-86-64-v2"},
		{"--preload", "", "--audit", ""},
		{"--glibc-hwcaps-prepend", bad},
	} {
		t.Run("options "+strings.Join(opts, " "), func(t *testing.T) {
			args := append(append([]string{ed, "exec", ld}, opts...), good)
			expectHello(t, supervise(t, pol, args...))
			args = append(append([]string{ed, "exec", ld}, opts...), bad, mark)
			expectErr(t, supervise(t, pol, args...), "EACCES")
			noFile(t, mark)
		})
	}
	t.Run("relative program", func(t *testing.T) {
		expectHello(t, superviseIn(t, pol, dir+"/exec", nil, ed, "exec", ld, "./good"))
		expectErr(t, superviseIn(t, pol, dir+"/other", nil, ed, "exec", ld, "./bad", mark), "EACCES")
		noFile(t, mark)
	})
	t.Run("program without a slash", func(t *testing.T) {
		r := superviseIn(t, pol, dir+"/exec", nil, ed, "exec", ld, "good")
		expectErr(t, r, "EACCES")
		expectAudit(t, r, "without a slash")
	})
	t.Run("loader alone runs nothing", func(t *testing.T) {
		r := supervise(t, pol, ed, "exec", ld, "--version")
		if r.status != 0 || !strings.Contains(r.stdout, "ld.so") {
			t.Fatalf("status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
		}
	})
	t.Run("the loader must be allowed too", func(t *testing.T) {
		p2 := newPolicy()
		p2.read = pol.read
		p2.exec = []string{ed, dir + "/exec/"}
		expectErr(t, supervise(t, p2, ed, "exec", ld, good), "EACCES")
	})
	t.Run("renamed copy of the loader", func(t *testing.T) {
		cp := dir + "/exec/runner"
		copyFile(t, ld, cp)
		expectHello(t, supervise(t, pol, ed, "exec", cp, good))
		r := supervise(t, pol, ed, "exec", cp, bad, mark)
		expectErr(t, r, "EACCES")
		noFile(t, mark)
	})
	t.Run("loader running a loader", func(t *testing.T) {
		expectErr(t, supervise(t, pol, ed, "exec", ld, ld, bad, mark), "EACCES")
		noFile(t, mark)
	})
	t.Run("not a regular program", func(t *testing.T) {
		expectErr(t, supervise(t, pol, ed, "exec", ld, "/proc/self/fd/0"), "EACCES")
	})
}

// TestExecLoaderSwap: the program the loader was allowed to run is swapped
// (a symlink flipped) after the barrier verified the new image and before
// the loader opens it: the open yields another file and is refused.
func TestExecLoaderSwap(t *testing.T) {
	dir, pol := execTree(t)
	ld := ldso(t)
	pol.exec = append(pol.exec, ld)
	ed := fixture("execdoor")
	good, bad, mark := dir+"/exec/good", dir+"/other/bad", dir+"/mark"
	link := dir + "/link"
	must(t, os.Symlink(good, link))
	var flipped atomic.Int32
	var flip atomic.Bool
	barrierVerifiedHook = func(pid int, tg execTarget) {
		if flip.Load() && tg.prog != nil && tg.prog.path == good {
			tmp := dir + "/link.tmp"
			os.Remove(tmp)
			if os.Symlink(bad, tmp) == nil && os.Rename(tmp, link) == nil {
				flipped.Add(1)
			}
		}
	}
	defer func() { barrierVerifiedHook = nil }()
	expectHello(t, supervise(t, pol, ed, "exec", ld, link))
	flip.Store(true)
	r := supervise(t, pol, ed, "exec", ld, link, mark)
	if flipped.Load() != 1 {
		t.Fatalf("the hook did not flip the link (%d): %s", flipped.Load(), r.audit)
	}
	if r.status != 127 {
		t.Fatalf("want ld.so to fail (127): status=%d stdout=%q stderr=%q audit=%s", r.status, r.stdout, r.stderr, r.audit)
	}
	expectAudit(t, r, "the program the dynamic loader opens is not the file that was allowed")
	noFile(t, mark)
}

func TestExecNotOnDisk(t *testing.T) {
	dir, pol := execTree(t)
	ed := fixture("execdoor")
	good, bad := dir+"/exec/good", dir+"/other/bad"
	pol.exec = append(pol.exec, "/dev/null")
	notOnDisk := func(t *testing.T, r runResult) {
		t.Helper()
		expectErr(t, r, "EACCES")
		expectAudit(t, r, ruleNotOnDisk)
	}
	t.Run("/proc/self/fd/N of an on-disk file is decided on the file", func(t *testing.T) {
		expectHello(t, supervise(t, pol, ed, "procfd", good))
		r := supervise(t, pol, ed, "procfd", bad)
		expectErr(t, r, "EACCES")
		if e := findEvent(auditEvents(t, r), "deny", "exec", bad); e == nil {
			t.Fatalf("no deny event for %s: %s", bad, r.audit)
		}
	})
	for _, m := range []string{"procfd", "at", "fexecve"} {
		t.Run("memfd "+m, func(t *testing.T) { notOnDisk(t, supervise(t, pol, ed, "memfd", m, good)) })
	}
	for _, m := range []string{"procfd", "at"} {
		t.Run("deleted file "+m, func(t *testing.T) {
			// The copy lies in an exec-allowed directory: only its being
			// deleted makes it refused.
			notOnDisk(t, supervise(t, pol, ed, "deleted", m, good, dir+"/exec/copy-"+m))
		})
	}
	t.Run("fifo", func(t *testing.T) {
		must(t, unix.Mkfifo(dir+"/exec/fifo", 0o755))
		notOnDisk(t, supervise(t, pol, ed, "exec", dir+"/exec/fifo"))
	})
	t.Run("directory", func(t *testing.T) {
		must(t, os.Mkdir(dir+"/exec/sub", 0o755))
		notOnDisk(t, supervise(t, pol, ed, "exec", dir+"/exec/sub"))
	})
	t.Run("device", func(t *testing.T) { notOnDisk(t, supervise(t, pol, ed, "exec", "/dev/null")) })
}

func TestExecScripts(t *testing.T) {
	dir, pol := execTree(t)
	ed := fixture("execdoor")
	good, bad, mark := dir+"/exec/good", dir+"/other/bad", dir+"/mark"
	script := func(name, body string) string {
		p := dir + "/exec/" + name
		must(t, os.WriteFile(p, []byte(body), 0o755))
		return p
	}
	t.Run("forbidden interpreter", func(t *testing.T) {
		s := script("bad.sh", "#!"+bad+"\n")
		expectHello(t, supervise(t, pol, ed, "exec", script("good.sh", "#!"+good+" -x\n")))
		r := supervise(t, pol, ed, "exec", s, mark)
		expectErr(t, r, "EACCES")
		expectAudit(t, r, "interpreter "+bad)
		noFile(t, mark)
	})
	t.Run("interpreter that is a script", func(t *testing.T) {
		expectHello(t, supervise(t, pol, ed, "exec", script("s1", "#!"+script("s2", "#!"+good+"\n")+"\n")))
		r := supervise(t, pol, ed, "exec", script("s3", "#!"+script("s4", "#! "+bad+"\n")+"\n"), mark)
		expectErr(t, r, "EACCES")
		expectAudit(t, r, "interpreter "+dir+"/exec/s4: interpreter "+bad)
		noFile(t, mark)
		// Relative interpreters are looked up in the cwd.
		expectHello(t, superviseIn(t, pol, dir+"/exec", nil, ed, "exec", script("rel", "#!good\n")))
		expectErr(t, superviseIn(t, pol, dir+"/other", nil, ed, "exec", script("rel2", "#!bad\n"), mark), "EACCES")
		noFile(t, mark)
	})
	t.Run("env python3", func(t *testing.T) {
		py, err := filepath.EvalSymlinks("/usr/bin/python3")
		must(t, err)
		s := script("hello.py", "#!/usr/bin/env python3\nprint('py ok')\n")
		pol.read = append(pol.read, "/usr/bin/")
		// env not allowed
		r := supervise(t, pol, ed, "exec", s)
		expectErr(t, r, "EACCES")
		expectAudit(t, r, "interpreter /usr/bin/env")
		// env allowed, python3 not: env's own exec is vetted and refused
		pol.exec = append(pol.exec, "/usr/bin/env")
		r = supervise(t, pol, ed, "exec", s)
		if r.status != 126 || r.stdout != "" {
			t.Fatalf("want env to fail (126): status=%d stdout=%q stderr=%q audit=%s", r.status, r.stdout, r.stderr, r.audit)
		}
		if e := findEvent(auditEvents(t, r), "deny", "exec", py); e == nil {
			t.Fatalf("no deny for %s: %s", py, r.audit)
		}
		pol.exec = append(pol.exec, py)
		r = supervise(t, pol, ed, "exec", s)
		if r.status != 0 || r.stdout != "py ok\n" {
			t.Fatalf("status=%d stdout=%q stderr=%q audit=%s", r.status, r.stdout, r.stderr, r.audit)
		}
	})
	t.Run("interpreter through ld.so", func(t *testing.T) {
		ld := ldso(t)
		p2 := newPolicy()
		p2.read = pol.read
		p2.exec = append(append([]string(nil), pol.exec...), ld)
		expectHello(t, supervise(t, p2, ed, "exec", script("ld-good", "#!"+ld+" "+good+"\n")))
		s := script("ld-bad", "#!/lib64/ld-linux-x86-64.so.2 "+bad+"\n")
		r := supervise(t, p2, ed, "exec", s)
		expectErr(t, r, "EACCES")
		expectAudit(t, r, "program run by the dynamic loader "+bad)
		// The marker would have appended to the script (its argv[1]).
		if b, _ := os.ReadFile(s); strings.Contains(string(b), "ran") {
			t.Fatal("the forbidden program ran")
		}
	})
}

// TestExecUnverifiable: a caller already traced by a tracer outside the
// supervisor's barrier cannot be seized; its exec is denied (fail closed).
func TestExecUnverifiable(t *testing.T) {
	// Inside, ptrace is refused in BPF, so a caller cannot trace itself
	// out of the barrier's reach.
	expectErr(t, supervise(t, newPolicy(), fixture("vtool"), "tracedexec", fixture("hello")), "EPERM")
	// The rest tests the notification backend's exec barrier (a tracee of
	// another tracer cannot be seized); under ptrace the command is the
	// backend's own tracee from its start and nobody else can attach.
	notifyOnly(t)

	dir, pol := execTree(t)
	ed := fixture("execdoor")
	mark := dir + "/mark"
	pidfile := dir + "/pid"
	copyFile(t, fixture("marker"), dir+"/exec/marker") // allowed: only the tracer stops it
	done := make(chan runResult, 1)
	go func() { done <- supervise(t, pol, ed, "waittraced", pidfile, dir+"/exec/marker", mark) }()

	tracerErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread (the tracer) dies with us
		tracerErr <- traceUntilExit(pidfile, 30*time.Second)
	}()
	var r runResult
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		b, _ := os.ReadFile(pidfile)
		pid := strings.TrimSpace(string(b))
		st, _ := os.ReadFile("/proc/" + pid + "/status")
		stk, _ := os.ReadFile("/proc/" + pid + "/stack")
		sc, _ := os.ReadFile("/proc/" + pid + "/syscall")
		t.Fatalf("timeout: pid %q\n%s\n%s\n%s", pid, st, stk, sc)
	}
	if err := <-tracerErr; err != nil {
		t.Fatalf("tracer: %v (run: stdout=%q audit=%s)", err, r.stdout, r.audit)
	}
	expectErr(t, r, "EACCES")
	e := findEvent(auditEvents(t, r), "deny", "exec", dir+"/exec/marker")
	if e == nil || e.Rule != ruleNoPtrace || !strings.Contains(e.Detail, "ptrace") {
		t.Fatalf("bad event %+v in %s", e, r.audit)
	}
	noFile(t, mark)
	// Untraced, the same exec runs.
	r = supervise(t, pol, ed, "exec", dir+"/exec/marker", mark)
	if r.status != 0 {
		t.Fatalf("status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatal("the allowed program did not run")
	}
}

// traceUntilExit seizes the process whose pid appears in pidfile and keeps
// it running until it exits (or is reaped by its parent).
func traceUntilExit(pidfile string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var pid int
	for {
		b, err := os.ReadFile(pidfile)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(deadline) {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(time.Millisecond)
	}
	if err := ptraceRaw(unix.PTRACE_SEIZE, pid, 0, 0); err != nil {
		return err
	}
	// waitid, never wait4: this test process is also the supervisor, the
	// tracee's real parent. Consuming its exit here would hide it from the
	// supervisor's reaper, so exits are only peeked at (WNOWAIT); stops
	// are taken and continued.
	const wall, wnothread = 0x40000000, 0x20000000
	sigPid := func(si *unix.Siginfo) int32 { return *(*int32)(unsafe.Pointer(uintptr(unsafe.Pointer(si)) + 16)) }
	sigStatus := func(si *unix.Siginfo) int32 { return *(*int32)(unsafe.Pointer(uintptr(unsafe.Pointer(si)) + 24)) }
	for time.Now().Before(deadline) {
		var si unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &si, unix.WSTOPPED|unix.WNOHANG|wall|wnothread, nil)
		if err == unix.ECHILD {
			return nil // reaped by its parent
		}
		if err == nil && int(sigPid(&si)) == pid {
			sig := uintptr(0)
			if si.Code == 4 /* CLD_TRAPPED */ && sigStatus(&si) > 0 && sigStatus(&si) < 65 {
				sig = uintptr(sigStatus(&si))
			}
			_ = ptraceRaw(unix.PTRACE_CONT, pid, 0, sig)
			continue
		}
		si = unix.Siginfo{}
		err = unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG|wall|wnothread, nil)
		if err == unix.ECHILD || (err == nil && int(sigPid(&si)) == pid) {
			return nil // exited: left for the supervisor to reap
		}
		// Another waiter in this process may have taken a stop: never
		// leave the tracee stopped.
		_ = ptraceRaw(unix.PTRACE_CONT, pid, 0, 0)
		time.Sleep(time.Millisecond)
	}
	return os.ErrDeadlineExceeded
}

func raceN(full, short int) string {
	if testing.Short() {
		return strconv.Itoa(short)
	}
	return strconv.Itoa(full)
}

func checkRace(t *testing.T, r runResult, n, mark string) {
	t.Helper()
	if r.status != 0 || !strings.Contains(r.stdout, "OK tries="+n) {
		t.Fatalf("status=%d stdout=%q stderr=%q", r.status, r.stdout, r.stderr)
	}
	t.Log(strings.TrimSpace(r.stdout))
	noFile(t, mark)
	if strings.Contains(r.stdout, " ran=0 ") {
		t.Fatal("the allowed program never ran")
	}
	if !strings.Contains(r.stdout, " other=0") {
		t.Fatalf("unexpected outcomes: %s", r.stdout)
	}
}

// TestExecRaceForms: a thread flips the exec's path (or the program ld.so
// is given) between an allowed and a forbidden program; the forbidden one
// must never run. vfork: children sharing our memory exec while our thread
// flips; thread: each try is a process whose second thread flips while its
// main thread execs.
func TestExecRaceForms(t *testing.T) {
	ld := ldso(t)
	for _, c := range []struct{ mode, form string }{{"thread", "path"}, {"vfork", "ldso"}, {"thread", "ldso"}} {
		t.Run(c.mode+" "+c.form, func(t *testing.T) {
			dir, pol := execTree(t)
			pol.exec = append(pol.exec, ld)
			a, b := dir+"/exec/aaaaaa", dir+"/other/bbbbb" // equal lengths
			copyFile(t, fixture("hello"), a)
			copyFile(t, fixture("marker"), b)
			mark := dir + "/mark"
			n := raceN(400, 100)
			r := supervise(t, pol, fixture("execdoor"), "race", c.mode, c.form, ld, n, mark, a, b)
			checkRace(t, r, n, mark)
		})
	}
}

// TestExecSymlinkRace: outside the sandbox a symlink flips between an
// allowed and a forbidden program while the caller execs it (directly and
// through ld.so): the barrier (exe, argv) and the loader-open check catch
// every swap.
func TestExecSymlinkRace(t *testing.T) {
	ld := ldso(t)
	for _, form := range []string{"path", "ldso"} {
		t.Run(form, func(t *testing.T) {
			dir, pol := execTree(t)
			pol.exec = append(pol.exec, ld)
			good, bad, mark := dir+"/exec/good", dir+"/other/bad", dir+"/mark"
			link := dir + "/link"
			must(t, os.Symlink(good, link))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tmp := dir + "/link.tmp"
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					target := good
					if i%2 == 1 {
						target = bad
					}
					os.Remove(tmp)
					if os.Symlink(target, tmp) == nil {
						os.Rename(tmp, link)
					}
					time.Sleep(20 * time.Microsecond)
				}
			}()
			n := raceN(300, 100)
			r := supervise(t, pol, fixture("execdoor"), "race", "noflip", form, ld, n, mark, link, link)
			close(stop)
			wg.Wait()
			checkRace(t, r, n, mark)
		})
	}
}
