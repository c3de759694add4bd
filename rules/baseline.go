package rules

import (
	"fmt"
	"strings"
	"sync"
)

// BaselineTOML is the built-in Lambda baseline: what any Lambda runtime
// (Python, Node.js, Java, .NET, Go and custom runtimes on Amazon Linux 2
// and 2023) needs to start. It is compiled with the same parser as a rules
// file; its rules have Source "baseline". `baseline = false` drops it.
// Connect to AWS_LAMBDA_RUNTIME_API is added from Options.RuntimeAPI.
// README.md ("The Lambda baseline") explains every entry.
//
// It allows no exec (exec is always explicit), no listen, and nothing of
// another process's /proc entries, /etc/shadow, /root or
// /proc/self/environ.
const BaselineTOML = `
[filesystem]
read = [
  # Runtimes, function code, layers.
  "/var/lang/**",
  "/var/runtime/**",
  "/var/task/**",
  "/opt/**",
  # Shared libraries, the loader cache, locale and time zone data.
  "/usr/lib/**",
  "/usr/lib64/**",
  "/lib/**",
  "/lib64/**",
  "/etc/ld.so.cache",
  "/etc/ld.so.preload",
  "/usr/share/zoneinfo/**",
  "/usr/share/locale/**",
  "/etc/locale.alias",
  "/etc/localtime",
  # TLS trust stores and OpenSSL configuration.
  "/etc/ssl/**",
  "/etc/pki/**",
  "/etc/crypto-policies/**",
  # Name resolution and system identity.
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/nsswitch.conf",
  "/etc/host.conf",
  "/etc/gai.conf",
  "/etc/services",
  "/etc/protocols",
  "/etc/passwd",
  "/etc/group",
  "/etc/os-release",
  "/etc/system-release",
  "/etc/mime.types",
  # The process's own /proc entries (never another process's).
  "/proc/self",
  "/proc/self/stat",
  "/proc/self/statm",
  "/proc/self/status",
  "/proc/self/maps",
  "/proc/self/cmdline",
  "/proc/self/comm",
  "/proc/self/auxv",
  "/proc/self/limits",
  "/proc/self/mountinfo",
  "/proc/self/cgroup",
  "/proc/self/fdinfo/**",
  "/proc/self/task/**",
  # System-wide facts runtimes size themselves by.
  "/proc/cpuinfo",
  "/proc/meminfo",
  "/proc/stat",
  "/proc/loadavg",
  "/proc/uptime",
  "/proc/sys/kernel/osrelease",
  "/proc/sys/vm/overcommit_memory",
  "/proc/sys/net/core/somaxconn",
  "/sys/fs/cgroup/**",
  "/sys/devices/system/cpu/**",
  "/sys/kernel/mm/transparent_hugepage/**",
]
write = [
  # Lambda's only writable directory.
  "/tmp/**",
  # Character devices every runtime opens.
  "/dev/null",
  "/dev/zero",
  "/dev/random",
  "/dev/urandom",
  # Standard streams, and what their links resolve to for pipes and sockets.
  "/dev/stdin",
  "/dev/stdout",
  "/dev/stderr",
  "/proc/self/fd/**",
  # Thread names (pthread_setname_np on another thread writes these).
  "/proc/self/comm",
  "/proc/self/task/*/comm",
]
`

var baselineOnce = sync.OnceValue(func() []*entry {
	lists, ok := scanBaseline(BaselineTOML)
	if !ok {
		// Not the simple shape scanBaseline reads: the TOML decoder.
		raw, errs := decode("baseline", []byte(BaselineTOML))
		if len(errs) > 0 {
			panic(fmt.Sprintf("rules: the built-in baseline does not decode: %v", errs))
		}
		lists = raw.lists
	}
	var out []*entry
	for k := listKind(0); k < nKinds; k++ {
		for _, r := range lists[k] {
			out = append(out, &entry{
				kind: k, text: r.text, source: "baseline",
				key: fmt.Sprintf("baseline %s[%d]", listNames[k], r.index),
			})
		}
	}
	return out
})

// baselineEntries returns fresh copies' templates of the baseline rules.
func baselineEntries() []*entry { return baselineOnce() }

// scanBaseline reads the lists of BaselineTOML line by line, without the
// TOML decoder, which took about 0.3 ms of a cold start (every start of
// the bootstrap decodes the baseline once, before the runtime's first
// call can be decided). It knows only the shape the baseline has: a
// [filesystem] table whose read and write arrays hold one plain quoted
// string per line, comments and blank lines. Anything else gives ok
// false, and the caller decodes it as TOML; TestScanBaseline checks that
// both read the same entries.
func scanBaseline(src string) (lists [nKinds][]rawEntry, ok bool) {
	var kind listKind
	in, table := false, false // inside an array; after [filesystem]
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case !in && line == "[filesystem]":
			table = true
		case !in && table && line == "read = [":
			kind, in = kRead, true
		case !in && table && line == "write = [":
			kind, in = kWrite, true
		case in && line == "]":
			in = false
		case in:
			q := strings.TrimSuffix(line, ",")
			if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' || strings.ContainsAny(q[1:len(q)-1], "\"\\#") {
				return lists, false
			}
			lists[kind] = append(lists[kind], rawEntry{text: q[1 : len(q)-1], index: len(lists[kind])})
		default:
			return lists, false
		}
	}
	return lists, !in && table
}
