package bridge_test

import (
	"math"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/kiss"
	"lifeline/radio/rnode"
)

// chip is an SX127x as the core sees it: the frequency lands on the
// synthesiser's 61 Hz grid, the power is capped at 20 dBm, and it records
// what it sends. The channel is busy when the test says so.
type chip struct {
	set  bridge.Settings
	sent [][]byte
	busy bool
}

func (c *chip) Apply(s bridge.Settings) bridge.Settings {
	const step = 61.03515625 // 32 MHz / 2^19
	s.Frequency = uint32(math.Round(math.Round(float64(s.Frequency)/step) * step))
	s.TxPower = min(s.TxPower, 20)
	c.set = s
	return s
}
func (c *chip) Transmit(_ time.Time, p []byte) { c.sent = append(c.sent, append([]byte(nil), p...)) }
func (c *chip) Busy(time.Time) bool            { return c.busy }

var cfg = rnode.Config{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5, LongTermLimit: 0.1}

// connect runs the host session against the core, bytes both ways, until
// the session settles; it returns the session's events.
func connect(t *testing.T, s *rnode.Session, core *bridge.Core, now time.Time) []rnode.Event {
	t.Helper()
	host := kiss.NewDeframer(rnode.MaxKISS)
	var events []rnode.Event
	out := s.Start()
	for len(out) > 0 {
		f := out[0]
		out = out[1:]
		for _, a := range host.Feed(core.FromHost(now, kiss.Append(nil, f.Command, f.Data))) {
			ev, more := s.Handle(a)
			events = append(events, ev...)
			out = append(out, more...)
		}
	}
	return events
}

// TestHostMeetsFirmware: the node's RNode session configures the bridge's
// core, each side built from its own package: the two ends of one
// protocol agree. The frequency comes back rounded to the chip's grid,
// within the host's tolerance.
func TestHostMeetsFirmware(t *testing.T) {
	c := &chip{}
	core := bridge.New(c, bridge.MCUHost, 4096)
	s := rnode.NewSession(cfg)
	now := time.Now()
	events := connect(t, s, core, now)
	if len(events) != 1 || events[0].Kind != rnode.EventReady || events[0].Platform != bridge.Platform {
		t.Fatalf("events %+v", events)
	}
	if d := int64(c.set.Frequency) - int64(cfg.Frequency); !c.set.On || c.set.SF != 11 || d == 0 || d > 100 || d < -100 {
		t.Fatalf("chip settings %+v", c.set)
	}

	// Host to air.
	f, _ := s.Transmit([]byte("to the air"))
	core.FromHost(now, kiss.Append(nil, f.Command, f.Data))
	core.Poll(now)
	if len(c.sent) != 1 || string(c.sent[0][1:]) != "to the air" || c.sent[0][0]&0x0F != 0 {
		t.Fatalf("sent %q", c.sent)
	}
	// Air to host, with statistics.
	host := kiss.NewDeframer(rnode.MaxKISS)
	var got []rnode.Event
	for _, fr := range host.Feed(core.Received(now, []byte("\x30from the air"), -97, -7.5)) {
		ev, _ := s.Handle(fr)
		got = append(got, ev...)
	}
	if len(got) != 1 || string(got[0].Frame) != "from the air" || got[0].RSSI != -97 || got[0].SNR != -7.5 {
		t.Fatalf("received %+v", got)
	}

	// A board that reboots says so, and the host configures it again.
	for _, fr := range host.Feed(core.Boot()) {
		if ev, _ := s.Handle(fr); len(ev) != 1 || ev[0].Kind != rnode.EventRebooted {
			t.Fatalf("boot: %+v", ev)
		}
	}
	if events := connect(t, s, core, now); len(events) != 1 || events[0].Kind != rnode.EventReady {
		t.Fatalf("after reboot: %+v", events)
	}

	// A chip that cannot take the asked power fails the handshake.
	strong := cfg
	strong.TxPower = 27
	if events := connect(t, rnode.NewSession(strong), bridge.New(&chip{}, bridge.MCUHost, 4096), now); len(events) != 1 || events[0].Kind != rnode.EventFailed {
		t.Fatalf("27 dBm on a 20 dBm chip: %+v", events)
	}
}

// TestCoreLimits: the queue is bounded, the channel is listened to before
// talking, and the long-term airtime limit the host set is kept.
func TestCoreLimits(t *testing.T) {
	c := &chip{}
	core := bridge.New(c, bridge.MCUHost, 600)
	s := rnode.NewSession(cfg) // 10 % long-term: 6 minutes an hour
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	connect(t, s, core, now)

	frame := make([]byte, 254) // 2.16 s at LongFast with the header byte: one frame on air
	data := func() []byte { f, _ := s.Transmit(frame); return kiss.Append(nil, f.Command, f.Data) }
	core.FromHost(now, data())
	core.FromHost(now, data())
	// A full queue drops the frame silently, as RNode does (Reticulum
	// takes error 0x04 for a hardware failure).
	if reply := core.FromHost(now, data()); len(reply) != 0 || core.Stats.Dropped != 1 {
		t.Fatalf("a third 254-byte frame in 600 bytes of queue: % x, stats %+v", reply, core.Stats)
	}
	c.busy = true
	if w := core.Poll(now); w <= 0 || len(c.sent) != 0 || core.Stats.Deferred != 1 {
		t.Fatalf("busy channel: wait %v, sent %d", w, len(c.sent))
	}
	c.busy = false
	// Send as fast as the core allows for an hour: never more than 10 %.
	var onAir time.Duration
	end := now.Add(time.Hour)
	for now.Before(end) {
		if _, n := core.Queued(); n == 0 {
			core.FromHost(now, data())
		}
		before := len(c.sent)
		w := core.Poll(now)
		if len(c.sent) > before {
			air := core.Airtime(len(frame) + 1)
			onAir += min(air, end.Sub(now)) // the part inside this hour
			now = now.Add(air)
			core.TxDone(now)
			continue
		}
		if w <= 0 {
			t.Fatal("nothing sent and no wait")
		}
		now = now.Add(w)
	}
	if limit := 6 * time.Minute; onAir > limit || onAir < limit-3*time.Second {
		t.Fatalf("%v on air in an hour, the limit is %v", onAir, limit)
	}
}
