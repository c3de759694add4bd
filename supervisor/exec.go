//go:build linux

package supervisor

import (
	"bytes"
	"encoding/binary"
	"io"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"vigil/internal/resolve"
	"vigil/rules"
)

const (
	binprmBufSize   = 256 // BINPRM_BUF_SIZE: what the kernel reads of a file to pick a format
	maxInterpreters = 4   // like the kernel's exec recursion limit
	ruleNoPtrace    = "exec cannot be verified: ptrace unavailable"
	ruleNotOnDisk   = "exec of something that is not a regular file on disk (memfd, /proc/self/fd, deleted file, directory)"

	maxArgStrlen = 32 * 4096 // MAX_ARG_STRLEN: the longest argument exec accepts
	maxArgvRead  = 256       // argv entries read to find the loader's program
	maxArgvBytes = 1 << 20   // bytes of argv read to find the loader's program
)

// execTarget is the file an exec will load: the program, or for a #!
// script the final interpreter. When that file is the dynamic loader run
// as a command (ld.so PROGRAM), prog is the program it will open and run.
type execTarget struct {
	path     string
	dev, ino uint64
	loader   bool                 // the file is a dynamic loader run as a command
	prog     *loaderProgramTarget // the program it runs (nil: none, only options)
}

// loaderProgramTarget is the program a dynamic loader was allowed to run:
// the file decided on (canonical path, device, inode).
type loaderProgramTarget struct {
	path     string
	dev, ino uint64
}

// execDecider decides execs: one place for the seccomp handler, the exec
// barrier and (later) the tracer backend. It needs the policy, who calls,
// a way to open the caller's cwd (relative #! interpreters and loader
// programs are looked up there, never in an execveat dirfd), and the argv
// the exec passes (read only when a dynamic loader is involved).
type execDecider struct {
	policy Policy
	caller rules.Caller
	cwd    func() (int, error)            // an O_PATH fd of the caller's cwd
	argv   func() ([]string, bool, error) // the exec's argv (prefix), truncated?
}

// execArgv is the argv a level of the exec chain receives, computed lazily:
// a #! level splices the interpreter in front of the argv it was given.
type execArgv func() ([]string, bool, error)

func handleExec(r *request) Result {
	dirfd := unix.AT_FDCWD
	var pathAddr, argvAddr uint64
	atFlags := 0
	if r.n.Data.Nr == unix.SYS_EXECVEAT {
		dirfd, pathAddr, argvAddr, atFlags = r.argInt(0), r.arg(1), r.arg(2), r.argInt(4)
		if atFlags&^(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
			return Errno(unix.EINVAL)
		}
	} else {
		pathAddr, argvAddr = r.arg(0), r.arg(1)
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

	dec := &execDecider{
		policy: r.s.policy,
		caller: r.caller(),
		cwd:    func() (int, error) { return r.openProc("cwd", unix.O_PATH|unix.O_CLOEXEC) },
		argv:   func() ([]string, bool, error) { return r.readArgv(argvAddr) },
	}
	target, d := dec.decide(ctx, res, execFilename(dirfd, path, emptyPath))
	if target.prog != nil {
		ev.Detail = "dynamic loader runs " + target.prog.path
	}
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

// execFilename is bprm->filename: what a #! interpreter receives as the
// script's name (fs/exec.c alloc_bprm).
func execFilename(dirfd int, path string, emptyPath bool) string {
	switch {
	case dirfd == unix.AT_FDCWD || strings.HasPrefix(path, "/"):
		return path
	case emptyPath:
		return "/dev/fd/" + strconv.Itoa(dirfd)
	}
	return "/dev/fd/" + strconv.Itoa(dirfd) + "/" + path
}

// decide decides an exec of the resolved file res, named filename in the
// exec call (see execFilename). It returns the file the kernel will load
// (for the barrier) and the decision.
func (d *execDecider) decide(ctx resolve.Context, res resolve.Result, filename string) (execTarget, rules.Decision) {
	return d.decideFile(ctx, res, execArgv(d.argv), filename, 0)
}

// decideFile requires a regular file reachable by a path and asks the
// policy; for a #! script it does the same for its interpreter
// (recursively), and for the dynamic loader run as a command it does the
// same for the program the loader will run.
func (d *execDecider) decideFile(ctx resolve.Context, res resolve.Result, argv execArgv, filename string, depth int) (execTarget, rules.Decision) {
	if res.Kind != resolve.Path || !res.Exists || res.Mode&unix.S_IFMT != unix.S_IFREG {
		return execTarget{}, rules.Decision{Rule: ruleNotOnDisk}
	}
	dec := d.policy.Exec(res.Path, d.caller)
	if !dec.Allow {
		return execTarget{}, dec
	}
	// O_NONBLOCK: should the file have been swapped for a FIFO, do not hang.
	fd, err := resolveOpen(ctx, res, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "exec target cannot be read: " + err.Error()}
	}
	defer unix.Close(fd)
	var buf [binprmBufSize]byte
	n, err := preadFull(fd, buf[:], 0)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "exec target cannot be read: " + err.Error()}
	}
	here := execTarget{path: res.Path, dev: res.Dev, ino: res.Ino}
	if interp, arg, hasArg, ok := parseShebang(buf[:n]); ok {
		return d.decideScript(ctx, interp, arg, hasArg, argv, filename, depth, dec)
	}
	info, err := parseELF(fdReaderAt(fd))
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "exec target cannot be read: " + err.Error()}
	}
	if !isLoader(res.Path, info) {
		return here, dec
	}
	here.loader = true
	return d.decideLoader(ctx, here, argv, depth, dec)
}

func (d *execDecider) decideScript(ctx resolve.Context, interp, arg string, hasArg bool, argv execArgv, filename string, depth int, dec rules.Decision) (execTarget, rules.Decision) {
	if depth+1 >= maxInterpreters {
		// The kernel gives up with ELOOP; deny (EACCES) just the same.
		return execTarget{}, rules.Decision{Rule: "too many levels of #! interpreters"}
	}
	ictx, done, err := d.cwdContext(ctx, interp)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "interpreter cannot be resolved"}
	}
	defer done()
	ires, err := resolvePath(ictx, interp, 0)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "interpreter " + interp + " cannot be resolved: " + toErrno(err).Error()}
	}
	// binfmt_script: argv becomes interp [arg] filename argv[1:]...
	iargv := func() ([]string, bool, error) {
		a, trunc, err := argv()
		if err != nil {
			return nil, false, err
		}
		return scriptArgv(interp, arg, hasArg, filename, a), trunc, nil
	}
	t, id := d.decideFile(ictx, ires, iargv, interp, depth+1)
	if !id.Allow {
		id.Rule = "interpreter " + ires.Path + ": " + id.Rule
		return execTarget{}, id
	}
	return t, dec
}

// scriptArgv is the argv binfmt_script gives the interpreter.
func scriptArgv(interp, arg string, hasArg bool, filename string, argv []string) []string {
	out := []string{interp}
	if hasArg {
		out = append(out, arg)
	}
	out = append(out, filename)
	if len(argv) > 1 {
		out = append(out, argv[1:]...)
	}
	return out
}

// decideLoader decides the dynamic loader run as a command: what runs is
// the program named in its argv, which must be allowed exactly as if it
// were executed directly (the loader itself is allowed already).
func (d *execDecider) decideLoader(ctx resolve.Context, here execTarget, argv execArgv, depth int, dec rules.Decision) (execTarget, rules.Decision) {
	a, trunc, err := argv()
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "dynamic loader: argv cannot be read"}
	}
	i, ok := loaderProgram(a)
	if !ok {
		if trunc {
			return execTarget{}, rules.Decision{Rule: "dynamic loader: argv too long to find the program"}
		}
		// Only options (--help, --version, ...): the loader runs nothing.
		return here, dec
	}
	prog := a[i]
	if !strings.Contains(prog, "/") {
		return execTarget{}, rules.Decision{Rule: "dynamic loader: a program without a slash (searched in library paths) is not allowed"}
	}
	pctx, done, err := d.cwdContext(ctx, prog)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "dynamic loader: program cannot be resolved"}
	}
	defer done()
	pres, err := resolvePath(pctx, prog, 0)
	if err != nil {
		return execTarget{}, rules.Decision{Rule: "dynamic loader: program " + prog + " cannot be resolved: " + toErrno(err).Error()}
	}
	pargv := func() ([]string, bool, error) { return a[i:], trunc, nil }
	t, pd := d.decideFile(pctx, pres, pargv, prog, depth+1)
	if !pd.Allow {
		pd.Rule = "program run by the dynamic loader " + pres.Path + ": " + pd.Rule
		return execTarget{}, pd
	}
	if t.loader {
		return execTarget{}, rules.Decision{Rule: "dynamic loader: the program " + pres.Path + " is a dynamic loader itself"}
	}
	here.prog = &loaderProgramTarget{path: pres.Path, dev: pres.Dev, ino: pres.Ino}
	return here, dec
}

// cwdContext is ctx for looking up name as the kernel's open_exec and the
// loader's open do: an absolute name from the caller's root, a relative one
// from its cwd (never from an execveat dirfd).
func (d *execDecider) cwdContext(ctx resolve.Context, name string) (resolve.Context, func(), error) {
	c := ctx
	c.Dir = -1
	if strings.HasPrefix(name, "/") {
		return c, func() {}, nil
	}
	cwd, err := d.cwd()
	if err != nil {
		return c, func() {}, err
	}
	c.Dir = cwd
	return c, func() { unix.Close(cwd) }, nil
}

// parseShebang parses a #! line like the kernel's load_script
// (fs/binfmt_script.c, Linux 5.1+). buf is the start of the file (up to
// BINPRM_BUF_SIZE bytes; the kernel pads a shorter file with NULs). ok is
// false when the file is not a script the kernel would run (no "#!", no
// interpreter name, or a name truncated by the buffer: ENOEXEC). The
// optional argument is the rest of the line, blanks trimmed, as one string.
func parseShebang(b []byte) (interp, arg string, hasArg, ok bool) {
	var buf [binprmBufSize]byte
	copy(buf[:], b)
	if buf[0] != '#' || buf[1] != '!' {
		return "", "", false, false
	}
	spacetab := func(c byte) bool { return c == ' ' || c == '\t' }
	nextNonSpacetab := func(first, last int) int {
		for ; first <= last; first++ {
			if !spacetab(buf[first]) {
				return first
			}
		}
		return -1
	}
	nextTerminator := func(first, last int) int {
		for ; first <= last; first++ {
			if spacetab(buf[first]) || buf[first] == 0 {
				return first
			}
		}
		return -1
	}
	bufEnd := len(buf) - 1
	iEnd := bytes.IndexByte(buf[:], '\n')
	if iEnd < 0 {
		iEnd = nextNonSpacetab(2, bufEnd)
		if iEnd < 0 {
			return "", "", false, false
		}
		if nextTerminator(iEnd, bufEnd) < 0 {
			return "", "", false, false // the name may be truncated
		}
		iEnd = bufEnd
	}
	for iEnd > 2 && spacetab(buf[iEnd-1]) {
		iEnd--
	}
	iName := nextNonSpacetab(2, iEnd)
	if iName < 0 || iName == iEnd {
		return "", "", false, false
	}
	iArg := -1
	iSep := nextTerminator(iName, iEnd)
	if iSep >= 0 && buf[iSep] != 0 {
		iArg = nextNonSpacetab(iSep, iEnd)
	}
	buf[iEnd] = 0
	cstr := func(from int) string {
		s := buf[from:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s)
	}
	if iArg >= 0 {
		arg, hasArg = cstr(iArg), true
	}
	if iSep >= 0 {
		buf[iSep] = 0
	}
	return cstr(iName), arg, hasArg, true
}

// loaderArgOptions are the dynamic loaders' options that take an argument:
// glibc's ld.so (2.36: `ld.so --help`) and musl's (--library-path,
// --preload, --argv0). Any other argument starting with "--" is an option
// without one: glibc exits on options it does not know, musl skips them.
var loaderArgOptions = map[string]bool{
	"--library-path": true, "--inhibit-rpath": true, "--audit": true, "--preload": true,
	"--argv0": true, "--glibc-hwcaps-prepend": true, "--glibc-hwcaps-mask": true,
}

// loaderProgram returns the index in argv of the program a dynamic loader
// run as a command loads, after its own options; ok is false when there is
// none (then the loader only prints something, or fails). "--" ends the
// options (musl; glibc refuses it and exits, which is stricter).
func loaderProgram(argv []string) (int, bool) {
	i := 1
	for i < len(argv) {
		a := argv[i]
		switch {
		case a == "--":
			i++
			return i, i < len(argv)
		case loaderArgOptions[a]:
			if i+1 >= len(argv) {
				return -1, false
			}
			i += 2
		case strings.HasPrefix(a, "--"):
			i++
		default:
			return i, true
		}
	}
	return -1, false
}

// elfInfo is what exec needs to know of an ELF file.
type elfInfo struct {
	elf64     bool   // a little-endian 64-bit ELF file
	typ       uint16 // e_type
	hasInterp bool   // a PT_INTERP program header
	soname    string // DT_SONAME, if any
}

const (
	etDyn     = 3
	ptLoad    = 1
	ptDynamic = 2
	ptInterp  = 3
	dtNull    = 0
	dtStrtab  = 5
	dtSoname  = 14
)

type readerAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

// eofOK reads like io.ReaderAt but reports a short read without io.EOF.
type eofOK struct{ r readerAt }

func (e eofOK) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

type fdReaderAt int

func (f fdReaderAt) ReadAt(p []byte, off int64) (int, error) { return preadFull(int(f), p, off) }

func preadFull(fd int, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// parseELF reads the ELF header, the program headers and, for an ET_DYN
// without PT_INTERP, DT_SONAME (through PT_DYNAMIC and the PT_LOAD
// segments: section headers may be stripped). A file that is not a
// 64-bit little-endian ELF gives a zero elfInfo without error; a
// malformed one too (the kernel refuses it, or it is not a loader).
func parseELF(r readerAt) (elfInfo, error) {
	f := eofOK{r}
	var info elfInfo
	var eh [64]byte
	n, err := f.ReadAt(eh[:], 0)
	if err != nil {
		return info, err
	}
	if n < len(eh) || !bytes.Equal(eh[:4], []byte("\x7fELF")) || eh[4] != 2 || eh[5] != 1 {
		return info, nil
	}
	le := binary.LittleEndian
	info.elf64 = true
	info.typ = le.Uint16(eh[16:])
	phoff := le.Uint64(eh[32:])
	phentsize := le.Uint16(eh[54:])
	phnum := le.Uint16(eh[56:])
	if phentsize != 56 || phnum == 0 || phnum > 512 || phoff > 1<<30 {
		return info, nil
	}
	ph := make([]byte, int(phnum)*56)
	if n, err := f.ReadAt(ph, int64(phoff)); err != nil {
		return info, err
	} else if n < len(ph) {
		return info, nil
	}
	type seg struct{ off, vaddr, filesz uint64 }
	var loads []seg
	var dyn seg
	hasDyn := false
	for i := 0; i < int(phnum); i++ {
		p := ph[i*56:]
		s := seg{off: le.Uint64(p[8:]), vaddr: le.Uint64(p[16:]), filesz: le.Uint64(p[32:])}
		switch le.Uint32(p) {
		case ptInterp:
			info.hasInterp = true
		case ptLoad:
			loads = append(loads, s)
		case ptDynamic:
			dyn, hasDyn = s, true
		}
	}
	if info.typ != etDyn || info.hasInterp || !hasDyn {
		return info, nil
	}
	size := dyn.filesz
	if size > 16*4096 {
		size = 16 * 4096
	}
	db := make([]byte, size/16*16)
	if n, err := f.ReadAt(db, int64(dyn.off)); err != nil {
		return info, err
	} else {
		db = db[:n/16*16]
	}
	var strtab, soname uint64
	hasStrtab, hasSoname := false, false
	for i := 0; i+16 <= len(db); i += 16 {
		tag, val := le.Uint64(db[i:]), le.Uint64(db[i+8:])
		if tag == dtNull {
			break
		}
		switch tag {
		case dtStrtab:
			strtab, hasStrtab = val, true
		case dtSoname:
			soname, hasSoname = val, true
		}
	}
	if !hasSoname || !hasStrtab {
		return info, nil
	}
	for _, l := range loads {
		if strtab >= l.vaddr && strtab-l.vaddr < l.filesz {
			off := strtab - l.vaddr + l.off + soname
			var sb [256]byte
			n, err := f.ReadAt(sb[:], int64(off))
			if err != nil {
				return info, err
			}
			s := sb[:n]
			if i := bytes.IndexByte(s, 0); i >= 0 {
				s = s[:i]
			}
			info.soname = string(s)
			if info.soname == "" {
				info.soname = "?" // a SONAME is present; keep it non-empty
			}
			break
		}
	}
	return info, nil
}

// isLoader reports whether an exec of the file at p runs a dynamic loader
// as a command, which then loads whatever program its argv names. A
// program interpreter is an ELF shared object (ET_DYN) without a PT_INTERP
// of its own. Static-pie executables are that too, so one more sign is
// required: a loader's name (ld-*.so*, ld.so*, musl's libc.so*, which is
// its loader) or a DT_SONAME (a shared library's; executables have none),
// which also catches a loader copied under another name.
func isLoader(p string, info elfInfo) bool {
	if !info.elf64 || info.typ != etDyn || info.hasInterp {
		return false
	}
	return info.soname != "" || loaderName(path.Base(p))
}

func loaderName(base string) bool {
	return (strings.HasPrefix(base, "ld-") && strings.Contains(base, ".so")) ||
		strings.HasPrefix(base, "ld.so") || strings.HasPrefix(base, "libc.so")
}

// readArgv reads the exec's argv from the caller: up to maxArgvRead
// entries and maxArgvBytes bytes (truncated reports that there was more).
// An empty argv is [""] as the kernel (5.18+) makes it.
func (r *request) readArgv(addr uint64) (argv []string, truncated bool, err error) {
	if addr == 0 {
		return []string{""}, false, nil
	}
	total := 0
	for i := 0; ; i++ {
		if i >= maxArgvRead {
			return argv, true, nil
		}
		var pb [8]byte
		if e := r.readMem(addr+uint64(i)*8, pb[:]); e != 0 {
			return nil, false, e
		}
		p := binary.LittleEndian.Uint64(pb[:])
		if p == 0 {
			break
		}
		s, e := r.readArg(p)
		if e != 0 {
			return nil, false, e
		}
		total += len(s) + 1
		if total > maxArgvBytes {
			return argv, true, nil
		}
		argv = append(argv, s)
	}
	if len(argv) == 0 {
		argv = []string{""}
	}
	return argv, false, nil
}

// readArg reads one NUL-terminated argument (at most MAX_ARG_STRLEN).
func (r *request) readArg(addr uint64) (string, unix.Errno) {
	var out []byte
	var buf [4096]byte
	for len(out) < maxArgStrlen {
		m, e := r.readChunk(addr+uint64(len(out)), buf[:])
		if e != 0 {
			return "", e
		}
		if i := bytes.IndexByte(buf[:m], 0); i >= 0 {
			return string(append(out, buf[:i]...)), 0
		}
		out = append(out, buf[:m]...)
	}
	return "", unix.E2BIG
}
