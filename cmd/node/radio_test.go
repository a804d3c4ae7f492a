package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/radio/testbed"
)

// TestRadioProcesses: two `lifeline run --radio` processes whose only
// link is a pair of simulated boards, each behind a pseudo-terminal. A
// message sent at one is read at the other, and `status` shows the radio.
func TestRadioProcesses(t *testing.T) {
	bin := buildBinary(t)
	tb, err := testbed.New(2, 3)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb.Line(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tb.Run(ctx)
	t.Cleanup(func() { tb.Close() })

	a := startDaemon(t, bin, t.TempDir(), "--radio", tb.Path(0), "--radio-preset", "ShortFast")
	b := startDaemon(t, bin, t.TempDir(), "--radio", tb.Path(1), "--radio-preset", "ShortFast", "--radio-region", "EU868")
	for _, d := range []*daemon{a, b} {
		waitFor(t, 30*time.Second, "the radio ready at "+d.url, func() bool {
			return strings.Contains(ok(t, bin, "status", "--api", d.url), " ready since ")
		})
	}
	ok(t, bin, "send", "--api", a.url, "--channel", "general", "bridge", "out", "at", "km", "12")
	waitFor(t, 60*time.Second, "the message read at the other node", func() bool {
		return strings.Contains(ok(t, bin, "read", "--api", b.url, "--channel", "general"), "bridge out at km 12")
	})
	out := ok(t, bin, "status", "--api", b.url)
	for _, want := range []string{"radio     " + tb.Path(1) + " ready", "rnode, firmware 1.86", "EU868 ShortFast", "  air     ", "  signal  last frame -95 dBm"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var st api.Status
	if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", b.url, "--json")), &st); err != nil || len(st.Radio) != 1 ||
		st.Radio[0].Stored != 1 || st.Radio[0].Router.Scheduler.Budget != 6*time.Minute {
		t.Fatalf("status --json radio: %+v %v", st.Radio, err)
	}
}
