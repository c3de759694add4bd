//go:build linux

package supervisor

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"vigil/tracer"
)

const (
	auditArchI386 = 0x40000003
	x32Bit        = 0x40000000
)

// seccompDataBytes lays out struct seccomp_data as the kernel gives it to
// the filter (native byte order).
func seccompDataBytes(nr int32, arch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], uint32(nr))
	binary.NativeEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// TestFilterProgram runs the exported BPF program in a userspace VM: the
// vetted calls notify, other calls are allowed, x32 numbers are never
// allowed and other architectures kill the process.
func TestFilterProgram(t *testing.T) {
	const supPid = 4242
	raw, err := buildFilter(filterTarget{pid: supPid})
	if err != nil {
		t.Fatal(err)
	}
	// The same runner the ptrace backend uses without a filter in the
	// kernel (ptrace_linux.go): what it answers is what the kernel would.
	vm, err := newFilterVM(raw)
	if err != nil {
		t.Fatal(err)
	}
	run := func(nr int32, arch uint32, args ...uint64) uint32 {
		c := &tracer.Call{Nr: nr, Arch: arch}
		copy(c.Args[:], args)
		return vm.run(c)
	}
	const (
		retKillProcess = 0x80000000
		retAction      = retActionFull
	)
	// Every call of the handler table notifies (sendto only with an
	// address), and nothing else does.
	table := handlerTable()
	for _, nr := range []int32{unix.SYS_EXECVE, unix.SYS_EXECVEAT, unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2,
		unix.SYS_CREAT, unix.SYS_CONNECT, unix.SYS_SENDMSG, unix.SYS_SENDMMSG, unix.SYS_BIND, unix.SYS_LISTEN,
		unix.SYS_RENAMEAT2, unix.SYS_LINKAT, unix.SYS_UNLINKAT, unix.SYS_FCHMODAT2, unix.SYS_KILL, unix.SYS_PIDFD_OPEN} {
		if table[nr] == nil {
			t.Errorf("syscall %d has no handler", nr)
		}
	}
	for nr := range table {
		args := []uint64{3, 0x1000, 0x1000, 0, 0x7000, 16}
		if got := run(nr, auditArchX86_64, args...); got&retAction != retUserNotif {
			t.Errorf("syscall %d: action %#x, want USER_NOTIF", nr, got)
		}
	}
	for nr := int32(0); nr < 480; nr++ {
		if table[nr] == nil && nr != unix.SYS_SENDTO && run(nr, auditArchX86_64)&retAction == retUserNotif {
			t.Errorf("syscall %d notifies but has no handler", nr)
		}
	}
	if got := run(unix.SYS_SENDTO, auditArchX86_64, 3, 0x1000, maxDNSQuery+1, 0, 0, 0); got != retAllow {
		t.Errorf("sendto of %d bytes without an address: action %#x, want ALLOW", maxDNSQuery+1, got)
	}
	if got := run(unix.SYS_SENDTO, auditArchX86_64, 3, 0x1000, 1<<32|10, 0, 0, 0); got != retAllow {
		t.Errorf("sendto of 4 GiB + 10 bytes without an address: action %#x, want ALLOW", got)
	}
	for _, n := range []uint64{0, 38, maxDNSQuery} {
		if got := run(unix.SYS_SENDTO, auditArchX86_64, 3, 0x1000, n, 0, 0, 0); got&retAction != retUserNotif {
			t.Errorf("sendto of %d bytes without an address (a DNS query's size): action %#x, want USER_NOTIF", n, got)
		}
	}
	if got := run(unix.SYS_SENDTO, auditArchX86_64, 3, 0x1000, 10, 0, 1<<40, 16); got&retAction != retUserNotif {
		t.Errorf("sendto with an address above 4 GiB: action %#x, want USER_NOTIF", got)
	}
	// Side doors: refused in the kernel, their harmless forms allowed.
	const retErrno = 0x00050000
	errnoOf := func(v uint32) (int, bool) { return int(v & 0xffff), v&retAction == retErrno }
	refused := []struct {
		nr   int32
		args []uint64
		want unix.Errno
	}{
		{unix.SYS_IO_URING_SETUP, nil, unix.ENOSYS},
		{unix.SYS_IO_URING_ENTER, nil, unix.ENOSYS},
		{unix.SYS_IO_URING_REGISTER, nil, unix.ENOSYS},
		{unix.SYS_OPEN_BY_HANDLE_AT, nil, unix.EPERM},
		{unix.SYS_PTRACE, nil, unix.EPERM},
		{unix.SYS_PROCESS_VM_READV, nil, unix.EPERM},
		{unix.SYS_PROCESS_VM_WRITEV, nil, unix.EPERM},
		{unix.SYS_PIDFD_GETFD, nil, unix.EPERM},
		{unix.SYS_BPF, nil, unix.EPERM},
		{unix.SYS_MOUNT, nil, unix.EPERM},
		{unix.SYS_OPEN_TREE, nil, unix.EPERM},
		{unix.SYS_CLONE3, nil, unix.ENOSYS},
		{unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWNS}, unix.EPERM},
		{unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER | unix.CLONE_FILES}, unix.EPERM},
		{unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET | uint64(unix.SIGCHLD)}, unix.EPERM},
		{unix.SYS_SECCOMP, []uint64{unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC}, unix.EPERM},
		{unix.SYS_SECCOMP, []uint64{1<<32 | unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER}, unix.EPERM},
		{unix.SYS_TGKILL, []uint64{supPid, supPid + 1, 9}, unix.EPERM},
		{unix.SYS_TGKILL, []uint64{1<<32 | supPid, supPid, 9}, unix.EPERM}, // the kernel reads an int
		{unix.SYS_RT_TGSIGQUEUEINFO, []uint64{supPid, supPid, 9}, unix.EPERM},
		{unix.SYS_PRCTL, []uint64{unix.PR_SET_MM, 13}, unix.EPERM},
	}
	for _, c := range refused {
		got := run(c.nr, auditArchX86_64, c.args...)
		if e, ok := errnoOf(got); !ok || unix.Errno(e) != c.want {
			t.Errorf("syscall %d %v: action %#x, want ERRNO(%v)", c.nr, c.args, got, c.want)
		}
	}
	for _, c := range []struct {
		nr   int32
		args []uint64
	}{
		{unix.SYS_UNSHARE, []uint64{unix.CLONE_FILES | unix.CLONE_FS}},
		{unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}},
		{unix.SYS_SECCOMP, []uint64{unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC}},
		{unix.SYS_TGKILL, []uint64{supPid + 1, supPid + 1, 9}},
		{unix.SYS_PRCTL, []uint64{unix.PR_SET_NAME, 0x1000}},
	} {
		if got := run(c.nr, auditArchX86_64, c.args...); got != retAllow {
			t.Errorf("syscall %d %v: action %#x, want ALLOW", c.nr, c.args, got)
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

// TestFilterUnvettedPathIsShort: the calls a runtime makes most (read,
// write, futex, epoll, mmap, ...) reach their ALLOW in a handful of BPF
// instructions (a binary tree of syscall numbers), not after a linear
// scan of every rule: that is most of the filter's cost on unvetted calls.
func TestFilterUnvettedPathIsShort(t *testing.T) {
	raw, err := buildFilter(filterTarget{pid: 4242})
	if err != nil {
		t.Fatal(err)
	}
	prog := decodeProgram(raw)
	// A tiny interpreter that counts executed instructions for seccomp_data
	// with the given syscall number and zero arguments.
	steps := func(nr uint32) (int, uint32) {
		var a uint32
		pc := 0
		for n := 1; n <= len(prog); n++ {
			in := prog[pc]
			jump := func(cond bool) {
				if cond {
					pc += 1 + int(in.Jt)
				} else {
					pc += 1 + int(in.Jf)
				}
			}
			switch in.Code {
			case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
				switch in.K {
				case 0:
					a = nr
				case 4:
					a = auditArchX86_64
				default:
					a = 0
				}
				pc++
			case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
				jump(a == in.K)
			case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
				jump(a > in.K)
			case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
				jump(a >= in.K)
			case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
				jump(a&in.K != 0)
			case unix.BPF_JMP | unix.BPF_JA:
				pc += 1 + int(in.K)
			case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
				a &= in.K
				pc++
			case unix.BPF_RET | unix.BPF_K:
				return n, in.K
			default:
				t.Fatalf("instruction %d: opcode %#x not modelled", pc, in.Code)
			}
		}
		t.Fatalf("syscall %d: no return", nr)
		return 0, 0
	}
	for _, nr := range []uint32{unix.SYS_READ, unix.SYS_WRITE, unix.SYS_FUTEX, unix.SYS_EPOLL_WAIT, unix.SYS_EPOLL_PWAIT,
		unix.SYS_MMAP, unix.SYS_CLOSE, unix.SYS_GETPPID, unix.SYS_NEWFSTATAT, unix.SYS_RT_SIGRETURN, unix.SYS_NANOSLEEP} {
		n, ret := steps(nr)
		if ret != 0x7fff0000 {
			t.Errorf("syscall %d: ret %#x, want ALLOW", nr, ret)
		}
		if n > 20 {
			t.Errorf("syscall %d: %d instructions to ALLOW, want at most 20", nr, n)
		}
	}
}
