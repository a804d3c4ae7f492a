package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersion: `lifeline version` says the release and the source revision
// the binary was built from, as make build gives them to the linker.
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "lifeline")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-X lifeline.release=9.9.9 -X lifeline.revision=0123456789abcdef-modified", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := ok(t, bin, "version")
	if want := "lifeline 9.9.9 (rev 0123456789ab, modified)"; strings.TrimSpace(out) != want {
		t.Fatalf("lifeline version: %q, want %q", out, want)
	}
}
