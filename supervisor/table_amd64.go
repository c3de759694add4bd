//go:build linux

package supervisor

import "golang.org/x/sys/unix"

// addLegacy adds the x86-64 system calls that take paths without a
// directory fd (arm64 has only the *at forms): open.go and pathchange.go
// decode them in decodeOpenLegacy and pcDecodeLegacy.
func addLegacy(add func(h handler, nrs ...int32)) {
	add(handleOpen, unix.SYS_OPEN, unix.SYS_CREAT)
	add(handlePathChange,
		unix.SYS_MKDIR, unix.SYS_MKNOD,
		unix.SYS_UNLINK, unix.SYS_RMDIR,
		unix.SYS_RENAME,
		unix.SYS_LINK, unix.SYS_SYMLINK,
		unix.SYS_CHMOD,
		unix.SYS_CHOWN, unix.SYS_LCHOWN,
		unix.SYS_UTIME, unix.SYS_UTIMES, unix.SYS_FUTIMESAT)
}
