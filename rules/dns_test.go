package rules

import (
	"strings"
	"testing"
)

func TestDNSRules(t *testing.T) {
	p, err := Parse("rules.toml", []byte("baseline = false\n[network]\nconnect = [\"api.example.test:443\", \"*.wild.test\"]\ndns_min_ttl = 5\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.DNSMinTTL() != 5 {
		t.Errorf("DNSMinTTL = %d", p.DNSMinTTL())
	}
	for name, allow := range map[string]bool{"api.example.test": true, "API.Example.Test.": true, "a.b.wild.test": true, "wild.test": false, "evil.test": false, "": false} {
		if d := p.Resolve(name); d.Allow != allow {
			t.Errorf("Resolve(%q) = %+v, want allow=%v", name, d, allow)
		}
	}
	if d, ok := p.ConnectName("api.example.test", 443); !ok || !d.Allow || d.Source != "rules.toml:3" {
		t.Errorf("ConnectName 443 = %+v %v", d, ok)
	}
	if _, ok := p.ConnectName("api.example.test", 80); ok {
		t.Error("ConnectName allowed port 80 of a :443 rule")
	}
	if _, ok := p.ConnectName("x.wild.test", 80); !ok {
		t.Error("a rule without a port allows any port")
	}
	d, err := Parse("rules.toml", []byte("[network]\nconnect = [\"a.test\"]\n"), Options{})
	if err != nil || d.DNSMinTTL() != DefaultDNSMinTTL {
		t.Errorf("default dns_min_ttl: %v %v", d.DNSMinTTL(), err)
	}
	var b strings.Builder
	if err := p.WriteTOML(&b); err != nil || !strings.Contains(b.String(), "dns_min_ttl = 5\n") {
		t.Errorf("--check output lacks dns_min_ttl: %v\n%s", err, b.String())
	}
	for text, want := range map[string]string{
		"[network]\ndns_min_ttl = -1\n":            "rules.toml:2: network.dns_min_ttl: is -1; it takes 0 to 86400 seconds",
		"[network]\ndns_min_ttl = \"60\"\n":        "rules.toml:2: network.dns_min_ttl: must be a whole number of seconds",
		"[network]\ndns_min_ttl = 1.5\n":           "rules.toml:2: network.dns_min_ttl: must be a whole number of seconds",
		"[functions.f.network]\ndns_min_ttl = 1\n": "rules.toml:2: functions.f.network.dns_min_ttl: unknown key",
	} {
		_, err := Parse("rules.toml", []byte(text), Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
}
