package bridge_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/kiss"
	"lifeline/radio/lora"
	"lifeline/radio/rnode"
)

// The board as an RNode 1.86: what Reticulum's RNode host driver and real
// RNodes on the same channel expect of it.

// frames decodes what the core wrote to the host.
func frames(t *testing.T, b []byte) []kiss.Frame {
	t.Helper()
	d := kiss.NewDeframer(rnode.MaxKISS)
	fs := d.Feed(b)
	if d.BadEscape != 0 || d.TooLong != 0 {
		t.Fatalf("malformed output % x", b)
	}
	return fs
}

func commands(fs []kiss.Frame) []byte {
	var c []byte
	for _, f := range fs {
		c = append(c, f.Command)
	}
	return c
}

// ready returns a core configured by the node's session, and its chip.
func ready(t *testing.T, maxQueued int) (*bridge.Core, *chip, time.Time) {
	t.Helper()
	c := &chip{}
	core := bridge.New(c, bridge.MCUHost, maxQueued)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if ev := connect(t, rnode.NewSession(cfg), core, now); len(ev) != 1 || ev[0].Kind != rnode.EventReady {
		t.Fatalf("handshake: %+v", ev)
	}
	return core, c, now
}

func data(p []byte) []byte { return kiss.Append(nil, rnode.CmdData, p) }

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

// TestIdentity: the version is RNode's 1.86 (Reticulum refuses anything
// under 1.52), the platform RNode's nRF52 class.
func TestIdentity(t *testing.T) {
	core := bridge.New(&chip{}, bridge.MCUHost, 4096)
	fs := frames(t, core.FromHost(time.Now(), kiss.Append(kiss.Append(nil, rnode.CmdFWVersion, []byte{0}), rnode.CmdPlatform, []byte{0})))
	if len(fs) != 2 || !bytes.Equal(fs[0].Data, []byte{1, 86}) || fs[1].Data[0] != rnode.PlatformNRF52 {
		t.Fatalf("identity %+v", fs)
	}
	if major, minor := fs[0].Data[0], fs[0].Data[1]; major < 1 || major == 1 && minor < 52 {
		t.Fatalf("firmware %d.%d: Reticulum requires 1.52", major, minor)
	}
}

// TestSplitOnAir: a 300-byte DATA goes on air as two frames of at most
// 255 bytes, each behind the same header byte with the split flag; the
// second follows the first without listening again; STAT_CHTM comes after
// the second only. A frame of 254 bytes goes whole, its header's low
// nibble clear.
func TestSplitOnAir(t *testing.T) {
	core, c, now := ready(t, 4096)
	msg := pattern(300)
	if out := core.FromHost(now, data(msg)); len(out) != 0 {
		t.Fatalf("DATA answered % x", out)
	}
	core.Poll(now)
	if len(c.sent) != 1 || len(c.sent[0]) != 255 {
		t.Fatalf("first half: %d frames, %d bytes", len(c.sent), len(c.sent[0]))
	}
	now = now.Add(core.Airtime(255))
	c.busy = true // the second half does not wait for the channel: it is the same transmission
	if out := core.TxDone(now); len(out) != 0 {
		t.Fatalf("after the first half: % x", out)
	}
	if len(c.sent) != 2 || len(c.sent[1]) != 1+300-254 {
		t.Fatalf("second half: %d frames", len(c.sent))
	}
	a, b := c.sent[0], c.sent[1]
	if a[0] != b[0] || a[0]&bridge.FlagSplit == 0 || a[0]&0x0E != 0 {
		t.Fatalf("headers %#x %#x", a[0], b[0])
	}
	if joined := append(append([]byte(nil), a[1:]...), b[1:]...); !bytes.Equal(joined, msg) {
		t.Fatal("the halves do not make the frame")
	}
	now = now.Add(core.Airtime(len(b)))
	if fs := frames(t, core.TxDone(now)); len(fs) != 1 || fs[0].Command != rnode.CmdStatCHTM {
		t.Fatalf("after the frame: %v", commands(fs))
	}
	c.busy = false

	// 508 bytes, the most: two full frames. 254: one frame, not split.
	core.FromHost(now, data(pattern(508)))
	core.FromHost(now, data(pattern(254)))
	for range 3 {
		core.Poll(now)
		now = now.Add(core.Airtime(255))
		core.TxDone(now)
	}
	if len(c.sent) != 5 || len(c.sent[2]) != 255 || len(c.sent[3]) != 255 || len(c.sent[4]) != 255 {
		t.Fatalf("sent %d frames", len(c.sent))
	}
	if h := c.sent[4][0]; h&0x0F != 0 || !bytes.Equal(c.sent[4][1:], pattern(254)) {
		t.Fatalf("a 254-byte frame went with header %#x", h)
	}
	// Sequence numbers are random: eight frames do not all share one.
	seqs := map[byte]bool{}
	for range 8 {
		core.FromHost(now, data([]byte("x")))
		core.Poll(now)
		now = now.Add(time.Second)
		core.TxDone(now)
		seqs[c.sent[len(c.sent)-1][0]] = true
	}
	if len(seqs) < 2 {
		t.Fatalf("sequence numbers %v", seqs)
	}
}

// received feeds air frames to the core and returns the DATA frames the
// host gets, checking that signal statistics come before each.
func received(t *testing.T, core *bridge.Core, now time.Time, air ...[]byte) [][]byte {
	t.Helper()
	var out []byte
	for _, f := range air {
		out = append(out, core.Received(now, f, -100, 5)...)
	}
	var got [][]byte
	fs := frames(t, out)
	for i, f := range fs {
		if f.Command != rnode.CmdData {
			continue
		}
		if i < 2 || fs[i-2].Command != rnode.CmdStatRSSI || fs[i-1].Command != rnode.CmdStatSNR {
			t.Fatalf("no statistics before a frame: %v", commands(fs))
		}
		got = append(got, f.Data)
	}
	return got
}

func split(seq byte, p []byte) (a, b []byte) {
	h := seq&0xF0 | bridge.FlagSplit
	return append([]byte{h}, p[:254]...), append([]byte{h}, p[254:]...)
}

// TestJoinFromAir: the header byte is stripped; two halves with the same
// sequence number make one DATA; a first half is dropped by a frame that
// is not split, replaced by a first half of another sequence, and never
// completed by a half of another sequence.
func TestJoinFromAir(t *testing.T) {
	core, _, now := ready(t, 4096)
	msg := pattern(300)
	a, b := split(0xA0, msg)
	if got := received(t, core, now, a, b); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("joined %d frames", len(got))
	}
	if got := received(t, core, now, []byte{0x50, 'h', 'i'}); len(got) != 1 || string(got[0]) != "hi" {
		t.Fatalf("plain frame: %q", got)
	}

	// A lone first half, then a plain frame: the plain frame passes, the
	// half is dropped; its second half, when it comes, is too short to
	// be a first half and is dropped as well.
	got := received(t, core, now, a, []byte{0x70, 'x'}, b)
	if len(got) != 1 || string(got[0]) != "x" || core.Stats.Unjoined != 2 {
		t.Fatalf("lone half: %q, stats %+v", got, core.Stats)
	}
	// A first half of sequence 0xA, then one of 0xB and its second: the
	// 0xB frame is whole, the 0xA half dropped.
	other := pattern(400)
	c, d := split(0xB0, other)
	if got := received(t, core, now, a, c, d); len(got) != 1 || !bytes.Equal(got[0], other) {
		t.Fatalf("replaced half: %d frames", len(got))
	}
	// A second half of another sequence does not complete a first.
	if got := received(t, core, now, a, d); len(got) != 0 {
		t.Fatalf("mismatched halves joined: %d frames", len(got))
	}
	// A frame with nothing after the header is not a frame.
	if got := received(t, core, now, []byte{0x20}); len(got) != 0 {
		t.Fatalf("header only: %q", got)
	}
	if core.Stats.Received != 4 {
		t.Fatalf("stats %+v", core.Stats)
	}
}

// TestQueueFullDropsSilently: RNode drops what its queue cannot take,
// without an error (Reticulum would take 0x04 for a hardware failure and
// drop the interface); so do frames over 508 bytes and frames sent while
// the radio is off. None of them answers anything.
func TestQueueFullDropsSilently(t *testing.T) {
	core, _, now := ready(t, 1000)
	for range 3 {
		if out := core.FromHost(now, data(pattern(400))); len(out) != 0 {
			t.Fatalf("DATA answered % x", out)
		}
	}
	if n, b := core.Queued(); n != 2 || b != 800 || core.Stats.Dropped != 1 {
		t.Fatalf("queue %d frames %d bytes, stats %+v", n, b, core.Stats)
	}
	for _, n := range []int{0, 509, 600} {
		if out := core.FromHost(now, data(pattern(n))); len(out) != 0 {
			t.Fatalf("DATA of %d bytes answered % x", n, out)
		}
	}
	core.FromHost(now, kiss.Append(nil, rnode.CmdRadioState, []byte{rnode.RadioOff}))
	core.FromHost(now, data([]byte("radio off")))
	if n, _ := core.Queued(); n != 2 || core.Stats.Refused != 4 {
		t.Fatalf("queue %d frames, stats %+v", n, core.Stats)
	}
	// 200 frames at most, however small.
	core, _, now = ready(t, 1<<20)
	for range 250 {
		core.FromHost(now, data([]byte("s")))
	}
	if n, _ := core.Queued(); n != bridge.MaxQueuedFrames || core.Stats.Dropped != 50 {
		t.Fatalf("queue %d frames, stats %+v", n, core.Stats)
	}
}

// TestReadyOnlyWhenAsked: after transmissions the board reports STAT_CHTM
// and never READY; asked, it says whether a frame of 508 bytes fits.
func TestReadyOnlyWhenAsked(t *testing.T) {
	core, _, now := ready(t, 1200)
	var out []byte
	for range 3 {
		out = append(out, core.FromHost(now, data(pattern(100)))...)
		core.Poll(now)
		now = now.Add(core.Airtime(101))
		out = append(out, core.TxDone(now)...)
	}
	for _, f := range frames(t, out) {
		if f.Command == rnode.CmdReady {
			t.Fatal("READY unasked")
		}
	}
	ask := kiss.Append(nil, rnode.CmdReady, []byte{0x00})
	if fs := frames(t, core.FromHost(now, ask)); len(fs) != 1 || fs[0].Command != rnode.CmdReady || fs[0].Data[0] != 0x01 {
		t.Fatalf("asked with an empty queue: %+v", fs)
	}
	core.FromHost(now, data(pattern(508))) // 692 bytes left: not 508 more
	core.FromHost(now, data(pattern(200)))
	if fs := frames(t, core.FromHost(now, ask)); len(fs) != 1 || fs[0].Data[0] != 0x00 {
		t.Fatalf("asked with a full queue: %+v", fs)
	}
}

// TestChannelStats: STAT_CHTM after each transmission, its own airtime
// and the channel's load over 15 s and an hour in 1/100 %, the load
// counting frames heard too; STAT_PHYPRM and STAT_CSMA when the radio
// comes on, with RNode's preamble and slot.
func TestChannelStats(t *testing.T) {
	core, _, now := ready(t, 4096)
	air := core.Airtime(201)
	heard := core.Airtime(101)
	core.Received(now, append([]byte{0x00}, pattern(100)...), -90, 3)
	core.FromHost(now, data(pattern(200)))
	core.Poll(now)
	now = now.Add(air)
	fs := frames(t, core.TxDone(now))
	if len(fs) != 1 || fs[0].Command != rnode.CmdStatCHTM || len(fs[0].Data) != 11 {
		t.Fatalf("after a transmission: %+v", fs)
	}
	p := fs[0].Data
	u := func(i int) int { return int(binary.BigEndian.Uint16(p[i:])) }
	near := func(got int, d, window time.Duration) bool {
		want := int(float64(d) / float64(window) * 10000)
		return got >= want-1 && got <= want+1
	}
	if !near(u(0), air, bridge.ShortWindow) || !near(u(2), air, bridge.LongWindow) ||
		!near(u(4), air+heard, bridge.ShortWindow) || !near(u(6), air+heard, bridge.LongWindow) {
		t.Fatalf("airtime %d %d, load %d %d (1/100 %%) for %v sent and %v heard", u(0), u(2), u(4), u(6), air, heard)
	}
	if p[10] != 0xFF {
		t.Fatalf("interference %#x with none detected", p[10])
	}
	// A radio that reads the channel reports it, and its noise floor.
	m := &meter{rssi: -118}
	core = bridge.New(m, bridge.MCUHost, 4096)
	connect(t, rnode.NewSession(cfg), core, now)
	core.Poll(now) // samples the noise on an idle channel
	core.FromHost(now, data([]byte("x")))
	core.Poll(now)
	m.rssi = -110
	p = frames(t, core.TxDone(now.Add(time.Second)))[0].Data
	if int(p[8])-157 != -110 || int(p[9])-157 != -118 {
		t.Fatalf("rssi %d, noise floor %d", int(p[8])-157, int(p[9])-157)
	}

	// Radio on: the modem's timing. At SF11, 250 kHz a symbol is
	// 8.192 ms: 24 ms is 3 symbols, so the preamble is RNode's least, 18;
	// a slot is 12 symbols (98 ms), DIFS two slots.
	c := &chip{}
	core = bridge.New(c, bridge.MCUHost, 4096)
	fs = frames(t, core.FromHost(now, kiss.Append(kiss.Append(kiss.Append(nil,
		rnode.CmdBandwidth, binary.BigEndian.AppendUint32(nil, 250000)),
		rnode.CmdSF, []byte{11}),
		rnode.CmdRadioState, []byte{rnode.RadioOn})))
	if got := commands(fs); !bytes.Equal(got, []byte{rnode.CmdBandwidth, rnode.CmdSF, rnode.CmdRadioState, rnode.CmdStatPHYPRM, rnode.CmdStatCSMA}) {
		t.Fatalf("commands % x", got)
	}
	ph := fs[3].Data
	want := []uint16{8192, 122, 18, 147, 98, 196}
	for i, w := range want {
		if g := binary.BigEndian.Uint16(ph[2*i:]); g != w {
			t.Fatalf("STAT_PHYPRM field %d: %d, want %d (% x)", i, g, w, ph)
		}
	}
	if !bytes.Equal(fs[4].Data, []byte{1, 0, 15}) || c.set.Preamble != 18 {
		t.Fatalf("STAT_CSMA % x, chip preamble %d", fs[4].Data, c.set.Preamble)
	}
}

type meter struct {
	chip
	rssi int
}

func (m *meter) RSSI(time.Time) int { return m.rssi }

// TestPreamble: at least 18 symbols, more where 24 ms holds more, and the
// airtime the core counts is the one with that preamble.
func TestPreamble(t *testing.T) {
	for _, c := range []struct {
		bw   uint32
		sf   uint8
		want int
	}{{250000, 11, 18}, {125000, 12, 18}, {125000, 7, 24}, {250000, 7, 47}, {500000, 7, 94}, {125000, 9, 18}} {
		if got := bridge.PreambleSymbols(c.bw, c.sf, 5); got != c.want {
			t.Errorf("%d Hz SF%d: %d symbols, want %d", c.bw, c.sf, got, c.want)
		}
	}
	core, _, _ := ready(t, 4096)
	m := lora.Modem{Bandwidth: int(cfg.Bandwidth), SpreadingFactor: int(cfg.SF), CodingRate: int(cfg.CR), Preamble: 18}
	if got, want := core.Airtime(100), m.Airtime(100); got != want {
		t.Fatalf("airtime %v, want %v with 18 symbols of preamble", got, want)
	}
}

// TestBusyChannelContention: a busy channel is looked at again a slot
// later; once clear, the board waits DIFS and up to 14 slots more before
// sending.
func TestBusyChannelContention(t *testing.T) {
	core, c, now := ready(t, 4096)
	const slot = 98 * time.Millisecond // 12 symbols of 8.192 ms, in whole ms
	core.FromHost(now, data([]byte("wait")))
	c.busy = true
	if w := core.Poll(now); w != slot || len(c.sent) != 0 {
		t.Fatalf("busy: wait %v, sent %d", w, len(c.sent))
	}
	c.busy = false
	now = now.Add(slot)
	w := core.Poll(now)
	if w < 2*slot || w > 16*slot || len(c.sent) != 0 {
		t.Fatalf("clear after busy: wait %v, sent %d", w, len(c.sent))
	}
	if core.Poll(now.Add(w - time.Millisecond)); len(c.sent) != 0 {
		t.Fatal("sent before the contention ended")
	}
	if core.Poll(now.Add(w)); len(c.sent) != 1 {
		t.Fatal("not sent after the contention")
	}
}

// FuzzReceived: whatever the air brings, the core passes on well-formed
// KISS, frames of at most 508 bytes, and never more than it heard.
func FuzzReceived(f *testing.F) {
	a, b := split(0x30, pattern(400))
	f.Add(a, b, []byte{0x40, 1, 2, 3})
	f.Add([]byte{0x01}, []byte{}, []byte{0xC0, 0xDB})
	f.Add(b, a, a)
	f.Fuzz(func(t *testing.T, x, y, z []byte) {
		core := bridge.New(&chip{}, bridge.MCUHost, 4096)
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		var out []byte
		for _, p := range [][]byte{x, y, z} {
			out = append(out, core.Received(now, p[:min(len(p), 255)], -100, 0)...)
		}
		d := kiss.NewDeframer(rnode.MaxKISS)
		for _, fr := range d.Feed(out) {
			if fr.Command == rnode.CmdData && (len(fr.Data) == 0 || len(fr.Data) > bridge.MTU) {
				t.Fatalf("DATA of %d bytes", len(fr.Data))
			}
		}
		if d.BadEscape != 0 || d.TooLong != 0 {
			t.Fatal("malformed output")
		}
	})
}

// FuzzSplitRoundTrip: any DATA of 1..508 bytes that one core puts on air
// comes out of another whole.
func FuzzSplitRoundTrip(f *testing.F) {
	f.Add(pattern(300), uint64(1))
	f.Add([]byte{0xC0}, uint64(2))
	f.Add(pattern(508), uint64(3))
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		if len(msg) == 0 || len(msg) > bridge.MTU {
			return
		}
		c := &chip{}
		tx := bridge.New(c, bridge.MCUHost, 4096)
		tx.Seed(seed)
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		tx.FromHost(now, kiss.Append(nil, rnode.CmdRadioState, []byte{rnode.RadioOn}))
		tx.FromHost(now, data(msg))
		tx.Poll(now)
		tx.TxDone(now)
		rx := bridge.New(&chip{}, bridge.MCUHost, 4096)
		var out []byte
		for _, p := range c.sent {
			if len(p) > 255 {
				t.Fatalf("%d bytes on air", len(p))
			}
			out = append(out, rx.Received(now, p, -100, 0)...)
		}
		fs := frames(t, out)
		if len(fs) != 3 || !bytes.Equal(fs[2].Data, msg) {
			t.Fatalf("%d bytes in %d frames on air came out as %v", len(msg), len(c.sent), commands(fs))
		}
	})
}

// TestOverBudget: a frame longer than a whole window of the host's airtime
// limit would wait for ever; it is dropped, counted, and the next goes.
func TestOverBudget(t *testing.T) {
	core, c, now := ready(t, 4096)
	// 0.01 % of 15 s is 1.5 ms: no frame fits the short-term window.
	core.FromHost(now, kiss.Append(nil, rnode.CmdSTALock, []byte{0x00, 0x01}))
	core.FromHost(now, data(pattern(100)))
	core.FromHost(now, data(pattern(10)))
	core.Poll(now)
	if len(c.sent) != 0 || core.Stats.OverBudget != 2 {
		t.Fatalf("sent %d, stats %+v", len(c.sent), core.Stats)
	}
	core.FromHost(now, kiss.Append(nil, rnode.CmdSTALock, []byte{0x27, 0x10})) // 100 %
	core.FromHost(now, data(pattern(10)))
	if core.Poll(now); len(c.sent) != 1 {
		t.Fatalf("sent %d after the limit was lifted", len(c.sent))
	}
}
