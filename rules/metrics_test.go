package rules

import (
	"bytes"
	"strings"
	"testing"
)

// TestMetricsKey checks the top-level metrics key: default off, true and
// false decode, a non-boolean is rejected, and --check (WriteTOML) keeps it.
func TestMetricsKey(t *testing.T) {
	if p := mustParse(t, "", Options{}); p.Metrics() {
		t.Error("metrics is on by default")
	}
	if p := mustParse(t, "metrics = false\n", Options{}); p.Metrics() {
		t.Error("metrics = false turned metrics on")
	}
	p := mustParse(t, "metrics = true\n", Options{})
	if !p.Metrics() {
		t.Fatal("metrics = true did not turn metrics on")
	}
	if !p.WithMode(Audit).Metrics() {
		t.Error("WithMode lost metrics")
	}
	var buf bytes.Buffer
	if err := p.WriteTOML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\nmetrics = true\n") {
		t.Errorf("WriteTOML lost metrics = true:\n%s", buf.String())
	}
	q, err := Parse("effective.toml", buf.Bytes(), Options{})
	if err != nil {
		t.Fatalf("written policy does not parse: %v", err)
	}
	if !q.Metrics() {
		t.Error("metrics lost in the round trip")
	}

	_, err = Parse("rules.toml", []byte("metrics = \"yes\"\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "rules.toml:1: metrics: must be true or false, not a string") {
		t.Errorf("metrics = \"yes\": got %v", err)
	}
	_, err = Parse("rules.toml", []byte("[functions.a]\nmetrics = true\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "functions.a.metrics: unknown key") {
		t.Errorf("metrics in a function section: got %v", err)
	}
}
