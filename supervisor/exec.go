//go:build linux

package supervisor

import (
	"bytes"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

const (
	binprmBufSize   = 256 // BINPRM_BUF_SIZE: what the kernel reads of a file to pick a format
	maxInterpreters = 4   // like the kernel's exec recursion limit
	ruleNoPtrace    = "exec cannot be verified: ptrace unavailable"
)

// execTarget is the file an exec will load: the program, or for a #!
// script the final interpreter.
type execTarget struct {
	path     string
	dev, ino uint64
}

func handleExec(r *request) Result {
	dirfd := unix.AT_FDCWD
	var pathAddr uint64
	atFlags := 0
	if r.n.Data.Nr == unix.SYS_EXECVEAT {
		dirfd, pathAddr, atFlags = r.argInt(0), r.arg(1), r.argInt(4)
		if atFlags&^(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
			return Errno(unix.EINVAL)
		}
	} else {
		pathAddr = r.arg(0)
	}
	path, e := r.readString(pathAddr)
	if e != 0 {
		return Errno(e)
	}
	emptyPath := path == "" && atFlags&unix.AT_EMPTY_PATH != 0
	if path == "" && !emptyPath {
		return Errno(unix.ENOENT)
	}
	st, err := r.status()
	if err != nil {
		return Errno(unix.EACCES)
	}
	ctx, closeCtx, e := callerContext(r, dirfd, path, emptyPath)
	defer closeCtx()
	if e != 0 {
		return Errno(e)
	}
	var rf resolve.Flags
	if atFlags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		rf |= resolve.NoFollow
	}
	if emptyPath {
		rf |= resolve.EmptyPath
	}
	res, err := resolvePath(ctx, path, rf)
	if err != nil {
		return Errno(toErrno(err))
	}
	ev := &Event{Op: "exec", Path: res.Path, Pid: st.tgid}

	target, d := r.decideExec(ctx, res, 0)
	deny, ev := r.s.judge(ev, d)
	if deny {
		return Errno(unix.EACCES).withEvent(ev)
	}
	if ev != nil && ev.Decision == DecisionAudit {
		// Audit mode: allowed as is, without the barrier's kill.
		if !r.valid() {
			return Errno(unix.ENOENT)
		}
		return Continue().withEvent(ev)
	}
	if !r.valid() {
		return Errno(unix.ENOENT)
	}
	res2 := Continue().withEvent(ev)
	res2.barrier = &execBarrier{tid: r.tid, tgid: st.tgid, want: target}
	return res2
}

// decideExec requires a regular file reachable by a path, asks the policy,
// and for a #! script does the same for its interpreter (recursively).
func (r *request) decideExec(ctx resolve.Context, res resolve.Result, depth int) (execTarget, rules.Decision) {
	if res.Kind != resolve.Path || !res.Exists || res.Mode&unix.S_IFMT != unix.S_IFREG {
		return execTarget{}, rules.Decision{Rule: "exec of something that is not a regular file on disk (memfd, /proc/self/fd, deleted file, directory)"}
	}
	d := r.s.policy.Exec(res.Path, r.caller())
	if !d.Allow {
		return execTarget{}, d
	}
	interp, ok, err := readInterpreter(ctx, res)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "exec target cannot be read: " + err.Error()}
	}
	if !ok {
		return execTarget{path: res.Path, dev: res.Dev, ino: res.Ino}, d
	}
	if depth+1 >= maxInterpreters {
		// The kernel gives up with ELOOP; deny (EACCES) just the same.
		return execTarget{}, rules.Decision{Rule: "too many levels of #! interpreters"}
	}
	ictx := ctx
	if interp[0] != '/' && ctx.Dir < 0 {
		// A relative interpreter is looked up from the caller's cwd.
		cwd, err := r.openProc("cwd", unix.O_PATH|unix.O_CLOEXEC)
		if err != nil {
			return execTarget{}, rules.Decision{Rule: "interpreter cannot be resolved"}
		}
		defer unix.Close(cwd)
		ictx.Dir = cwd
	}
	ires, err := resolvePath(ictx, interp, 0)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "interpreter " + interp + " cannot be resolved: " + toErrno(err).Error()}
	}
	t, id := r.decideExec(ictx, ires, depth+1)
	if !id.Allow {
		id.Rule = "interpreter " + ires.Path + ": " + id.Rule
		return execTarget{}, id
	}
	return t, d
}

// readInterpreter returns the interpreter of a #! script, parsed like
// binfmt_script: the first line, leading blanks skipped, the name ends at a
// blank, NUL or newline.
func readInterpreter(ctx resolve.Context, res resolve.Result) (string, bool, error) {
	// O_NONBLOCK: should the file have been swapped for a FIFO, do not hang.
	fd, err := resolveOpen(ctx, res, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false, err
	}
	defer unix.Close(fd)
	var buf [binprmBufSize]byte
	n, err := readFull(fd, buf[:])
	if err != nil {
		return "", false, err
	}
	b := buf[:n]
	if !bytes.HasPrefix(b, []byte("#!")) {
		return "", false, nil
	}
	b = b[2:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	b = bytes.TrimLeft(b, " \t")
	if i := bytes.IndexAny(b, " \t\x00"); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 {
		return "", false, nil // the kernel fails it with ENOEXEC
	}
	return string(b), true, nil
}
