package lifeline_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
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

// writeSettings writes an overlay by hand, as the page would.
func writeSettings(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, lifeline.SettingsFile)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeHub is a hub's address: a multiaddr with a valid peer id where
// nothing listens.
func fakeHub(t *testing.T) string {
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

// TestSettingsPrecedence: the page's overlay wins over the config file,
// and the command line wins over the overlay; region and preset go to
// every radio; what the overlay does not set stays the file's.
func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	hubFile, hubPage := fakeHub(t), fakeHub(t)
	writeSettings(t, dir, `{"version": 1, "saved": "2026-12-01T10:00:00Z",
		"name": "Camp B, school", "radio_region": "US915", "radio_preset": "ShortFast",
		"hubs": ["`+hubPage+`"], "mesh_key": "", "kit": {"address": "wlan1"}}`)
	s, err := lifeline.LoadSettings(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := lifeline.DefaultConfig()
	file.DataDir = dir
	file.Name = "kit 7"
	file.Hubs = []string{hubFile}
	file.MeshKeyFile = "/etc/lifeline/mesh.key"
	file.Radios = []lifeline.RadioConfig{{Device: "/dev/ttyUSB0", Region: "EU868"}, {Device: "/dev/ttyACM0", Preset: "LongSlow"}}

	got, applied := s.Apply(file)
	if got.Name != "Camp B, school" || !slices.Equal(got.Hubs, []string{hubPage}) || got.MeshKeyFile != "" ||
		got.Kit == nil || got.Kit.Address != "wlan1" {
		t.Fatalf("the overlay over the file: %+v", got)
	}
	for _, r := range got.Radios {
		if r.Region != "US915" || r.Preset != "ShortFast" {
			t.Fatalf("radio %s: %s %s, want the page's US915 ShortFast", r.Device, r.Region, r.Preset)
		}
	}
	if want := []string{"name", "radio_region", "radio_preset", "hubs", "mesh_key", "kit"}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	if file.Radios[0].Region != "EU868" || file.Hubs[0] != hubFile {
		t.Fatal("Apply changed the config it was given")
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}

	// The command line's hubs and region stay.
	file.CommandLine = []string{lifeline.SettingHubs, lifeline.SettingRadioRegion}
	got, applied = s.Apply(file)
	if !slices.Equal(got.Hubs, []string{hubFile}) || got.Radios[0].Region != "EU868" || got.Radios[1].Preset != "ShortFast" {
		t.Fatalf("with hubs and region on the command line: %+v", got)
	}
	if slices.Contains(applied, "hubs") || slices.Contains(applied, "radio_region") {
		t.Fatalf("applied %v: the command line's settings too", applied)
	}

	// No overlay: the file alone.
	none, err := lifeline.LoadSettings(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got, applied := none.Apply(file); len(applied) != 0 || got.Name != "kit 7" {
		t.Fatalf("no overlay: %+v, %v", got, applied)
	}

	// Kit mode off on the page over a kit in the file.
	writeSettings(t, dir, `{"version": 1, "kit": {"off": true}}`)
	s, _ = lifeline.LoadSettings(dir)
	file.Kit = &lifeline.KitConfig{Address: "wlan0"}
	if got, _ := s.Apply(file); got.Kit != nil {
		t.Fatalf("kit off on the page: %+v", got.Kit)
	}
}

// TestSettingsFileRefused: an overlay that cannot be read stops the node
// at start with an error that names the file and says what to do.
func TestSettingsFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		says       string
	}{
		{"not JSON", `{"version": 1, "name": "x"`, 0o600, "remove it"},
		{"unknown setting", `{"version": 1, "nmae": "x"}`, 0o600, "nmae"},
		{"another version", `{"version": 2}`, 0o600, "version 2"},
		{"mesh key outside the data dir", `{"version": 1, "mesh_key": "../../etc/key"}`, 0o600, "mesh_key"},
		{"readable by others", `{"version": 1}`, 0o644, "chmod 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeSettings(t, dir, tc.body)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := lifeline.LoadSettings(dir); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("LoadSettings = %v, want it to name %s and say %q", err, path, tc.says)
			}
			cfg := lifeline.DefaultConfig()
			cfg.DataDir, cfg.APIAddr, cfg.Listen, cfg.MDNS, cfg.NoSync = dir, "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}, false, true
			n, err := lifeline.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Run(ctxT(t)); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("Run = %v, want an error naming %s", err, path)
			}
		})
	}

	// Valid alone, but not with the config: the error says the page's
	// settings are the cause.
	dir := t.TempDir()
	path := writeSettings(t, dir, `{"version": 1, "kit": {"address": "10.42.0.1"}}`)
	cfg := lifeline.DefaultConfig()
	cfg.DataDir, cfg.Role, cfg.NoSync = dir, lifeline.RoleHub, true
	n, err := lifeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(ctxT(t)); err == nil || !strings.Contains(err.Error(), "not a hub") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Run = %v, want the kit refused on a hub, naming %s", err, path)
	}
}

// TestSettingsName: a node's name is one bounded line without the
// invisible characters that make one name look like another.
func TestSettingsName(t *testing.T) {
	for _, ok := range []string{"", "Camp B", "مخيم الشمال", "کمپ ۲", strings.Repeat("é", 32)} {
		c := lifeline.DefaultConfig()
		c.Name = ok
		if err := c.Validate(); err != nil {
			t.Errorf("name %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"Camp\u202eB", "Camp\u2066B", "a\u200fb", "zero\u200dwidth", "two\nlines", " padded", "a\x00b", strings.Repeat("é", 33), "\xff"} {
		c := lifeline.DefaultConfig()
		c.Name = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "name") {
			t.Errorf("name %q: Validate = %v", bad, err)
		}
	}
}

// TestSettingsPage: the operator's settings over the API. Only the
// operator sees or changes them; a change that cannot work is refused and
// leaves the file as it was; a valid one is saved, answered, and the node
// restarts with it in its process: same identity and messages, the new
// name and hubs. The mesh key never leaves the node. A change whose run
// fails at once (kit mode on an address the machine does not have) is
// undone, and the page says why. A key the page made that nothing names
// any more is destroyed, at the next start at the latest.
func TestSettingsPage(t *testing.T) {
	dir := t.TempDir()
	n := startNodeWith(t, dir, nil)
	ctx := ctxT(t)
	// Requests from the kit's Wi-Fi, as a proxy would say it: not the
	// node's own machine.
	remote := &http.Client{Transport: headerTransport{"X-Forwarded-For": "10.42.0.23"}}
	stranger := &api.Client{BaseURL: n.client.BaseURL, HTTP: remote}
	operator := &api.Client{BaseURL: n.client.BaseURL, HTTP: remote, Token: adminToken(t, dir)}
	wrong := &api.Client{BaseURL: n.client.BaseURL, HTTP: remote, Token: strings.Repeat("0", 64)}

	if _, err := stranger.Settings(ctx); statusOf(err) != http.StatusForbidden {
		t.Fatalf("a stranger's GET: %v, want 403", err)
	}
	if _, err := wrong.Settings(ctx); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("a wrong token's GET: %v, want 401", err)
	}
	name := "Camp B, school"
	if _, err := stranger.ChangeSettings(ctx, api.SettingsChange{Name: &name}); statusOf(err) != http.StatusForbidden {
		t.Fatalf("a stranger's PUT: %v, want 403", err)
	}
	v, err := operator.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "" || v.MeshKey.Set || v.RadioRegion != "EU868" || !slices.Contains(v.Choices.Regions, "US915") || !slices.Contains(v.Choices.Presets, "ShortFast") || len(v.FromPage) != 0 {
		t.Fatalf("settings before any change: %+v", v)
	}

	// Refused: nothing written.
	settingsFile := filepath.Join(dir, lifeline.SettingsFile)
	for _, ch := range []api.SettingsChange{
		{Hubs: &[]string{"/ip4/127.0.0.1/tcp/9"}},                // no peer id
		{Name: ptr("Camp\u202eB")},                               // a bidi override
		{RadioRegion: ptr("EU433")},                              // no such region
		{Kit: &api.KitSetting{On: true, Address: "fd00::1"}},     // not IPv4
		{MeshKey: &api.MeshKeyChange{Key: "not a key"}},          // not a key
		{MeshKey: &api.MeshKeyChange{Generate: true, Off: true}}, // two at once
		{Reset: []string{"quota"}},                               // not a page setting
	} {
		if _, err := operator.ChangeSettings(ctx, ch); statusOf(err) != http.StatusBadRequest {
			t.Errorf("%+v: %v, want 400", ch, err)
		}
	}
	if _, err := os.Stat(settingsFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused changes wrote %s: %v", settingsFile, err)
	}

	// A message before the change, to find after it.
	msg, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "before the restart"})
	if err != nil {
		t.Fatal(err)
	}
	hub := fakeHub(t)
	began := time.Now()
	v, err = operator.ChangeSettings(ctx, api.SettingsChange{Name: &name, Hubs: &[]string{hub}, RadioPreset: ptr("ShortFast"),
		MeshKey: &api.MeshKeyChange{Generate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Restarting || v.Name != name || !v.MeshKey.Set || len(v.MeshKey.Fingerprint) != 19 || v.RadioPreset != "ShortFast" {
		t.Fatalf("the answer to the change: %+v", v)
	}
	fingerprint := v.MeshKey.Fingerprint
	var st *api.Status
	waitFor(t, "the node back with its new name", func() bool {
		st, err = operator.Status(ctx)
		return err == nil && st.Name == name
	})
	t.Logf("from the change to the status with the new name: %v", time.Since(began).Round(time.Millisecond))
	if st.ID != n.node.ID().String() || st.Status == nil || st.Status.Uplink.Hubs != 1 || !st.Status.Private {
		t.Fatalf("status after the restart: id %s (was %s), mesh %+v", st.ID, n.node.ID(), st.Status)
	}
	if want := []string{"name", "radio_preset", "hubs", "mesh_key"}; !slices.Equal(st.Settings, want) {
		t.Fatalf("status settings %v, want %v", st.Settings, want)
	}
	if m, err := n.client.Message(ctx, msg); err != nil || m.Text != "before the restart" {
		t.Fatalf("the message from before the restart: %+v, %v", m, err)
	}
	if st, _ := stranger.Status(ctx); st.Name != name || st.Settings != nil {
		t.Fatalf("a stranger's status: name %q, settings %v", st.Name, st.Settings)
	}

	// The key: in the data directory, private, never in an answer.
	keys, _ := filepath.Glob(filepath.Join(dir, "meshkey-*.key"))
	if len(keys) != 1 {
		t.Fatalf("mesh keys in the data directory: %v", keys)
	}
	for _, f := range []string{keys[0], settingsFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v: want mode 0600", f, fi.Mode(), err)
		}
	}
	psk, err := lifeline.LoadMeshKey(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if lifeline.MeshKeyFingerprint(psk) != fingerprint {
		t.Fatal("the fingerprint is not the stored key's")
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	keyHex := strings.Split(strings.TrimSpace(string(mustRead(t, keys[0]))), "\n")[2]
	if bytes.Contains(raw, []byte(keyHex)) || bytes.Contains(raw, []byte(keyHex[:16])) {
		t.Fatal("the mesh key is in the page's answer")
	}
	v, err = operator.Settings(ctx)
	if err != nil || v.Name != name || !slices.Equal(v.Hubs, []string{hub}) || v.MeshKey.Fingerprint != fingerprint {
		t.Fatalf("settings after the restart: %+v, %v", v, err)
	}

	// At most one change every few seconds: each restarts the node.
	before := mustRead(t, settingsFile)
	if _, err := operator.ChangeSettings(ctx, api.SettingsChange{Name: ptr("again")}); statusOf(err) != http.StatusTooManyRequests {
		t.Fatalf("a second change at once: %v, want 429", err)
	}
	if !bytes.Equal(before, mustRead(t, settingsFile)) {
		t.Fatal("a refused change rewrote the settings")
	}

	// Kit mode on an address this machine does not have: the run fails
	// (the kit cannot listen there), and the previous settings are back.
	var changed api.SettingsView
	waitFor(t, "a change accepted a few seconds later", func() bool {
		changed, err = operator.ChangeSettings(ctx, api.SettingsChange{Name: ptr("Camp C"), Kit: &api.KitSetting{On: true, Address: "192.0.2.1"}})
		return err == nil
	})
	if !changed.Kit.On || changed.Name != "Camp C" {
		t.Fatalf("the answer: %+v", changed)
	}
	waitFor(t, "the failed change undone", func() bool {
		v, err = operator.Settings(ctx)
		return err == nil && v.LastError != ""
	})
	if v.Kit.On || v.Name != name || !strings.Contains(v.LastError, "192.0.2.1") {
		t.Fatalf("after the failed change: %+v", v)
	}
	if !bytes.Equal(before, mustRead(t, settingsFile)) {
		t.Fatal("the settings file is not the previous one")
	}
	if st, err := operator.Status(ctx); err != nil || st.Name != name || st.Kit != nil {
		t.Fatalf("status after the failed change: %+v, %v", st, err)
	}

	// Reset: back to the config file's, and the page's key destroyed
	// once the node has run without it for a while (settingsTrial); not
	// waited for here.
	waitFor(t, "a reset accepted", func() bool {
		_, err = operator.ChangeSettings(ctx, api.SettingsChange{Reset: []string{"name", "hubs", "mesh_key", "radio_preset"}})
		return err == nil
	})
	waitFor(t, "the node back without the page's settings", func() bool {
		st, err = operator.Status(ctx)
		return err == nil && st.Name == "" && st.Status != nil && !st.Status.Private
	})
	if len(st.Settings) != 0 || st.ID != n.node.ID().String() {
		t.Fatalf("after the reset: %+v", st)
	}
	if keys, _ := filepath.Glob(filepath.Join(dir, "meshkey-*.key")); len(keys) != 1 {
		t.Fatalf("the page's key destroyed before its trial ended: %v", keys)
	}
	// The next start, with no change on trial, destroys the keys the
	// page made that nothing names.
	if err := n.shutdown(); err != nil {
		t.Fatal(err)
	}
	startNode(t, dir)
	waitFor(t, "the page's unused key destroyed", func() bool {
		keys, _ := filepath.Glob(filepath.Join(dir, "meshkey-*.key"))
		return len(keys) == 0
	})
}

// headerTransport adds headers to every request.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func statusOf(err error) int {
	if e, ok := errors.AsType[*api.Error](err); ok {
		return e.StatusCode
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseSettings: any bytes give settings or an error, never a panic;
// what parses applies to a config and writes back to the same settings.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		`{"version": 1}`,
		`{"version": 1, "saved": "2026-12-01T10:00:00Z", "name": "Camp B", "radio_region": "US915", "radio_preset": "ShortFast",
			"hubs": ["/ip4/1.2.3.4/tcp/7778/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"], "mesh_key": "meshkey-0123456789abcdef.key",
			"kit": {"address": "wlan0", "name": "lifeline.kit"}}`,
		`{"version": 1, "mesh_key": "", "kit": {"off": true}, "hubs": []}`,
		`{"version": 1, "mesh_key": "/etc/passwd"}`,
		`{"version": 2}`,
		`{"version": 1} {}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := lifeline.ParseSettings(b)
		if err != nil {
			return
		}
		c := lifeline.DefaultConfig()
		c.Radios = []lifeline.RadioConfig{{Device: "/dev/ttyUSB0"}}
		got, _ := s.Apply(c)
		if s.MeshKey != nil && *s.MeshKey != "" && filepath.Dir(got.MeshKeyFile) != c.DataDir {
			t.Fatalf("mesh key %q outside the data directory: %s", *s.MeshKey, got.MeshKeyFile)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := lifeline.ParseSettings(out)
		if err != nil {
			t.Fatalf("%s does not parse again: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip: %s then %s", out, out2)
		}
	})
}
