package rnode

import (
	"encoding/binary"
	"fmt"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
)

// State is where a Session is.
type State int

const (
	// Detecting: the detect request is sent; waiting for the answer.
	Detecting State = iota
	// Configuring: settings are sent one at a time; each must be echoed.
	Configuring
	// Ready: the radio is on with the asked settings.
	Ready
	// Failed: the board is not an RNode, or refused a setting. Start
	// again (after a delay) to retry.
	Failed
)

func (s State) String() string {
	return [...]string{"detecting", "configuring", "ready", "failed"}[s]
}

// Event is something a Session reports.
type Event struct {
	Kind EventKind
	// Received: the frame, with the RSSI (dBm) and SNR (dB) the board
	// reported just before it, if it did.
	Frame    []byte
	RSSI     int
	SNR      float64
	HasStats bool
	// Info: the board's platform, MCU and firmware version, as reported.
	Platform, MCU byte
	Firmware      [2]byte
	// TxDone: the board's account of its airtime and the channel, from
	// STAT_CHTM.
	Board link.BoardStats
	// BoardError: the error's meaning (ErrorMeaning); Lost says the frame
	// the host handed the board last will not go on air.
	Meaning string
	Lost    bool
	Err     error
}

// EventKind says what an Event is.
type EventKind int

const (
	EventReady EventKind = iota + 1
	EventReceived
	// EventRebooted: the board restarted (power, watchdog, a reset) and
	// lost its settings; the session has started over.
	EventRebooted
	// EventFailed: see Event.Err.
	EventFailed
	// EventBoardError: the board reported an error (its code in Err,
	// its meaning in Meaning).
	EventBoardError
	// EventTxDone: the board reported its airtime account (in Board)
	// with STAT_CHTM, which ESP32 and nRF52 boards send after each
	// transmission and about once a second besides: it may be the end of
	// a transmission, which the driver tells by the time (handovers).
	EventTxDone
)

// ErrorMeaning is what RNode firmware means by an error code.
func ErrorMeaning(code byte) string {
	switch code {
	case ErrorInitRadio:
		return "radio failed to start"
	case ErrorTxFailed:
		return "transmission failed"
	case ErrorEEPROMLocked:
		return "configuration memory locked"
	case ErrorQueueFull:
		return "queue full"
	case ErrorMemoryLow:
		return "memory low"
	case ErrorModemTimeout:
		return "modem timeout"
	}
	return fmt.Sprintf("error %#02x", code)
}

// ReportsEnds says whether a board of this platform sends STAT_CHTM after
// every transmission (RNode firmware on ESP32 and nRF52). An AVR board
// does not, nor does a board that does not say what it is: the host must
// then take the end of a frame from its airtime.
func ReportsEnds(platform byte) bool { return platform == PlatformESP32 || platform == PlatformNRF52 }

// statCHTM is the length of a STAT_CHTM frame's data.
const statCHTM = 11

// channelStats reads STAT_CHTM: airtime and channel load, short and long
// term, in hundredths of a percent; the current RSSI and the noise floor,
// + 157 dBm; the interference level likewise (0xFF: none).
func channelStats(d []byte) link.BoardStats {
	pc := func(i int) float64 { return float64(binary.BigEndian.Uint16(d[i:])) / 10000 }
	b := link.BoardStats{AirtimeShort: pc(0), AirtimeLong: pc(2), ChannelShort: pc(4), ChannelLong: pc(6)}
	if d[9] != 0 { // 0: the board has not measured it
		b.NoiseFloor = int(d[9]) - 157
	}
	return b
}

// Session drives one board: detect, configure with echo checks, then
// data both ways. Feed it every frame from the board (Handle); send the
// frames it returns, in order.
type Session struct {
	cfg     Config
	state   State
	pending []kiss.Frame // settings not yet confirmed; the first is in flight
	info    Event
	rssi    int
	snr     float64
	stats   bool
	chtm    bool // the board has sent STAT_CHTM since the session started
}

// NewSession returns a session that will apply cfg.
func NewSession(cfg Config) *Session { return &Session{cfg: cfg} }

// State returns the session's state.
func (s *Session) State() State { return s.state }

// Start (re)starts the session: it returns the frames that open it, the
// detect request and the queries for what the board is.
func (s *Session) Start() []kiss.Frame {
	s.state, s.pending, s.stats, s.chtm, s.info = Detecting, nil, false, false, Event{}
	return []kiss.Frame{
		{Command: CmdDetect, Data: []byte{DetectRequest}},
		{Command: CmdFWVersion, Data: []byte{0x00}},
		{Command: CmdPlatform, Data: []byte{0x00}},
		{Command: CmdMCU, Data: []byte{0x00}},
	}
}

// Transmit returns the frame that sends payload over the air, or an error
// when the session is not ready.
func (s *Session) Transmit(payload []byte) (kiss.Frame, error) {
	if s.state != Ready {
		return kiss.Frame{}, fmt.Errorf("rnode: cannot transmit while %s", s.state)
	}
	return kiss.Frame{Command: CmdData, Data: payload}, nil
}

// ReportsEnds says whether the board reports the end of each transmission
// (STAT_CHTM): by its platform, or because it has done so.
func (s *Session) ReportsEnds() bool { return s.chtm || ReportsEnds(s.info.Platform) }

// Leave returns the frame that tells the board the host is going away.
func (s *Session) Leave() kiss.Frame { return kiss.Frame{Command: CmdLeave, Data: []byte{0xFF}} }

// Handle takes one frame from the board and returns what happened and what
// to send next.
func (s *Session) Handle(f kiss.Frame) ([]Event, []kiss.Frame) {
	switch f.Command {
	case CmdReset:
		if len(f.Data) == 1 && f.Data[0] == Rebooted {
			return []Event{{Kind: EventRebooted}}, s.Start()
		}
		return nil, nil
	case CmdError:
		code := byte(0)
		if len(f.Data) > 0 {
			code = f.Data[0]
		}
		meaning := ErrorMeaning(code)
		switch code {
		case ErrorInitRadio, ErrorModemTimeout:
			// The radio itself stopped answering: configure it again
			// from the start rather than hand frames to a dead modem.
			if s.state != Failed {
				return s.fail(fmt.Errorf("rnode: board error %#02x: %s", code, meaning))
			}
		}
		lost := code == ErrorTxFailed || code == ErrorQueueFull || code == ErrorMemoryLow
		return []Event{{Kind: EventBoardError, Meaning: meaning, Lost: lost && s.state == Ready,
			Err: fmt.Errorf("rnode: board error %#02x: %s", code, meaning)}}, nil
	case CmdFWVersion:
		if len(f.Data) == 2 {
			s.info.Firmware = [2]byte{f.Data[0], f.Data[1]}
		}
		return nil, nil
	case CmdPlatform:
		if len(f.Data) == 1 {
			s.info.Platform = f.Data[0]
		}
		return nil, nil
	case CmdMCU:
		if len(f.Data) == 1 {
			s.info.MCU = f.Data[0]
		}
		return nil, nil
	case CmdStatRSSI:
		if len(f.Data) == 1 {
			s.rssi, s.stats = int(f.Data[0])-157, true
		}
		return nil, nil
	case CmdStatSNR:
		if len(f.Data) == 1 {
			s.snr, s.stats = float64(int8(f.Data[0]))*0.25, true
		}
		return nil, nil
	}

	switch s.state {
	case Detecting:
		if f.Command != CmdDetect {
			return nil, nil // answers to the queries may come in any order
		}
		if len(f.Data) != 1 || f.Data[0] != DetectResponse {
			return s.fail(fmt.Errorf("%w: detect answered % x", ErrNotRNode, f.Data))
		}
		s.state, s.pending = Configuring, configure(s.cfg)
		return nil, s.pending[:1]
	case Configuring:
		if len(s.pending) == 0 || f.Command != s.pending[0].Command {
			return nil, nil // not the echo we wait for: stray or late
		}
		if err := checkEcho(s.pending[0], f); err != nil {
			return s.fail(err)
		}
		if s.pending = s.pending[1:]; len(s.pending) > 0 {
			return nil, s.pending[:1]
		}
		s.state = Ready
		ev := s.info
		ev.Kind = EventReady
		return []Event{ev}, nil
	case Ready:
		// READY is not the end of a transmission: firmware 1.86 sends it
		// only when asked, and older firmware as soon as a frame is
		// queued, before it is on air.
		if f.Command == CmdStatCHTM && len(f.Data) == statCHTM {
			s.chtm = true
			return []Event{{Kind: EventTxDone, Board: channelStats(f.Data)}}, nil
		}
		if f.Command == CmdData && len(f.Data) > 0 {
			ev := Event{Kind: EventReceived, Frame: f.Data, RSSI: s.rssi, SNR: s.snr, HasStats: s.stats}
			s.stats = false
			return []Event{ev}, nil
		}
	}
	return nil, nil
}

func (s *Session) fail(err error) ([]Event, []kiss.Frame) {
	s.state, s.pending = Failed, nil
	return []Event{{Kind: EventFailed, Err: err}}, nil
}
