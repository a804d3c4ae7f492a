package lifeline

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// The operator's settings page writes what it changes to an overlay in the
// data directory, SettingsFile, not to the config file: the technician's
// file may be read-only for the service (/etc under ProtectSystem=strict)
// and holds their comments. The node's configuration is, in this order of
// precedence: the defaults, the config file, the overlay, the command
// line's flags (Config.CommandLine names the settings they fix, which the
// overlay leaves alone). Node.Run applies the overlay, and applies it
// again when the page changes it (the node restarts in its process).

// SettingsFile, in the data directory, holds the settings made on the
// operator's page. Mode 0600: it names the hubs.
const SettingsFile = "settings.json"

// SettingsVersion is the version of SettingsFile's format.
const SettingsVersion = 1

// The settings the page may change, by the names the API, status and
// Config.CommandLine use.
const (
	SettingName        = "name"
	SettingRadioRegion = "radio_region"
	SettingRadioPreset = "radio_preset"
	SettingHubs        = "hubs"
	SettingMeshKey     = "mesh_key"
	SettingKit         = "kit"
)

// settingNames are all of them, in the order the page shows them.
var settingNames = []string{SettingName, SettingRadioRegion, SettingRadioPreset, SettingHubs, SettingMeshKey, SettingKit}

// Bounds of the page's settings.
const (
	// MaxNodeName is the longest node name, in bytes of UTF-8 (a
	// profile's name's limit).
	MaxNodeName = 64
	maxHubs     = 16
	maxHubLen   = 512
	// maxSettingsFile bounds what LoadSettings reads.
	maxSettingsFile = 64 << 10
	// meshKeyPrefix and meshKeySuffix frame the names of the mesh keys
	// the page puts in the data directory: meshkey-<fingerprint>.key.
	meshKeyPrefix = "meshkey-"
	meshKeySuffix = ".key"
)

// Settings is the overlay: each field set (not nil) replaces the config
// file's setting. The zero value changes nothing.
type Settings struct {
	Version int `json:"version"`
	// Saved is when the page last changed them.
	Saved time.Time `json:"saved"`
	Name  *string   `json:"name,omitempty"`
	// RadioRegion and RadioPreset apply to every radio.
	RadioRegion *string   `json:"radio_region,omitempty"`
	RadioPreset *string   `json:"radio_preset,omitempty"`
	Hubs        *[]string `json:"hubs,omitempty"`
	// MeshKey is the name of a key file in the data directory, or "" for
	// an open mesh.
	MeshKey *string `json:"mesh_key,omitempty"`
	// Kit is kit mode: nil to leave the config file's, Off to turn it off.
	Kit *KitSetting `json:"kit,omitempty"`
}

// KitSetting is kit mode as the page sets it.
type KitSetting struct {
	Off     bool   `json:"off,omitempty"`
	Address string `json:"address,omitempty"`
	Name    string `json:"name,omitempty"`
}

// LoadSettings reads the overlay in dataDir; none is the zero Settings. A
// file that cannot be read is an error that says how to get the node
// running again, for the technician who meets it at start.
func LoadSettings(dataDir string) (Settings, error) {
	path := filepath.Join(dataDir, SettingsFile)
	b, err := readSecretFile("settings", path, maxSettingsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, err
	}
	s, err := ParseSettings(b)
	if err != nil {
		return Settings{}, fmt.Errorf("settings %s (written by the operator's page): %w; correct it, or remove it to run with the config file alone (the page's settings are then lost)", path, err)
	}
	return s, nil
}

// ParseSettings decodes an overlay (LoadSettings reads the file) strictly:
// an unknown field or another version is refused, not half-understood.
func ParseSettings(b []byte) (Settings, error) {
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Settings{}, errors.New("trailing data after the JSON object")
	}
	if s.Version != SettingsVersion {
		return Settings{}, fmt.Errorf("version %d: this lifeline reads version %d", s.Version, SettingsVersion)
	}
	if s.MeshKey != nil && *s.MeshKey != "" && !isPageMeshKey(*s.MeshKey) {
		return Settings{}, fmt.Errorf("mesh_key %q: want the name of a %s*%s file in the data directory, or \"\"", *s.MeshKey, meshKeyPrefix, meshKeySuffix)
	}
	return s, nil
}

// isPageMeshKey reports whether name is a mesh key file the page made.
func isPageMeshKey(name string) bool {
	fp, ok := strings.CutPrefix(name, meshKeyPrefix)
	if !ok {
		return false
	}
	fp, ok = strings.CutSuffix(fp, meshKeySuffix)
	if _, err := hex.DecodeString(fp); !ok || err != nil || len(fp) != 16 {
		return false
	}
	return true
}

// saveSettings writes s to dataDir's SettingsFile, mode 0600, replacing
// it whole: a power cut leaves the old file or the new one.
func saveSettings(dataDir string, s Settings) error {
	s.Version = SettingsVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, SettingsFile)
	if err := replaceFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save settings %s: %w", path, err)
	}
	return nil
}

// Apply returns c with the overlay's settings, except those c.CommandLine
// names, and the names of the settings it applied. c's slices are not
// changed.
func (s Settings) Apply(c Config) (Config, []string) {
	var applied []string
	set := func(name string, present bool, f func()) {
		if present && !slices.Contains(c.CommandLine, name) {
			f()
			applied = append(applied, name)
		}
	}
	set(SettingName, s.Name != nil, func() { c.Name = *s.Name })
	set(SettingRadioRegion, s.RadioRegion != nil, func() {
		c.Radios = slices.Clone(c.Radios)
		for i := range c.Radios {
			c.Radios[i].Region = *s.RadioRegion
		}
	})
	set(SettingRadioPreset, s.RadioPreset != nil, func() {
		c.Radios = slices.Clone(c.Radios)
		for i := range c.Radios {
			c.Radios[i].Preset = *s.RadioPreset
		}
	})
	set(SettingHubs, s.Hubs != nil, func() { c.Hubs = slices.Clone(*s.Hubs) })
	set(SettingMeshKey, s.MeshKey != nil, func() {
		c.MeshKeyFile = ""
		if *s.MeshKey != "" {
			c.MeshKeyFile = filepath.Join(c.DataDir, *s.MeshKey)
		}
	})
	set(SettingKit, s.Kit != nil, func() {
		c.Kit = nil
		if !s.Kit.Off {
			c.Kit = &KitConfig{Address: s.Kit.Address, Name: s.Kit.Name}
		}
	})
	return c, applied
}

// checkNodeName reports what is wrong with a node's name: people read it
// to know which kit they are on, so it is one line, bounded, and without
// the invisible characters that could make one name look like another.
func checkNodeName(name string) error {
	switch {
	case name == "":
		return nil
	case len(name) > MaxNodeName:
		return fmt.Errorf("config: name is %d bytes: at most %d", len(name), MaxNodeName)
	case !utf8.ValidString(name):
		return errors.New("config: name is not UTF-8")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("config: name %q has spaces around it", name)
	}
	for _, r := range name {
		// Cc: control characters; Cf: format characters, among them the
		// bidi overrides and isolates, and zero-width joiners.
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("config: name %q holds the invisible or control character %U", name, r)
		}
	}
	return nil
}

// MeshKeyFingerprint identifies a mesh key without revealing it: 16 hex
// digits of a domain-separated SHA-256, in groups of four. Operators
// compare it between kits.
func MeshKeyFingerprint(psk []byte) string {
	h := sha256.Sum256(append([]byte("lifeline/meshkey-fingerprint/v1\x00"), psk...))
	x := hex.EncodeToString(h[:8])
	return x[0:4] + " " + x[4:8] + " " + x[8:12] + " " + x[12:16]
}

// pageMeshKeyName is the file name of a mesh key the page stores.
func pageMeshKeyName(psk []byte) string {
	return meshKeyPrefix + strings.ReplaceAll(MeshKeyFingerprint(psk), " ", "") + meshKeySuffix
}

// decodeMeshKeyText reads a key in the swarm.key text form.
func decodeMeshKeyText(text string) ([]byte, error) {
	if len(text) > maxMeshKeyFile {
		return nil, fmt.Errorf("the mesh key is over %d bytes: paste the file `lifeline meshkey` writes", maxMeshKeyFile)
	}
	psk, err := pnet.DecodeV1PSK(strings.NewReader(strings.TrimSpace(text) + "\n"))
	if err != nil {
		return nil, fmt.Errorf("not a mesh key (paste the three lines of the file `lifeline meshkey` writes, starting /key/swarm/psk/1.0.0/): %w", err)
	}
	return psk, nil
}

// newMeshKey returns 32 random bytes.
func newMeshKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("mesh key: %w", err)
	}
	return k, nil
}

// writePageMeshKey stores psk in dataDir under its page name (mode 0600)
// and returns that name and whether the file is new. A file of that name
// holding the same key is kept.
func writePageMeshKey(dataDir string, psk []byte) (string, bool, error) {
	name := pageMeshKeyName(psk)
	path := filepath.Join(dataDir, name)
	err := writeSecretFile("mesh key", path, fmt.Appendf(nil, "/key/swarm/psk/1.0.0/\n/base16/\n%x\n", psk))
	if errors.Is(err, fs.ErrExist) {
		have, lerr := LoadMeshKey(path)
		if lerr != nil || !bytes.Equal(have, psk) {
			return "", false, fmt.Errorf("mesh key %s exists and holds another key: %w", path, errors.Join(err, lerr))
		}
		return name, false, nil
	}
	return name, err == nil, err
}

// removeStalePageMeshKeys destroys the mesh keys the page made that are
// no longer in use (keep, a file name, is).
func removeStalePageMeshKeys(dataDir, keep string) error {
	names, err := filepath.Glob(filepath.Join(dataDir, meshKeyPrefix+"*"+meshKeySuffix))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range names {
		if b := filepath.Base(p); b != keep && isPageMeshKey(b) {
			errs = append(errs, destroySecretFile(p))
		}
	}
	return errors.Join(errs...)
}
