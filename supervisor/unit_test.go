//go:build linux

package supervisor

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

func TestAuditLineShape(t *testing.T) {
	var buf bytes.Buffer
	a := NewAuditor(NewLineWriter(&buf))
	a.now = func() time.Time { return time.Date(2026, 11, 28, 14, 0, 0, 123e6, time.UTC) }
	a.Log(Event{Decision: DecisionDeny, Op: "open", Path: "/etc/shadow", Flags: "O_RDONLY", Pid: 42, Exe: "/usr/bin/python3.12", Rule: "no filesystem.read pattern matches", Mode: "enforce"})
	want := `{"timestamp":"2026-11-28T14:00:00.123Z","level":"WARN","message":"vigil denied open of /etc/shadow","vigil":{"decision":"deny","op":"open","path":"/etc/shadow","flags":"O_RDONLY","pid":42,"exe":"/usr/bin/python3.12","rule":"no filesystem.read pattern matches","source":"","mode":"enforce"}}` + "\n"
	if buf.String() != want {
		t.Fatalf("got  %s\nwant %s", buf.String(), want)
	}
	buf.Reset()
	a.SetRequestID("req-1")
	a.SetFunction("fn")
	a.Log(Event{Decision: DecisionAudit, Op: "connect", Address: "10.1.2.3:443", Family: "inet", Pid: 1, Mode: "audit"})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	v := line["vigil"].(map[string]any)
	if line["requestId"] != "req-1" || v["function"] != "fn" || line["message"] != "vigil would deny connect to 10.1.2.3:443" || line["level"] != "WARN" {
		t.Fatalf("%s", buf.String())
	}
}

func TestLoggerShapeAndNoInterleaving(t *testing.T) {
	var buf bytes.Buffer
	lw := NewLineWriter(&syncWriter{w: &buf})
	log := NewLogger(lw, hclog.Info).Named("supervisor")
	a := NewAuditor(lw)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				log.Warn("answer notification failed", "syscall", 257, "error", strings.Repeat("x", 300))
				a.Log(Event{Decision: DecisionDeny, Op: "open", Path: "/" + strings.Repeat("p", 500), Pid: i})
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200*2 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("interleaved or broken line %q: %v", l, err)
		}
		if m["timestamp"] == nil || m["level"] == nil || m["message"] == nil {
			t.Fatalf("bad shape %q", l)
		}
		if m["message"] == "answer notification failed" {
			v := m["vigil"].(map[string]any)
			if m["level"] != "WARN" || m["logger"] != "vigil.supervisor" || v["syscall"] != float64(257) {
				t.Fatalf("bad log line %q", l)
			}
		}
	}
}

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte("Name:\tx\nUmask:\t0027\nState:\tS\nTgid:\t100\nPid:\t101\nPPid:\t1\nUid:\t1000\t1001\t1002\t1003\nGid:\t50\t51\t52\t53\nGroups:\t4 24 27 \n"))
	if err != nil || st.tgid != 100 || st.ppid != 1 || st.fsuid != 1003 || st.fsgid != 53 || st.umask != 0o027 || len(st.groups) != 3 || st.groups[2] != 27 {
		t.Fatalf("%+v %v", st, err)
	}
	for _, bad := range []string{"", "Tgid:\tx\n", "Tgid:\t1\nUid:\t1 2 3\nGid:\t1 2 3 4\n", "Tgid:\t99999999999999\nUid:\t0 0 0 0\nGid:\t0 0 0 0\n", "\x00\n:\n::::"} {
		if _, err := parseStatus([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestDecodeSockaddr(t *testing.T) {
	in4 := []byte{2, 0, 0x01, 0xbb, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0}
	sa, e := decodeSockaddr(in4)
	if e != 0 || sa.family != unix.AF_INET || sa.addr != netip.MustParseAddrPort("10.1.2.3:443") {
		t.Fatalf("%+v %v", sa, e)
	}
	if _, e := decodeSockaddr(in4[:15]); e != unix.EINVAL {
		t.Fatal("short AF_INET accepted")
	}
	in6 := make([]byte, 28)
	in6[0] = 10
	in6[2], in6[3] = 0, 80
	copy(in6[8:24], netip.MustParseAddr("::ffff:127.0.0.1").AsSlice())
	sa, e = decodeSockaddr(in6)
	if e != 0 || sa.addr.String() != "[::ffff:127.0.0.1]:80" {
		t.Fatalf("%+v %v", sa, e)
	}
	if _, e := decodeSockaddr(in6[:23]); e != unix.EINVAL {
		t.Fatal("short AF_INET6 accepted")
	}
	if _, e := decodeSockaddr([]byte{1}); e != unix.EINVAL {
		t.Fatal("1-byte address accepted")
	}
	if sa, e := decodeSockaddr([]byte{0, 0}); e != 0 || sa.family != unix.AF_UNSPEC {
		t.Fatal("AF_UNSPEC")
	}
}

// FuzzDecoders: hostile bytes never panic the decoders.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte{2, 0, 0, 80, 127, 0, 0, 1})
	f.Add([]byte("Tgid:\t1\nUid:\t0 0 0 0\nGid:\t0 0 0 0\n"))
	f.Add([]byte("12 (a) b)) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0"))
	f.Add([]byte("/proc/self/fd/3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSockaddr(b)
		_, _ = parseStatus(b)
		_ = parseStatPgrp(b)
		_, _ = parseStatStart(b)
		_, _, _, _ = parseHandoff(b)
		_, _, _ = parseChildError(b)
		if p, ok := lexicalPath(string(b), 1, 2); ok && (p == "" || p[0] != '/') {
			t.Fatalf("lexicalPath(%q) = %q", b, p)
		}
		if len(b) >= 8 {
			_ = openFlagString(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24)
		}
	})
}

func TestOpenAccess(t *testing.T) {
	cases := []struct {
		flags uint64
		want  string
	}{
		{unix.O_RDONLY, "r"}, {unix.O_WRONLY, "w"}, {unix.O_RDWR, "rw"}, {unix.O_RDONLY | unix.O_TRUNC, "rw"},
		{unix.O_RDONLY | unix.O_CREAT, "rw"}, {unix.O_PATH, "r"}, {unix.O_PATH | unix.O_WRONLY, "r"},
		{unix.O_RDONLY | unix.O_APPEND, "rw"}, {oTmpfileFlag | unix.O_DIRECTORY | unix.O_WRONLY, "w"}, {3, "rw"},
	}
	for _, c := range cases {
		acc := openAccess(c.flags)
		got := ""
		if acc&1 != 0 {
			got += "r"
		}
		if acc&2 != 0 {
			got += "w"
		}
		if got != c.want {
			t.Errorf("flags %#o: %s, want %s", c.flags, got, c.want)
		}
	}
}
