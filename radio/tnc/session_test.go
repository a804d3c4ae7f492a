package tnc

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"lifeline/radio/kiss"
)

// airtime is a modem where every byte costs a millisecond on top of a
// 100 ms preamble and header: easy to add up.
func airtime(n int) time.Duration { return 100*time.Millisecond + time.Duration(n)*time.Millisecond }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func kinds(events []Event) []EventKind {
	var out []EventKind
	for _, ev := range events {
		out = append(out, ev.Kind)
	}
	return out
}

func TestStartSetsTxDelayZero(t *testing.T) {
	s := NewSession(airtime, 115200)
	if got, want := s.Start(), []byte{kiss.FEND, CmdTxDelay, 0x00, kiss.FEND}; !bytes.Equal(got, want) {
		t.Fatalf("start % x, want % x", got, want)
	}
}

// TestEstimate: a plain TNC says nothing; the session hands it one frame,
// waits for the line, the airtime and the margin (and, for the first
// frame, the probe for TxDone), then takes the next.
func TestEstimate(t *testing.T) {
	s := NewSession(airtime, 9600)
	payload := []byte{0xC0, 'a', 0xDB}
	frame, err := s.Transmit(t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xC0, 0x00, 0xDB, 0xDC, 'a', 0xDB, 0xDD, 0xC0}; !bytes.Equal(frame, want) {
		t.Fatalf("frame % x, want % x", frame, want)
	}
	if _, err := s.Transmit(t0, []byte("second")); err == nil || s.Idle() {
		t.Fatal("took a second frame while one is in flight")
	}
	line := 8 * 10 * time.Second / 9600 // 8 bytes at 9600 baud: 8.33 ms
	first := t0.Add(line + airtime(3) + margin + probeGrace)
	if got := s.Next(); !got.Equal(first) {
		t.Fatalf("next %v, want %v", got.Sub(t0), first.Sub(t0))
	}
	if ev := s.Tick(first.Add(-time.Nanosecond)); len(ev) != 0 || s.Idle() {
		t.Fatalf("done early: %+v", ev)
	}
	ev := s.Tick(first)
	if len(ev) != 1 || ev[0].Kind != EventTxDone || ev[0].Confirmed || !ev[0].At.Equal(first) || !s.Idle() || !s.Next().IsZero() {
		t.Fatalf("tick %+v, idle %v", ev, s.Idle())
	}
	// No TxDone came: this TNC does not send them, and the next frame
	// waits for its estimate only.
	t1 := first.Add(time.Second)
	frame, _ = s.Transmit(t1, []byte("hello"))
	if got, want := s.Next(), t1.Add(lineTime(len(frame), 9600)+airtime(5)+margin); !got.Equal(want) {
		t.Fatalf("next %v, want %v", got.Sub(t1), want.Sub(t1))
	}
}

// TestTxDone: a TNC that reports the ends of transmissions (MeshCore's)
// is followed, with the estimate only as a fallback.
func TestTxDone(t *testing.T) {
	s := NewSession(airtime, 115200)
	s.Transmit(t0, []byte("one"))
	at := t0.Add(300 * time.Millisecond)
	ev := s.Handle(at, kiss.Frame{Command: CmdSetHardware, Data: []byte{HWTxDone, 0x01}})
	if len(ev) != 1 || ev[0].Kind != EventTxDone || !ev[0].Confirmed || !ev[0].At.Equal(at) || !s.Idle() {
		t.Fatalf("TxDone gave %+v", ev)
	}
	frame, _ := s.Transmit(at, []byte("two"))
	fallback := at.Add(lineTime(len(frame), 115200) + airtime(3) + margin + confirmGrace)
	if got := s.Next(); !got.Equal(fallback) {
		t.Fatalf("next %v, want %v", got.Sub(at), fallback.Sub(at))
	}
	// The TxDone never comes: the frame is done at the fallback, the
	// error is reported, and the next frame probes again.
	ev = s.Tick(fallback)
	if got := kinds(ev); len(got) != 2 || got[0] != EventTxDone || got[1] != EventDeviceError || ev[0].Confirmed {
		t.Fatalf("fallback gave %+v", ev)
	}
	frame, _ = s.Transmit(fallback, []byte("three"))
	if got, want := s.Next(), fallback.Add(lineTime(len(frame), 115200)+airtime(5)+margin+probeGrace); !got.Equal(want) {
		t.Fatalf("next %v, want %v", got.Sub(fallback), want.Sub(fallback))
	}
	// A failed transmission is done, and an error.
	ev = s.Handle(fallback.Add(time.Second), kiss.Frame{Command: CmdSetHardware, Data: []byte{HWTxDone, 0x00}})
	if got := kinds(ev); len(got) != 2 || got[0] != EventTxDone || got[1] != EventDeviceError {
		t.Fatalf("failed TxDone gave %+v", ev)
	}
}

// TestLateTxDone: a TxDone after the estimate (a long wait for a clear
// channel) ends nothing, but teaches the session to wait for the next.
func TestLateTxDone(t *testing.T) {
	s := NewSession(airtime, 115200)
	s.Transmit(t0, []byte("one"))
	ev := s.Tick(s.Next())
	if len(ev) != 1 || ev[0].Kind != EventTxDone {
		t.Fatalf("tick %+v", ev)
	}
	if ev := s.Handle(t0.Add(5*time.Second), kiss.Frame{Command: CmdSetHardware, Data: []byte{HWTxDone, 0x01}}); len(ev) != 0 {
		t.Fatalf("late TxDone gave %+v", ev)
	}
	at := t0.Add(6 * time.Second)
	frame, _ := s.Transmit(at, []byte("two"))
	if got, want := s.Next(), at.Add(lineTime(len(frame), 115200)+airtime(3)+margin+confirmGrace); !got.Equal(want) {
		t.Fatalf("next %v, want %v", got.Sub(at), want.Sub(at))
	}
}

// TestRxMeta: MeshCore follows each DATA frame with its SNR and RSSI;
// once the session has seen that, it holds each frame for them.
func TestRxMeta(t *testing.T) {
	s := NewSession(airtime, 115200)
	data := func(p string) kiss.Frame { return kiss.Frame{Command: CmdData, Data: []byte(p)} }
	meta := kiss.Frame{Command: CmdSetHardware, Data: []byte{HWRxMeta, 0xE3, 0x9B}} // -29/4 dB, -101 dBm

	ev := s.Handle(t0, data("first"))
	if len(ev) != 1 || string(ev[0].Packet.Payload) != "first" || ev[0].Packet.HasStats || !ev[0].Packet.At.Equal(t0) {
		t.Fatalf("first frame %+v", ev)
	}
	if ev := s.Handle(t0, meta); len(ev) != 0 {
		t.Fatalf("first RxMeta gave %+v", ev)
	}

	t1 := t0.Add(time.Second)
	if ev := s.Handle(t1, data("second")); len(ev) != 0 {
		t.Fatalf("second frame not held: %+v", ev)
	}
	if got := s.Next(); !got.Equal(t1.Add(metaWait)) {
		t.Fatalf("next %v", got.Sub(t1))
	}
	ev = s.Handle(t1.Add(time.Millisecond), meta)
	if len(ev) != 1 {
		t.Fatalf("RxMeta gave %+v", ev)
	}
	if p := ev[0].Packet; string(p.Payload) != "second" || !p.HasStats || p.RSSI != -101 || p.SNR != -7.25 || !p.At.Equal(t1) {
		t.Fatalf("second frame %+v", p)
	}

	// A frame whose RxMeta does not come goes on without it: when the
	// next frame comes, or when the wait ends.
	s.Handle(t1, data("third"))
	ev = s.Handle(t1, data("fourth"))
	if len(ev) != 1 || string(ev[0].Packet.Payload) != "third" || ev[0].Packet.HasStats {
		t.Fatalf("third frame %+v", ev)
	}
	if ev := s.Tick(t1.Add(metaWait - 1)); len(ev) != 0 {
		t.Fatalf("released early: %+v", ev)
	}
	ev = s.Tick(t1.Add(metaWait))
	if len(ev) != 1 || string(ev[0].Packet.Payload) != "fourth" || ev[0].Packet.HasStats || !s.Next().IsZero() {
		t.Fatalf("fourth frame %+v", ev)
	}
}

// TestEnd: when the port closes, the frame held for its RxMeta goes on
// without it, and the transmission in flight is over.
func TestEnd(t *testing.T) {
	s := NewSession(airtime, 115200)
	s.Handle(t0, kiss.Frame{Command: CmdData, Data: []byte("a")})
	s.Handle(t0, kiss.Frame{Command: CmdSetHardware, Data: []byte{HWRxMeta, 0, 0}})
	s.Handle(t0, kiss.Frame{Command: CmdData, Data: []byte("held")})
	s.Transmit(t0, []byte("on air"))
	end := t0.Add(time.Second)
	ev := s.End(end)
	if len(ev) != 2 || string(ev[0].Packet.Payload) != "held" || ev[1].Kind != EventTxDone || !ev[1].At.Equal(end) || ev[1].Confirmed {
		t.Fatalf("end gave %+v", ev)
	}
	if !s.Idle() || !s.Next().IsZero() || len(s.End(end)) != 0 {
		t.Fatal("the session still waits for something")
	}
}

// TestIgnored: what is not a DATA frame for port 0 or one of MeshCore's
// reports is counted and dropped.
func TestIgnored(t *testing.T) {
	s := NewSession(airtime, 115200)
	for _, f := range []kiss.Frame{
		{Command: 0x10, Data: []byte("port 1")},
		{Command: 0x16, Data: []byte{HWTxDone, 0x01}}, // port 1's SetHardware
		{Command: CmdTxDelay, Data: []byte{50}},
		{Command: 0xFF},
		{Command: CmdData},
		{Command: CmdSetHardware},
		{Command: CmdSetHardware, Data: []byte{0x81, 1, 2, 3}},  // an identity nobody asked for
		{Command: CmdSetHardware, Data: []byte{HWRxMeta, 0x01}}, // short
	} {
		if ev := s.Handle(t0, f); len(ev) != 0 {
			t.Fatalf("frame %#x % x gave %+v", f.Command, f.Data, ev)
		}
	}
	if s.Ignored != 8 {
		t.Fatalf("ignored %d, want 8", s.Ignored)
	}
}

func TestDeviceErrors(t *testing.T) {
	s := NewSession(airtime, 115200)
	ev := s.Handle(t0, kiss.Frame{Command: CmdSetHardware, Data: []byte{HWError, 0x07}})
	if len(ev) != 1 || ev[0].Kind != EventDeviceError || !strings.Contains(ev[0].Err.Error(), "busy") {
		t.Fatalf("TxBusy gave %+v", ev)
	}
	ev = s.Handle(t0, kiss.Frame{Command: CmdSetHardware, Data: []byte{HWError, 0x05}})
	if len(ev) != 1 || ev[0].Kind != EventDeviceError || !strings.Contains(ev[0].Err.Error(), "0x05") {
		t.Fatalf("error 5 gave %+v", ev)
	}
}

func TestPayloadLimits(t *testing.T) {
	s := NewSession(airtime, 115200)
	for _, n := range []int{0, MaxPayload + 1} {
		if _, err := s.Transmit(t0, make([]byte, n)); err == nil {
			t.Fatalf("took a payload of %d bytes", n)
		}
	}
	if !s.Idle() {
		t.Fatal("a refused payload left the session busy")
	}
	if _, err := s.Transmit(t0, make([]byte, MaxPayload)); err != nil {
		t.Fatal(err)
	}
}

// FuzzSession feeds a session whatever a TNC might send, with ticks in
// between, and checks that it neither panics nor loses track of what it
// waits for.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0xC0, 0x00, 'h', 'i', 0xC0, 0x06, 0xF9, 0xE3, 0x9B, 0xC0}, uint8(3))
	f.Add([]byte{0xC0, 0x06, 0xF8, 0x01, 0xC0, 0x00, 0xC0, 0x06, 0xF1, 0x07, 0xC0}, uint8(0))
	f.Add([]byte("boot\r\n\xc0\x10port\xc0garbage\xc0\x00\xdb\xdc\xdb\xdd\xc0"), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, every uint8) {
		s := NewSession(airtime, 115200)
		d := kiss.NewDeframer(MaxFrame)
		now := t0
		for i, b := range stream {
			if every > 0 && i%int(every) == 0 && s.Idle() {
				if _, err := s.Transmit(now, []byte{b}); err != nil {
					t.Fatal(err)
				}
			}
			now = now.Add(time.Millisecond * time.Duration(b%64))
			if next := s.Next(); !next.IsZero() && !now.Before(next) {
				s.Tick(now)
			}
			for _, fr := range d.Feed([]byte{b}) {
				for _, ev := range s.Handle(now, fr) {
					if ev.Kind == EventReceived && len(ev.Packet.Payload) == 0 {
						t.Fatal("an empty frame delivered")
					}
					if ev.Kind == EventDeviceError && ev.Err == nil {
						t.Fatal("an error event without an error")
					}
				}
			}
			if s.Next().IsZero() != (s.Idle() && s.held == nil) {
				t.Fatalf("next %v with idle %v and held %v", s.Next(), s.Idle(), s.held != nil)
			}
		}
	})
}
