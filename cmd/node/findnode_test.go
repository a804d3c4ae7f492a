package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline"
)

// writeNodeConfig writes a TOML config of a node at apiAddr with dataDir.
func writeNodeConfig(t *testing.T, apiAddr, dataDir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lifeline.toml")
	text := "version = 1\napi_addr = \"" + apiAddr + "\"\ndata_dir = \"" + dataDir + "\"\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFindNode: where client commands look for the node, and which admin
// token they carry, in every case of the order --api, $LIFELINE_API, the
// installed node's config ($LIFELINE_CONFIG, else the system's), the
// default. The system config is a temporary file here, never /etc's.
func TestFindNode(t *testing.T) {
	data := t.TempDir()
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(filepath.Join(data, lifeline.AdminTokenFile), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	installed := writeNodeConfig(t, "0.0.0.0:8123", data)
	other := writeNodeConfig(t, "[::]:8124", "/nonexistent")
	broken := filepath.Join(t.TempDir(), "broken.toml")
	os.WriteFile(broken, []byte("version = 1\napi_adr = \"x\"\n"), 0o644)
	anyPort := writeNodeConfig(t, "127.0.0.1:0", data)

	for _, c := range []struct {
		name                          string
		system, env, envAPI, envToken string
		flag                          string
		url, token, dataDir, fails    string
	}{
		{name: "nothing installed", url: "http://127.0.0.1:7777", dataDir: "data"},
		{name: "installed: every interface is reached on loopback, with the token", system: installed,
			url: "http://127.0.0.1:8123", token: token, dataDir: data},
		{name: "$LIFELINE_CONFIG before the system's", system: installed, env: other, url: "http://[::1]:8124", dataDir: "/nonexistent"},
		{name: "--api: no token from a data directory", system: installed, flag: "10.0.0.1:80", url: "http://10.0.0.1:80", dataDir: data},
		{name: "$LIFELINE_API: no token from a data directory", system: installed, envAPI: "http://10.0.0.2/", url: "http://10.0.0.2", dataDir: data},
		{name: "$LIFELINE_TOKEN before the file", system: installed, envToken: "given", url: "http://127.0.0.1:8123", token: "given", dataDir: data},
		{name: "a system config that is not there", system: filepath.Join(t.TempDir(), "none.toml"), url: "http://127.0.0.1:7777", dataDir: "data"},
		{name: "a broken config is said, not skipped", env: broken, fails: `unknown setting "api_adr"`},
		{name: "a $LIFELINE_CONFIG that is not there", env: filepath.Join(t.TempDir(), "none.toml"), fails: "none.toml"},
		{name: "port 0 cannot be found", env: anyPort, fails: "port 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("LIFELINE_CONFIG", c.env)
			t.Setenv("LIFELINE_API", c.envAPI)
			t.Setenv("LIFELINE_TOKEN", c.envToken)
			cl := &cli{systemConfig: c.system}
			got, err := cl.client(c.flag)
			if c.fails != "" {
				if err == nil || !strings.Contains(err.Error(), c.fails) {
					t.Fatalf("client: %+v, %v; want an error saying %q", got, err, c.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.BaseURL != c.url || got.Token != c.token {
				t.Errorf("client: %s with token %q; want %s with %q", got.BaseURL, got.Token, c.url, c.token)
			}
			if dir, err := cl.dataDir(""); err != nil || dir != c.dataDir {
				t.Errorf("dataDir: %q, %v; want %q", dir, err, c.dataDir)
			}
			if dir, err := cl.dataDir("given"); err != nil || dir != "given" {
				t.Errorf("dataDir(given): %q, %v", dir, err)
			}
		})
	}
}

// TestInstalledNodeFound: with only a config saying where the node is (as
// the Debian package installs one), status, id and admin-token find a
// running node and its data directory with no --api or --data; admin-token
// never makes a token.
func TestInstalledNodeFound(t *testing.T) {
	data := t.TempDir()
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "--data", data, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"},
			strings.NewReader(""), &out, &errb)
	}()
	defer func() { cancel(); <-done }()
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if _, after, ok := strings.Cut(out.String(), "listening on http://"); ok {
			addr = strings.TrimSpace(after)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not start: %s", errb.String())
		}
	}
	_, port, _ := strings.Cut(addr, ":")
	// Listening on every interface, as a kit's config says; the node
	// itself listens on loopback only, so reaching it proves the client
	// dialled loopback.
	t.Setenv("LIFELINE_CONFIG", writeNodeConfig(t, "0.0.0.0:"+port, data))
	t.Setenv("LIFELINE_API", "")
	t.Setenv("LIFELINE_TOKEN", "")
	cli := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := run(t.Context(), args, strings.NewReader(""), &o, &e)
		return code, o.String(), e.String()
	}
	code, st, said := cli("status")
	if code != exitOK || !strings.Contains(st, "node ") {
		t.Fatalf("status: %d %s %s", code, st, said)
	}
	id, err := lifeline.LoadIdentity(filepath.Join(data, lifeline.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, got, said := cli("id"); code != exitOK || got != id.Public().String()+"\n" {
		t.Fatalf("id: %d %q %s; want %s", code, got, said, id.Public())
	}
	token, err := os.ReadFile(filepath.Join(data, lifeline.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, got, said := cli("admin-token"); code != exitOK || got != string(token) {
		t.Fatalf("admin-token: %d %q %s; want the data directory's", code, got, said)
	}

	empty := t.TempDir()
	if code, got, said := cli("admin-token", "--data", empty); code != exitError || got != "" || !strings.Contains(said, "no admin token in "+empty) {
		t.Fatalf("admin-token of a directory without one: %d %q %q", code, got, said)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("admin-token left %d files in the data directory", len(entries))
	}
	// A token others may read is refused, as the node refuses it: it may
	// have been seen.
	os.Chmod(filepath.Join(data, lifeline.AdminTokenFile), 0o644)
	if code, got, said := cli("admin-token"); code != exitError || got != "" || !strings.Contains(said, "readable by other users") {
		t.Fatalf("admin-token of a token others may read: %d %q %q", code, got, said)
	}
}
