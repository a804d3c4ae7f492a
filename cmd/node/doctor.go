package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/clock"
	"lifeline/radio"
	"lifeline/store"
)

// lifeline doctor: one line for each part of a kit that can be wrong, with
// the command that fixes it. The facts are gathered first (the config, the
// data directory, its disk, the running node's status, the serial ports),
// then judged by diagnose, which does no I/O, so each verdict is tested on
// facts made up in the test as well as on real nodes.

// Verdicts, worst last.
const (
	verdictOK   = "ok"
	verdictWarn = "warn"
	verdictFail = "FAIL"
)

// finding is one line of the doctor's report.
type finding struct {
	Verdict string `json:"verdict"`
	Part    string `json:"part"`
	Says    string `json:"says"`
	Fix     string `json:"fix,omitempty"`
}

// doctorFacts is what the doctor looked at.
type doctorFacts struct {
	ConfigPath string // "" when none was found (a development node)
	ConfigErr  error
	Config     lifeline.Config

	DataDir    string
	DataDirErr error // stat of the data directory
	DataMode   fs.FileMode
	Identity   bool // identity.pem exists

	DiskFree, DiskSize uint64 // of the data directory's file system; 0 if unknown
	DiskErr            error

	NodeErr error // the API did not answer
	Status  *api.Status
	Problem string // /healthz's problem, if any

	KernelSynced bool     // the system clock, by the kernel's account (adjtimex)
	SerialPorts  []string // USB serial ports present
}

// lowDisk is the free space under which the doctor warns: a few days of a
// busy kit's messages and logs.
const lowDisk = 256 << 20

func diagnose(f doctorFacts) []finding {
	var out []finding
	add := func(verdict, part, says, fix string) {
		out = append(out, finding{Verdict: verdict, Part: part, Says: says, Fix: fix})
	}
	edit := "sudoedit " + systemConfig + ", then sudo systemctl restart lifeline"
	if f.ConfigPath != "" {
		edit = "sudoedit " + f.ConfigPath + ", then sudo systemctl restart lifeline"
	}

	// The config.
	switch {
	case f.ConfigErr != nil:
		add(verdictFail, "config", f.ConfigErr.Error(), edit)
	case f.ConfigPath == "":
		add(verdictWarn, "config", "no installed config ("+systemConfig+" or $LIFELINE_CONFIG): looking at a development node", "sudo apt install ./lifeline_*.deb, or give --api and --data")
	default:
		if err := f.Config.Validate(); err != nil {
			add(verdictFail, "config", err.Error(), edit)
		} else {
			add(verdictOK, "config", f.ConfigPath, "")
		}
	}

	// The data directory and its disk.
	switch {
	case errors.Is(f.DataDirErr, fs.ErrNotExist):
		add(verdictFail, "data", f.DataDir+" does not exist: the node has never run here", "sudo systemctl start lifeline")
	case errors.Is(f.DataDirErr, fs.ErrPermission):
		add(verdictWarn, "data", "cannot look into "+f.DataDir+": run the doctor as root to check it", "sudo lifeline doctor")
	case f.DataDirErr != nil:
		add(verdictFail, "data", f.DataDirErr.Error(), "")
	case f.DataMode.Perm()&0o077 != 0:
		// The key files in it are 0600 whatever the directory's mode.
		add(verdictWarn, "data", fmt.Sprintf("%s is open to others (mode %04o): they can see its files' names and sizes", f.DataDir, f.DataMode.Perm()), "sudo chmod 700 "+f.DataDir)
	case !f.Identity:
		add(verdictWarn, "data", f.DataDir+" has no identity.pem yet: the node makes it at its first start", "sudo systemctl start lifeline")
	default:
		add(verdictOK, "data", fmt.Sprintf("%s (mode %04o)", f.DataDir, f.DataMode.Perm()), "")
	}
	if f.DiskSize > 0 {
		free := fmt.Sprintf("%s free of %s on %s's disk", mib(int64(f.DiskFree)), mib(int64(f.DiskSize)), f.DataDir)
		switch {
		case f.DiskFree < 2*store.DefaultMinFree:
			add(verdictFail, "disk", free+": the node refuses new messages", "free space (sudo journalctl --vacuum-size=50M; sudo apt clean), or lower quota: "+edit)
		case f.DiskFree < lowDisk:
			add(verdictWarn, "disk", free+": little room left", "free space (sudo journalctl --vacuum-size=50M), or lower quota: "+edit)
		default:
			add(verdictOK, "disk", free, "")
		}
	}

	// The running node.
	if f.NodeErr != nil {
		add(verdictFail, "node", "the node does not answer: "+f.NodeErr.Error(), "sudo systemctl start lifeline; sudo journalctl -u lifeline -e says why it stopped")
		return out
	}
	st := f.Status
	add(verdictOK, "node", fmt.Sprintf("%s running, %d messages", st.Version, st.Messages), "")
	if f.Problem != "" {
		add(verdictFail, "store", f.Problem, "free space on the data directory's disk; sudo journalctl -u lifeline -e")
	}

	// The clock.
	c := st.Clock
	off := time.Duration(c.OffsetMS) * time.Millisecond
	switch c.Source {
	case "floor":
		add(verdictFail, "clock", "unknown: the system clock is earlier than this node has ever run, so it counts on from the last known time", "give it a source: a hub (hubs in the config), a GPS (gps = \"/dev/ttyACM0\"), or open the app from a phone")
	case "system":
		add(verdictWarn, "clock", "nothing confirms the system clock (a board without a real-time clock boots with a stale one)", "give it a source: a hub, a GPS (gps = \"/dev/ttyACM0\"), NTP (sudo timedatectl set-ntp true) or a phone opening the app")
	default:
		says := "follows " + c.Source
		if c.Via != "" && c.Via != c.Source {
			says += " via " + c.Via
		}
		if off.Abs() >= time.Second {
			says += fmt.Sprintf("; the system clock is off by %s", off.Round(time.Second))
		}
		add(verdictOK, "clock", says, "")
	}
	if f.Config.Role == lifeline.RoleHub && !f.KernelSynced {
		add(verdictWarn, "clock", "this hub's system clock is not synchronised by NTP, and field nodes set theirs by it", "sudo timedatectl set-ntp true")
	}

	// The radios (a hub, on a server, has none): those configured, and
	// those the node runs from its command line (--radio).
	devices := make([]string, 0, len(f.Config.Radios))
	for _, rc := range f.Config.Radios {
		devices = append(devices, rc.Device)
	}
	for _, r := range st.Radio {
		if !slices.Contains(devices, r.Device) {
			devices = append(devices, r.Device)
		}
	}
	switch {
	case f.Config.Role == lifeline.RoleHub:
	case len(devices) == 0 && len(f.SerialPorts) > 0:
		add(verdictWarn, "radio", "none configured, but a board may be at "+strings.Join(f.SerialPorts, ", "), "add a [[radios]] block with its device (lifeline radios lists them): "+edit)
	case len(devices) == 0:
		add(verdictWarn, "radio", "none: this node meshes over Wi-Fi and cable only", "plug a LoRa board in, then add it as [[radios]] (lifeline radios lists the ports)")
	}
	for _, device := range devices {
		var rs *radio.StationStatus
		for i, r := range st.Radio {
			if r.Device == device {
				rs = &st.Radio[i]
			}
		}
		switch {
		case rs == nil:
			add(verdictFail, "radio", device+" is configured but the node does not run it", "sudo systemctl restart lifeline")
		case rs.State == "ready" && rs.Warning != "":
			// The device works but is set up so that it may not reach
			// other kits (another region or preset, a mode that drops
			// Lifeline's packets): the warning says what to change.
			add(verdictWarn, "radio", device+" ready, but its setup is wrong", rs.Warning)
		case rs.State == "ready":
			add(verdictOK, "radio", device+" ready", "")
		default:
			if _, err := os.Stat(device); err != nil {
				add(verdictFail, "radio", fmt.Sprintf("%s %s: no such device: the board is unplugged, or at another port", device, rs.State),
					"plug the board in; lifeline radios lists the ports it may be at")
				break
			}
			// The port is there but the board does not answer: the
			// error says why (a device on the wrong driver, a board that
			// does not start), and the log says more.
			add(verdictFail, "radio", fmt.Sprintf("%s %s: %s", device, rs.State, rs.LastError),
				"check the radio's driver (rnode, meshtastic or kiss: docs/RADIOS.md); the node's log says more (journalctl -u lifeline)")
		}
	}

	// Peers and hubs.
	if m := st.Status; m != nil {
		if m.Peers == 0 {
			add(verdictWarn, "peers", "no other node connected", "nodes on the same network find each other (mdns); others: peers in the config")
		} else {
			add(verdictOK, "peers", fmt.Sprintf("%d connected", m.Peers), "")
		}
		switch u := m.Uplink; u.State {
		case "none":
			if f.Config.Role != lifeline.RoleHub {
				add(verdictWarn, "hubs", "none configured: what this kit holds reaches the internet only through other kits", "add hubs in the config: "+edit)
			}
		case "up":
			add(verdictOK, "hubs", "reachable: uplink up through "+u.Hub, "")
		case "down":
			add(verdictWarn, "hubs", fmt.Sprintf("unreachable since %s (%d hubs): no way to the internet now", u.Since.Local().Format(time.RFC3339), u.Hubs), "nothing to do while there is no internet; otherwise check the hubs' addresses in the config")
		default:
			add(verdictOK, "hubs", "being probed", "")
		}
	}

	// Ports and the access point.
	if k := f.Config.Kit; k != nil {
		switch {
		case st.Kit == nil:
			add(verdictFail, "kit", "configured, but the node runs no kit", "sudo systemctl restart lifeline")
		case st.Kit.Address == "":
			add(verdictFail, "access point", fmt.Sprintf("%s has no IPv4 address: the Wi-Fi access point is not up", k.Address), "bring it up (docs/KIT.md): sudo nmcli connection up lifeline-ap")
		default:
			add(verdictOK, "access point", fmt.Sprintf("%s on %s: phones get http://%s/, DNS on port 53, the app on port 80", st.Kit.Interface, st.Kit.Address, st.Kit.Name), "")
		}
	}
	return out
}

// doctor gathers the facts, prints a line for each finding and fails when
// one does.
func (c *cli) doctor(ctx context.Context, args []string) error {
	flags := c.flags("doctor", "[--api URL] [--data DIR] [--json]")
	apiURL := flags.String("api", "", apiFlagUsage)
	dataFlag := flags.String("data", "", dataFlagUsage)
	asJSON := flags.Bool("json", false, "print JSON")
	pos, err := parse(flags, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	var f doctorFacts
	f.Config, f.ConfigPath, f.ConfigErr = c.nodeConfig()
	if f.ConfigPath == "" && f.ConfigErr == nil {
		f.Config = lifeline.DefaultConfig()
	}
	if f.DataDir, err = c.dataDir(*dataFlag); err != nil {
		f.DataDir = lifeline.DefaultDataDir
	}
	if fi, err := os.Stat(f.DataDir); err != nil {
		f.DataDirErr = err
	} else {
		f.DataMode = fi.Mode()
		if _, err := os.Stat(filepath.Join(f.DataDir, lifeline.IdentityFile)); err == nil {
			f.Identity = true
		} else if errors.Is(err, fs.ErrPermission) {
			f.DataDirErr = err
		}
	}
	if free, size, ok := store.DiskSpace(f.DataDir); ok {
		f.DiskFree, f.DiskSize = uint64(free), uint64(size)
	}
	cl, err := c.client(*apiURL)
	if err != nil {
		f.NodeErr = err
	} else {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if f.Status, f.NodeErr = cl.Status(qctx); f.NodeErr == nil {
			f.Problem, _ = cl.Health(qctx)
		}
	}
	f.KernelSynced = clock.SystemSynced()
	for _, p := range lifeline.RadioPorts() {
		f.SerialPorts = append(f.SerialPorts, p.Path)
	}

	findings := diagnose(f)
	failed := false
	for _, x := range findings {
		failed = failed || x.Verdict == verdictFail
	}
	if *asJSON {
		if err := json.NewEncoder(c.stdout).Encode(findings); err != nil {
			return err
		}
	} else {
		for _, x := range findings {
			line := fmt.Sprintf("%-4s  %-12s %s", x.Verdict, x.Part, x.Says)
			if x.Fix != "" && x.Verdict != verdictOK {
				line += "\n      fix: " + x.Fix
			}
			fmt.Fprintln(c.stdout, line)
		}
	}
	if failed {
		return errDoctorFound
	}
	return nil
}

// errDoctorFound: the doctor found something wrong (exit code 1); the
// findings say what.
var errDoctorFound = errors.New("something is wrong: see the FAIL lines")
