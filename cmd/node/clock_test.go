package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lifeline/api"
)

// TestSkewedClocksConverge runs a hub and two field nodes as processes,
// one whose system clock is three days behind (a board without a
// real-time clock after a long power cut) and one two hours ahead, with
// the skew injected by LIFELINE_CLOCK_SKEW (faketime has no effect on Go
// binaries). They learn the time from the hub and each other, and what
// each of them signs afterwards is accepted everywhere.
func TestSkewedClocksConverge(t *testing.T) {
	bin := buildBinary(t)
	statusOf := func(d *daemon) api.Status {
		var st api.Status
		if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", d.url, "--json")), &st); err != nil || st.Status == nil {
			t.Fatalf("status --json: %v", err)
		}
		return st
	}
	skewed := func(skew string, args ...string) *daemon {
		cmd := exec.Command(bin, append(append([]string{"run", "--data", t.TempDir(), "--api", "127.0.0.1:0", "-v"}, loopbackMesh...), args...)...)
		cmd.Env = append(os.Environ(), "LIFELINE_CLOCK_SKEW="+skew)
		return launch(t, cmd, " ("+skew+")")
	}
	hub := startDaemon(t, bin, t.TempDir(), "--role", "hub")
	hubAddr := statusOf(hub).Addrs[0]
	behind := skewed("-72h", "--hub", hubAddr, "--probe", "300ms")
	ahead := skewed("2h", "--hub", hubAddr, "--probe", "300ms", "--peer", statusOf(behind).Addrs[0])
	nodes := map[string]*daemon{"hub": hub, "behind": behind, "ahead": ahead}
	defer func() {
		if t.Failed() {
			for name, d := range nodes {
				t.Logf("=== %s\n%s", name, d.stderr.String())
			}
		}
	}()

	for name, d := range map[string]*daemon{"behind": behind, "ahead": ahead} {
		waitFor(t, 30*time.Second, name+" follows the hub's time", func() bool {
			st := statusOf(d)
			return st.Clock.Source == "hub" && time.Since(time.UnixMilli(st.Time)).Abs() < 2*time.Second
		})
	}
	st := statusOf(behind)
	if off := time.Duration(st.Clock.OffsetMS) * time.Millisecond; (off - 72*time.Hour).Abs() > 2*time.Second {
		t.Fatalf("the node behind says its system clock is off by %s, want 72h", off)
	}
	if out := ok(t, bin, "status", "--api", behind.url); !strings.Contains(out, "(hub; the system clock is off by 72h0m0s)") &&
		!strings.Contains(out, "(hub, ±") {
		t.Fatalf("status does not say what the clock follows:\n%s", out)
	}
	if hs := statusOf(hub); hs.Clock.Source != "synced" {
		t.Fatalf("the hub's clock follows %q, want synced (a hub trusts its own)", hs.Clock.Source)
	}

	want := []string{
		strings.TrimSpace(ok(t, bin, "send", "--api", behind.url, "--channel", "general", "--ttl", "1h", "from", "behind")),
		strings.TrimSpace(ok(t, bin, "send", "--api", ahead.url, "--channel", "general", "--ttl", "1h", "from", "ahead")),
		strings.TrimSpace(ok(t, bin, "send", "--api", hub.url, "--channel", "general", "--ttl", "1h", "from", "the", "hub")),
	}
	for name, d := range nodes {
		waitFor(t, 60*time.Second, name+" holds all three messages", func() bool {
			var msgs []api.Message
			if err := json.Unmarshal([]byte(ok(t, bin, "read", "--api", d.url, "--channel", "general", "--json")), &msgs); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, m := range msgs {
				got[m.ID] = true
				if d := time.Since(time.UnixMilli(m.Created)); d.Abs() > time.Minute {
					t.Fatalf("%s holds %s created %s from now", name, m.ID, d)
				}
			}
			for _, id := range want {
				if !got[id] {
					return false
				}
			}
			return true
		})
	}
}
