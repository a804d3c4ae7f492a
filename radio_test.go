package lifeline_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/radio"
	"lifeline/radio/testbed"
)

// TestRadioLineOnTestbed is the radio must-show on the whole stack: five
// nodes whose only link is LoRa, in a line (each board hears only its
// neighbours), 20 % of frames lost on every link. Each node opens its
// board's pseudo-terminal through tarm/serial and configures the firmware
// core behind it over the RNode protocol; the frames cross the simulated
// air in real time. A short message, a long one (fragmented) and an alert
// sent at one end all arrive at the other, and no board spends more than
// its duty-cycle budget in any window, as the air saw it.
//
// ShortFast, a 10 % budget over a minute (the region's rule, made stricter
// through the config) and a digest every 4 s keep it to tens of seconds;
// the virtual-time twin in radio/sim_test.go runs the same at LongFast
// over many seeds, in the 1 % band where the budget binds.
func TestRadioLineOnTestbed(t *testing.T) {
	const n = 5
	tb, err := testbed.New(n, 7)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb.Line(0.2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	go tb.Run(ctx)
	t.Cleanup(func() { tb.Close() })

	window, fraction := time.Minute, 0.1
	nodes := make([]*started, n)
	for i := range n {
		nodes[i] = startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
			c.Radios = []lifeline.RadioConfig{{Device: tb.Path(i), Preset: "ShortFast",
				RepairEvery: lifeline.Duration(4 * time.Second), DutyCycle: fraction, DutyWindow: lifeline.Duration(window)}}
		})
	}
	for i, s := range nodes {
		waitFor(t, fmt.Sprintf("radio %d ready", i), func() bool {
			st, err := s.client.Status(ctx)
			return err == nil && len(st.Radio) == 1 && st.Radio[0].State == "ready"
		})
	}

	long := strings.Repeat("Road to the clinic blocked at the bridge; use the hill track. ", 16)
	sent := map[string]string{}
	for _, req := range []api.SendRequest{
		{Channel: "general", Text: "Water point open at the school until 18:00."},
		{Channel: "general", Text: long},
		{Channel: "alerts", Text: "Flood warning: river rising, move to high ground now.", Priority: "alert"},
	} {
		id, err := nodes[0].client.Send(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		sent[id] = req.Text
	}
	far := nodes[n-1].client
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, s := range nodes {
			st, err := s.client.Status(context.Background())
			if err != nil || len(st.Radio) != 1 {
				t.Logf("node %d: %v", i, err)
				continue
			}
			t.Logf("node %d radio: %+v", i, st.Radio[0])
		}
	})
	waitForLong(t, "all three at the far end", 3*time.Minute, func() bool {
		got := 0
		for _, ch := range []string{"general", "alerts"} {
			ms, err := far.List(ctx, api.ListQuery{Channel: ch})
			if err != nil {
				return false
			}
			for _, m := range ms {
				if text, ok := sent[m.ID]; ok && m.Text == text {
					got++
				}
			}
		}
		return got == len(sent)
	})

	// The sender's own messages went on air in full: they left it, and
	// its status says so.
	waitFor(t, "the sender's messages marked left", func() bool {
		for id := range sent {
			if m, err := nodes[0].client.Message(ctx, id); err != nil || !m.Left || m.Status != api.StatusLeft {
				return false
			}
		}
		return true
	})

	budget := time.Duration(float64(window) * fraction)
	for i := range n {
		txs := tb.Sent(i)
		if u := testbed.MaxWindowUse(txs, window); u > budget {
			t.Errorf("board %d spent %v of airtime in one %v window, budget %v", i, u, window, budget)
		}
	}
	st, err := far.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := st.Radio[0]
	if r.Device != tb.Path(n-1) || r.Preset != "ShortFast" || r.Received == 0 || r.Router.Scheduler.Budget != budget ||
		r.Router.Sent == 0 || r.LastRSSI != -95 || r.LastSNR != 7.5 || r.Stored < 3 {
		t.Errorf("far end's radio status: %+v", r)
	}
	sentN, delivered, lost, collided, deaf := tb.Stats()
	t.Logf("air: %d frames sent, %d received, %d lost, %d collided, %d missed while sending; far end %+v",
		sentN, delivered, lost, collided, deaf, r.Router.RouterStats)
}

// waitForLong is waitFor with a deadline of its own.
func waitForLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRadioConfig: radio settings that cannot work, or would break the
// band's rules, are refused with the reason.
func TestRadioConfig(t *testing.T) {
	for _, c := range []struct {
		rc   lifeline.RadioConfig
		says string
	}{
		{lifeline.RadioConfig{}, "without a device"},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Region: "EU433"}, `unknown region "EU433"`},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Preset: "VeryFast"}, `unknown preset "VeryFast"`},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Driver: "lora32"}, `unknown driver "lora32"`},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Region: "EU868-1", DutyCycle: 0.1}, "at most 0.01"},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", DutyWindow: lifeline.Duration(2 * time.Hour)}, "only be made shorter"},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Region: "AS923", TxPower: 20}, "at most 16"},
		{lifeline.RadioConfig{Device: "/dev/ttyUSB0", Region: "US915"}, "choose a faster preset"},
	} {
		cfg := lifeline.DefaultConfig()
		cfg.Radios = []lifeline.RadioConfig{c.rc}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %q", c.rc, err, c.says)
		}
	}
	cfg := lifeline.DefaultConfig()
	cfg.Radios = []lifeline.RadioConfig{{Device: "/dev/ttyUSB0", Region: "US915", Preset: "ShortFast"}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("US915 at ShortFast: %v", err)
	}
}

// TestRadioUnplugged: a board pulled out mid-operation shows as down in
// the status; a message sent meanwhile waits in the other node's store,
// and once the board is back (a fresh board, at the same path) the node
// configures it again and repair brings the message over.
func TestRadioUnplugged(t *testing.T) {
	tb, err := testbed.New(2, 11)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb.Line(0)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	go tb.Run(ctx)
	t.Cleanup(func() { tb.Close() })
	radio := func(i int) func(*lifeline.Config) {
		return func(c *lifeline.Config) {
			c.Radios = []lifeline.RadioConfig{{Device: tb.Path(i), Preset: "ShortFast", RepairEvery: lifeline.Duration(time.Second)}}
		}
	}
	a, b := startNodeWith(t, t.TempDir(), radio(0)), startNodeWith(t, t.TempDir(), radio(1))
	state := func(s *started) string {
		st, err := s.client.Status(ctx)
		if err != nil || len(st.Radio) != 1 {
			return ""
		}
		return st.Radio[0].State
	}
	for _, s := range []*started{a, b} {
		waitFor(t, "radio ready", func() bool { return state(s) == "ready" })
	}

	tb.Unplug(1)
	waitFor(t, "the unplugged radio down", func() bool { return state(b) == "down" })
	id, err := a.client.Send(ctx, api.SendRequest{Channel: "general", Text: "sent while the other board was out"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Plug(1); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the radio ready again", 30*time.Second, func() bool { return state(b) == "ready" })
	waitForLong(t, "the message across after re-plugging", time.Minute, func() bool {
		ms, err := b.client.List(ctx, api.ListQuery{Channel: "general"})
		return err == nil && len(ms) == 1 && ms[0].ID == id
	})
	st, err := b.client.Status(ctx)
	if err != nil || st.Radio[0].Reopened < 1 || st.Radio[0].Stored != 1 {
		t.Fatalf("status after re-plugging: %+v %v", st.Radio, err)
	}
}

// TestRadioPrivateMesh: the radios of a private mesh authenticate every
// frame with the mesh key. On one line of boards, two nodes holding the key
// hear each other; a node without it, in range of one of them, hears their
// frames only as noise (dropped unread), and they drop its frames unread
// too: neither side stores, relays or answers the other's.
func TestRadioPrivateMesh(t *testing.T) {
	tb, err := testbed.New(3, 11)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb.Line(0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	go tb.Run(ctx)
	t.Cleanup(func() { tb.Close() })
	keyFile := filepath.Join(t.TempDir(), "swarm.key")
	if err := lifeline.WriteMeshKey(keyFile, rand.Reader); err != nil {
		t.Fatal(err)
	}
	nodes := make([]*started, 3)
	for i := range nodes {
		nodes[i] = startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
			c.Radios = []lifeline.RadioConfig{{Device: tb.Path(i), Preset: "ShortFast",
				RepairEvery: lifeline.Duration(4 * time.Second), DutyCycle: 0.1, DutyWindow: lifeline.Duration(time.Minute)}}
			if i < 2 {
				c.MeshKeyFile = keyFile // the IP mesh is private too; nothing dials it here
			}
		})
	}
	radioOf := func(i int) radio.StationStatus {
		st, err := nodes[i].client.Status(ctx)
		if err != nil || len(st.Radio) != 1 {
			return radio.StationStatus{}
		}
		return st.Radio[0]
	}
	for i := range nodes {
		waitFor(t, fmt.Sprintf("radio %d ready", i), func() bool { return radioOf(i).State == "ready" })
	}
	inside, err := nodes[0].client.Send(ctx, api.SendRequest{Channel: "general", Text: "for the private mesh only"})
	if err != nil {
		t.Fatal(err)
	}
	outside, err := nodes[2].client.Send(ctx, api.SendRequest{Channel: "general", Text: "from outside the mesh"})
	if err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the member at the middle to hear the other member", time.Minute, func() bool {
		_, err := nodes[1].client.Message(ctx, inside)
		return err == nil
	})
	// Node 1 floods the message on, in node 2's range: node 2 must have
	// heard keyed frames (and dropped them), and node 1 node 2's.
	waitForLong(t, "each side to hear the other's frames", time.Minute, func() bool {
		return radioOf(2).Router.Malformed > 0 && radioOf(1).Router.Unauthenticated > 0
	})
	if _, err := nodes[2].client.Message(ctx, inside); err == nil {
		t.Error("a node without the mesh key got the private mesh's message")
	}
	for i := range 2 {
		if _, err := nodes[i].client.Message(ctx, outside); err == nil {
			t.Errorf("member %d stored an unauthenticated frame's message", i)
		}
	}
	t.Logf("middle member: %+v; outsider: %+v", radioOf(1).Router.RouterStats, radioOf(2).Router.RouterStats)
}
