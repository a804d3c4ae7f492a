package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/mesh"
	"lifeline/radio"
	"lifeline/radio/link"
	"lifeline/radio/testbed"
)

// verdicts is diagnose's findings as "VERDICT part" strings.
func verdicts(fs []finding) map[string]string {
	out := map[string]string{}
	for _, f := range fs {
		if out[f.Part] != verdictFail { // a part's worst line counts
			out[f.Part] = f.Verdict
		}
	}
	return out
}

// TestDiagnose: each part's verdict from facts made up here.
func TestDiagnose(t *testing.T) {
	healthy := func() doctorFacts {
		cfg := lifeline.DefaultConfig()
		cfg.DataDir = "/var/lib/lifeline"
		cfg.Radios = []lifeline.RadioConfig{{Device: "/dev/ttyUSB0"}}
		cfg.Hubs = []string{"/ip4/192.0.2.1/tcp/7778/p2p/12D3KooWH3uVF6wv47WnArKHk5p6cvgCJEb74UTmxztmQDc298L3"}
		cfg.Kit = &lifeline.KitConfig{Address: "wlan0"}
		return doctorFacts{ConfigPath: "/etc/lifeline/lifeline.toml", Config: cfg, DataDir: cfg.DataDir, DataMode: fs.ModeDir | 0o700,
			Identity: true, DiskFree: 10 << 30, DiskSize: 30 << 30,
			Status: &api.Status{Version: "0.3.0", Clock: api.ClockStatus{Source: "hub", Via: "hub"},
				Status: &mesh.Status{Peers: 2, Uplink: mesh.UplinkStatus{Hubs: 1, State: "up", Hub: "12D3KooW…"}},
				Radio:  []radio.StationStatus{{Status: link.Status{Device: "/dev/ttyUSB0", State: "ready"}}},
				Kit:    &api.KitStatus{Address: "10.42.0.1", Interface: "wlan0", Name: "lifeline.kit"}}}
	}
	for _, c := range []struct {
		name  string
		edit  func(*doctorFacts)
		part  string
		want  string
		fixes string
	}{
		{"healthy", func(*doctorFacts) {}, "", verdictOK, ""},
		{"full disk", func(f *doctorFacts) { f.DiskFree = 8 << 20 }, "disk", verdictFail, "lower quota"},
		{"low disk", func(f *doctorFacts) { f.DiskFree = 100 << 20 }, "disk", verdictWarn, "vacuum"},
		{"data open to all", func(f *doctorFacts) { f.DataMode = fs.ModeDir | 0o755 }, "data", verdictWarn, "chmod 700"},
		{"no data dir", func(f *doctorFacts) { f.DataDirErr = fs.ErrNotExist }, "data", verdictFail, "systemctl start"},
		{"bad config", func(f *doctorFacts) { f.ConfigErr = errors.New("config: quota is 10 bytes") }, "config", verdictFail, "sudoedit"},
		{"node down", func(f *doctorFacts) { f.NodeErr, f.Status = errors.New("connection refused"), nil }, "node", verdictFail, "journalctl"},
		{"store broke", func(f *doctorFacts) { f.Problem = "no space left" }, "store", verdictFail, ""},
		{"clock unknown", func(f *doctorFacts) { f.Status.Clock.Source = "floor" }, "clock", verdictFail, "GPS"},
		{"clock unconfirmed", func(f *doctorFacts) { f.Status.Clock.Source = "system" }, "clock", verdictWarn, "timedatectl"},
		{"hub without NTP", func(f *doctorFacts) {
			f.Config.Role, f.Config.Radios, f.Config.Kit, f.Status.Radio, f.Status.Kit = lifeline.RoleHub, nil, nil, nil, nil
			f.Status.Clock.Source = "synced"
		}, "clock", verdictWarn, "set-ntp"},
		{"radio unplugged", func(f *doctorFacts) { f.Status.Radio[0].State = "down" }, "radio", verdictFail, "lifeline radios"},
		{"radio on the wrong driver", func(f *doctorFacts) {
			f.Config.Radios[0].Device, f.Status.Radio[0].Device = os.DevNull, os.DevNull // a port that is there
			f.Status.Radio[0].State, f.Status.Radio[0].LastError = "down", "no RNode answered within 5s"
		}, "radio", verdictFail, "driver"},
		{"radio set up wrong", func(f *doctorFacts) {
			f.Status.Radio[0].Warning = "the device's region is US, the node's EU868: meshtastic --set lora.region EU_868"
		}, "radio", verdictWarn, "meshtastic --set lora.region EU_868"},
		{"radio from the command line", func(f *doctorFacts) { f.Config.Radios = nil }, "", verdictOK, ""},
		{"radio from the command line, unplugged", func(f *doctorFacts) {
			f.Config.Radios, f.Status.Radio[0].State = nil, "down"
		}, "radio", verdictFail, "lifeline radios"},
		{"radio not run", func(f *doctorFacts) { f.Status.Radio = nil }, "radio", verdictFail, "restart"},
		{"no radio, a board plugged", func(f *doctorFacts) {
			f.Config.Radios, f.Status.Radio, f.SerialPorts = nil, nil, []string{"/dev/ttyACM0"}
		}, "radio", verdictWarn, "[[radios]]"},
		{"no peers", func(f *doctorFacts) { f.Status.Status.Peers = 0 }, "peers", verdictWarn, ""},
		{"hubs unreachable", func(f *doctorFacts) { f.Status.Status.Uplink.State = "down" }, "hubs", verdictWarn, ""},
		{"access point down", func(f *doctorFacts) { f.Status.Kit.Address = "" }, "access point", verdictFail, "nmcli"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := healthy()
			f.KernelSynced = c.name != "hub without NTP"
			c.edit(&f)
			got := diagnose(f)
			v := verdicts(got)
			for part, verdict := range v {
				want := verdictOK
				if part == c.part {
					want = c.want
				}
				if verdict != want && !(c.name == "node down" && part == "node") {
					t.Errorf("%s: %s, want %s\n%+v", part, verdict, want, got)
				}
			}
			if c.part != "" && v[c.part] != c.want {
				t.Errorf("%s: %q, want %s", c.part, v[c.part], c.want)
			}
			for _, x := range got {
				if x.Part == c.part && x.Verdict != verdictOK && !strings.Contains(x.Fix, c.fixes) {
					t.Errorf("%s's fix %q does not say %q", x.Part, x.Fix, c.fixes)
				}
			}
		})
	}
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// installed writes a config as the package would install it (but on
// loopback, in dataDir), points $LIFELINE_CONFIG at it, and starts
// `lifeline run --config` with it, as the service does.
func installed(t *testing.T, bin, dataDir, radios string) *daemon {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "lifeline.toml")
	text := fmt.Sprintf("version = 1\ndata_dir = %q\napi_addr = \"127.0.0.1:%d\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\n%s",
		dataDir, freePort(t), radios)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIFELINE_CONFIG", cfg)
	d := launch(t, exec.Command(bin, "run", "--config", cfg), " --config "+cfg)
	waitFor(t, 30*time.Second, "the node answers", func() bool { return runCLI(t, bin, nil, "status").code == 0 })
	return d
}

// TestDoctorProcesses: lifeline doctor on installed nodes: a healthy one
// with a radio (a simulated board), one whose board is not plugged in, and
// one whose disk is full, each with the right verdict and exit code.
func TestDoctorProcesses(t *testing.T) {
	bin := buildBinary(t)
	doctor := func() result { return runCLI(t, bin, nil, "doctor") }

	t.Run("healthy", func(t *testing.T) {
		tb, err := testbed.New(1, 3)
		if err != nil {
			t.Fatalf("no pseudo-terminals here: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go tb.Run(ctx)
		t.Cleanup(func() { tb.Close() })
		installed(t, bin, filepath.Join(t.TempDir(), "data"), fmt.Sprintf("[[radios]]\ndevice = %q\npreset = \"ShortFast\"\n", tb.Path(0)))
		var r result
		deadline := time.Now().Add(30 * time.Second)
		for r = doctor(); r.code != exitOK; r = doctor() {
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s the doctor still finds the node unwell: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, want := range []string{"ok    config", "ok    data", "ok    disk", "ok    node", "ok    radio        " + tb.Path(0) + " ready"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the doctor does not say %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "FAIL") {
			t.Errorf("a healthy node:\n%s", r.stdout)
		}
	})

	t.Run("no radio", func(t *testing.T) {
		installed(t, bin, t.TempDir(), "[[radios]]\ndevice = \"/dev/ttyUSB-not-plugged\"\n")
		r := doctor()
		if r.code != exitError || !strings.Contains(r.stdout, "FAIL  radio        /dev/ttyUSB-not-plugged") ||
			!strings.Contains(r.stdout, "no such device") || !strings.Contains(r.stdout, "fix: plug the board in") {
			t.Fatalf("a node without its board: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("full disk", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("needs root to mount a tmpfs (CI runs as root)")
		}
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount a tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		data := filepath.Join(dir, "data")
		installed(t, bin, data, "")
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, int64(st.Bavail)*int64(st.Bsize)-(8<<20)), 0o600); err != nil {
			t.Fatal(err)
		}
		r := doctor()
		for _, want := range []string{"FAIL  disk ", "the node refuses new messages", "FAIL  store ", "no space left", "warn  radio        none"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the doctor does not say %q:\n%s", want, r.stdout)
			}
		}
		if r.code != exitError {
			t.Errorf("exit %d on a full disk", r.code)
		}
	})
}
