package boards

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/kiss"
	"lifeline/radio/rnode"
)

var cfg = rnode.Config{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5, LongTermLimit: 0.1}

// fakeRadio is a transceiver that applies whatever it is asked, ends each
// transmission at the next Check, and hands over the frames a test puts
// in its inbox. It is safe for Run's goroutine and a test's at once.
type fakeRadio struct {
	mu        sync.Mutex
	set       bridge.Settings
	sent      [][]byte
	sending   bool
	busy      bool
	busyCalls int
	inbox     [][]byte
}

func (f *fakeRadio) Apply(s bridge.Settings) bridge.Settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set = s
	return s
}

func (f *fakeRadio) Transmit(_ time.Time, p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, append([]byte(nil), p...))
	f.sending = true
}

func (f *fakeRadio) Busy(time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busyCalls++
	return f.busy
}

func (f *fakeRadio) Check(time.Time) Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sending {
		f.sending = false
		return Event{Kind: TxDone}
	}
	if len(f.inbox) > 0 {
		p := f.inbox[0]
		f.inbox = f.inbox[1:]
		return Event{Kind: RxDone, Frame: p, RSSI: -97, SNR: -7.5}
	}
	return Event{}
}

func (f *fakeRadio) hear(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inbox = append(f.inbox, []byte(p))
}

func (f *fakeRadio) sentFrames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.sent {
		out = append(out, string(p))
	}
	return out
}

// host is the node's side of the serial line for Step-driven tests: its
// RNode session, and a decoder for what the board writes.
type host struct {
	t   *testing.T
	s   *rnode.Session
	dec *kiss.Deframer
	// last is every frame the board wrote in the last exchange.
	last []kiss.Frame
}

// sent reports whether the board wrote a frame with command cmd in the
// last exchange.
func (h *host) sent(cmd byte) bool {
	for _, f := range h.last {
		if f.Command == cmd {
			return true
		}
	}
	return false
}

func newHost(t *testing.T, c rnode.Config) *host {
	return &host{t: t, s: rnode.NewSession(c), dec: kiss.NewDeframer(rnode.MaxKISS)}
}

func encode(fs ...kiss.Frame) []byte {
	var b []byte
	for _, f := range fs {
		b = kiss.Append(b, f.Command, f.Data)
	}
	return b
}

// exchange sends frames to the board at now and keeps answering what it
// says until it falls silent (two quiet steps: what a step starts, such
// as a transmission, ends at the next at the earliest); it returns the
// session's events.
func (h *host) exchange(l *Loop, now time.Time, frames ...kiss.Frame) []rnode.Event {
	h.t.Helper()
	var events []rnode.Event
	in := encode(frames...)
	quiet := 0
	h.last = nil
	for range 100 {
		out := l.Step(now, in)
		in = nil
		for _, f := range h.dec.Feed(out) {
			h.last = append(h.last, f)
			ev, more := h.s.Handle(f)
			events = append(events, ev...)
			in = append(in, encode(more...)...)
		}
		if quiet++; len(in) > 0 || len(out) > 0 {
			quiet = 0
		}
		if quiet == 2 {
			return events
		}
	}
	h.t.Fatal("the board and the host never fall silent")
	return nil
}

func kinds(evs []rnode.Event) []rnode.EventKind {
	var k []rnode.EventKind
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return k
}

// TestStepHostMeetsBoard: the node's RNode session configures a board
// through the loop and exchanges a frame each way; the board says it is
// a Lifeline bridge on an nRF52.
func TestStepHostMeetsBoard(t *testing.T) {
	radio := &fakeRadio{}
	l := NewLoop(radio, MCUNRF52, 4096)
	h := newHost(t, cfg)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

	evs := h.exchange(l, now, h.s.Start()...)
	if len(evs) != 1 || evs[0].Kind != rnode.EventReady || evs[0].Platform != bridge.Platform || evs[0].MCU != MCUNRF52 {
		t.Fatalf("handshake: %+v", evs)
	}
	if !radio.set.On || radio.set.SF != 11 || radio.set.Frequency != cfg.Frequency {
		t.Fatalf("radio settings %+v", radio.set)
	}

	f, err := h.s.Transmit([]byte("to the air"))
	if err != nil {
		t.Fatal(err)
	}
	evs = h.exchange(l, now, f)
	if got := radio.sentFrames(); len(got) != 1 || got[0][1:] != "to the air" {
		t.Fatalf("sent %q", got)
	}
	// The end of the transmission is STAT_CHTM, never READY (RNode 1.86).
	if len(evs) != 1 || evs[0].Kind != rnode.EventTxDone || !h.sent(rnode.CmdStatCHTM) || h.sent(rnode.CmdReady) {
		t.Fatalf("after sending: %v, frames %+v", kinds(evs), h.last)
	}

	radio.hear("\x00from the air") // behind RNode's header byte
	evs = h.exchange(l, now)
	if len(evs) != 1 || evs[0].Kind != rnode.EventReceived || string(evs[0].Frame) != "from the air" ||
		evs[0].RSSI != -97 || evs[0].SNR != -7.5 {
		t.Fatalf("received %+v", evs)
	}
}

// TestStepPollsWhenAsked: with the channel busy the core asks to be polled
// again a CSMA slot later (12 symbols: 98 ms at SF11, 250 kHz), and the
// loop does so then, not at every step; once the channel is clear the
// core waits out its contention (DIFS, two slots, and up to 14 more) and
// looks once more before sending.
func TestStepPollsWhenAsked(t *testing.T) {
	radio := &fakeRadio{}
	l := NewLoop(radio, MCUNRF52, 4096)
	h := newHost(t, cfg)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	h.exchange(l, now, h.s.Start()...)
	const slot = 98 * time.Millisecond

	radio.busy = true
	f, _ := h.s.Transmit([]byte("wait for it"))
	l.Step(now, encode(f))
	if radio.busyCalls != 1 || len(radio.sent) != 0 {
		t.Fatalf("busy channel: %d checks, %d sent", radio.busyCalls, len(radio.sent))
	}
	for d := time.Millisecond; d < slot; d += 7 * time.Millisecond {
		l.Step(now.Add(d), nil)
	}
	if radio.busyCalls != 1 {
		t.Fatalf("polled %d times before the core asked", radio.busyCalls)
	}
	radio.busy = false
	l.Step(now.Add(slot), nil)
	if radio.busyCalls != 2 || len(radio.sent) != 0 {
		t.Fatalf("the channel just cleared: %d checks, %d sent", radio.busyCalls, len(radio.sent))
	}
	var at time.Duration
	for d := slot; d < 18*slot && len(radio.sent) == 0; d += time.Millisecond {
		l.Step(now.Add(d), nil)
		at = d
	}
	if at < 3*slot || radio.busyCalls != 3 || len(radio.sent) != 1 || l.Stats().Deferred != 1 {
		t.Fatalf("after the contention: sent at %v, %d checks, %d sent, stats %+v", at, radio.busyCalls, len(radio.sent), l.Stats())
	}
}

// TestRunOverPipe: Run carries the protocol over a byte stream, as it
// does over USB on a board: the board announces itself, the host
// configures it, and a frame goes each way.
func TestRunOverPipe(t *testing.T) {
	toBoard, fromHost := io.Pipe()
	toHost, fromBoard := io.Pipe()
	radio := &fakeRadio{}
	l := NewLoop(radio, MCUNRF52, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, toBoard, fromBoard, SystemClock{}) }()

	frames := make(chan kiss.Frame, 64)
	go func() {
		dec := kiss.NewDeframer(rnode.MaxKISS)
		buf := make([]byte, 512)
		for {
			n, err := toHost.Read(buf)
			for _, f := range dec.Feed(buf[:n]) {
				frames <- f
			}
			if err != nil {
				close(frames)
				return
			}
		}
	}()

	s := rnode.NewSession(cfg)
	send := func(fs ...kiss.Frame) {
		if _, err := fromHost.Write(encode(fs...)); err != nil {
			t.Errorf("write to board: %v", err)
		}
	}
	// waitUntil answers the board until a frame from it, or an event of
	// the session's, meets done.
	waitUntil := func(what string, done func(kiss.Frame, rnode.Event) bool) rnode.Event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case f, ok := <-frames:
				if !ok {
					t.Fatalf("board output ended waiting for %s", what)
				}
				if done(f, rnode.Event{}) {
					return rnode.Event{}
				}
				evs, more := s.Handle(f)
				send(more...)
				for _, ev := range evs {
					if done(kiss.Frame{}, ev) {
						return ev
					}
				}
			case <-timeout:
				t.Fatalf("no %s", what)
			}
		}
	}
	waitFor := func(k rnode.EventKind) rnode.Event {
		t.Helper()
		return waitUntil(fmt.Sprintf("event %d", k), func(_ kiss.Frame, ev rnode.Event) bool { return ev.Kind == k })
	}

	// The board's first words are its boot notice; the session answers
	// it by starting over, as it would after a reset.
	waitFor(rnode.EventRebooted)
	if ev := waitFor(rnode.EventReady); ev.MCU != MCUNRF52 {
		t.Fatalf("ready: %+v", ev)
	}
	f, err := s.Transmit([]byte("over the pipe"))
	if err != nil {
		t.Fatal(err)
	}
	send(f)
	waitUntil("STAT_CHTM", func(f kiss.Frame, _ rnode.Event) bool { return f.Command == rnode.CmdStatCHTM })
	if got := radio.sentFrames(); len(got) != 1 || got[0][1:] != "over the pipe" {
		t.Fatalf("sent %q", got)
	}
	radio.hear("\x00and back")
	if ev := waitFor(rnode.EventReceived); string(ev.Frame) != "and back" || ev.RSSI != -97 {
		t.Fatalf("received %+v", ev)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	fromHost.Close() // ends the reader goroutine's blocked Read
	toHost.Close()
}

// TestRunStopsWhenTheLineFails: a serial line that fails ends Run with
// its error.
func TestRunStopsWhenTheLineFails(t *testing.T) {
	l := NewLoop(&fakeRadio{}, MCUNRF52, 4096)
	err := l.Run(context.Background(), bytes.NewReader(nil), io.Discard, SystemClock{})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Run on a closed line: %v", err)
	}
}

type port struct{ b []byte }

func (p *port) Buffered() int { return len(p.b) }
func (p *port) ReadByte() (byte, error) {
	if len(p.b) == 0 {
		return 0, errors.New("empty")
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c, nil
}

func TestPortReader(t *testing.T) {
	p := &port{b: []byte("hello")}
	r := PortReader(p)
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil || string(buf) != "hel" {
		t.Fatalf("first read: %d %v %q", n, err, buf[:n])
	}
	if n, err := r.Read(buf); n != 2 || err != nil || string(buf[:n]) != "lo" {
		t.Fatalf("second read: %d %v %q", n, err, buf[:n])
	}
	if n, err := r.Read(buf); n != 0 || err != nil {
		t.Fatalf("nothing received: %d %v, want 0 and no error", n, err)
	}
}

// fakeClock advances by what is slept and ends ctx after a number of
// sleeps.
type fakeClock struct {
	now    time.Time
	sleeps int
	stop   int
	cancel context.CancelFunc
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(d time.Duration) {
	c.now = c.now.Add(d)
	if c.sleeps++; c.sleeps == c.stop {
		c.cancel()
	}
}

func TestHalt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeClock{stop: 25, cancel: cancel}
	var out bytes.Buffer
	var blinks []bool
	Halt(ctx, &out, func(on bool) { blinks = append(blinks, on) }, clock, errors.New("no radio"))
	want := "lifeline bridge: no radio\r\n"
	if out.String() != want+want+want {
		t.Fatalf("wrote %q, want the reason once a second", out.String())
	}
	if len(blinks) != 25 || !blinks[0] || blinks[1] {
		t.Fatalf("led %v", blinks)
	}
}

// FuzzStep: whatever arrives on the serial line, the loop does not panic
// and everything it writes is well-formed KISS.
func FuzzStep(f *testing.F) {
	f.Add(encode(rnode.NewSession(cfg).Start()...))
	f.Add([]byte{0xC0, 0x00, 0xDB, 0xDC, 0xC0, 0xC0, 0x06, 0x01, 0xC0})
	f.Fuzz(func(t *testing.T, in []byte) {
		radio := &fakeRadio{}
		l := NewLoop(radio, MCUNRF52, 1024)
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		dec := kiss.NewDeframer(rnode.MaxKISS)
		for i := 0; len(in) > 0; i++ {
			n := min(len(in), 1+i%7)
			radio.hear("x")
			dec.Feed(l.Step(now.Add(time.Duration(i)*time.Second), in[:n]))
			in = in[n:]
		}
		if dec.BadEscape != 0 || dec.TooLong != 0 {
			t.Fatalf("malformed output: %d bad escapes, %d too long", dec.BadEscape, dec.TooLong)
		}
	})
}
