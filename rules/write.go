package rules

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"
)

// WriteTOML writes the effective policy (baseline and function sections
// merged) as TOML, for --check. Each list holds the baseline entries, then
// the file's, then those of the selected function sections, each with a
// comment giving its source. The output says `baseline = false` because
// the baseline is written out, so Parse of the output gives an equivalent
// policy (only the sources differ).
func (p *Policy) WriteTOML(w io.Writer) error {
	if p == nil || p.c == nil {
		return errors.New("rules: no policy")
	}
	c := p.c
	bw := bufio.NewWriter(w)
	pr := func(ss ...string) {
		for _, s := range ss {
			bw.WriteString(s)
		}
	}
	pr("# Effective Vigil policy from ", commentSafe(c.file))
	if c.function != "" {
		pr(" for function ", commentSafe(tomlQuote(c.function)))
	}
	pr(".\n# The baseline and the matching function sections are merged in below.\n")
	for _, wn := range c.warnings {
		pr("# WARNING: ", commentSafe(wn), "\n")
	}
	pr("\nmode = ", tomlQuote(p.mode.String()), "\n")
	pr("baseline = false # the baseline's rules are written out below\n")
	pr("log_allowed = ", boolText(c.logAllowed), "\n")
	if c.metrics {
		pr("metrics = true\n")
	}
	if c.backend != "" {
		pr("backend = ", tomlQuote(c.backend), "\n")
	}

	section := func(name string, kinds ...listKind) {
		pr("\n[", name, "]\n")
		for _, k := range kinds {
			pr(strings.TrimPrefix(listNames[k], name+"."), " = [")
			n := 0
			for _, e := range c.entries {
				if e.kind != k {
					continue
				}
				if n == 0 {
					pr("\n")
				}
				n++
				pr("  ", tomlQuote(e.text), ", # ", commentSafe(e.source))
				if e.section != "" {
					pr(" ", commentSafe(e.section))
				}
				pr("\n")
			}
			pr("]\n")
		}
	}
	section("process", kExec)
	if c.allowWritableExec {
		pr("allow_writable_exec = true # WARNING: exec patterns may overlap write patterns\n")
	}
	section("filesystem", kRead, kWrite, kDeny)
	section("network", kConnect, kListen)
	pr("dns_min_ttl = ", strconv.Itoa(c.dnsMinTTL), "\n")
	if len(c.runtimeCommand) > 0 {
		q := make([]string, len(c.runtimeCommand))
		for i, a := range c.runtimeCommand {
			q[i] = tomlQuote(a)
		}
		pr("\n[runtime]\ncommand = [", strings.Join(q, ", "), "]\n")
	}
	return bw.Flush()
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// commentSafe keeps text on one comment line.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
