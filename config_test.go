package lifeline_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"lifeline"
)

// TestConfigTOML reads a TOML config by the JSON config's rules: the same
// names, defaults for what is left out, unknown settings and a missing or
// other version refused, with the line for a wrong value.
func TestConfigTOML(t *testing.T) {
	cfg, err := lifeline.ParseConfig("t.toml", []byte(`
# a comment
version = 1
data_dir = "/srv/lifeline"
quota = 1048576
expire_interval = "30s"
peers = []

[[radios]]
device = "/dev/ttyUSB0"
preset = "ShortFast" # trailing comment
repair_every = "2m"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/lifeline" || cfg.Quota != 1<<20 || cfg.ExpireInterval != lifeline.Duration(30*time.Second) ||
		cfg.APIAddr != lifeline.DefaultAPIAddr || !cfg.MDNS || len(cfg.Radios) != 1 ||
		cfg.Radios[0].Device != "/dev/ttyUSB0" || cfg.Radios[0].Preset != "ShortFast" || cfg.Radios[0].RepairEvery != lifeline.Duration(2*time.Minute) {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, c := range []struct{ toml, want string }{
		{`data_dir = "x"`, `"version" is missing`},
		{"version = 1\ndata_dri = \"x\"", `unknown setting "data_dri"`},
		{"version = 1\n[[radios]]\ndevice = \"x\"\nregoin = \"EU868\"", `unknown setting "radios.regoin"`},
		{"version = 1\nexpire_interval = \"5 m\"", "line 2"},
		{"version = 1\nexpire_interval = 60", "line 2"}, // a duration is text: "1m"
		{"version = 1\nquota = \"big\"", "line 2"},
		{"version = 1\nversion = 1", "line 2"}, // TOML refuses a key twice
		{"version = 3", "version 3 is not supported"},
		{`{"version": 1}`, ""}, // JSON under a .toml name is not TOML
	} {
		_, err := lifeline.ParseConfig("t.toml", []byte(c.toml))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.toml") {
			t.Errorf("ParseConfig(%q) = %v, want an error naming t.toml and saying %q", c.toml, err, c.want)
		}
	}

	// A name that is neither .toml nor .json: JSON if it looks like it
	// (configs written before TOML), else TOML.
	for _, c := range []struct{ name, text string }{
		{"node.conf", `{"version": 1, "quota": 1048576}`},
		{"node.conf", "version = 1\nquota = 1048576"},
		{"node", "\n  {\"version\": 1, \"quota\": 1048576}"},
	} {
		if cfg, err := lifeline.ParseConfig(c.name, []byte(c.text)); err != nil || cfg.Quota != 1<<20 {
			t.Errorf("ParseConfig(%s, %q) = %+v, %v", c.name, c.text, cfg.Quota, err)
		}
	}
	if _, err := lifeline.ParseConfig("node.json", []byte("version = 1")); err == nil {
		t.Error("a .json file read as TOML")
	}

	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("version = 1\napi_addr = \"127.0.0.1:0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := lifeline.LoadConfig(path); err != nil || cfg.APIAddr != "127.0.0.1:0" {
		t.Fatalf("LoadConfig: %+v %v", cfg, err)
	}
}

// TestConfigTOMLNamesAreJSONNames keeps the two formats one: every setting
// has the same name in both, so docs and configs carry over.
func TestConfigTOMLNamesAreJSONNames(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[lifeline.Config](), reflect.TypeFor[lifeline.RadioConfig]()} {
		for f := range typ.Fields() {
			j, tm := f.Tag.Get("json"), f.Tag.Get("toml")
			if j == "" || j != tm {
				t.Errorf("%s.%s: json tag %q, toml tag %q: want both, equal", typ.Name(), f.Name, j, tm)
			}
		}
	}
}

// TestPackagedConfig checks the commented config the Debian package installs
// as /etc/lifeline/lifeline.toml: it loads, validates, and holds a kit's
// settings. Every setting is in it, so a technician finds each one there.
func TestPackagedConfig(t *testing.T) {
	const path = "packaging/lifeline.toml"
	cfg, err := lifeline.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s does not validate: %v", path, err)
	}
	if cfg.DataDir != "/var/lib/lifeline" || cfg.APIAddr != "0.0.0.0:80" || cfg.Role != lifeline.RoleField || !cfg.MDNS ||
		cfg.Quota != lifeline.DefaultQuota || len(cfg.Listen) != 2 {
		t.Fatalf("%s read as %+v", path, cfg)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, typ := range []reflect.Type{reflect.TypeFor[lifeline.Config](), reflect.TypeFor[lifeline.RadioConfig]()} {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "-" || typ == reflect.TypeFor[lifeline.RadioConfig]() && !strings.Contains("device driver region preset", name) {
				continue // the radio's fine tuning is for radio experts: README and docs
			}
			// Set, or shown commented out: `name =`, `# name =`, `# [[name]]`.
			shown := regexp.MustCompile(`(?m)^(# )?(` + name + ` =|\[\[` + name + `\]\])`)
			if !shown.MatchString(text) {
				t.Errorf("%s does not show the setting %q", path, name)
			}
		}
	}
}
