//go:build linux

package supervisor

import (
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listen starts a 127.0.0.1 listener that counts accepted connections.
func listen(t *testing.T) (port string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), accepted
}

func TestConnect(t *testing.T) {
	okPort, okCount := listen(t)
	badPort, badCount := listen(t)
	pol := newPolicy()
	pol.connect = []string{"127.0.0.1:" + okPort, "[::1]:" + okPort}
	vt := fixture("vtool")

	t.Run("allowed", func(t *testing.T) {
		expectOK(t, supervise(t, pol, vt, "connect", "127.0.0.1", okPort))
	})
	t.Run("denied", func(t *testing.T) {
		r := supervise(t, pol, vt, "connect", "127.0.0.1", badPort)
		expectErr(t, r, "EACCES")
		e := findEvent(auditEvents(t, r), "deny", "connect", "127.0.0.1:"+badPort)
		if e == nil || e.Family != "inet" || e.Rule == "" {
			t.Fatalf("bad audit: %s", r.audit)
		}
	})
	t.Run("nonblocking allowed", func(t *testing.T) {
		r := supervise(t, pol, vt, "connect", "127.0.0.1", okPort, "nb")
		expectOK(t, r)
		if !strings.Contains(r.stdout, "einprogress") && !strings.Contains(r.stdout, "connected") {
			t.Fatal(r.stdout)
		}
	})
	t.Run("nonblocking denied", func(t *testing.T) {
		expectErr(t, supervise(t, pol, vt, "connect", "127.0.0.1", badPort, "nb"), "EACCES")
	})
	t.Run("ipv4-mapped ipv6 is judged by the policy", func(t *testing.T) {
		r := supervise(t, pol, vt, "connect", "::ffff:127.0.0.1", badPort)
		expectErr(t, r, "EACCES")
	})
	t.Run("refused connection keeps its errno", func(t *testing.T) {
		pol2 := newPolicy()
		pol2.connect = []string{"*"}
		// A port nobody listens on (the listener is closed right away).
		l, _ := net.Listen("tcp4", "127.0.0.1:0")
		p := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		expectErr(t, supervise(t, pol2, vt, "connect", "127.0.0.1", p), "ECONNREFUSED")
	})
	t.Run("bad address length", func(t *testing.T) {
		pol2 := newPolicy()
		pol2.connect = []string{"*"}
		expectErr(t, supervise(t, pol2, vt, "connectlen", "3"), "EINVAL")
		expectErr(t, supervise(t, pol2, vt, "connectlen", "200"), "EINVAL")
	})
	t.Run("unix socket paths are resolved first", func(t *testing.T) {
		// A missing path fails like the kernel's connect (see
		// TestUnixPathSockets for the decisions).
		expectErr(t, supervise(t, pol, vt, "connectunix", "/run/nothing.sock"), "ENOENT")
	})
	time.Sleep(100 * time.Millisecond)
	if badCount.Load() != 0 {
		t.Fatalf("%d connections reached the denied port", badCount.Load())
	}
	if okCount.Load() == 0 {
		t.Fatal("nothing reached the allowed port")
	}
}

// TestSlowConnectDoesNotStall: a blocking connect that takes long (to a
// blackhole address) must not stall other threads' opens.
func TestAuditModeAndLogAllowed(t *testing.T) {
	root, pol := tree(t)
	badPort, badCount := listen(t)
	pol.mode = 1 // audit
	vt := fixture("vtool")
	r := supervise(t, pol, vt, "open", root+"/secret/file", "r")
	expectOK(t, r)
	e := findEvent(auditEvents(t, r), "audit", "open", root+"/secret/file")
	if e == nil || e.Mode != "audit" || !strings.Contains(r.audit, `"level":"WARN","message":"vigil would deny open of `+root+`/secret/file"`) {
		t.Fatalf("bad audit: %s", r.audit)
	}
	r = supervise(t, pol, vt, "connect", "127.0.0.1", badPort)
	expectOK(t, r)
	if findEvent(auditEvents(t, r), "audit", "connect", "127.0.0.1:"+badPort) == nil {
		t.Fatal(r.audit)
	}
	// The connect completed; the listener's accept loop counts it soon.
	for deadline := time.Now().Add(2 * time.Second); badCount.Load() != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if badCount.Load() != 1 {
		t.Fatalf("audit mode must let the connect through (%d)", badCount.Load())
	}
	// exec of a program not in the exec list runs in audit mode.
	pol.exec = []string{vt}
	r = supervise(t, pol, vt, "exec", fixture("hello"))
	if r.status != 0 || r.stdout != "hello\n" || findEvent(auditEvents(t, r), "audit", "exec", fixture("hello")) == nil {
		t.Fatalf("status=%d stdout=%q audit=%s", r.status, r.stdout, r.audit)
	}
	// log_allowed: INFO lines with decision allow.
	pol2 := newPolicy()
	pol2.logAllowed = true
	r = supervise(t, pol2, fixture("hello"))
	if findEvent(auditEvents(t, r), "allow", "exec", fixture("hello")) == nil || !strings.Contains(r.audit, `"level":"INFO","message":"vigil allowed exec of `) {
		t.Fatal(r.audit)
	}
}
