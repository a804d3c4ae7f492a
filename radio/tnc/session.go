// Package tnc is the host side of a plain KISS TNC: a LoRa board whose
// radio settings (frequency, bandwidth, spreading factor, power) are set on
// the device itself, and which the host only hands frames to and takes
// frames from, in KISS framing (radio/kiss). MeshCore's KISS modem firmware
// is one; so is any LoRa KISS TNC. This file is the protocol as a pure
// state machine, Session, which does no I/O and is told the time; the
// serial port is the Driver's.
//
// What the session sends: TXDELAY 0 once when the port opens (see Start),
// then DATA frames (type byte 0x00: port 0, command 0), one at a time.
// What it takes: DATA frames for port 0, the LoRa payloads received. The
// high nibble of the type byte is the TNC port: frames for other ports,
// and commands other than those below, are ignored and counted. KISS has
// no handshake, so the link is up as soon as the port opens.
//
// A plain TNC does not say when a transmission ends, so the session
// estimates it: the frame's time on the serial line, its airtime, and a
// small margin (see margin). Until then it takes no other frame, so that
// the node's duty-cycle accounting follows the air and a TNC that holds
// one frame at a time never receives a second.
//
// MeshCore's KISS modem (docs/kiss_modem_protocol.md in
// github.com/meshcore-dev/MeshCore, checked in 2026) is standard KISS plus
// extensions in SetHardware frames (type 0x06, a sub-command byte, data).
// Three of the unsolicited ones, from the TNC to the host, are worth
// reading, and are read here:
//
//	0x06 0xF8 result     TxDone: a transmission ended (result 0x01 sent, 0x00 failed)
//	0x06 0xF9 snr rssi   RxMeta, right after each DATA frame: int8 SNR in
//	                     quarter dB, int8 RSSI in dBm (on by default)
//	0x06 0xF1 code       Error, for instance 0x07 TxBusy: a DATA frame came
//	                     while one was still waiting to go out, and was dropped
//
// A session learns from the first TxDone that the TNC reports the ends of
// transmissions and from then on waits for them rather than for its
// estimate; from the first RxMeta, that the TNC reports signal statistics,
// and from then on holds each DATA frame until its RxMeta (or briefly,
// metaWait) to deliver it with RSSI and SNR (link.Packet.HasStats). A plain
// TNC never sends these, so it costs it nothing. The other MeshCore
// answers (to requests for identity, signatures, radio settings, ...) are
// ignored: the session never asks. Nothing else of the extensions is sent:
// a SetHardware frame means something different to every TNC.
package tnc

import (
	"errors"
	"fmt"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
)

// KISS commands (the low nibble of the type byte), the subset the session
// uses.
const (
	CmdData        = 0x00
	CmdTxDelay     = 0x01 // u8, 10 ms units: the wait between keying up and sending
	CmdSetHardware = 0x06 // device-specific; MeshCore's extensions
)

// MeshCore's SetHardware sub-commands from the TNC that the session reads.
const (
	HWError  = 0xF1 // u8 error code
	HWTxDone = 0xF8 // u8 result: 0x01 sent, 0x00 failed
	HWRxMeta = 0xF9 // int8 SNR (quarter dB), int8 RSSI (dBm)
)

// MeshCore's error code for a DATA frame refused because the radio was
// still busy with the previous one.
const errTxBusy = 0x07

// MaxPayload is the longest LoRa payload: the length field of a LoRa
// header is one byte.
const MaxPayload = 255

// MaxFrame is the longest KISS frame, type byte included, that the session
// takes from a TNC: MeshCore's limit; a LoRa payload fits with room.
const MaxFrame = 512

// Timing of the estimates. Being late costs a little throughput; being
// early hands the next frame to a TNC still on air, which a TNC that holds
// one frame (MeshCore's) drops.
const (
	// margin is added to every estimate of a transmission's end. It covers
	// what the host cannot compute: a USB serial adapter holding the bytes
	// before passing them on (an FTDI's latency timer is 16 ms), the TNC's
	// main loop noticing the frame, and the radio switching to transmit
	// (well under 10 ms on SX126x and SX127x chips), with room to spare.
	// It does not cover the TNC's listen-before-talk, which waits for a
	// clear channel for as long as it takes: no host can know that wait.
	margin = 50 * time.Millisecond
	// probeGrace is added to the estimate while the session does not yet
	// know whether the TNC reports TxDone: its first frame. MeshCore's
	// p-persistent CSMA (p = 64/256, 100 ms slots by default) starts more
	// than 2 s after the channel clears in under 1 % of cases, so a
	// MeshCore TNC's first TxDone almost always comes within it; a plain
	// TNC pays the wait once per opening of the port.
	probeGrace = 2 * time.Second
	// confirmGrace is added to the estimate when the TNC reports TxDone:
	// then the estimate is only a fallback, for a TxDone lost (the TNC
	// restarted without the port closing), and should not cut short a
	// long wait for a busy channel.
	confirmGrace = 10 * time.Second
	// metaWait bounds how long a received frame is held for its RxMeta,
	// which MeshCore writes right behind the frame: a few bytes, plus a
	// USB adapter's latency timer.
	metaWait = 50 * time.Millisecond
)

// confirms is what a session knows of the TNC's TxDone reports.
type confirms int

const (
	confirmsUnknown confirms = iota
	confirmsYes
	confirmsNo
)

// EventKind says what an Event is.
type EventKind int

const (
	// EventReceived: a frame from the air, in Packet.
	EventReceived EventKind = iota + 1
	// EventTxDone: the transmission in flight ended, at At, as the TNC
	// reported it (Confirmed) or as estimated; the session takes the next
	// frame.
	EventTxDone
	// EventDeviceError: the TNC reported an error, or a transmission's end
	// it was expected to report did not come; see Err.
	EventDeviceError
)

// Event is something a Session reports.
type Event struct {
	Kind      EventKind
	Packet    link.Packet
	At        time.Time
	Confirmed bool
	Err       error
}

// Session is the host side of one opening of the port to a KISS TNC. Feed
// it every frame from the TNC (Handle), call Tick at Next, write what
// Start and Transmit return, and call End when the port closes; it is not
// safe for concurrent use.
type Session struct {
	airtime func(n int) time.Duration
	baud    int

	busy     bool
	deadline time.Time // of the transmission in flight, when busy
	confirms confirms

	meta      bool         // the TNC sends RxMeta after each DATA frame
	held      *link.Packet // waiting for its RxMeta
	heldUntil time.Time

	// Ignored counts frames the session does not use: other ports, other
	// commands, MeshCore answers it never asked for, empty DATA frames.
	Ignored int
}

// NewSession returns a session for a TNC on a line of baud bits per second
// (8N1) whose modem sends an n-byte payload in airtime(n).
func NewSession(airtime func(n int) time.Duration, baud int) *Session {
	return &Session{airtime: airtime, baud: baud}
}

// Start returns the bytes to write when the port opens: TXDELAY 0. A LoRa
// radio needs no key-up delay (its preamble gives the receiver time to
// lock on), and on a LoRa TNC TXDELAY is only a wait after the channel
// was found clear: it widens the window for a collision and puts the end
// of the transmission past the session's estimate. MeshCore's TNC starts
// with 500 ms and keeps no setting across restarts, so only the host can
// remove it. The other KISS parameters are left as the TNC has them:
// PERSISTENCE and SLOTTIME are its listen-before-talk, the only carrier
// sense on the path (the node's scheduler has none); TXTAIL means nothing
// to LoRa; FULLDUPLEX would turn the listening off. Nothing is sent when
// the session ends: KISS's "return" (0xFF) would take some TNCs out of KISS
// mode, which is not the host's to decide.
func (s *Session) Start() []byte {
	return kiss.Append(nil, CmdTxDelay, []byte{0})
}

// Idle reports whether the session can take a frame to transmit.
func (s *Session) Idle() bool { return !s.busy }

// Transmit returns the bytes that send payload over the air, and starts
// waiting for the transmission's end. It fails while a transmission is in
// flight, and for a payload empty or longer than MaxPayload.
func (s *Session) Transmit(now time.Time, payload []byte) ([]byte, error) {
	if err := CheckPayload(payload); err != nil {
		return nil, err
	}
	if s.busy {
		return nil, errors.New("tnc: a transmission is in flight")
	}
	frame := kiss.Append(nil, CmdData, payload)
	wait := lineTime(len(frame), s.baud) + s.airtime(len(payload)) + margin
	switch s.confirms {
	case confirmsUnknown:
		wait += probeGrace
	case confirmsYes:
		wait += confirmGrace
	}
	s.busy, s.deadline = true, now.Add(wait)
	return frame, nil
}

// CheckPayload reports a payload no LoRa radio can send.
func CheckPayload(payload []byte) error {
	if len(payload) == 0 || len(payload) > MaxPayload {
		return fmt.Errorf("tnc: payload of %d bytes: want 1 to %d", len(payload), MaxPayload)
	}
	return nil
}

// lineTime is how long n bytes take on a serial line at baud, 8N1: ten
// bits a byte.
func lineTime(n, baud int) time.Duration {
	return time.Duration(n) * 10 * time.Second / time.Duration(baud)
}

// Next returns when the session next needs Tick, or the zero time if it
// waits for nothing.
func (s *Session) Next() time.Time {
	var next time.Time
	if s.held != nil {
		next = s.heldUntil
	}
	if s.busy && (next.IsZero() || s.deadline.Before(next)) {
		next = s.deadline
	}
	return next
}

// Tick returns what is due at now: a held frame whose RxMeta did not come,
// the estimated end of a transmission.
func (s *Session) Tick(now time.Time) []Event {
	var out []Event
	if s.held != nil && !now.Before(s.heldUntil) {
		out = append(out, s.release())
	}
	if s.busy && !now.Before(s.deadline) {
		s.busy = false
		out = append(out, Event{Kind: EventTxDone, At: now})
		switch s.confirms {
		case confirmsUnknown:
			s.confirms = confirmsNo
		case confirmsYes:
			// Perhaps the TNC restarted, perhaps it is another one:
			// find out again with the next frame.
			s.confirms = confirmsUnknown
			out = append(out, Event{Kind: EventDeviceError, Err: errors.New("tnc: the TNC did not report the end of a transmission")})
		}
	}
	return out
}

// End is the port closing, at now: it returns the held frame, if any, and
// ends the transmission in flight, if any, for nothing more will come of
// it; whoever waits for its end to send the next frame need not wait on.
func (s *Session) End(now time.Time) []Event {
	var out []Event
	if s.held != nil {
		out = append(out, s.release())
	}
	if s.busy {
		s.busy = false
		out = append(out, Event{Kind: EventTxDone, At: now})
	}
	return out
}

// release returns the held frame, without statistics.
func (s *Session) release() Event {
	p := *s.held
	s.held = nil
	return Event{Kind: EventReceived, Packet: p}
}

// Handle takes one frame from the TNC, received at now, and returns what
// happened.
func (s *Session) Handle(now time.Time, f kiss.Frame) []Event {
	var out []Event
	rxMeta := f.Command == CmdSetHardware && len(f.Data) > 0 && f.Data[0] == HWRxMeta
	if s.held != nil && !rxMeta {
		// RxMeta follows its frame at once: anything else means none
		// is coming for this one.
		out = append(out, s.release())
	}
	switch f.Command {
	case CmdData:
		if len(f.Data) == 0 {
			s.Ignored++
			break
		}
		p := link.Packet{Payload: f.Data, At: now}
		if s.meta {
			s.held, s.heldUntil = &p, now.Add(metaWait)
			break
		}
		out = append(out, Event{Kind: EventReceived, Packet: p})
	case CmdSetHardware:
		return append(out, s.hardware(now, f.Data)...)
	default:
		s.Ignored++ // other ports, other commands
	}
	return out
}

// hardware handles a SetHardware frame from the TNC: MeshCore's
// extensions.
func (s *Session) hardware(now time.Time, data []byte) []Event {
	if len(data) == 0 {
		s.Ignored++
		return nil
	}
	switch sub, arg := data[0], data[1:]; {
	case sub == HWRxMeta && len(arg) >= 2:
		s.meta = true
		if s.held == nil {
			s.Ignored++ // the first, which taught the session to wait for them, or one too late for its frame
			return nil
		}
		p := *s.held
		s.held = nil
		p.SNR, p.RSSI, p.HasStats = float64(int8(arg[0]))/4, int(int8(arg[1])), true
		return []Event{{Kind: EventReceived, Packet: p}}
	case sub == HWTxDone:
		s.confirms = confirmsYes
		var out []Event
		if s.busy {
			s.busy = false
			out = append(out, Event{Kind: EventTxDone, At: now, Confirmed: true})
		} // else a late one: its frame was already counted as done
		if len(arg) > 0 && arg[0] == 0x00 {
			out = append(out, Event{Kind: EventDeviceError, Err: errors.New("tnc: the TNC reports a failed transmission")})
		}
		return out
	case sub == HWError:
		code := byte(0)
		if len(arg) > 0 {
			code = arg[0]
		}
		if code == errTxBusy {
			return []Event{{Kind: EventDeviceError, Err: errors.New("tnc: the TNC was still busy and dropped a frame (error 0x07)")}}
		}
		return []Event{{Kind: EventDeviceError, Err: fmt.Errorf("tnc: the TNC reports error %#02x", code)}}
	}
	s.Ignored++
	return nil
}
