//go:build linux

package supervisor

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	auditArchI386 = 0x40000003
	x32Bit        = 0x40000000
)

// seccompDataBytes lays out struct seccomp_data as the kernel gives it to
// the filter (native byte order).
func seccompDataBytes(nr int32, arch uint32) []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], uint32(nr))
	binary.NativeEndian.PutUint32(b[4:], arch)
	return b
}

// TestFilterProgram runs the exported BPF program in a userspace VM: the
// vetted calls notify, other calls are allowed, x32 numbers are never
// allowed and other architectures kill the process.
func TestFilterProgram(t *testing.T) {
	raw, err := buildFilter(filterTarget{pid: 4242})
	if err != nil {
		t.Fatal(err)
	}
	prog := decodeProgram(raw)
	insns := make([]bpf.Instruction, len(prog))
	for i, p := range prog {
		insns[i] = bpf.RawInstruction{Op: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	run := func(nr int32, arch uint32) uint32 {
		// bpf.VM reads loads in network byte order; seccomp loads are
		// native. Swap every 32-bit word so that the VM sees native values.
		in := seccompDataBytes(nr, arch)
		sw := make([]byte, len(in))
		for i := 0; i < len(in); i += 4 {
			binary.BigEndian.PutUint32(sw[i:], binary.NativeEndian.Uint32(in[i:]))
		}
		v, err := vm.Run(sw)
		if err != nil {
			t.Fatalf("vm: %v", err)
		}
		return uint32(v)
	}
	const (
		retKillProcess = 0x80000000
		retAllow       = 0x7fff0000
		retUserNotif   = 0x7fc00000
		retAction      = 0xffff0000
	)
	for _, nr := range []int32{unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_CREAT, unix.SYS_CONNECT} {
		if got := run(nr, auditArchX86_64); got&retAction != retUserNotif {
			t.Errorf("syscall %d: action %#x, want USER_NOTIF", nr, got)
		}
	}
	for _, nr := range []int32{unix.SYS_GETPID, unix.SYS_READ, unix.SYS_CLOSE, unix.SYS_MMAP} {
		if got := run(nr, auditArchX86_64); got != retAllow {
			t.Errorf("syscall %d: action %#x, want ALLOW", nr, got)
		}
	}
	// x32: execve is 520 | x32Bit; getpid 39 | x32Bit. Never ALLOW.
	for _, nr := range []int32{x32Bit | 520, x32Bit | unix.SYS_GETPID, x32Bit | unix.SYS_OPENAT} {
		if got := run(nr, auditArchX86_64); got == retAllow || got&retAction == retUserNotif {
			t.Errorf("x32 syscall %#x: action %#x, want kill or errno", nr, got)
		} else {
			t.Logf("x32 syscall %#x -> %#x", nr, got)
		}
	}
	// i386 (int 0x80): killed.
	for _, nr := range []int32{11, 20} { // execve, getpid on i386
		if got := run(nr, auditArchI386); got != retKillProcess {
			t.Errorf("i386 syscall %d: action %#x, want KILL_PROCESS", nr, got)
		}
	}
}
