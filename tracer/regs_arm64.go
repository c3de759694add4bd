//go:build linux

package tracer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The registers of a stopped call on arm64: the number in x8, changed at a
// stop only through the NT_ARM_SYSTEM_CALL register set; arguments in
// x0-x5; the return value in x0.

const ntARMSystemCall = 0x404

func setSyscallNr(tid int, nr int32) error {
	v := nr
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&v))}
	iov.SetLen(int(unsafe.Sizeof(v)))
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(tid), ntARMSystemCall, uintptr(unsafe.Pointer(&iov)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func skipCall(tid int, ret int64) error {
	if err := setSyscallNr(tid, -1); err != nil {
		return err
	}
	return setReturn(tid, ret)
}

func setReturn(tid int, ret int64) error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return err
	}
	r.Regs[0] = uint64(ret)
	return unix.PtraceSetRegs(tid, &r)
}

func rewriteCall(tid int, rw *Rewrite) error {
	if err := setSyscallNr(tid, rw.Nr); err != nil {
		return err
	}
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return err
	}
	copy(r.Regs[:6], rw.Args[:])
	return unix.PtraceSetRegs(tid, &r)
}

// prepareInjection sets up r, the registers at a syscall exit, to run the
// `svc #0` (4 bytes) again as call nr(a0).
func prepareInjection(r *unix.PtraceRegs, nr int, a0 uint64) {
	r.Regs[8] = uint64(nr)
	r.Regs[0] = a0
	r.Pc -= 4
}
