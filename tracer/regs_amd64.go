//go:build linux

package tracer

import "golang.org/x/sys/unix"

// The registers of a stopped call on x86-64: the number in orig_rax, the
// arguments in rdi, rsi, rdx, r10, r8, r9, the return value in rax.

func skipCall(tid int, ret int64) error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return err
	}
	r.Orig_rax = ^uint64(0) // -1: no call
	r.Rax = uint64(ret)
	return unix.PtraceSetRegs(tid, &r)
}

func setReturn(tid int, ret int64) error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return err
	}
	r.Rax = uint64(ret)
	return unix.PtraceSetRegs(tid, &r)
}

func rewriteCall(tid int, rw *Rewrite) error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return err
	}
	r.Orig_rax = uint64(int64(rw.Nr))
	a := rw.Args
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	return unix.PtraceSetRegs(tid, &r)
}

// prepareInjection sets up r, the registers at a syscall exit, to run the
// syscall instruction again as call nr(a0): `syscall` is 2 bytes.
func prepareInjection(r *unix.PtraceRegs, nr int, a0 uint64) {
	r.Rax = uint64(nr)
	r.Orig_rax = uint64(nr)
	r.Rdi = a0
	r.Rip -= 2
}
