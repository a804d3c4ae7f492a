package boards

import (
	"testing"
	"time"

	"lifeline/radio/rnode"
)

// onAir is a modulation in the terms both chip families share: what a
// receiver must match to decode a transmitter.
type onAir struct {
	Frequency, Bandwidth uint32
	SF, CR               uint8
	LDRO, Explicit, CRC  bool
	InvertIQ             bool
	Preamble             int
	Sync                 uint8 // in SX127x form: 0x12 is SX126x 0x1424
}

// hears reports whether a receiver set to r decodes frames sent with t.
// With explicit headers the coding rate and CRC travel in the header, so
// they need not match; the rest must. The two synthesisers' grids differ
// (61 Hz against 0.95 Hz), far inside LoRa's tolerance.
func (r onAir) hears(t onAir) bool {
	return absDiff(r.Frequency, t.Frequency) <= 1000 && r.Bandwidth == t.Bandwidth && r.SF == t.SF &&
		r.LDRO == t.LDRO && r.Explicit && t.Explicit && r.InvertIQ == t.InvertIQ &&
		r.Preamble == t.Preamble && r.Sync == t.Sync
}

// TestBoardsHearEachOther: a RAK4631 (SX1262) and a Feather M0 RFM95
// (SX1276), each configured by its own node with the same settings,
// program their chips so that each decodes the other, and a frame crosses
// both ways, host to host. Set apart, they do not.
func TestBoardsHearEachOther(t *testing.T) {
	c62, r62 := initChip62(t)
	c76, r76 := initChip76(t)
	rak, feather := NewLoop(r62, MCUNRF52, 4096), NewLoop(r76, MCUSAMD21, 2048)
	hRak, hFeather := newHost(t, cfg), newHost(t, cfg)
	now := time.Now()
	for _, b := range []struct {
		h *host
		l *Loop
	}{{hRak, rak}, {hFeather, feather}} {
		if evs := b.h.exchange(b.l, now, b.h.s.Start()...); len(evs) != 1 || evs[0].Kind != rnode.EventReady {
			t.Fatalf("handshake: %+v", evs)
		}
	}
	a, b := c62.modulation(), c76.modulation()
	if !a.hears(b) || !b.hears(a) || !a.CRC || !b.CRC || a.CR != cfg.CR || b.CR != cfg.CR {
		t.Fatalf("the boards would not hear each other:\nSX1262 %+v\nSX1276 %+v", a, b)
	}

	// RAK4631 to Feather.
	f, _ := hRak.s.Transmit([]byte("from the RAK4631"))
	hRak.exchange(rak, now, f)
	if len(c62.sent) != 1 {
		t.Fatalf("the SX1262 sent %q", c62.sent)
	}
	c76.hear(c62.sent[0], 0, 60, 24, false)
	c62.finish()
	if evs := hRak.exchange(rak, now); len(evs) != 1 || evs[0].Kind != rnode.EventTxDone || !hRak.sent(rnode.CmdStatCHTM) {
		t.Fatalf("RAK4631 host after sending: %+v, frames %+v", evs, hRak.last)
	}
	if evs := hFeather.exchange(feather, now); len(evs) != 1 || string(evs[0].Frame) != "from the RAK4631" || evs[0].RSSI != -97 || evs[0].SNR != 6 {
		t.Fatalf("Feather host: %+v", evs)
	}

	// Feather to RAK4631.
	f, _ = hFeather.s.Transmit([]byte("from the Feather"))
	hFeather.exchange(feather, now, f)
	if len(c76.sent) != 1 {
		t.Fatalf("the SX1276 sent %q", c76.sent)
	}
	c62.hear(c76.sent[0], 0, 180, 24, false)
	c76.finish()
	if evs := hFeather.exchange(feather, now); len(evs) != 1 || evs[0].Kind != rnode.EventTxDone || !hFeather.sent(rnode.CmdStatCHTM) {
		t.Fatalf("Feather host after sending: %+v, frames %+v", evs, hFeather.last)
	}
	if evs := hRak.exchange(rak, now); len(evs) != 1 || string(evs[0].Frame) != "from the Feather" || evs[0].RSSI != -90 || evs[0].SNR != 6 {
		t.Fatalf("RAK4631 host: %+v", evs)
	}

	// A node that sets another spreading factor is not heard.
	other := cfg
	other.SF = 10
	hOther := newHost(t, other)
	hOther.exchange(feather, now, hOther.s.Start()...)
	if c62.modulation().hears(c76.modulation()) {
		t.Fatal("SF10 heard at SF11")
	}
}
