//go:build linux

package supervisor

import (
	"os"
	"testing"
	"time"
)

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNoLeaks: after Run returns, no receiver goroutine (thread) is left
// and the supervisor's fd table is as before.
func TestNoLeaks(t *testing.T) {
	root, pol := tree(t)
	vt := fixture("vtool")
	supervise(t, pol, vt, "open", root+"/ro/file", "r") // warm up
	before := countFDs(t)
	for i := 0; i < 3; i++ {
		supervise(t, pol, vt, "stress", root+"/ro/file", "2000", "4")
		supervise(t, pol, vt, "open", root+"/secret/file", "r")
		supervise(t, pol, vt, "fork", "exec", fixture("hello"))
		supervise(t, pol, vt, "connect", "127.0.0.1", "9")
	}
	deadline := time.Now().Add(2 * time.Second)
	for liveReceivers.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveReceivers.Load(); n != 0 {
		t.Fatalf("%d receivers outlived their Run", n)
	}
	if after := countFDs(t); after != before {
		ents, _ := os.ReadDir("/proc/self/fd")
		var names []string
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			names = append(names, e.Name()+"->"+l)
		}
		t.Fatalf("fds: %d before, %d after: %v", before, after, names)
	}
}
