package rnode

import (
	"encoding/binary"
	"errors"
	"testing"

	"lifeline/radio/kiss"
)

var cfg = Config{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5, LongTermLimit: 0.1}

// board is a well-behaved RNode, with hooks to misbehave: it answers each
// frame the host sends.
type board struct {
	alter    func(f kiss.Frame) kiss.Frame // what it applies instead
	notRNode bool
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
		return []kiss.Frame{{Command: CmdPlatform, Data: []byte{0x80}}}
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
	d := kiss.NewDeframer(MaxFrame)
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
