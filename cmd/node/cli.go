package main

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/radio/testbed"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

// clientTimeout bounds each client subcommand.
const clientTimeout = 30 * time.Second

const usage = `lifeline: an offline-first mesh messaging node

Usage:
  lifeline run     [--data DIR] [--api ADDR] [--config FILE] [--quota BYTES]
                   [--api-host NAME]... [--listen MULTIADDR]... [--peer MULTIADDR]...
                   [--no-mdns] [--mesh-key FILE] [--role field|hub] [--hub MULTIADDR]...
                   [--probe DURATION] [--retention DURATION] [--radio DEVICE]...
                   [--radio-driver rnode|meshtastic|kiss] [--radio-region REGION] [--radio-preset PRESET] [--gps DEVICE]
  lifeline send    [--api URL] (--channel NAME | --to KEY) [--alert] [--ttl DURATION] TEXT...
  lifeline read    [--api URL] [--channel NAME | --to KEY] [--json] [--since MS | --after SEQ] [--limit N]
  lifeline status  [--api URL] [--json]
  lifeline outages [--api URL] [--json | --csv]
  lifeline export  [--api URL | --data DIR] [--channel NAME | --to KEY] [--since TIME] [--until TIME] [--out FILE]
  lifeline export  [--api URL] [--out FILE] ID
  lifeline import  [--api URL] [FILE]
  lifeline radios  [--json]
  lifeline testbed [--boards N] [--devices KIND,...] [--loss FRACTION] [--seed N] [--dir DIR]
  lifeline id      [--data DIR] [--api URL]
  lifeline keygen  --out FILE
  lifeline meshkey --out FILE
  lifeline wipe    [--data DIR] [--config FILE] [--mesh-key FILE] [--api URL] [--yes]
  lifeline backup  [--api URL] --out FILE
  lifeline restore [--data DIR] FILE
  lifeline compact [--data DIR]
  lifeline vouch   [--api URL] OLD NEW
  lifeline doctor  [--api URL] [--data DIR] [--json]
  lifeline admin-token [--data DIR]
  lifeline version

run starts a node (Ctrl-C stops it): a field node, or with --role hub a node
for a public server that field nodes reach with --hub. send, read, status and
outages talk to a running node: --api, else $LIFELINE_API, else the one
installed here (the api_addr of $LIFELINE_CONFIG or ` + systemConfig + `),
else http://` + lifeline.DefaultAPIAddr + `;
outages lists the uplink losses in the signed reports the node holds; radios
lists the USB serial ports a LoRa board may be behind, and testbed simulates
LoRa boards in a line on pseudo-terminals, for --radio without hardware. export writes
every message a node holds (or a channel's, or a time range's) to one bundle file,
from a running node or from a stopped node's data directory; with an ID, that
message's signed envelope. import gives a bundle or an envelope to a node, which
checks every envelope: a way to carry messages between nodes by hand (a USB stick)
while they have no link. id prints the node's
public key (from its data directory, else from the running node; it never
makes one); keygen writes a new identity file; meshkey writes a key for a
private mesh (give the same file to every node). wipe destroys the node's
keys and messages for good, at once (a kit about to be seized); a running
node does it itself and stops. backup writes a running node's store and keys
to one file; restore makes an empty data directory that node again. compact shrinks a
stopped node's store file to what it holds.
doctor checks the installed node, one line per part (config, data, disk,
clock, radios, peers, hubs, access point), each with the command that fixes it.
admin-token prints the token that makes someone the node's operator from
another machine or the app's operator page (root or the node's user may read
it). "lifeline CMD -h" shows a
command's flags. Docs: README.md, docs/API.md.
`

// cli carries what every subcommand writes to.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// systemConfig is the installed node's config, read when no other
	// says where the node is (see findnode.go); "" in tests.
	systemConfig string
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, systemConfig: systemConfig}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	var f func(context.Context, []string) error
	switch cmd {
	case "run":
		f = c.run
	case "send":
		f = c.send
	case "read":
		f = c.read
	case "status":
		f = c.status
	case "outages":
		f = c.outages
	case "export":
		f = c.export
	case "import":
		f = c.importFile
	case "radios":
		f = c.radios
	case "testbed":
		f = c.testbed
	case "id":
		f = c.id
	case "keygen":
		f = c.keygen
	case "meshkey":
		f = c.meshkey
	case "wipe":
		f = c.wipe
	case "backup":
		f = c.backup
	case "restore":
		f = c.restore
	case "compact":
		f = c.compact
	case "vouch":
		f = c.vouch
	case "doctor":
		f = c.doctor
	case "admin-token":
		f = c.adminToken
	case "version", "--version":
		fmt.Fprintln(stdout, "lifeline", lifeline.Version)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "lifeline: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	err := f(ctx, rest)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	fmt.Fprintf(stderr, "lifeline %s: %v\n", cmd, err)
	if _, ok := errors.AsType[usageError](err); ok {
		fmt.Fprintf(stderr, "run \"lifeline %s -h\" for its flags\n", cmd)
		return exitUsage
	}
	return exitError
}

// flags returns a flag set for a subcommand that reports to stderr.
func (c *cli) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeline "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: lifeline %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags anywhere among the arguments ("send hello --channel
// x" works as well as "send --channel x hello") and returns the others.
// After "--" everything is an argument, so text may start with '-'.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if done := args[:len(args)-len(rest)]; len(done) > 0 && done[len(done)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// noArgs refuses stray arguments, which are usually a mistyped flag.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

func (c *cli) run(ctx context.Context, args []string) error {
	fs := c.flags("run", "[--data DIR] [--api ADDR] [--config FILE] [--quota BYTES] [--api-host NAME]... [--listen MULTIADDR]... [--peer MULTIADDR]... [--no-mdns] [--mesh-key FILE] [--role field|hub] [--hub MULTIADDR]... [--member KEY]... [--probe DURATION] [--retention DURATION] [--radio DEVICE]... [--radio-driver rnode|meshtastic|kiss] [--radio-region REGION] [--radio-preset PRESET] [--gps DEVICE] [--default-channel NAME] [--kit INTERFACE|ADDRESS] [--log text|json] [-v]")
	def := lifeline.DefaultConfig()
	data := fs.String("data", def.DataDir, "data `directory`: identity and message store")
	addr := fs.String("api", def.APIAddr, "`address` the HTTP API listens on (port 0: any free port)")
	cfgFile := fs.String("config", "", "config `file`, TOML or JSON (with version 1; see packaging/lifeline.toml); flags given explicitly override it")
	quota := fs.Int64("quota", def.Quota, "`bytes` of messages to keep (a hub started without --quota or --config keeps 8 GiB)")
	retention := fs.Duration("retention", 0, "the longest a message is kept, even before it expires (0: until it expires)")
	var listen, peers []string
	fs.Func("listen", "mesh `multiaddr` to listen on, repeatable (default TCP and QUIC on port 7778, every interface)", func(v string) error {
		listen = append(listen, v)
		return nil
	})
	fs.Func("peer", "static peer `multiaddr` ending in /p2p/<peer id>, repeatable; kept connected", func(v string) error {
		peers = append(peers, v)
		return nil
	})
	var apiHosts []string
	fs.Func("api-host", "host `name` the API answers to besides IP addresses and localhost (e.g. lifeline.local), repeatable", func(v string) error {
		apiHosts = append(apiHosts, v)
		return nil
	})
	noMDNS := fs.Bool("no-mdns", false, "do not discover peers on the local network")
	meshKey := fs.String("mesh-key", "", "private mesh: only nodes holding this key `file` connect (TCP only; make one with lifeline meshkey)")
	role := fs.String("role", def.Role, "`role`: field (a node in the area) or hub (a public server that field nodes reach over the internet)")
	var hubs []string
	fs.Func("hub", "internet hub `multiaddr` ending in /p2p/<peer id>, repeatable: reached whenever there is a path, and the uplink is recorded", func(v string) error {
		hubs = append(hubs, v)
		return nil
	})
	var memberKeys []string
	fs.Func("member", "public `key` of a person or node this kit vouches for, repeatable: kept ahead of strangers when the store is full", func(v string) error {
		memberKeys = append(memberKeys, v)
		return nil
	})
	probe := fs.Duration("probe", time.Duration(def.ProbeInterval), "how often the uplink to the hubs is checked")
	var radios []string
	fs.Func("radio", "LoRa board's serial `device`, repeatable (e.g. /dev/ttyUSB0, or its /dev/serial/by-id/ name; see lifeline radios)", func(v string) error {
		radios = append(radios, v)
		return nil
	})
	gpsDevice := fs.String("gps", "", "GPS receiver's serial `device` (NMEA, 9600 baud): the node's clock follows it")
	radioDriver := fs.String("radio-driver", "", "radio `driver`: rnode (an RNode or Lifeline board, the default), meshtastic (a Meshtastic device) or kiss (a plain KISS TNC)")
	radioRegion := fs.String("radio-region", "", "radio `region`: EU868 (default), EU868-1, US915, AU915, IN865, AS923")
	radioPreset := fs.String("radio-preset", "", "radio modem `preset`: LongFast (default), LongSlow, LongModerate, MediumFast, MediumSlow, ShortFast, ShortSlow")
	defChannel := fs.String("default-channel", "", "the `channel` the phone app opens for a first-time visitor (default general)")
	kitAddr := fs.String("kit", "", "make this node a kit on the Wi-Fi `interface` (e.g. wlan0) or its IPv4 address: the app on its port 80, a DNS on its port 53 that leads every name there, so phones joining the Wi-Fi open the app (docs/KIT.md)")
	verbose := fs.Bool("v", false, "log debug detail")
	logFormat := fs.String("log", "text", "log `format`: text, or json (one object a line, for journald and log collectors)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	cfg := def
	if *cfgFile != "" {
		if cfg, err = lifeline.LoadConfig(*cfgFile); err != nil {
			return err
		}
	}
	// Flags given on the command line win over the file; the others
	// leave the file's (or default) settings alone.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data":
			cfg.DataDir = *data
		case "api":
			cfg.APIAddr = *addr
		case "quota":
			cfg.Quota = *quota
		case "api-host":
			cfg.APIHosts = apiHosts
		case "listen":
			cfg.Listen = listen
		case "peer":
			cfg.Peers = peers
		case "no-mdns":
			cfg.MDNS = !*noMDNS
		case "mesh-key":
			cfg.MeshKeyFile = *meshKey
		case "role":
			cfg.Role = *role
		case "hub":
			cfg.Hubs = hubs
		case "member":
			cfg.Members = memberKeys
		case "probe":
			cfg.ProbeInterval = lifeline.Duration(*probe)
		case "retention":
			cfg.Retention = lifeline.Duration(*retention)
		case "default-channel":
			cfg.DefaultChannel = *defChannel
		case "gps":
			cfg.GPS = *gpsDevice
		case "kit":
			k := lifeline.KitConfig{Address: *kitAddr}
			if cfg.Kit != nil {
				k.Name = cfg.Kit.Name // the file's name, if any
			}
			cfg.Kit = &k
		}
	})
	// What the command line sets, the operator's page does not change
	// (lifeline.Settings).
	fs.Visit(func(f *flag.Flag) {
		if name, ok := pageSetting(f.Name); ok {
			cfg.CommandLine = append(cfg.CommandLine, name)
		}
	})
	if len(radios) > 0 {
		cfg.Radios = nil
		for _, dev := range radios {
			cfg.Radios = append(cfg.Radios, lifeline.RadioConfig{Device: dev})
		}
	}
	// The --radio-* flags set every radio, from --radio or the file.
	for i := range cfg.Radios {
		r := &cfg.Radios[i]
		if *radioDriver != "" {
			r.Driver = *radioDriver
		}
		if *radioRegion != "" {
			r.Region = *radioRegion
		}
		if *radioPreset != "" {
			r.Preset = *radioPreset
		}
	}
	quotaGiven := false
	fs.Visit(func(f *flag.Flag) { quotaGiven = quotaGiven || f.Name == "quota" })
	if cfg.Role == lifeline.RoleHub && !quotaGiven && *cfgFile == "" {
		cfg.Quota = lifeline.DefaultHubQuota
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	switch *logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: level}))
	default:
		return usagef("--log %q: want text or json", *logFormat)
	}
	if v := os.Getenv("LIFELINE_CLOCK_SKEW"); v != "" {
		// For tests of a wrong clock and for drills: faketime has no
		// effect on Go binaries, so the skew is injected here. The node
		// then treats its system clock as unsynchronised, as a board
		// without a real-time clock would be.
		skew, err := time.ParseDuration(v)
		if err != nil {
			return usagef("LIFELINE_CLOCK_SKEW %q: want a duration such as -72h or 2h: %v", v, err)
		}
		cfg.Now = func() time.Time { return time.Now().Add(skew) }
		cfg.Logger.Warn("system clock skewed by LIFELINE_CLOCK_SKEW", "skew", skew)
	}
	node, err := lifeline.New(cfg)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- node.Run(ctx) }()
	select {
	case <-node.Ready():
		// One line on stdout, for people and for scripts that started
		// the node on port 0 and need to know where it is.
		fmt.Fprintf(c.stdout, "lifeline node %s listening on http://%s\n", node.ID(), node.APIAddr())
	case err := <-errc:
		return err
	}
	err = <-errc
	if errors.Is(err, lifeline.ErrWiped) {
		fmt.Fprintln(c.stdout, "wiped: this node's keys and messages are destroyed")
		return nil
	}
	return err
}

// pageSetting names the setting of the operator's settings page that a
// flag of run sets, if any.
func pageSetting(flag string) (string, bool) {
	switch flag {
	case "hub":
		return lifeline.SettingHubs, true
	case "mesh-key":
		return lifeline.SettingMeshKey, true
	case "kit":
		return lifeline.SettingKit, true
	case "radio-region":
		return lifeline.SettingRadioRegion, true
	case "radio-preset":
		return lifeline.SettingRadioPreset, true
	}
	return "", false
}

func (c *cli) send(ctx context.Context, args []string) error {
	fs := c.flags("send", "[--api URL] (--channel NAME | --to KEY) [--alert] [--ttl DURATION] TEXT...")
	apiURL := fs.String("api", "", apiFlagUsage)
	channel := fs.String("channel", "", "public channel `name`")
	to := fs.String("to", "", "recipient's public `key` (64 hex digits) for a direct message")
	alert := fs.Bool("alert", false, "send at alert priority (to a channel: an alert message)")
	ttl := fs.Duration("ttl", 0, "how long the message lives (e.g. 2h; at least 1m; default "+message.DefaultTTL.String()+")")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *channel == "" && *to == "":
		return usagef("say where the message goes: --channel NAME or --to KEY")
	case *channel != "" && *to != "":
		return usagef("give --channel or --to, not both")
	case len(pos) == 0:
		return usagef("missing the message text: lifeline send --channel NAME TEXT")
	}
	text := strings.Join(pos, " ")
	if strings.TrimSpace(text) == "" {
		return usagef("the message text is empty")
	}
	if *to != "" {
		// Check here too: a clear error without a round trip, and even
		// when no node is running.
		if _, err := message.ParsePublicKey(*to); err != nil {
			return usagef("--to %q: %v", *to, err)
		}
	}
	if *ttl != 0 && *ttl < time.Minute {
		return usagef("--ttl %s: at least 1m", *ttl)
	}
	req := api.SendRequest{Channel: *channel, To: *to, Text: text, TTLSeconds: int64(ttl.Round(time.Second) / time.Second)}
	if *alert {
		req.Priority = "alert"
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	id, err := cl.Send(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func (c *cli) read(ctx context.Context, args []string) error {
	fs := c.flags("read", "[--api URL] [--channel NAME | --to KEY] [--json] [--since MS | --after SEQ] [--limit N]")
	apiURL := fs.String("api", "", apiFlagUsage)
	channel := fs.String("channel", "", "public channel `name`")
	to := fs.String("to", "", "list direct messages and receipts addressed to this public `key`")
	asJSON := fs.Bool("json", false, "print the node's JSON array unchanged")
	since := fs.Int64("since", 0, "only messages created after these unix `milliseconds`, oldest first")
	limit := fs.Int("limit", 0, fmt.Sprintf("at most `N` messages (default %d, at most %d)", api.DefaultLimit, api.MaxLimit))
	var after *uint64
	fs.Func("after", "messages that arrived after arrival number `SEQ` (0: from the first), in arrival order; prints the next --after on stderr. Use this to poll: --since misses messages that arrive late", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an arrival number: %q", v)
		}
		after = &n
		return nil
	})
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *channel != "" && *to != "" {
		return usagef("give --channel or --to, not both")
	}
	if after != nil && *since != 0 {
		return usagef("give --since or --after, not both")
	}
	q := api.ListQuery{Channel: *channel, To: *to, Since: *since, Limit: *limit}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	if after != nil {
		p, err := cl.ListAfter(ctx, q, *after)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(c.stdout).Encode(p.Messages); err != nil {
				return err
			}
		} else {
			for _, m := range p.Messages {
				fmt.Fprintln(c.stdout, formatMessage(m))
			}
		}
		more := ""
		if p.More {
			more = " (more waiting: ask again now)"
		}
		fmt.Fprintf(c.stderr, "next: --after %d%s\n", p.Next, more)
		return nil
	}
	if *asJSON {
		b, err := cl.ListJSON(ctx, q)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(b)
		return err
	}
	ms, err := cl.List(ctx, q)
	if err != nil {
		return err
	}
	for _, m := range ms {
		fmt.Fprintln(c.stdout, formatMessage(m))
	}
	return nil
}

// formatMessage renders one message on one line for people:
//
//	2026-11-23 14:02:11  #general  3f9a0c1e  water at the school
//	2026-11-23 14:05:40  @9b1d2e3f 3f9a0c1e  [sealed]  (delivered)
func formatMessage(m api.Message) string {
	var b strings.Builder
	b.WriteString(time.UnixMilli(m.Created).Local().Format("2006-01-02 15:04:05"))
	b.WriteString("  ")
	if m.Channel != "" {
		b.WriteString("#" + m.Channel)
	} else {
		b.WriteString("@" + short(m.To))
	}
	b.WriteString("  " + short(m.Author) + "  ")
	if m.Priority == "alert" {
		b.WriteString("ALERT ")
	}
	switch {
	case m.Kind == "receipt":
		fmt.Fprintf(&b, "[receipt for %d message(s)]", len(m.Acks))
	case m.Text != "":
		// One message, one line: newlines inside it are shown escaped.
		b.WriteString(strings.ReplaceAll(m.Text, "\n", `\n`))
	default:
		b.WriteString("[sealed to the recipient]")
	}
	if m.Own {
		b.WriteString("  (" + m.Status + ")")
	}
	return b.String()
}

func short(hex string) string {
	if len(hex) > 8 {
		return hex[:8]
	}
	return hex
}

func (c *cli) status(ctx context.Context, args []string) error {
	fs := c.flags("status", "[--api URL] [--json]")
	apiURL := fs.String("api", "", apiFlagUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	quota := "none"
	if st.Quota > 0 {
		quota = fmt.Sprintf("%d bytes (%.1f%% used)", st.Quota, 100*float64(st.Bytes)/float64(st.Quota))
	}
	if st.Name != "" {
		fmt.Fprintf(c.stdout, "name      %s\n", st.Name)
	}
	fmt.Fprintf(c.stdout, "node      %s\nversion   %s\nuptime    %s\nmessages  %d (%d bytes)\nquota     %s\nremoved   %d expired, %d evicted\nclock     %s\n",
		st.ID, st.Version, time.Duration(st.UptimeS)*time.Second, st.Messages, st.Bytes, quota, st.Expired, st.Evicted,
		clockLine(st.Time, st.Clock))
	if len(st.Settings) > 0 {
		// A technician editing the config file must not be puzzled.
		fmt.Fprintf(c.stdout, "settings  %s set on the operator's page (%s in the data directory): they override the config file\n",
			strings.Join(st.Settings, ", "), lifeline.SettingsFile)
	}
	if m := st.Status; m != nil {
		private := ""
		if m.Private {
			private = " (private mesh)"
		}
		fmt.Fprintf(c.stdout, "mesh      %d peers, %d in gossip%s; %d misbehaved, %d blocked\n", m.Peers, m.GossipPeers, private, m.Misbehaving, m.Blocked)
		if m.Relay {
			fmt.Fprintln(c.stdout, "relay     on (hub): field nodes behind NAT are reachable through this node")
		}
		switch u := m.Uplink; u.State {
		case "none":
		case "up":
			fmt.Fprintf(c.stdout, "uplink    up since %s, through hub %s\n", u.Since.Local().Format(time.RFC3339), u.Hub)
		case "down":
			last := "never up since start"
			if !u.LastUp.IsZero() {
				last = "last up " + u.LastUp.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(c.stdout, "uplink    down since %s (%s); %d hubs, next try %s\n", u.Since.Local().Format(time.RFC3339), last, u.Hubs, u.NextProbe.Local().Format(time.TimeOnly))
		default:
			fmt.Fprintf(c.stdout, "uplink    %s (%d hubs)\n", u.State, u.Hubs)
		}
		for _, a := range m.Addrs {
			fmt.Fprintf(c.stdout, "  listen  %s\n", a)
		}
		for _, p := range m.PeerList {
			last := "never reconciled"
			if !p.LastReconcile.IsZero() {
				last = fmt.Sprintf("reconciled %s ago (%d received, %d sent in all)", time.Since(p.LastReconcile).Round(time.Second), p.Received, p.Sent)
			}
			fmt.Fprintf(c.stdout, "  peer    %s %s\n", p.ID, last)
		}
	}
	for _, r := range st.Radio {
		printRadio(c.stdout, r)
	}
	if k := st.Kit; k != nil {
		if k.Address == "" {
			fmt.Fprintf(c.stdout, "kit       waiting for %s to have an address; the app will be http://%s/\n", k.Interface, k.Name)
		} else {
			fmt.Fprintf(c.stdout, "kit       on %s: the app is http://%s/; %d DNS answers (%d dropped), %d phones opened the app\n", k.Address, k.Name, k.DNSAnswered, k.DNSLimited, k.Released)
		}
	}
	return nil
}

// printRadio prints one radio of the status: the link, the airtime budget
// and what waits, and the frames.
func printRadio(w io.Writer, r radio.StationStatus) {
	board := r.Driver
	if r.Firmware != "" {
		board += ", firmware " + r.Firmware
	}
	fmt.Fprintf(w, "radio     %s %s since %s (%s), %s %s\n", r.Device, r.State, r.Since.Local().Format(time.TimeOnly), board, r.Region, r.Preset)
	if r.Warning != "" {
		fmt.Fprintf(w, "  setup   %s\n", r.Warning)
	}
	if r.LastError != "" {
		fmt.Fprintf(w, "  error   %s\n", r.LastError)
	}
	if len(r.Errors) > 0 {
		var parts []string
		for _, meaning := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s %d", meaning, r.Errors[meaning]))
		}
		fmt.Fprintf(w, "  errors  %s\n", strings.Join(parts, ", "))
	}
	if b := r.Board; b != nil {
		// RNode's short window is about 15 s (two of its 7.5 s bins).
		fmt.Fprintf(w, "  board   says %.1f%% airtime in the last 15 s, %.1f%% over the hour; channel busy %.1f%% (%.1f%% over the hour)\n",
			100*b.AirtimeShort, 100*b.AirtimeLong, 100*b.ChannelShort, 100*b.ChannelLong)
	}
	s := r.Router.Scheduler
	fmt.Fprintf(w, "  air     %v of %v used in the last %v; %d queued", s.Used.Round(time.Millisecond), s.Budget, s.Window, s.Queue)
	if s.Queue > 0 {
		var parts []string
		for _, p := range []string{"alert", "high", "normal", "low"} {
			if n := s.ByPriority[p]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", p, n))
			}
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if s.Why != "" {
		fmt.Fprintf(w, "  waits   %s\n", s.Why)
	}
	rt := r.Router
	fmt.Fprintf(w, "  frames  %d sent, %d heard, %d malformed, %d relayed; %d messages stored from the air, %d refused\n",
		rt.Sent, rt.Heard, rt.Malformed, rt.Relayed, r.Stored, r.Refused)
	fmt.Fprintf(w, "  repair  %d digests, %d wants, %d answered, %d offered, %d repair frames heard; %d incomplete messages dropped\n",
		rt.Digests, rt.Wants, rt.Answered, rt.Offered, rt.Repaired, rt.Incomplete)
	if r.LastRSSI != 0 || r.LastSNR != 0 {
		fmt.Fprintf(w, "  signal  last frame %d dBm, SNR %.2f dB\n", r.LastRSSI, r.LastSNR)
	}
}

func (c *cli) outages(ctx context.Context, args []string) error {
	fs := c.flags("outages", "[--api URL] [--json | --csv]")
	apiURL := fs.String("api", "", apiFlagUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	asCSV := fs.Bool("csv", false, "print CSV: node,start,end,duration_s,ongoing,last_up,hub,reports")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *asJSON && *asCSV {
		return usagef("--json and --csv: choose one")
	}
	// Every page is bounded, but a hub flooded with reports takes many
	// pages of about a second each.
	ctx, cancel := context.WithTimeout(ctx, 10*clientTimeout)
	defer cancel()
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	out, err := cl.Outages(ctx)
	if err != nil {
		return err
	}
	stamp := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case *asCSV:
		w := csv.NewWriter(c.stdout)
		w.Write([]string{"node", "start", "end", "duration_s", "ongoing", "last_up", "hub", "reports"})
		for _, o := range out {
			dur := ""
			if o.End != nil {
				dur = strconv.FormatFloat(o.Duration, 'f', 3, 64)
			}
			w.Write([]string{o.Node, stamp(&o.Start), stamp(o.End), dur, strconv.FormatBool(o.Ongoing), stamp(o.LastUp), o.Hub, strings.Join(o.Reports, " ")})
		}
		w.Flush()
		return w.Error()
	}
	if len(out) == 0 {
		fmt.Fprintln(c.stdout, "no outages recorded in the reports this node holds")
		return nil
	}
	for _, o := range out {
		end := "ongoing"
		if o.End != nil {
			end = fmt.Sprintf("%s  (%s)", o.End.Local().Format(time.RFC3339), time.Duration(o.Duration*float64(time.Second)).Round(time.Second))
		}
		fmt.Fprintf(c.stdout, "%s  %s -> %s\n", short(o.Node), o.Start.Local().Format(time.RFC3339), end)
	}
	return nil
}

// testbed runs simulated LoRa boards in a line until Ctrl-C: each on a
// pseudo-terminal that `lifeline run --radio` opens like a real port.
func (c *cli) testbed(ctx context.Context, args []string) error {
	fs := c.flags("testbed", "[--boards N] [--devices KIND,...] [--loss FRACTION] [--seed N] [--dir DIR]")
	boards := fs.Int("boards", 3, "how many boards, in a line: each hears only its neighbours")
	devices := fs.String("devices", "lifeline", "what the boards are, in order, the last repeated: lifeline (our firmware), rnode (an RNode with firmware 1.86), rnode-avr (the same on an AVR board), meshtastic (a Meshtastic device: EU_868, LongFast; meshtastic:ShortFast at another preset)")
	loss := fs.Float64("loss", 0.1, "the fraction of frames lost on each link")
	seed := fs.Uint64("seed", 1, "seed of the air's randomness (loss and collisions)")
	dir := fs.String("dir", "", "where the boards' paths go (DIR/board-N): a testbed started again with the same --dir is found by the nodes that used the last one; a new temporary directory if empty")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *boards < 1 || *boards > 64 || *loss < 0 || *loss >= 1 {
		return usagef("testbed: want 1 to 64 boards and a loss from 0 to below 1")
	}
	kinds := strings.Split(*devices, ",")
	if len(kinds) > *boards {
		return usagef("testbed: %d devices named for %d boards", len(kinds), *boards)
	}
	firmware := make([]testbed.Firmware, *boards)
	names := make([]string, *boards)
	for i := range firmware {
		names[i] = strings.TrimSpace(kinds[min(i, len(kinds)-1)])
		if firmware[i], err = testbed.FirmwareNamed(names[i]); err != nil {
			return usagef("%v", err)
		}
	}
	tb, err := testbed.NewIn(*dir, firmware, *seed)
	if err != nil {
		return err
	}
	defer tb.Close()
	tb.Line(*loss)
	for i := range *boards {
		line := fmt.Sprintf("board %d (%s): %s", i, names[i], tb.Path(i))
		if flags := testbedNodeFlags(names[i]); flags != "" {
			line += "  (its node:" + flags + ")"
		}
		fmt.Fprintln(c.stdout, line)
	}
	meshtastic := 0
	for _, name := range names {
		if testbedNodeFlags(name) != "" {
			meshtastic++
		}
	}
	if meshtastic > 0 && meshtastic < len(names) {
		fmt.Fprintln(c.stdout, "note: Meshtastic devices and RNodes or Lifeline boards do not understand each other's frames: the line is cut where they meet")
	}
	fmt.Fprintf(c.stdout, "start a node on each, e.g.: lifeline run --data data-0 --api 127.0.0.1:7770 --no-mdns --radio %s%s\n", tb.Path(0), testbedNodeFlags(names[0]))
	return tb.Run(ctx)
}

// testbedNodeFlags are the flags a node needs for a testbed device of
// this name, beyond --radio: a Meshtastic device takes its driver, and its
// preset, which the node never sets on the device.
func testbedNodeFlags(name string) string {
	kind, preset, _ := strings.Cut(name, ":")
	if kind != "meshtastic" {
		return ""
	}
	flags := " --radio-driver meshtastic"
	if preset != "" {
		flags += " --radio-preset " + preset
	}
	return flags
}

// radios lists the USB serial ports a LoRa board could be behind.
func (c *cli) radios(_ context.Context, args []string) error {
	fs := c.flags("radios", "[--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	ports := lifeline.RadioPorts()
	if *asJSON {
		if ports == nil {
			ports = []lifeline.RadioPort{}
		}
		return json.NewEncoder(c.stdout).Encode(ports)
	}
	if len(ports) == 0 {
		fmt.Fprintln(c.stdout, "no USB serial ports: plug the radio board in (a board that is not listed needs a driver: see dmesg)")
		return nil
	}
	for _, p := range ports {
		line := p.Path
		if p.Driver != "" {
			line += "  (" + p.Driver + ")"
		}
		if p.ByID != "" {
			line += "  " + p.ByID // stable across re-plugging: prefer it for --radio
		}
		fmt.Fprintln(c.stdout, line)
	}
	return nil
}

func (c *cli) id(ctx context.Context, args []string) error {
	fs := c.flags("id", "[--data DIR] [--api URL]")
	dataFlag := fs.String("data", "", dataFlagUsage)
	apiURL := fs.String("api", "", apiFlagUsage+"; asked when DIR holds no identity")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	data, err := c.dataDir(*dataFlag)
	if err != nil {
		return err
	}
	// Never a key made as a side effect: a key printed from the wrong
	// directory would be given to people as the node's, and nothing
	// would ever reach it.
	path := filepath.Join(data, lifeline.IdentityFile)
	id, err := lifeline.LoadIdentity(path)
	if err == nil {
		fmt.Fprintln(c.stdout, id.Public())
		return nil
	}
	// The installed node's directory is its user's alone: anyone else
	// asks the node.
	why := "no node identity in " + data + " (a node makes one when it first starts: lifeline run --data " + data + ")"
	switch {
	case errors.Is(err, os.ErrPermission):
		why = "cannot read " + path + " (only root and the node's user may)"
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clientTimeout)
	defer cancel()
	cl, err := c.client(*apiURL)
	if err != nil {
		return fmt.Errorf("%s, and %w", why, err)
	}
	st, serr := cl.Status(ctx)
	if serr != nil {
		return fmt.Errorf("%s, and no node answered at %s: %v", why, cl.BaseURL, serr)
	}
	fmt.Fprintln(c.stdout, st.ID)
	return nil
}

// outFlag parses the --out FILE that keygen and meshkey take, and nothing else.
func (c *cli) outFlag(name, what string, args []string) (string, error) {
	fs := c.flags(name, "--out FILE")
	out := fs.String("out", "", what)
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if err := noArgs(pos); err != nil {
		return "", err
	}
	if *out == "" {
		return "", usagef("missing --out FILE")
	}
	return *out, nil
}

func (c *cli) meshkey(_ context.Context, args []string) error {
	out, err := c.outFlag("meshkey", "mesh key `file` to create (mode 0600; never overwritten); give the same file to every node of the mesh", args)
	if err != nil {
		return err
	}
	if err := lifeline.WriteMeshKey(out, rand.Reader); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "wrote a new mesh key to %s: copy it to every node of the mesh and run them with --mesh-key %s\n", out, out)
	return nil
}

func (c *cli) keygen(_ context.Context, args []string) error {
	out, err := c.outFlag("keygen", "identity `file` to create (mode 0600; never overwritten)", args)
	if err != nil {
		return err
	}
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		return err
	}
	if err := lifeline.WriteIdentity(out, id); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, id.Public())
	return nil
}

// clockLine is the status's clock in one line: the time, what it follows,
// how sure it is, and what the system clock is off by.
func clockLine(now int64, c api.ClockStatus) string {
	s := time.UnixMilli(now).Local().Format(time.RFC3339) + " (" + c.Source
	if c.Via != "" && c.Via != c.Source {
		s += " via " + c.Via
	}
	if c.Sources > 1 {
		s += fmt.Sprintf(", median of %d", c.Sources)
	}
	if c.UncertaintyMS > 0 {
		s += fmt.Sprintf(", ±%s", time.Duration(c.UncertaintyMS)*time.Millisecond)
	}
	if off := time.Duration(c.OffsetMS) * time.Millisecond; off.Abs() >= time.Second {
		s += fmt.Sprintf("; the system clock is off by %s", off.Round(time.Second))
	}
	if c.SteppedMS != 0 {
		s += fmt.Sprintf("; stepped back %s after running ahead", (time.Duration(c.SteppedMS) * time.Millisecond).Round(time.Second))
	}
	return s + ")"
}
