//go:build linux

package supervisor

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// filterTarget is what the filter needs to know of the supervisor to close
// the doors aimed at it.
type filterTarget struct {
	pid int // the supervisor's pid (thread group id)
	// trace: the vetted calls stop for the ptrace backend
	// (SECCOMP_RET_TRACE) instead of notifying a listener.
	trace bool
}

// cond is one argument condition of a rule (libseccomp ANDs a rule's
// conditions). Arguments the kernel takes as a C int are compared on their
// low 32 bits only (masked), since the kernel ignores the upper half of the
// register: a 64-bit comparison could be fooled by garbage in it.
type cond struct {
	arg        uint
	mask, want uint64
	ne         bool // arg != want (unmasked 64-bit)
	le         bool // arg <= want (unsigned 64-bit); otherwise (arg & mask) == want
}

func eq32(arg uint, v uint32) cond     { return cond{arg: arg, mask: 0xffffffff, want: uint64(v)} }
func bitSet(arg uint, bit uint64) cond { return cond{arg: arg, mask: bit, want: bit} }
func nonNull(arg uint) cond            { return cond{arg: arg, ne: true} }
func atMost(arg uint, v uint64) cond   { return cond{arg: arg, le: true, want: v} }

// sideDoor is a call, or a form of one, that the kernel refuses outright.
type sideDoor struct {
	nr    int32
	errno unix.Errno
	conds []cond // all must hold; none: always
	why   string
}

// cloneNewNS are the namespace flags of clone and unshare.
var cloneNewNS = []uint64{unix.CLONE_NEWNS, unix.CLONE_NEWCGROUP, unix.CLONE_NEWUTS,
	unix.CLONE_NEWIPC, unix.CLONE_NEWUSER, unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWTIME}

// sideDoors lists the calls that would get around the supervisor: they are
// refused in BPF, without a round trip (README "Side doors").
func sideDoors(t filterTarget) []sideDoor {
	d := []sideDoor{
		// io_uring performs opens, connects and sends without the system
		// calls we vet. ENOSYS: runtimes (libuv, Java's NIO) fall back.
		{nr: unix.SYS_IO_URING_SETUP, errno: unix.ENOSYS, why: "io_uring"},
		{nr: unix.SYS_IO_URING_ENTER, errno: unix.ENOSYS, why: "io_uring"},
		{nr: unix.SYS_IO_URING_REGISTER, errno: unix.ENOSYS, why: "io_uring"},
		// Opening by file handle skips path resolution altogether.
		{nr: unix.SYS_OPEN_BY_HANDLE_AT, errno: unix.EPERM, why: "open by handle"},
		{nr: unix.SYS_NAME_TO_HANDLE_AT, errno: unix.EOPNOTSUPP, why: "open by handle"},
		// Reading or writing another process's memory or registers (the
		// supervisor's, or a sibling's in the middle of a vetted call).
		{nr: unix.SYS_PTRACE, errno: unix.EPERM, why: "ptrace"},
		{nr: unix.SYS_PROCESS_VM_READV, errno: unix.EPERM, why: "process_vm"},
		{nr: unix.SYS_PROCESS_VM_WRITEV, errno: unix.EPERM, why: "process_vm"},
		{nr: unix.SYS_PROCESS_MADVISE, errno: unix.EPERM, why: "process_madvise"},
		// pidfd_getfd would copy the listener out of the supervisor.
		{nr: unix.SYS_PIDFD_GETFD, errno: unix.EPERM, why: "pidfd_getfd"},
		{nr: unix.SYS_KCMP, errno: unix.EPERM, why: "kcmp"},
		// The kernel itself: new code, new kernels, tracing.
		{nr: unix.SYS_KEXEC_LOAD, errno: unix.EPERM, why: "kexec"},
		{nr: unix.SYS_KEXEC_FILE_LOAD, errno: unix.EPERM, why: "kexec"},
		{nr: unix.SYS_BPF, errno: unix.EPERM, why: "bpf"},
		{nr: unix.SYS_PERF_EVENT_OPEN, errno: unix.EPERM, why: "perf_event_open"},
		{nr: unix.SYS_INIT_MODULE, errno: unix.EPERM, why: "modules"},
		{nr: unix.SYS_FINIT_MODULE, errno: unix.EPERM, why: "modules"},
		{nr: unix.SYS_DELETE_MODULE, errno: unix.EPERM, why: "modules"},
		// Other views of the file tree: mounts, new roots, namespaces.
		{nr: unix.SYS_MOUNT, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_UMOUNT2, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_PIVOT_ROOT, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_CHROOT, errno: unix.EPERM, why: "chroot"},
		{nr: unix.SYS_SETNS, errno: unix.EPERM, why: "namespaces"},
		{nr: unix.SYS_FSOPEN, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_FSCONFIG, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_FSMOUNT, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_FSPICK, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_OPEN_TREE, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_OPEN_TREE_ATTR, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_MOVE_MOUNT, errno: unix.EPERM, why: "mount"},
		{nr: unix.SYS_MOUNT_SETATTR, errno: unix.EPERM, why: "mount"},
		// clone3 passes its flags in memory, where BPF cannot see a
		// namespace flag: ENOSYS, and glibc falls back to clone.
		{nr: unix.SYS_CLONE3, errno: unix.ENOSYS, why: "clone3"},
		// Files opened by path without open(2): fanotify hands out fds of
		// the files others open; acct opens by path (and uselib on
		// x86-64: archSideDoors); swap files.
		{nr: unix.SYS_FANOTIFY_INIT, errno: unix.EPERM, why: "fanotify"},
		{nr: unix.SYS_ACCT, errno: unix.EPERM, why: "acct"},
		{nr: unix.SYS_SWAPON, errno: unix.EPERM, why: "swap"},
		{nr: unix.SYS_SWAPOFF, errno: unix.EPERM, why: "swap"},
		// A second listener would win over ours (the newest filter's
		// listener gets the notification) and could answer CONTINUE.
		// Filters without a listener can only restrict further.
		{nr: unix.SYS_SECCOMP, errno: unix.EPERM, why: "seccomp listener",
			conds: []cond{eq32(0, unix.SECCOMP_SET_MODE_FILTER), bitSet(1, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)}},
		// PR_SET_MM rewrites /proc/self/exe and the memory map's bounds.
		{nr: unix.SYS_PRCTL, errno: unix.EPERM, why: "prctl PR_SET_MM", conds: []cond{eq32(0, unix.PR_SET_MM)}},
		// Signals to the supervisor by thread group id (kill, tkill,
		// rt_sigqueueinfo and pidfd_open are decided in signal.go, since a
		// thread id of the supervisor works there too).
		{nr: unix.SYS_TGKILL, errno: unix.EPERM, why: "signal to the supervisor", conds: []cond{eq32(0, uint32(t.pid))}},
		{nr: unix.SYS_RT_TGSIGQUEUEINFO, errno: unix.EPERM, why: "signal to the supervisor", conds: []cond{eq32(0, uint32(t.pid))}},
	}
	// Calls only some architectures have (x86-64: port I/O, uselib):
	// filter_amd64.go, filter_arm64.go.
	d = append(d, archSideDoors()...)
	for _, f := range cloneNewNS {
		d = append(d,
			sideDoor{nr: unix.SYS_UNSHARE, errno: unix.EPERM, why: "namespaces", conds: []cond{bitSet(0, f)}},
			sideDoor{nr: unix.SYS_CLONE, errno: unix.EPERM, why: "namespaces", conds: []cond{bitSet(0, f)}})
	}
	return d
}

// notifyConds narrows notification for calls that need the supervisor only
// in some forms (any one of the alternatives, each a list of conditions
// that must all hold): sendto without an address reaches only the peer a
// connect already vetted, except on the sockets the supervisor keeps for
// DNS (dns.go), which are not connected: those small sends (a DNS query,
// as glibc's send() and c-ares send them) must be seen. Larger sends
// without an address never are.
var notifyConds = map[int32][][]cond{
	unix.SYS_SENDTO: {{nonNull(4)}, {atMost(2, maxDNSQuery)}},
}

// notifiedSyscalls are the calls answered by the supervisor: the handler
// table's, in order. Everything else not refused above is allowed in the
// kernel without a round trip.
func notifiedSyscalls() []int32 {
	var nrs []int32
	for nr := range handlerTable() {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	return nrs
}

func (c cond) scmp() (seccomp.ScmpCondition, error) {
	if c.ne {
		return seccomp.MakeCondition(c.arg, seccomp.CompareNotEqual, c.want)
	}
	if c.le {
		return seccomp.MakeCondition(c.arg, seccomp.CompareLessOrEqual, c.want)
	}
	return seccomp.MakeCondition(c.arg, seccomp.CompareMaskedEqual, c.mask, c.want)
}

func addRule(f *seccomp.ScmpFilter, nr int32, act seccomp.ScmpAction, conds []cond) error {
	sc := seccomp.ScmpSyscall(nr)
	if len(conds) == 0 {
		return f.AddRule(sc, act)
	}
	var sc2 []seccomp.ScmpCondition
	for _, c := range conds {
		x, err := c.scmp()
		if err != nil {
			return err
		}
		sc2 = append(sc2, x)
	}
	return f.AddRuleConditional(sc, act, sc2)
}

// buildFilter returns the filter for t as a raw classic BPF program
// (struct sock_filter[]) in bytes: the program compileFilter makes,
// taken from the one pregenerated for this architecture (filter_golden)
// when there is one, else compiled now.
func buildFilter(t filterTarget) ([]byte, error) {
	if prog, ok := goldenFilter(t); ok {
		return prog, nil
	}
	return compileFilter(t)
}

// goldenPid stands for the supervisor's pid in the pregenerated programs:
// the filter depends on nothing else that varies between runs. No other
// constant of the program has this value (TestFilterGolden checks that
// putting a pid in its place gives what compileFilter gives for that pid).
const goldenPid = 0x5eccf11d

// goldenFilter is the pregenerated program for t, with t's pid put in:
// compiling it with libseccomp cost 0.5-1.4 ms of every start here (a
// Lambda cold start). ok is false when there is none for this
// architecture (or it holds no placeholder: then it cannot be the filter).
func goldenFilter(t filterTarget) ([]byte, bool) {
	g := goldenNotify
	if t.trace {
		g = goldenTrace
	}
	if len(g) == 0 || t.pid <= 0 || t.pid == goldenPid {
		return nil, false
	}
	prog := make([]byte, 0, len(g)*8)
	uses := 0
	for _, ins := range g {
		k := ins.K
		if k == goldenPid {
			k = uint32(t.pid)
			uses++
		}
		prog = binary.NativeEndian.AppendUint16(prog, ins.Code)
		prog = append(prog, ins.Jt, ins.Jf)
		prog = binary.NativeEndian.AppendUint32(prog, k)
	}
	if uses == 0 {
		return nil, false
	}
	return prog, true
}

// compileFilter compiles the filter with libseccomp and returns the raw
// classic BPF program (struct sock_filter[]) as bytes. It runs in the parent
// only; the child never links libseccomp into its start-up path.
//
// Other architectures (i386 via int 0x80, 32-bit ARM on arm64, for
// instance) kill the process; on x86-64, x32 system call numbers (nr >=
// 0x40000000 with AUDIT_ARCH_X86_64) are rejected by libseccomp's x86_64
// filter (see the BPF VM test, filter_amd64_test.go), so they can never
// reach an ALLOW by aliasing a native number.
func compileFilter(t filterTarget) ([]byte, error) {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("libseccomp: new filter: %w", err)
	}
	defer f.Release()
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		return nil, fmt.Errorf("libseccomp: bad arch action: %w", err)
	}
	// A binary tree of syscall numbers instead of a linear list: with some
	// 80 numbers decided, every other call (read, write, futex, ...) would
	// otherwise run about 100 instructions before its ALLOW.
	if err := f.SetOptimize(2); err != nil {
		return nil, fmt.Errorf("libseccomp: optimize: %w", err)
	}
	// The child sets no_new_privs itself; the attribute only matters for
	// Load(), which we never call.
	vetted := seccomp.ActNotify
	if t.trace {
		vetted = seccomp.ActTrace.SetReturnCode(0)
	}
	for _, nr := range notifiedSyscalls() {
		alts := notifyConds[nr]
		if alts == nil {
			alts = [][]cond{nil}
		}
		for _, conds := range alts {
			if err := addRule(f, nr, vetted, conds); err != nil {
				return nil, fmt.Errorf("libseccomp: notify rule for syscall %d: %w", nr, err)
			}
		}
	}
	for _, d := range sideDoors(t) {
		if err := addRule(f, d.nr, seccomp.ActErrno.SetReturnCode(int16(d.errno)), d.conds); err != nil {
			return nil, fmt.Errorf("libseccomp: rule for syscall %d (%s): %w", d.nr, d.why, err)
		}
	}
	// ExportBPFMem is not supported by libseccomp 2.5.4: export into a memfd.
	fd, err := unix.MemfdCreate("vigil-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "vigil-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("libseccomp: export: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	prog, err := io.ReadAll(mf)
	if err != nil {
		return nil, err
	}
	if len(prog) == 0 || len(prog)%8 != 0 || len(prog)/8 > 4096 {
		return nil, fmt.Errorf("libseccomp: exported program has %d bytes", len(prog))
	}
	return prog, nil
}
