//go:build linux

package supervisor

import (
	"fmt"
	"io"
	"os"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// notifiedSyscalls are the calls answered by the supervisor. Everything else
// is allowed in the kernel without a round trip.
var notifiedSyscalls = []string{"execve", "execveat", "open", "openat", "openat2", "creat", "connect"}

// buildFilter compiles the filter with libseccomp and returns the raw
// classic BPF program (struct sock_filter[]) as bytes. It runs in the parent
// only; the child never links libseccomp into its start-up path.
//
// Other architectures (i386 via int 0x80, for instance) kill the process;
// x32 system call numbers (nr >= 0x40000000 with AUDIT_ARCH_X86_64) are
// rejected by libseccomp's x86_64 filter (see the BPF VM test), so they can
// never reach an ALLOW by aliasing a native number.
func buildFilter() ([]byte, error) {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("libseccomp: new filter: %w", err)
	}
	defer f.Release()
	if err := f.SetBadArchAction(seccomp.ActKillProcess); err != nil {
		return nil, fmt.Errorf("libseccomp: bad arch action: %w", err)
	}
	// The child sets no_new_privs itself; the attribute only matters for
	// Load(), which we never call.
	for _, name := range notifiedSyscalls {
		sc, err := seccomp.GetSyscallFromName(name)
		if err != nil {
			return nil, fmt.Errorf("libseccomp: syscall %s: %w", name, err)
		}
		if err := f.AddRule(sc, seccomp.ActNotify); err != nil {
			return nil, fmt.Errorf("libseccomp: rule for %s: %w", name, err)
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
