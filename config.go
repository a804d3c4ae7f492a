package lifeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"lifeline/message"
)

// ConfigVersion is the version of the configuration format this code
// reads and writes. A file of another version is refused with a clear
// error rather than half-understood; when the format changes, a migration
// from the previous version goes next to LoadConfig.
const ConfigVersion = 1

// Defaults for the settings people usually leave alone.
const (
	DefaultDataDir = "data"
	DefaultAPIAddr = "127.0.0.1:7777"
	DefaultQuota   = 256 << 20 // bytes of messages kept; a small SD card's share
	// DefaultHubQuota is what `lifeline run --role hub` keeps unless told:
	// a hub carries messages for many islands, for as long as they live.
	DefaultHubQuota       = 8 << 30
	DefaultExpireInterval = time.Minute
	// DefaultMeshPort is where the mesh listens (TCP and QUIC) unless told
	// otherwise, so peers can be written down as static addresses.
	DefaultMeshPort          = 7778
	DefaultReconcileInterval = time.Minute
	DefaultProbeInterval     = 30 * time.Second
	DefaultHubWindow         = 30 * 24 * time.Hour // message.DefaultTTL: older messages have mostly expired
	minQuota                 = 64 << 10
)

// Roles.
const (
	// RoleField is a node in the area: it meshes over Wi-Fi (mDNS) and
	// radio, and reaches the internet through hubs when it can.
	RoleField = "field"
	// RoleHub is a node on a public server: no radio and no local
	// discovery, it accepts field nodes, relays for those behind NAT, and
	// reconciles with the other hubs given as peers.
	RoleHub = "hub"
)

// Config is a node's configuration. A config file (TOML or JSON, with the
// same names: each field's toml tag equals its json tag) carries the
// persistent settings; the fields tagged "-" are wiring for programs and
// tests.
type Config struct {
	// Version must be ConfigVersion.
	Version int `json:"version" toml:"version"`
	// DataDir holds identity.pem (the node's key, mode 0600) and
	// lifeline.db (the store). Created with mode 0700 when missing.
	DataDir string `json:"data_dir" toml:"data_dir"`
	// APIAddr is where the HTTP API listens, host:port. Port 0 picks a free
	// port; Node.APIAddr tells which once the node is ready.
	APIAddr string `json:"api_addr" toml:"api_addr"`
	// Quota is how many bytes of messages the store keeps before it evicts
	// the least important.
	Quota int64 `json:"quota" toml:"quota"`
	// MaxDBSize caps the database file in bytes; 0 means no cap. On 32-bit
	// ARM keep it under about 1 GB, and keep Quota under half of it (the
	// file takes roughly twice the bytes of the messages).
	MaxDBSize int64 `json:"max_db_size" toml:"max_db_size"`
	// ExpireInterval is how often expired messages are removed.
	ExpireInterval Duration `json:"expire_interval" toml:"expire_interval"`
	// Retention, if set, is the longest this node keeps a message (by its
	// created time), even one that has not expired; 0 keeps messages until
	// they expire or the quota needs the room.
	Retention Duration `json:"retention" toml:"retention"`
	// APIHosts are host names the API answers to besides IP addresses and
	// localhost (e.g. "lifeline.local" on a kit with local DNS). Any other
	// Host is refused, which stops DNS-rebinding pages from using the API.
	APIHosts []string `json:"api_hosts" toml:"api_hosts"`

	// Listen are the mesh's multiaddrs (libp2p), e.g.
	// /ip4/0.0.0.0/tcp/7778. A field node meshes over every interface.
	Listen []string `json:"listen" toml:"listen"`
	// Peers are static peers, multiaddrs ending in /p2p/<peer id>, kept
	// connected and redialled with backoff.
	Peers []string `json:"peers" toml:"peers"`
	// MDNS finds peers on the local network.
	MDNS bool `json:"mdns" toml:"mdns"`
	// MeshKeyFile, when set, makes the mesh private: only nodes with the
	// same key (a libp2p swarm.key file, see `lifeline meshkey`) connect.
	// Private meshes run over TCP only.
	MeshKeyFile string `json:"mesh_key_file" toml:"mesh_key_file"`
	// ReconcileInterval is how often the node reconciles with each peer,
	// besides whenever it connects.
	ReconcileInterval Duration `json:"reconcile_interval" toml:"reconcile_interval"`
	// Role is RoleField (the default) or RoleHub.
	Role string `json:"role" toml:"role"`
	// Hubs are internet hubs to reach whenever this node has a path to
	// them (multiaddrs ending in /p2p/<peer id>). The uplink monitor
	// probes them every ProbeInterval, and its changes become signed
	// reports (the shutdown record).
	Hubs          []string `json:"hubs" toml:"hubs"`
	ProbeInterval Duration `json:"probe_interval" toml:"probe_interval"`
	// HubWindow is how far back reconciliation with a hub reaches, by
	// created time (0: everything). A hub may hold the world's messages;
	// a field node wants what is current.
	HubWindow Duration `json:"hub_window" toml:"hub_window"`
	// Radios are the LoRa boards attached by serial port.
	Radios []RadioConfig `json:"radios" toml:"radios"`
	// GPS is the serial device of a GPS receiver (NMEA at 9600 baud), if
	// the kit has one: the node's clock then follows it (package gps).
	GPS string `json:"gps" toml:"gps"`
	// DefaultChannel is the channel a first-time visitor of the phone
	// app lands in; "general" if empty.
	DefaultChannel string `json:"default_channel" toml:"default_channel"`
	// Members are the public keys (hex, as `lifeline id` and the app's
	// settings show them) of people and nodes the operator vouches for.
	// Their messages, this node's, and those of the nodes named in Peers
	// and Hubs are kept ahead of strangers' when the store is full,
	// whatever priority a stranger claims (docs/SECURITY.md).
	Members []string `json:"members" toml:"members"`

	// Name is the node's name, shown to the people on the kit (status and
	// the app) so they know which kit they are on: at most MaxNodeName
	// bytes, one line, no invisible characters. Optional.
	Name string `json:"name,omitempty" toml:"name,omitempty"`

	// Kit, when set, makes the node a kit (docs/KIT.md): phones that join
	// its Wi-Fi find the app by themselves. The app and the API listen on
	// the kit's address at port 80 (besides APIAddr), a DNS on its port 53
	// answers every name with that address, and the phones' connectivity
	// checks are answered so that joining the Wi-Fi opens the app.
	Kit *KitConfig `json:"kit,omitempty" toml:"kit,omitempty"`

	// Logger receives the node's logs; slog.Default() if nil.
	Logger *slog.Logger `json:"-" toml:"-"`
	// Now is the system clock; time.Now if nil. Tests move it. The
	// node's clock (package clock) builds on it.
	Now func() time.Time `json:"-" toml:"-"`
	// ClockSynced reports whether Now is synchronised (NTP); nil: the
	// kernel's word (adjtimex) when Now is the real clock, never for an
	// injected one. A hub's clock is always trusted.
	ClockSynced func() bool `json:"-" toml:"-"`
	// NoSync skips fsync in the store: for tests only, a crash loses data.
	NoSync bool `json:"-" toml:"-"`
	// CommandLine names the settings given on the command line (Setting*
	// names): the operator's page (Settings) does not override them.
	CommandLine []string `json:"-" toml:"-"`
}

// KitConfig is the kit mode's setting, one line: "kit": {"address": "wlan0"}.
type KitConfig struct {
	// Address is the Wi-Fi interface's name (e.g. "wlan0"; its IPv4
	// address is read once it has one), or that IPv4 address.
	Address string `json:"address" toml:"address"`
	// Name is the app's host name, which the kit's DNS answers and the API
	// accepts: kit.DefaultName ("lifeline.kit") if empty. Keep the default
	// on every kit: phones keep a person's key per name.
	Name string `json:"name,omitempty" toml:"name,omitempty"`
}

// DefaultConfig returns the configuration `make run` uses.
func DefaultConfig() Config {
	return Config{
		Version:        ConfigVersion,
		DataDir:        DefaultDataDir,
		APIAddr:        DefaultAPIAddr,
		Quota:          DefaultQuota,
		ExpireInterval: Duration(DefaultExpireInterval),
		Listen: []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultMeshPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultMeshPort),
		},
		MDNS:              true,
		ReconcileInterval: Duration(DefaultReconcileInterval),
		Role:              RoleField,
		ProbeInterval:     Duration(DefaultProbeInterval),
		HubWindow:         Duration(DefaultHubWindow),
	}
}

// Validate reports the first setting that cannot work, in words meant for
// the person who wrote the config.
func (c Config) Validate() error {
	switch {
	case c.Version == 0:
		return fmt.Errorf("config: \"version\" is missing: this lifeline reads version %d", ConfigVersion)
	case c.Version != ConfigVersion:
		return fmt.Errorf("config: version %d is not supported: this lifeline reads version %d", c.Version, ConfigVersion)
	case c.DataDir == "":
		return errors.New("config: data_dir is empty")
	case c.Quota < minQuota:
		return fmt.Errorf("config: quota is %d bytes: at least %d are needed", c.Quota, minQuota)
	case c.MaxDBSize < 0:
		return fmt.Errorf("config: max_db_size is %d: want 0 (no cap) or a size in bytes", c.MaxDBSize)
	case c.MaxDBSize > 0 && c.MaxDBSize < 2*c.Quota:
		return fmt.Errorf("config: max_db_size (%d) must be at least twice the quota (%d): the file takes about twice the bytes of the messages", c.MaxDBSize, c.Quota)
	case c.Retention < 0:
		return fmt.Errorf("config: retention is %s: want 0 (until messages expire) or a duration", time.Duration(c.Retention))
	case c.ExpireInterval < Duration(time.Second):
		return fmt.Errorf("config: expire_interval is %s: at least 1s", time.Duration(c.ExpireInterval))
	case c.ReconcileInterval < Duration(time.Second):
		return fmt.Errorf("config: reconcile_interval is %s: at least 1s", time.Duration(c.ReconcileInterval))
	case len(c.Listen) == 0:
		return fmt.Errorf("config: listen is empty: the mesh needs an address, e.g. /ip4/0.0.0.0/tcp/%d", DefaultMeshPort)
	case c.Role != RoleField && c.Role != RoleHub:
		return fmt.Errorf("config: role %q: want %q or %q", c.Role, RoleField, RoleHub)
	case c.HubWindow < 0:
		return fmt.Errorf("config: hub_window is %s: want 0 (everything) or a duration", time.Duration(c.HubWindow))
	case len(c.Hubs) > 0 && c.ProbeInterval < Duration(100*time.Millisecond):
		return fmt.Errorf("config: probe_interval is %s: at least 100ms", time.Duration(c.ProbeInterval))
	}
	for _, rc := range c.Radios {
		if _, _, _, err := rc.resolve(); err != nil {
			return err
		}
	}
	if c.DefaultChannel != "" {
		if _, err := message.NormaliseChannelName(c.DefaultChannel); err != nil {
			return fmt.Errorf("config: default_channel %q: %w", c.DefaultChannel, err)
		}
	}
	for _, k := range c.Members {
		if _, err := message.ParsePublicKey(k); err != nil {
			return fmt.Errorf("config: member %q: want a public key of 64 hex digits, as `lifeline id` shows: %w", k, err)
		}
	}
	for _, h := range c.Hubs {
		if _, err := peer.AddrInfoFromString(h); err != nil {
			return fmt.Errorf("config: hub %q: want a multiaddr ending in /p2p/<peer id>, as the hub's `lifeline status` shows under addrs: %w", h, err)
		}
	}
	for _, a := range c.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return fmt.Errorf("config: listen address %q is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/%d): %w", a, DefaultMeshPort, err)
		}
	}
	for _, p := range c.Peers {
		if _, err := peer.AddrInfoFromString(p); err != nil {
			return fmt.Errorf("config: peer %q: want a multiaddr ending in /p2p/<peer id>, as `lifeline status` shows under addrs: %w", p, err)
		}
	}
	if err := c.Kit.validate(c); err != nil {
		return err
	}
	if err := checkNodeName(c.Name); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(c.APIAddr)
	if err != nil {
		return fmt.Errorf("config: api_addr %q: want host:port, e.g. %s: %w", c.APIAddr, DefaultAPIAddr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("config: api_addr %q: port %q is not a number from 0 to 65535", c.APIAddr, port)
	} else if host == "" && p != 0 {
		// An empty host listens on every interface. That is what a field
		// node serving phones over Wi-Fi wants, but it should be a choice
		// written down, so require "0.0.0.0" or "[::]" explicitly.
		return fmt.Errorf("config: api_addr %q has no host: write 0.0.0.0:%s to serve every interface, or 127.0.0.1:%s for this machine only", c.APIAddr, port, port)
	}
	return nil
}

// maxConfigFile bounds what LoadConfig reads: a config is a few lines.
const maxConfigFile = 1 << 20

// LoadConfig reads a config file on top of DefaultConfig: TOML (the
// commented file the Debian package installs) or JSON, as ParseConfig
// tells them apart. Settings the file leaves out keep their defaults;
// unknown settings and a missing or unsupported "version" are errors, so a
// typo is not silently ignored. The other settings are not validated yet:
// see Config.Validate, which New runs.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > maxConfigFile {
		return Config{}, fmt.Errorf("config %s: over %d bytes; is it the right file?", path, maxConfigFile)
	}
	return ParseConfig(path, b)
}

// ParseConfig is LoadConfig for bytes already read; name is used in errors
// and tells the format: a name ending in .toml is TOML, one ending in .json
// is JSON, and any other is JSON when it starts with '{' (the only format
// before TOML, under whatever name people gave it), else TOML.
func ParseConfig(name string, b []byte) (Config, error) {
	cfg := DefaultConfig()
	cfg.Version = 0 // the file must say which version it is
	var err error
	if isTOML(name, b) {
		err = decodeTOML(b, &cfg)
	} else {
		err = decodeJSON(b, &cfg)
	}
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", name, err)
	}
	// Only the version is checked here: it decides how the rest is read.
	// The other settings are validated by New, after command-line flags
	// have had their say (a flag may fix what the file got wrong).
	switch {
	case cfg.Version == 0:
		return Config{}, fmt.Errorf("config %s: \"version\" is missing: this lifeline reads version %d", name, ConfigVersion)
	case cfg.Version != ConfigVersion:
		return Config{}, fmt.Errorf("config %s: version %d is not supported: this lifeline reads version %d", name, cfg.Version, ConfigVersion)
	}
	return cfg, nil
}

func isTOML(name string, b []byte) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".toml":
		return true
	case ".json":
		return false
	}
	return !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n\ufeff"), []byte("{"))
}

func decodeJSON(b []byte, cfg *Config) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// decodeTOML reads TOML with JSON's rules: a key that no setting takes is
// refused (BurntSushi/toml would skip it silently; MetaData.Undecoded
// lists what it skipped), so a mistyped setting is not a silent default.
func decodeTOML(b []byte, cfg *Config) error {
	md, err := toml.Decode(string(b), cfg)
	if err != nil {
		// The library's ParseError says the line and column; its
		// ErrorWithPosition would repeat the file's text, which is long.
		return err
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		var names []string
		for _, k := range keys {
			// An unknown table's keys are unknown too: name the table.
			if len(k) > 1 && slices.ContainsFunc(keys, func(p toml.Key) bool { return slices.Equal(p, k[:len(k)-1]) }) {
				continue
			}
			names = append(names, fmt.Sprintf("%q", k.String()))
		}
		return fmt.Errorf("unknown setting %s: check the spelling (README.md lists the settings)", strings.Join(names, ", "))
	}
	return nil
}

// Duration is a time.Duration written as text in JSON and TOML: "1m30s".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }
