package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/radio/testbed"
)

// TestRadioLineProcesses is the radio must-show through `lifeline run`
// processes and the radios people already own: five nodes whose only link
// is LoRa, in a line (each board hears only its neighbours), 20 % of
// frames lost on every link. Each node opens its board's
// pseudo-terminal through tarm/serial, as it would /dev/ttyUSB0. Once
// every node is on a simulated RNode with firmware 1.86, once on
// Meshtastic devices, and once mixed: Lifeline boards and RNodes sharing
// the channel. A short message, a long one (fragmented) and an alert sent
// at one end all arrive at the other, and no board spends more than its
// duty-cycle budget in any window, as the air saw it.
//
// ShortFast, a 10 % budget over a minute (the region's rule made stricter
// through the config) and a digest every 4 s keep each run to tens of
// seconds.
//
// Each board's airtime is the sum of its frames' on the air's record, so
// the figures logged compare the drivers on the same air.
func TestRadioLineProcesses(t *testing.T) {
	bin := buildBinary(t)
	for _, c := range []struct {
		name    string
		devices []string
		driver  string
	}{
		{"rnode", []string{"rnode", "rnode", "rnode", "rnode", "rnode"}, "rnode"},
		// A Meshtastic device is set up on itself: here at the nodes' preset.
		{"meshtastic", []string{"meshtastic:ShortFast", "meshtastic:ShortFast", "meshtastic:ShortFast", "meshtastic:ShortFast", "meshtastic:ShortFast"}, "meshtastic"},
		{"mixed", []string{"lifeline", "rnode", "lifeline", "rnode", "lifeline"}, "rnode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Each run waits on the air in real time and uses little of
			// the processor: the three share the wait.
			t.Parallel()
			radioLine(t, bin, c.devices, c.driver)
		})
	}
}

func radioLine(t *testing.T, bin string, devices []string, driver string) {
	const n = 5
	firmware := make([]testbed.Firmware, n)
	for i, name := range devices {
		fw, err := testbed.FirmwareNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		firmware[i] = fw
	}
	tb, err := testbed.NewWith(firmware, 7)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb.Line(0.2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	go tb.Run(ctx)
	t.Cleanup(func() { tb.Close() })

	window, fraction := time.Minute, 0.1
	nodes := make([]*api.Client, n)
	for i := range n {
		dir := t.TempDir()
		cfg := map[string]any{"version": 1, "radios": []map[string]any{{"device": tb.Path(i), "driver": driver, "preset": "ShortFast",
			"repair_every": "4s", "duty_cycle": fraction, "duty_window": window.String()}}}
		b, _ := json.Marshal(cfg)
		file := filepath.Join(dir, "lifeline.json")
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		d := startDaemon(t, bin, filepath.Join(dir, "data"), "--config", file)
		nodes[i] = &api.Client{BaseURL: d.url}
	}
	for i, c := range nodes {
		waitFor(t, 60*time.Second, fmt.Sprintf("radio %d (%s) ready", i, devices[i]), func() bool {
			st, err := c.Status(ctx)
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
		id, err := nodes[0].Send(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		sent[id] = req.Text
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, c := range nodes {
			st, err := c.Status(context.Background())
			if err != nil || len(st.Radio) != 1 {
				t.Logf("node %d: %v", i, err)
				continue
			}
			t.Logf("node %d radio: %+v", i, st.Radio[0])
		}
	})
	far := nodes[n-1]
	start := time.Now()
	waitFor(t, 3*time.Minute, "all three at the far end", func() bool {
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
	took := time.Since(start)

	budget := time.Duration(float64(window) * fraction)
	var airtime time.Duration
	frames := 0
	for i := range n {
		txs := tb.Sent(i)
		if u := testbed.MaxWindowUse(txs, window); u > budget {
			t.Errorf("board %d (%s) spent %v of airtime in one %v window, budget %v", i, devices[i], u, window, budget)
		}
		for _, tx := range txs {
			airtime += tx.Airtime
		}
		frames += len(txs)
	}
	st, err := far.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Radio[0]; r.Driver != driver || r.Received == 0 || r.Stored < 3 {
		t.Errorf("far end's radio status: %+v", r)
	}
	t.Logf("%s: all three across 4 hops in %v; %d frames, %v on air", strings.Join(devices, ","), took.Round(time.Millisecond), frames, airtime.Round(time.Millisecond))
}
