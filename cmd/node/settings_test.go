package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline"
	"lifeline/api"
)

// hubAddr is a hub's address with a valid peer id, where nothing listens.
func hubAddr(t *testing.T) string {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return "/ip4/127.0.0.1/tcp/9/p2p/" + id.String()
}

// TestSettingsOverlay, with the real binary: the operator's page's
// settings.json overrides the config, the command line's --hub wins over
// it, `lifeline status` says which settings come from the page; a change
// through the API restarts the node in its process (same process, same
// key, the new name); and an overlay the node cannot read stops it at
// start with an error that names the file.
func TestSettingsOverlay(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	flagHub, pageHub := hubAddr(t), hubAddr(t)
	overlay := filepath.Join(dir, lifeline.SettingsFile)
	if err := os.WriteFile(overlay, []byte(`{"version": 1, "name": "Camp B", "hubs": ["`+pageHub+`"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, dir, "--hub", flagHub)
	out := ok(t, bin, "status", "--api", d.url)
	if !strings.Contains(out, "name      Camp B\n") || !strings.Contains(out, "settings  name set on the operator's page (settings.json in the data directory)") {
		t.Fatalf("lifeline status:\n%s", out)
	}
	c := &api.Client{BaseURL: d.url} // loopback: the operator
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := c.Settings(ctx)
	if err != nil || !slices.Equal(v.Hubs, []string{flagHub}) || !slices.Equal(v.CommandLine, []string{"hubs"}) || !slices.Equal(v.FromPage, []string{"name"}) {
		t.Fatalf("settings with --hub: %+v, %v", v, err)
	}
	if _, err := c.ChangeSettings(ctx, api.SettingsChange{Hubs: &[]string{pageHub}}); err == nil || !strings.Contains(err.Error(), "command line") {
		t.Fatalf("changing the command line's hubs: %v", err)
	}

	var before api.Status
	if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", d.url, "--json")), &before); err != nil {
		t.Fatal(err)
	}
	name := "Camp B, the school"
	if _, err := c.ChangeSettings(ctx, api.SettingsChange{Name: &name}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the node back with its new name", func() bool {
		r := runCLI(t, bin, nil, "status", "--api", d.url)
		return r.code == 0 && strings.Contains(r.stdout, "name      "+name+"\n")
	})
	select {
	case <-d.exited:
		t.Fatalf("lifeline run exited on a change of settings: %s", d.stderr)
	default:
	}
	if id := strings.TrimSpace(ok(t, bin, "id", "--data", dir)); id != before.ID {
		t.Fatalf("the node's key after the restart: %s, was %s", id, before.ID)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("lifeline run exited %d after SIGTERM:\n%s", code, d.stderr)
	}

	// A damaged overlay: the node does not start, and says how to fix it.
	if err := os.WriteFile(overlay, []byte(`{"version": 1, "name": `), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, bin, nil, overlay, append([]string{"run", "--data", dir, "--api", "127.0.0.1:0"}, loopbackMesh...)...)
	fails(t, bin, nil, "remove it to run with the config file alone", append([]string{"run", "--data", dir, "--api", "127.0.0.1:0"}, loopbackMesh...)...)
}
