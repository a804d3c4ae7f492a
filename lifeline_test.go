package lifeline_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// started is a running node and the means to stop it.
type started struct {
	node   *lifeline.Node
	client *api.Client
	stop   context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, dir string) *started {
	t.Helper()
	return startNodeWith(t, dir, nil)
}

// startNodeWith starts a node on loopback after edit has changed its
// config.
func startNodeWith(t testing.TB, dir string, edit func(*lifeline.Config)) *started {
	t.Helper()
	cfg := lifeline.DefaultConfig()
	cfg.DataDir = dir
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Listen, cfg.MDNS = []string{"/ip4/127.0.0.1/tcp/0"}, false // loopback only
	cfg.NoSync = true
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if edit != nil {
		edit(&cfg)
	}
	n, err := lifeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{node: n, stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-s.done:
		cancel()
		t.Fatalf("node did not start: %v", err)
	case <-time.After(stretch(20 * time.Second)):
		cancel()
		t.Fatalf("node not ready within %s", stretch(20*time.Second))
	}
	s.client = &api.Client{BaseURL: "http://" + n.APIAddr()}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
	})
	return s
}

// shutdown stops the node and returns what Run returned. It may be called
// more than once.
func (s *started) shutdown() error {
	s.stop()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(stretch(20 * time.Second)):
		return fmt.Errorf("Run did not return within %s of cancel", stretch(20*time.Second))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(stretch(10 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), stretch(20*time.Second))
	t.Cleanup(cancel)
	return ctx
}

// stretch is d, or d times LIFELINE_TEST_SLOWDOWN where the tests run
// slower than on the machine their waits were written for: make test-arm
// sets it, as everything runs emulated there (qemu-user), several times
// slower. Only waits and timing slack stretch, never what is asserted.
func stretch(d time.Duration) time.Duration {
	if f, err := strconv.Atoi(os.Getenv("LIFELINE_TEST_SLOWDOWN")); err == nil && f > 1 {
		return d * time.Duration(f)
	}
	return d
}

// Two nodes in one process: a direct message from A reaches B (carried by
// hand, as there is no mesh yet), B acknowledges it on its own, since B
// wrote to A before, and the receipt carried back marks it delivered on A.
func TestDirectMessageIsDelivered(t *testing.T) {
	a := startNode(t, t.TempDir())
	b := startNode(t, t.TempDir())
	ctx := ctxT(t)
	aKey, bKey := a.node.ID().String(), b.node.ID().String()
	if aKey == bKey || aKey == (message.PublicKey{}).String() {
		t.Fatalf("node keys %s %s", aKey, bKey)
	}
	// B acknowledges only its correspondents (receipts.go).
	if _, err := b.client.Send(ctx, api.SendRequest{To: aKey, Text: "where are you?"}); err != nil {
		t.Fatal(err)
	}

	id, err := a.client.Send(ctx, api.SendRequest{To: bKey, Text: "are you safe?"})
	if err != nil {
		t.Fatal(err)
	}
	carry(t, a.client, b.client, id)

	got, err := b.client.List(ctx, api.ListQuery{To: bKey})
	if err != nil || len(got) != 1 || got[0].Text != "are you safe?" || got[0].Author != aKey {
		t.Fatalf("B reads %+v, %v", got, err)
	}
	mine, err := a.client.List(ctx, api.ListQuery{To: bKey})
	if err != nil || len(mine) != 1 || mine[0].Text != "" || mine[0].Status != api.StatusStored {
		t.Fatalf("A sees %+v, %v", mine, err)
	}

	// B's receipt, addressed to A, appears in B's store by itself.
	var receipt string
	waitFor(t, "B's receipt", func() bool {
		rs, err := b.client.List(ctx, api.ListQuery{To: aKey})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Kind == "receipt" && r.Author == bKey && len(r.Acks) == 1 && r.Acks[0] == id {
				receipt = r.ID
				return true
			}
		}
		return false
	})
	carry(t, b.client, a.client, receipt)
	mine, err = a.client.List(ctx, api.ListQuery{To: bKey})
	if err != nil || len(mine) != 1 || mine[0].Status != api.StatusDelivered {
		t.Fatalf("after the receipt A sees %+v, %v", mine, err)
	}
	// Receipts are not acknowledged in turn.
	if rs, _ := a.client.List(ctx, api.ListQuery{To: bKey}); len(rs) != 1 {
		t.Fatalf("A answered the receipt: %+v", rs)
	}
}

// carry moves one envelope from one node to another.
func carry(t *testing.T, from, to *api.Client, id string) {
	t.Helper()
	raw, err := from.Envelope(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, isNew, err := to.PostEnvelope(ctxT(t), raw); err != nil || !isNew {
		t.Fatalf("carry %s: new=%v %v", id, isNew, err)
	}
}

// A direct message stored while no node ran (here written to the store
// directly; in life, a crash between storing and acknowledging) is
// acknowledged when the node starts, once. Its author is a correspondent:
// the node wrote to them before.
func TestReceiptCatchUp(t *testing.T) {
	dir := t.TempDir()
	me, _, err := lifeline.LoadOrCreateIdentity(filepath.Join(dir, lifeline.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := message.NewIdentity(rand.Reader)
	st, err := store.Open(filepath.Join(dir, lifeline.StoreFile), store.Options{Own: me.Public(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	wrote, err := me.NewDirect(rand.Reader, alice.Public(), "write when you can", message.PriorityNormal, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutOwn(ctxT(t), wrote.Raw()); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, text := range []string{"first", "second"} {
		e, err := alice.NewDirect(rand.Reader, me.Public(), text, message.PriorityNormal, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctxT(t), e.Raw()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID().String())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	receipts := func(s *started) []api.Message {
		ms, err := s.client.List(ctxT(t), api.ListQuery{To: alice.Public().String()})
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(ms, func(m api.Message) bool { return m.ID == wrote.ID().String() })
	}
	s := startNode(t, dir)
	waitFor(t, "the catch-up receipt", func() bool { return len(receipts(s)) > 0 })
	rs := receipts(s)
	if len(rs) != 1 || rs[0].Kind != "receipt" || len(rs[0].Acks) != 2 || !slices.Contains(rs[0].Acks, ids[0]) || !slices.Contains(rs[0].Acks, ids[1]) {
		t.Fatalf("receipts = %+v", rs)
	}
	// A restart finds them acknowledged and sends nothing more. The scan
	// runs before Ready, so nothing new can appear after it.
	if err := s.shutdown(); err != nil {
		t.Fatal(err)
	}
	s = startNode(t, dir)
	if rs := receipts(s); len(rs) != 1 {
		t.Fatalf("after restart, receipts = %+v", rs)
	}
}

func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, dir)
	cfg := lifeline.DefaultConfig()
	cfg.DataDir, cfg.APIAddr = dir, "127.0.0.1:0"
	cfg.Listen, cfg.MDNS = []string{"/ip4/127.0.0.1/tcp/0"}, false
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := lifeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "data directory "+dir+" is in use by another lifeline process") {
		t.Fatalf("second node on the same directory: %v", err)
	}
	// The first is unharmed.
	if _, err := a.client.Status(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := a.shutdown(); err != nil {
		t.Fatalf("first node: %v", err)
	}
	// Once it is gone the directory can be used again, same identity.
	b := startNode(t, dir)
	if b.node.ID() != a.node.ID() {
		t.Fatal("identity changed across restarts")
	}
}

// A node whose API address is taken fails to start with an error naming the
// address, and releases what it had already opened: the mesh, which
// listens as soon as it is created, must not keep its port.
func TestAPIAddrInUseReleasesMesh(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A fixed mesh port, so the test can tell whether it is free again: pick
	// a free one and let it go. (Another process could take it in between;
	// on a test machine that is rare enough.)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	meshAddr := free.Addr().String()
	if err := free.Close(); err != nil {
		t.Fatal(err)
	}
	_, meshPort, _ := net.SplitHostPort(meshAddr)

	cfg := lifeline.DefaultConfig()
	cfg.DataDir, cfg.APIAddr, cfg.NoSync = t.TempDir(), taken.Addr().String(), true
	cfg.Listen, cfg.MDNS = []string{"/ip4/127.0.0.1/tcp/" + meshPort}, false // loopback only
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := lifeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Run(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "API address "+cfg.APIAddr) {
		t.Fatalf("Run on a taken API address: %v", err)
	}
	select {
	case <-n.Ready():
		t.Fatal("Ready closed although Run failed")
	default:
	}
	// Run has returned, so the mesh host must be closed already: its port
	// binds at once, no waiting.
	ln, err := net.Listen("tcp", meshAddr)
	if err != nil {
		t.Fatalf("mesh port still held after Run failed: %v", err)
	}
	ln.Close()
}

func TestShutdownEndsStreams(t *testing.T) {
	s := startNode(t, t.TempDir())
	req, err := http.NewRequestWithContext(ctxT(t), "GET", "http://"+s.node.APIAddr()+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := s.shutdown(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	// The stream ends (EOF), not hangs.
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if err := s.node.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestIdentityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), lifeline.IdentityFile)
	id, created, err := lifeline.LoadOrCreateIdentity(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	again, created, err := lifeline.LoadOrCreateIdentity(path)
	if err != nil || created || again.Public() != id.Public() {
		t.Fatalf("reload: %v %v", created, err)
	}
	if err := lifeline.WriteIdentity(path, again); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lifeline.LoadOrCreateIdentity(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v", err)
	}
	if err := os.WriteFile(path+".bad", []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lifeline.LoadIdentity(path + ".bad"); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Fatalf("garbage key: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if err := lifeline.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*lifeline.Config)
		says string
	}{
		{"no version", func(c *lifeline.Config) { c.Version = 0 }, "version"},
		{"future version", func(c *lifeline.Config) { c.Version = 2 }, "version 2"},
		{"no data dir", func(c *lifeline.Config) { c.DataDir = "" }, "data_dir"},
		{"bad addr", func(c *lifeline.Config) { c.APIAddr = "7777" }, "host:port"},
		{"bad port", func(c *lifeline.Config) { c.APIAddr = "127.0.0.1:http" }, "port"},
		{"no host", func(c *lifeline.Config) { c.APIAddr = ":7777" }, "0.0.0.0:7777"},
		{"tiny quota", func(c *lifeline.Config) { c.Quota = 10 }, "quota"},
		{"db smaller than quota", func(c *lifeline.Config) { c.MaxDBSize = c.Quota }, "twice"},
		{"expire too often", func(c *lifeline.Config) { c.ExpireInterval = lifeline.Duration(time.Millisecond) }, "expire_interval"},
		{"kit without address", func(c *lifeline.Config) { c.Kit = &lifeline.KitConfig{} }, "wlan0"},
		{"kit on IPv6", func(c *lifeline.Config) { c.Kit = &lifeline.KitConfig{Address: "fd00::1"} }, "IPv4"},
		{"kit named .local", func(c *lifeline.Config) { c.Kit = &lifeline.KitConfig{Address: "wlan0", Name: "lifeline.local"} }, "multicast DNS"},
		{"kit's port taken by the API on another address", func(c *lifeline.Config) {
			c.APIAddr = "10.0.0.9:80"
			c.Kit = &lifeline.KitConfig{Address: "wlan0"}
		}, "another address"},
		{"kit on a hub", func(c *lifeline.Config) {
			c.Role = lifeline.RoleHub
			c.Kit = &lifeline.KitConfig{Address: "10.42.0.1"}
		}, "not a hub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := lifeline.DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Validate = %v, want it to mention %q", err, tc.says)
			}
			if _, err := lifeline.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}

	kit := lifeline.DefaultConfig()
	kit.Kit = &lifeline.KitConfig{Address: "wlan0"}
	if err := kit.Validate(); err != nil {
		t.Fatalf("a kit on wlan0: %v", err)
	}
	cfg, err := lifeline.ParseConfig("t.json", []byte(`{"version":1,"data_dir":"/srv/lifeline","quota":1048576,"expire_interval":"30s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/lifeline" || cfg.Quota != 1<<20 || cfg.ExpireInterval != lifeline.Duration(30*time.Second) || cfg.APIAddr != lifeline.DefaultAPIAddr {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, bad := range []string{
		`{"data_dir":"x"}`,                      // no version
		`{"version":1,"data_dri":"x"}`,          // typo
		`{"version":1,"expire_interval":"5 m"}`, // bad duration
		`{"version":1} {}`,                      // trailing
		`{"version":3}`,                         // unsupported
	} {
		if _, err := lifeline.ParseConfig("t.json", []byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s) accepted", bad)
		}
	}
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"api_addr":"127.0.0.1:0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := lifeline.LoadConfig(path); err != nil || cfg.APIAddr != "127.0.0.1:0" {
		t.Fatalf("LoadConfig: %+v %v", cfg, err)
	}
}
