package rnode

import (
	"cmp"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"lifeline/radio/kiss"
)

var cfg = Config{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5, LongTermLimit: 0.1}

// board is a well-behaved RNode, with hooks to misbehave: it answers each
// frame the host sends.
type board struct {
	alter    func(f kiss.Frame) kiss.Frame // what it applies instead
	notRNode bool
	platform byte // ESP32 if 0
}

func (b *board) answer(f kiss.Frame) []kiss.Frame {
	switch f.Command {
	case CmdDetect:
		if b.notRNode {
			return []kiss.Frame{{Command: CmdDetect, Data: []byte{0x00}}}
		}
		return []kiss.Frame{{Command: CmdDetect, Data: []byte{DetectResponse}}}
	case CmdFWVersion:
		return []kiss.Frame{{Command: CmdFWVersion, Data: []byte{1, 74}}}
	case CmdPlatform:
		return []kiss.Frame{{Command: CmdPlatform, Data: []byte{cmp.Or(b.platform, PlatformESP32)}}}
	case CmdMCU:
		return []kiss.Frame{{Command: CmdMCU, Data: []byte{0x81}}}
	case CmdFrequency, CmdBandwidth, CmdTxPower, CmdSF, CmdCR, CmdSTALock, CmdLTALock, CmdRadioState:
		if b.alter != nil {
			return []kiss.Frame{b.alter(f)}
		}
		return []kiss.Frame{f}
	}
	return nil
}

// exchange runs the session against the board until nothing is left to
// send, passing every byte through KISS framing with noise in between, and
// returns the events.
func exchange(t *testing.T, s *Session, b *board, out []kiss.Frame) []Event {
	t.Helper()
	d := kiss.NewDeframer(MaxKISS)
	var events []Event
	for len(out) > 0 {
		f := out[0]
		out = out[1:]
		var wire []byte
		for _, a := range b.answer(f) {
			wire = kiss.Append(wire, a.Command, a.Data)
		}
		// Noise outside frames (a debug line) must not derail anything.
		for _, a := range d.Feed(append([]byte("dbg\r\n"), wire...)) {
			ev, more := s.Handle(a)
			events = append(events, ev...)
			out = append(out, more...)
		}
	}
	return events
}

func TestHandshake(t *testing.T) {
	s := NewSession(cfg)
	events := exchange(t, s, &board{}, s.Start())
	if len(events) != 1 || events[0].Kind != EventReady || events[0].Platform != 0x80 || events[0].Firmware != [2]byte{1, 74} {
		t.Fatalf("events %+v", events)
	}
	if s.State() != Ready {
		t.Fatalf("state %s", s.State())
	}
	// Data, with the statistics the board sends before it.
	if ev, _ := s.Handle(kiss.Frame{Command: CmdStatRSSI, Data: []byte{157 - 97}}); ev != nil {
		t.Fatal(ev)
	}
	s.Handle(kiss.Frame{Command: CmdStatSNR, Data: []byte{0xE2}}) // int8 -30: -7.5 dB
	ev, _ := s.Handle(kiss.Frame{Command: CmdData, Data: []byte("hello")})
	if len(ev) != 1 || string(ev[0].Frame) != "hello" || ev[0].RSSI != -97 || ev[0].SNR != -7.5 || !ev[0].HasStats {
		t.Fatalf("received %+v", ev)
	}
	ev, _ = s.Handle(kiss.Frame{Command: CmdData, Data: []byte("again")})
	if ev[0].HasStats {
		t.Fatal("statistics reused for the next frame")
	}
	if f, err := s.Transmit([]byte("out")); err != nil || f.Command != CmdData {
		t.Fatalf("transmit: %v", err)
	}
}

func TestHandshakeWrongValues(t *testing.T) {
	for name, tc := range map[string]struct {
		alter func(kiss.Frame) kiss.Frame
		ok    bool
	}{
		"frequency 60 Hz off": {func(f kiss.Frame) kiss.Frame {
			if f.Command == CmdFrequency {
				f.Data = binary.BigEndian.AppendUint32(nil, cfg.Frequency-60)
			}
			return f
		}, true},
		"frequency 1 kHz off": {func(f kiss.Frame) kiss.Frame {
			if f.Command == CmdFrequency {
				f.Data = binary.BigEndian.AppendUint32(nil, cfg.Frequency+1000)
			}
			return f
		}, false},
		"spreading factor 7": {func(f kiss.Frame) kiss.Frame {
			if f.Command == CmdSF {
				f.Data = []byte{7}
			}
			return f
		}, false},
		"short answer": {func(f kiss.Frame) kiss.Frame {
			if f.Command == CmdBandwidth {
				f.Data = f.Data[:2]
			}
			return f
		}, false},
	} {
		s := NewSession(cfg)
		events := exchange(t, s, &board{alter: tc.alter}, s.Start())
		if tc.ok {
			if s.State() != Ready {
				t.Errorf("%s: %s, %+v", name, s.State(), events)
			}
			continue
		}
		if s.State() != Failed || len(events) != 1 || !errors.Is(events[0].Err, ErrMismatch) {
			t.Errorf("%s: %s, %+v", name, s.State(), events)
		}
		if _, err := s.Transmit([]byte("x")); err == nil {
			t.Errorf("%s: transmit on a failed session", name)
		}
	}
	s := NewSession(cfg)
	events := exchange(t, s, &board{notRNode: true}, s.Start())
	if len(events) != 1 || !errors.Is(events[0].Err, ErrNotRNode) {
		t.Fatalf("not an RNode: %+v", events)
	}
}

// TestReboot: a board that restarts mid-session announces it, and the
// session configures it again from the start.
func TestReboot(t *testing.T) {
	s := NewSession(cfg)
	b := &board{}
	exchange(t, s, b, s.Start())
	ev, out := s.Handle(kiss.Frame{Command: CmdReset, Data: []byte{Rebooted}})
	if len(ev) != 1 || ev[0].Kind != EventRebooted || s.State() != Detecting {
		t.Fatalf("reboot: %+v, %s", ev, s.State())
	}
	events := exchange(t, s, b, out)
	if len(events) != 1 || events[0].Kind != EventReady || s.State() != Ready {
		t.Fatalf("after reboot: %+v, %s", events, s.State())
	}
	if ev, _ := s.Handle(kiss.Frame{Command: CmdError, Data: []byte{0x02}}); len(ev) != 1 || ev[0].Kind != EventBoardError {
		t.Fatalf("board error: %+v", ev)
	}
}

// TestEndsOfTransmissions: as RNode firmware 1.86 behaves on ESP32 and
// nRF52, the end of a transmission is its STAT_CHTM, which carries the
// board's airtime account; READY (sent by 1.86 only when asked, by older
// firmware as soon as a frame is queued) is not an end.
func TestEndsOfTransmissions(t *testing.T) {
	s := NewSession(cfg)
	exchange(t, s, &board{}, s.Start())
	if !s.ReportsEnds() {
		t.Fatal("an ESP32 board is not expected to report the ends of its transmissions")
	}
	if ev, _ := s.Handle(kiss.Frame{Command: CmdReady, Data: []byte{0x01}}); len(ev) != 0 {
		t.Fatalf("READY taken as %+v", ev)
	}
	// 12.50 % and 3.75 % airtime, 40.00 % and 20.00 % channel load,
	// RSSI -100, noise floor -110 dBm, no interference.
	chtm := []byte{0x04, 0xE2, 0x01, 0x77, 0x0F, 0xA0, 0x07, 0xD0, 57, 47, 0xFF}
	ev, _ := s.Handle(kiss.Frame{Command: CmdStatCHTM, Data: chtm})
	if len(ev) != 1 || ev[0].Kind != EventTxDone {
		t.Fatalf("STAT_CHTM gave %+v", ev)
	}
	b := ev[0].Board
	if b.AirtimeShort != 0.125 || b.AirtimeLong != 0.0375 || b.ChannelShort != 0.4 || b.ChannelLong != 0.2 || b.NoiseFloor != -110 {
		t.Errorf("board stats %+v", b)
	}
	if ev, _ := s.Handle(kiss.Frame{Command: CmdStatCHTM, Data: chtm[:10]}); len(ev) != 0 {
		t.Errorf("a short STAT_CHTM gave %+v", ev)
	}

	// An AVR board reports no ends, until it does.
	avr := NewSession(cfg)
	exchange(t, avr, &board{platform: PlatformAVR}, avr.Start())
	if avr.State() != Ready || avr.ReportsEnds() {
		t.Fatalf("AVR: %s, reports ends %v", avr.State(), avr.ReportsEnds())
	}
	avr.Handle(kiss.Frame{Command: CmdStatCHTM, Data: chtm})
	if !avr.ReportsEnds() {
		t.Error("a board that sent STAT_CHTM is still not expected to report ends")
	}
}

// TestBoardErrors: the board's error codes are read with RNode's
// meanings; those that lose the frame say so, and those that mean the
// radio stopped fail the session, which the driver then starts again.
func TestBoardErrors(t *testing.T) {
	for _, c := range []struct {
		code    byte
		meaning string
		lost    bool
		fails   bool
	}{
		{ErrorInitRadio, "radio failed to start", false, true},
		{ErrorTxFailed, "transmission failed", true, false},
		{ErrorEEPROMLocked, "configuration memory locked", false, false},
		{ErrorQueueFull, "queue full", true, false},
		{ErrorMemoryLow, "memory low", true, false},
		{ErrorModemTimeout, "modem timeout", false, true},
		{0x7F, "error 0x7f", false, false},
	} {
		s := NewSession(cfg)
		exchange(t, s, &board{}, s.Start())
		ev, _ := s.Handle(kiss.Frame{Command: CmdError, Data: []byte{c.code}})
		if len(ev) != 1 {
			t.Fatalf("%#x: %+v", c.code, ev)
		}
		if c.fails {
			if ev[0].Kind != EventFailed || s.State() != Failed {
				t.Errorf("%#x: %+v, state %s; want the session failed", c.code, ev[0], s.State())
			}
			continue
		}
		if ev[0].Kind != EventBoardError || ev[0].Meaning != c.meaning || ev[0].Lost != c.lost || s.State() != Ready {
			t.Errorf("%#x: %+v, state %s; want %q, lost %v", c.code, ev[0], s.State(), c.meaning, c.lost)
		}
	}
}

// TestEndEstimates: for a board that reports no ends, each frame ends at
// the latest its longest wait and its airtime after it was handed over;
// a frame heard meanwhile means the board was receiving, so the first
// estimate moves to no sooner than the wait and its airtime after that,
// and never earlier.
func TestEndEstimates(t *testing.T) {
	var e endEstimates
	defer e.stop()
	t0 := time.Now()
	e.push(t0, 2*time.Second, time.Second)
	e.push(t0.Add(time.Second), 2*time.Second, time.Second)
	if e.C() == nil || !e.at[0].Equal(t0.Add(2*time.Second)) {
		t.Fatalf("estimates %v", e.at)
	}
	e.heard(t0.Add(1500*time.Millisecond), 500*time.Millisecond)
	if want := t0.Add(3 * time.Second); !e.at[0].Equal(want) {
		t.Fatalf("after a frame heard: %v, want %v", e.at[0].Sub(t0), want.Sub(t0))
	}
	e.heard(t0, 0) // long before: no change
	if !e.at[0].Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("moved back to %v", e.at[0].Sub(t0))
	}
	if got := e.pop(time.Time{}); !got.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("popped %v", got.Sub(t0))
	}
	if len(e.at) != 1 || len(e.air) != 1 {
		t.Fatalf("left %v %v", e.at, e.air)
	}
	e.clear()
	if e.C() != nil {
		t.Fatal("a timer with nothing to wait for")
	}
}

// TestHandovers: a board that reports the ends of its transmissions also
// sends STAT_CHTM about once a second unasked; a report sooner after a
// frame was handed over than the frame's airtime is not its end, the
// first one after is, and each frame handed over ends once.
func TestHandovers(t *testing.T) {
	var h handovers
	t0 := time.Now()
	if h.end(t0) {
		t.Fatal("an end with nothing handed over")
	}
	h.push(t0, time.Second)
	h.push(t0.Add(100*time.Millisecond), 2*time.Second)
	if h.end(t0.Add(999 * time.Millisecond)) {
		t.Fatal("a report before the frame's airtime passed taken as its end")
	}
	if !h.end(t0.Add(time.Second)) {
		t.Fatal("the report after the first frame's airtime is not its end")
	}
	if h.end(t0.Add(1500*time.Millisecond)) || !h.end(t0.Add(2100*time.Millisecond)) || h.end(t0.Add(time.Hour)) {
		t.Fatalf("the second frame's ends: left %v", h.at)
	}
	for i := range maxHandovers + 5 {
		h.push(t0.Add(time.Duration(i)), time.Second)
	}
	if len(h.at) != maxHandovers || len(h.air) != maxHandovers {
		t.Fatalf("%d frames remembered, at most %d", len(h.at), maxHandovers)
	}
	h.pop()
	h.clear()
	if h.end(t0.Add(time.Hour)) {
		t.Fatal("an end after clear")
	}
}
