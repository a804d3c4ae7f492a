package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWipe: `lifeline wipe` on a running node has the node destroy its
// keys, messages and mesh key, and stop with exit code 0. An image of the
// disk taken just before shows nothing of the messages without the key.
// On a stopped node the files are destroyed directly, after a typed
// confirmation; anything else wipes nothing.
func TestWipe(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	meshKey := filepath.Join(dir, "swarm.key")
	ok(t, bin, "meshkey", "--out", meshKey)
	d := startDaemon(t, bin, data, "--mesh-key", meshKey)
	secret := "the archive is under the third stair"
	ok(t, bin, "send", "--api", d.url, "--channel", "general", secret)

	image := map[string][]byte{}
	entries, _ := os.ReadDir(data)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(data, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		image[e.Name()] = b
	}
	for _, want := range []string{"identity.pem", "admin.token", "lifeline.db", "lifeline.db-key"} {
		if image[want] == nil {
			t.Fatalf("the data directory has no %s before the wipe: %v", want, entries)
		}
	}

	// (id from a directory without the node's key asks the node.)
	elsewhere := t.TempDir()
	if got, want := strings.TrimSpace(ok(t, bin, "id", "--data", elsewhere, "--api", d.url)),
		strings.TrimSpace(ok(t, bin, "id", "--data", data)); got != want || len(got) != 64 {
		t.Fatalf("id asked of the node: %q, its data directory says %q", got, want)
	}

	start := time.Now()
	out := ok(t, bin, "wipe", "--data", data, "--api", d.url, "--yes")
	if !strings.Contains(out, "destroyed its keys and messages") {
		t.Fatalf("wipe said %q", out)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop after wiping itself")
	}
	t.Logf("wiped and stopped in %s", time.Since(start))
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the wiped node exited with %d; stderr:\n%s", code, d.stderr.String())
	}
	left, _ := os.ReadDir(data)
	for _, e := range left {
		t.Errorf("%s left in the data directory after the wipe", e.Name())
	}
	if _, err := os.Stat(meshKey); err == nil {
		t.Error("the mesh key survived the wipe")
	}
	for name, b := range image {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s held the message in clear: the wipe could not have made it unrecoverable", name)
		}
	}

	// A stopped node: nothing happens without the typed confirmation.
	d2 := filepath.Join(dir, "stopped")
	if err := os.Mkdir(d2, 0o700); err != nil {
		t.Fatal(err)
	}
	ok(t, bin, "keygen", "--out", filepath.Join(d2, "identity.pem"))
	fails(t, bin, []byte("no\n"), "not wiped", "wipe", "--data", d2, "--api", "127.0.0.1:1")
	if _, err := os.Stat(filepath.Join(d2, "identity.pem")); err != nil {
		t.Fatal("refusing to wipe destroyed the identity anyway")
	}
	r := runCLI(t, bin, []byte("wipe\n"), "wipe", "--data", d2, "--api", "127.0.0.1:1")
	if r.code != 0 || !strings.Contains(r.stdout, "wiped "+d2) {
		t.Fatalf("wipe of a stopped node: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(d2, "identity.pem")); err == nil {
		t.Fatal("the identity survived the wipe")
	}
}
