package testbed

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strconv"
	"testing"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
	"lifeline/radio/rnode"
)

// quiet is a radio alone on its air: it records what it sends, and the
// channel is busy when the test says so.
type quiet struct {
	busy bool
	sent []Transmission
}

func (q *quiet) Transmit(now time.Time, d time.Duration, p []byte) {
	q.sent = append(q.sent, Transmission{Start: now, Airtime: d, Frame: append([]byte(nil), p...)})
}
func (q *quiet) Busy(time.Time) bool { return q.busy }

// fast is a modem whose frames take a tenth of a second at most, for
// tests in real time: SF7 at 500 kHz.
var fast = rnode.Config{Frequency: 869525000, Bandwidth: 500000, TxPower: 14, SF: 7, CR: 5}

// host runs the node's RNode session against a device, in memory, until
// both fall silent; it returns the session's events and every frame the
// device wrote.
func host(t *testing.T, s *rnode.Session, dev Device, now time.Time, frames ...kiss.Frame) ([]rnode.Event, []kiss.Frame) {
	t.Helper()
	dec := kiss.NewDeframer(rnode.MaxKISS)
	var events []rnode.Event
	var seen []kiss.Frame
	for range 100 {
		if len(frames) == 0 {
			return events, seen
		}
		var in []byte
		for _, f := range frames {
			in = kiss.Append(in, f.Command, f.Data)
		}
		frames = nil
		for _, f := range dec.Feed(dev.FromHost(now, in)) {
			seen = append(seen, f)
			ev, more := s.Handle(f)
			events = append(events, ev...)
			frames = append(frames, more...)
		}
	}
	t.Fatal("the session and the device never fall silent")
	return nil, nil
}

func decode(t *testing.T, b []byte) []kiss.Frame {
	t.Helper()
	d := kiss.NewDeframer(rnode.MaxKISS)
	fs := d.Feed(b)
	if d.BadEscape+d.TooLong != 0 {
		t.Fatalf("malformed % x", b)
	}
	return fs
}

func has(fs []kiss.Frame, cmd byte) bool {
	for _, f := range fs {
		if f.Command == cmd {
			return true
		}
	}
	return false
}

// TestRNodeHandshake: the node's session detects and configures the
// simulated RNode: firmware 1.86 on an ESP32, the modem's timing after
// the radio comes on, no READY; asked, READY says whether a 508-byte
// frame fits; a board whose radio does not start says ERROR_INITRADIO.
func TestRNodeHandshake(t *testing.T) {
	r := &quiet{}
	dev := RNodeBoard(RNodeOptions{})(r)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if fs := decode(t, dev.Boot(now)); len(fs) != 1 || fs[0].Command != rnode.CmdReset || fs[0].Data[0] != rnode.Rebooted {
		t.Fatalf("boot: %+v", fs)
	}
	s := rnode.NewSession(fast)
	events, seen := host(t, s, dev, now, s.Start()...)
	if len(events) != 1 || events[0].Kind != rnode.EventReady || events[0].Platform != rnode.PlatformESP32 || events[0].Firmware != [2]byte{1, 86} {
		t.Fatalf("events %+v", events)
	}
	if !has(seen, rnode.CmdStatPHYPRM) || !has(seen, rnode.CmdStatCSMA) || has(seen, rnode.CmdReady) || !dev.Listening() {
		t.Fatalf("frames %+v", seen)
	}
	for _, f := range seen {
		if f.Command == rnode.CmdStatPHYPRM {
			// 256 µs symbols: 24 ms is 94 of them.
			if got := binary.BigEndian.Uint16(f.Data[4:]); len(f.Data) != 12 || got != 94 {
				t.Fatalf("STAT_PHYPRM % x: preamble %d", f.Data, got)
			}
		}
	}
	ask := kiss.Append(nil, rnode.CmdReady, []byte{0})
	if fs := decode(t, dev.FromHost(now, ask)); len(fs) != 1 || fs[0].Data[0] != 1 {
		t.Fatalf("READY asked: %+v", fs)
	}

	dead := RNodeBoard(RNodeOptions{RadioFails: true})(&quiet{})
	s = rnode.NewSession(fast)
	events, seen = host(t, s, dead, now, s.Start()...)
	if !has(seen, rnode.CmdError) || dead.Listening() || events[len(events)-1].Kind != rnode.EventFailed {
		t.Fatalf("radio that fails: events %+v, frames %+v", events, seen)
	}
	for _, f := range seen {
		if f.Command == rnode.CmdError && f.Data[0] != rnode.ErrorInitRadio {
			t.Fatalf("error %#x, want 0x01 (init radio)", f.Data[0])
		}
	}
}

// ready returns a simulated RNode configured by the node's session.
func ready(t *testing.T, opts RNodeOptions, cfg rnode.Config) (Device, *quiet, *rnode.Session, time.Time) {
	t.Helper()
	r := &quiet{}
	dev := RNodeBoard(opts)(r)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s := rnode.NewSession(cfg)
	if ev, _ := host(t, s, dev, now, s.Start()...); len(ev) != 1 || ev[0].Kind != rnode.EventReady {
		t.Fatalf("handshake: %+v", ev)
	}
	return dev, r, s, now
}

func dataFrame(p []byte) []byte { return kiss.Append(nil, rnode.CmdData, p) }

// TestRNodeStatistics: an ESP32 RNode reports STAT_CHTM after every
// transmission (after both halves of a split frame), with its airtime,
// and unasked about once a second; an AVR one reports nothing.
func TestRNodeStatistics(t *testing.T) {
	for _, platform := range []byte{RNodeESP32, RNodeAVR} {
		dev, r, _, now := ready(t, RNodeOptions{Platform: platform}, fast)
		dev.FromHost(now, dataFrame(make([]byte, 400)))
		dev.Poll(now)
		if len(r.sent) != 1 || len(r.sent[0].Frame) != 255 || r.sent[0].Frame[0]&0x01 == 0 {
			t.Fatalf("first half %+v", r.sent)
		}
		now = now.Add(r.sent[0].Airtime)
		if out := dev.TxDone(now); len(out) != 0 || len(r.sent) != 2 {
			t.Fatalf("after the first half: % x, %d sent", out, len(r.sent))
		}
		now = now.Add(r.sent[1].Airtime)
		fs := decode(t, dev.TxDone(now))
		periodic := decode(t, dev.Poll(now.Add(statsEvery)))
		if platform == RNodeAVR {
			if len(fs)+len(periodic) != 0 {
				t.Fatalf("an AVR RNode reported %+v %+v", fs, periodic)
			}
			continue
		}
		if len(periodic) != 1 || periodic[0].Command != rnode.CmdStatCHTM {
			t.Fatalf("a second later: %+v", periodic)
		}
		if again := decode(t, dev.Poll(now.Add(statsEvery+time.Millisecond))); len(again) != 0 {
			t.Fatalf("another report a millisecond later: %+v", again)
		}
		if len(fs) != 1 || fs[0].Command != rnode.CmdStatCHTM || len(fs[0].Data) != 11 {
			t.Fatalf("after the frame: %+v", fs)
		}
		air := r.sent[0].Airtime + r.sent[1].Airtime
		want := int(float64(air) / float64(15*time.Second) * 10000)
		if got := int(binary.BigEndian.Uint16(fs[0].Data)); got < want-1 || got > want+1 || fs[0].Data[10] != 0xFF {
			t.Fatalf("short-term airtime %d/10000, want %d (%v)", got, want, air)
		}
	}
}

// TestRNodeAirtimeLock: with a short-term lock of 10 % (1.5 s in 15 s),
// frames are held back until they fit, and no 15 s holds more.
func TestRNodeAirtimeLock(t *testing.T) {
	cfg := fast
	cfg.ShortTermLimit = 0.10
	dev, r, _, now := ready(t, RNodeOptions{}, cfg)
	start := now
	for range 30 {
		dev.FromHost(now, dataFrame(make([]byte, 200)))
	}
	for now.Before(start.Add(time.Minute)) {
		n := len(r.sent)
		dev.Poll(now)
		if len(r.sent) > n {
			now = now.Add(r.sent[n].Airtime)
			dev.TxDone(now)
			continue
		}
		now = now.Add(5 * time.Millisecond)
	}
	if used := MaxWindowUse(r.sent, 15*time.Second); used > 1500*time.Millisecond {
		t.Fatalf("%v on air in 15 s, the lock is 1.5 s", used)
	}
	// 14 frames of 101 ms fit 1.5 s and go at once; the 15th waits until
	// the window ending with it has let go of enough of the first, some
	// 15 s later; all 30 are out within the minute.
	per := r.sent[0].Airtime
	fit := int(1500 * time.Millisecond / per)
	if len(r.sent) != 30 || r.sent[fit-1].Start.Sub(start) > 2*time.Second || r.sent[fit].Start.Sub(start) < 15*time.Second-2*per {
		t.Fatalf("frame %d at %v, frame %d at %v, %d in the minute", fit, r.sent[fit-1].Start.Sub(start), fit+1, r.sent[fit].Start.Sub(start), len(r.sent))
	}
}

// TestRNodeOverBudget: a frame no window of the lock can hold is dropped,
// not held for ever, and the long-term limit's leeway does not let it by.
func TestRNodeOverBudget(t *testing.T) {
	cfg := fast
	cfg.ShortTermLimit, cfg.LongTermLimit = 0.0001, 0.5 // 1.5 ms in 15 s
	dev, r, _, now := ready(t, RNodeOptions{}, cfg)
	dev.FromHost(now, dataFrame(make([]byte, 10)))
	dev.Poll(now)
	dev.Poll(now)
	if len(r.sent) != 0 {
		t.Fatalf("%d frames sent over the lock", len(r.sent))
	}
	dev.FromHost(now, kiss.Append(nil, rnode.CmdSTALock, []byte{0x27, 0x10})) // 100 %
	dev.FromHost(now, dataFrame(make([]byte, 10)))
	if dev.Poll(now); len(r.sent) != 1 {
		t.Fatalf("%d frames sent once the lock was lifted (the first dropped)", len(r.sent))
	}
}

// TestRNodeQueue: 6144 bytes or 200 frames; more is dropped without an
// answer, and so is anything over 508 bytes or sent while the radio is
// off.
func TestRNodeQueue(t *testing.T) {
	dev, r, _, now := ready(t, RNodeOptions{}, fast)
	var out []byte
	for range 13 { // 12 fit: 6096 bytes
		out = append(out, dev.FromHost(now, dataFrame(make([]byte, 508)))...)
	}
	out = append(out, dev.FromHost(now, dataFrame(make([]byte, 509)))...)
	if len(out) != 0 {
		t.Fatalf("answered % x", out)
	}
	n := 0
	for ; n < 100; n++ {
		before := len(r.sent)
		dev.Poll(now)
		if len(r.sent) == before {
			break
		}
		now = now.Add(time.Second)
		dev.TxDone(now)
		dev.TxDone(now) // the second half
	}
	if n != 12 {
		t.Fatalf("%d frames sent, 12 fit the queue", n)
	}
	dev.FromHost(now, kiss.Append(nil, rnode.CmdRadioState, []byte{rnode.RadioOff}))
	dev.FromHost(now, dataFrame([]byte("off")))
	dev.FromHost(now, kiss.Append(nil, rnode.CmdRadioState, []byte{rnode.RadioOn}))
	if dev.Poll(now); len(r.sent) != 24 {
		t.Fatalf("a frame sent while the radio was off went on air")
	}
}

// TestRNodeJoin: the header byte is stripped, split halves are joined,
// and, as RNode, a lone half waits for the next split frame of its
// sequence number and is dropped by a frame that is not split.
func TestRNodeJoin(t *testing.T) {
	dev, _, _, now := ready(t, RNodeOptions{}, fast)
	msg := bytes.Repeat([]byte("0123456789"), 40)
	a, b := append([]byte{0x71}, msg[:254]...), append([]byte{0x71}, msg[254:]...)
	var got [][]byte
	deliver := func(frames ...[]byte) {
		got = nil
		for _, f := range frames {
			for _, k := range decode(t, dev.Received(now, f, -100, 2.5)) {
				if k.Command == rnode.CmdData {
					got = append(got, k.Data)
				}
			}
		}
	}
	if deliver(a, b); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("joined %d frames", len(got))
	}
	if deliver(a, []byte{0x40, 'x'}, b); len(got) != 1 || string(got[0]) != "x" {
		t.Fatalf("a lone half and a plain frame: %q", got)
	}
	// b waits as a first half now: it takes the next split frame of
	// sequence 7, RNode's documented rule, however wrong the result.
	if deliver(a); len(got) != 1 || len(got[0]) != len(msg)-254+254 {
		t.Fatalf("after a lone second half: %d frames", len(got))
	}
}

// slowdown stretches the waits of the tests that run in real time where
// everything is slower (LIFELINE_TEST_SLOWDOWN, as elsewhere).
func slowdown(d time.Duration) time.Duration {
	if f, err := strconv.Atoi(os.Getenv("LIFELINE_TEST_SLOWDOWN")); err == nil && f > 1 {
		return d * time.Duration(f)
	}
	return d
}

// driver runs the node's RNode driver on board i of tb until the test
// ends, and waits for it to be ready.
func driver(t *testing.T, tb *Testbed, i int) *rnode.Driver {
	t.Helper()
	d := rnode.NewDriver(rnode.DriverConfig{Path: tb.Path(i), Radio: fast, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(slowdown(10 * time.Second))
	for d.Status().State != "ready" {
		if time.Now().After(deadline) {
			t.Fatalf("board %d: %+v", i, d.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d
}

func receive(t *testing.T, d *rnode.Driver, what string) link.Packet {
	t.Helper()
	select {
	case p := <-d.Received():
		return p
	case <-time.After(slowdown(10 * time.Second)):
		t.Fatalf("%s: nothing received", what)
	}
	return link.Packet{}
}

// TestSharedAir: on one simulated air, through pseudo-terminals and the
// node's RNode driver: two RNodes carry a 400-byte frame split in two and
// joined; our board and an RNode carry frames both ways, short and split,
// because both put RNode's header byte before every frame.
func TestSharedAir(t *testing.T) {
	tb, err := NewWith([]Firmware{RNodeBoard(RNodeOptions{Seed: 1}), RNodeBoard(RNodeOptions{Seed: 2}), LifelineBoard}, 3)
	if err != nil {
		t.Skipf("no testbed here: %v", err)
	}
	defer tb.Close()
	tb.Link(0, 1, 0)
	tb.Link(1, 2, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tb.Run(ctx)
	rnodeA, rnodeB, ours := driver(t, tb, 0), driver(t, tb, 1), driver(t, tb, 2)

	long := bytes.Repeat([]byte("abcdefghij"), 40)
	rnodeA.Send(long)
	if p := receive(t, rnodeB, "RNode to RNode"); !bytes.Equal(p.Payload, long) || p.RSSI != -95 {
		t.Fatalf("RNode to RNode: %d bytes, rssi %d", len(p.Payload), p.RSSI)
	}
	if sent := tb.Sent(0); len(sent) != 2 || sent[0].Frame[0] != sent[1].Frame[0] || sent[0].Frame[0]&0x01 == 0 || len(sent[0].Frame) != 255 {
		t.Fatalf("on air: %d frames", len(sent))
	}
	select { // board 2 does not hear board 0
	case p := <-ours.Received():
		t.Fatalf("board 2 heard %d bytes from board 0", len(p.Payload))
	default:
	}

	for _, msg := range [][]byte{[]byte("from our board"), bytes.Repeat([]byte("L"), 300)} {
		ours.Send(msg)
		if p := receive(t, rnodeB, "ours to RNode"); !bytes.Equal(p.Payload, msg) {
			t.Fatalf("our board to the RNode: %q", p.Payload)
		}
	}
	for _, msg := range [][]byte{[]byte("from the RNode"), bytes.Repeat([]byte("R"), 508)} {
		rnodeB.Send(msg)
		if p := receive(t, ours, "RNode to ours"); !bytes.Equal(p.Payload, msg) {
			t.Fatalf("the RNode to our board: %q", p.Payload)
		}
		receive(t, rnodeA, "RNode to RNode") // board 0 hears board 1 too
	}
}

// TestOurBoardMatchesRNode: configured alike and sending alike, our board
// and the simulated RNode report the same modem timing (STAT_PHYPRM,
// STAT_CSMA) and the same airtime (STAT_CHTM), and put frames of the same
// lengths on air with the same split flags: two readings of RNode, one
// the other's check.
func TestOurBoardMatchesRNode(t *testing.T) {
	for _, bw := range []uint32{125000, 250000, 500000} {
		for sf := uint8(7); sf <= 12; sf++ {
			cfg := fast
			cfg.Bandwidth, cfg.SF = bw, sf
			type run struct {
				stats []kiss.Frame
				air   []Transmission
			}
			var runs [2]run
			for i, fw := range []Firmware{LifelineBoard, RNodeBoard(RNodeOptions{})} {
				r := &quiet{}
				dev := fw(r)
				now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
				s := rnode.NewSession(cfg)
				_, seen := host(t, s, dev, now, s.Start()...)
				for _, f := range seen {
					if f.Command == rnode.CmdStatPHYPRM || f.Command == rnode.CmdStatCSMA {
						runs[i].stats = append(runs[i].stats, f)
					}
				}
				for _, n := range []int{1, 254, 255, 508} {
					dev.FromHost(now, dataFrame(make([]byte, n)))
					dev.Poll(now)
					for k := len(runs[i].air); k < len(r.sent); k++ { // each frame on air, the second half started by the first's end
						now = now.Add(r.sent[k].Airtime)
						runs[i].air = r.sent[:k+1]
						for _, f := range decode(t, dev.TxDone(now)) {
							if f.Command == rnode.CmdStatCHTM {
								runs[i].stats = append(runs[i].stats, kiss.Frame{Command: f.Command, Data: f.Data[:4]}) // the airtime
							}
						}
					}
				}
			}
			ours, ref := runs[0], runs[1]
			if len(ours.stats) != len(ref.stats) || len(ours.air) != len(ref.air) || len(ref.air) != 6 {
				t.Fatalf("%d Hz SF%d: %d and %d statistics, %d and %d frames on air", bw, sf, len(ours.stats), len(ref.stats), len(ours.air), len(ref.air))
			}
			for i := range ours.stats {
				a, b := ours.stats[i], ref.stats[i]
				if a.Command != b.Command || !bytes.Equal(a.Data, b.Data) {
					t.Errorf("%d Hz SF%d: ours %#x % x, RNode %#x % x", bw, sf, a.Command, a.Data, b.Command, b.Data)
				}
			}
			for i := range ours.air {
				a, b := ours.air[i], ref.air[i]
				if len(a.Frame) != len(b.Frame) || a.Frame[0]&0x0F != b.Frame[0]&0x0F || a.Airtime != b.Airtime {
					t.Errorf("%d Hz SF%d frame %d: ours %d bytes %#x %v, RNode %d bytes %#x %v", bw, sf, i, len(a.Frame), a.Frame[0], a.Airtime, len(b.Frame), b.Frame[0], b.Airtime)
				}
			}
		}
	}
}

// FuzzRNodeDevice: whatever the host writes and the air brings, the
// simulated RNode answers in well-formed KISS and never passes on more
// than 508 bytes.
func FuzzRNodeDevice(f *testing.F) {
	s := rnode.NewSession(fast)
	var start []byte
	for _, fr := range s.Start() {
		start = kiss.Append(start, fr.Command, fr.Data)
	}
	f.Add(start, []byte{0x71, 1, 2}, []byte{0x71, 3})
	f.Add([]byte{0xC0, 0x06, 0x01, 0xC0, 0xC0, 0x00, 0xDB, 0xDC, 0xC0, 0xC0, 0x0F, 0xC0}, []byte{0x00}, []byte{})
	f.Fuzz(func(t *testing.T, in, airA, airB []byte) {
		r := &quiet{}
		dev := RNodeBoard(RNodeOptions{})(r)
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		d := kiss.NewDeframer(rnode.MaxKISS)
		var frames []kiss.Frame
		frames = append(frames, d.Feed(dev.FromHost(now, kiss.Append(nil, rnode.CmdRadioState, []byte{1})))...)
		frames = append(frames, d.Feed(dev.FromHost(now, in))...)
		for _, p := range [][]byte{airA, airB} {
			frames = append(frames, d.Feed(dev.Received(now, p[:min(len(p), 255)], -100, 1))...)
		}
		for range 3 {
			dev.Poll(now)
			now = now.Add(time.Minute)
			frames = append(frames, d.Feed(dev.TxDone(now))...)
		}
		if d.BadEscape+d.TooLong != 0 {
			t.Fatal("malformed output")
		}
		for _, fr := range frames {
			if fr.Command == rnode.CmdData && len(fr.Data) > 508 {
				t.Fatalf("%d bytes to the host", len(fr.Data))
			}
		}
		for _, x := range r.sent {
			if len(x.Frame) > 255 {
				t.Fatalf("%d bytes on air", len(x.Frame))
			}
		}
	})
}

// TestRNodesDrawApart: RNode boards made alike draw their own numbers on
// one testbed (contention slots, header sequence numbers), as real boards
// do; drawing the same, neighbours would pick the same slot after every
// busy channel and collide.
func TestRNodesDrawApart(t *testing.T) {
	fw := RNodeBoard(RNodeOptions{})
	tb, err := NewWith([]Firmware{fw, fw}, 1)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer tb.Close()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	a, b := tb.boards[0].dev.(*rnodeDevice), tb.boards[1].dev.(*rnodeDevice)
	if a.rand.Uint64() == b.rand.Uint64() && a.rand.Uint64() == b.rand.Uint64() {
		t.Fatal("two boards draw the same numbers")
	}
}
