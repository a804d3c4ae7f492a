package lifeline_test

import (
	"os"
	"regexp"
	"testing"

	"lifeline"
)

// TestReadmeConfigExample keeps the README's config example loadable: it is
// what people copy onto a kit.
func TestReadmeConfigExample(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no ```json config example")
	}
	cfg, err := lifeline.ParseConfig("README.md", m[1])
	if err != nil {
		t.Fatalf("README's config example does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("README's config example does not validate: %v", err)
	}
	if !cfg.MDNS || len(cfg.Listen) != 2 || cfg.DataDir != "/var/lib/lifeline" {
		t.Fatalf("README's config example read as %+v", cfg)
	}
}
