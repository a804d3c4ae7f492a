// Package bridge is the firmware of a Lifeline LoRa board: the device side
// of the RNode serial protocol (docs/PROTOCOL.md), with a bounded transmit
// queue, listen-before-talk and airtime limits, behind a small Radio
// interface. The core is portable and pure: it does no I/O of its own and
// takes the time from its caller, so the same code runs on a board (TinyGo,
// see README.md) and on the host as the simulated device of the testbed.
//
// It imports only the standard library and the two standard-library-only
// leaves it shares with the node: radio/kiss (framing) and radio/lora
// (airtime and duty-cycle arithmetic).
package bridge

import (
	"encoding/binary"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/lora"
)

// Settings are the radio's modulation and state.
type Settings struct {
	Frequency uint32 // Hz
	Bandwidth uint32 // Hz
	TxPower   int8   // dBm
	SF, CR    uint8
	On        bool
}

// Radio is the transceiver, as the core drives it.
type Radio interface {
	// Apply configures the radio and returns what the hardware took (a
	// synthesiser rounds the frequency, a chip caps the power).
	Apply(Settings) Settings
	// Transmit starts sending payload; the caller reports the end with
	// Core.TxDone.
	Transmit(now time.Time, payload []byte)
	// Busy reports activity on the channel (listen before talk).
	Busy(now time.Time) bool
}

// Identity of this firmware, as reported to the host.
const (
	FirmwareMajor = 1
	FirmwareMinor = 0
	Platform      = 0x4C // 'L': Lifeline bridge
	MCUHost       = 0x01 // the host simulation; boards report their own
)

// Error codes sent with CmdError.
const (
	ErrQueueFull = 0x04
	ErrRadioOff  = 0x05
	ErrTooLong   = 0x06
)

// Windows of the airtime limits the host may set (ST_ALOCK, LT_ALOCK).
const (
	ShortWindow = 15 * time.Second
	LongWindow  = time.Hour
)

// Stats are the core's counters.
type Stats struct {
	Received, Sent, Dropped, Deferred int
}

// Core is the firmware's state.
type Core struct {
	radio     Radio
	mcu       byte
	in        *kiss.Deframer
	set       Settings
	queue     [][]byte
	queued    int // bytes in queue
	maxQueued int
	sending   bool
	short     lora.DutyCycle
	long      lora.DutyCycle
	preamble  int
	Stats     Stats
}

// New returns a core driving r that queues at most maxQueued bytes.
func New(r Radio, mcu byte, maxQueued int) *Core {
	return &Core{radio: r, mcu: mcu, in: kiss.NewDeframer(512), maxQueued: maxQueued, preamble: 16,
		short: lora.DutyCycle{Window: ShortWindow, Fraction: 1}, long: lora.DutyCycle{Window: LongWindow, Fraction: 1}}
}

// Boot returns what the board says when it starts: that it rebooted, so a
// host that was configuring it starts over.
func (c *Core) Boot() []byte { return kiss.Append(nil, 0x55, []byte{0xF8}) }

// FromHost takes bytes from the serial line and returns the bytes to
// write back.
func (c *Core) FromHost(now time.Time, p []byte) []byte {
	var out []byte
	for _, f := range c.in.Feed(p) {
		out = c.command(now, f, out)
	}
	return out
}

func (c *Core) command(now time.Time, f kiss.Frame, out []byte) []byte {
	reply := func(cmd byte, data ...byte) { out = kiss.Append(out, cmd, data) }
	switch f.Command {
	case 0x08: // DETECT
		if len(f.Data) == 1 && f.Data[0] == 0x73 {
			reply(0x08, 0x46)
		}
	case 0x50:
		reply(0x50, FirmwareMajor, FirmwareMinor)
	case 0x48:
		reply(0x48, Platform)
	case 0x49:
		reply(0x49, c.mcu)
	case 0x01, 0x02: // FREQUENCY, BANDWIDTH
		if len(f.Data) != 4 {
			return out
		}
		v := binary.BigEndian.Uint32(f.Data)
		s := c.set
		if f.Command == 0x01 {
			s.Frequency = v
		} else {
			s.Bandwidth = v
		}
		c.set = c.radio.Apply(s)
		applied := c.set.Frequency
		if f.Command == 0x02 {
			applied = c.set.Bandwidth
		}
		out = kiss.Append(out, f.Command, binary.BigEndian.AppendUint32(nil, applied))
	case 0x03, 0x04, 0x05: // TXPOWER, SF, CR
		if len(f.Data) != 1 {
			return out
		}
		s := c.set
		switch f.Command {
		case 0x03:
			s.TxPower = int8(f.Data[0])
		case 0x04:
			s.SF = f.Data[0]
		case 0x05:
			s.CR = f.Data[0]
		}
		c.set = c.radio.Apply(s)
		v := []byte{byte(c.set.TxPower), c.set.SF, c.set.CR}[f.Command-0x03]
		reply(f.Command, v)
	case 0x06: // RADIO_STATE
		if len(f.Data) == 1 && f.Data[0] != 0xFF {
			s := c.set
			s.On = f.Data[0] == 0x01
			c.set = c.radio.Apply(s)
		}
		state := byte(0x00)
		if c.set.On {
			state = 0x01
		}
		reply(0x06, state)
	case 0x0B, 0x0C: // ST_ALOCK, LT_ALOCK: percent × 100
		if len(f.Data) != 2 {
			return out
		}
		frac := float64(binary.BigEndian.Uint16(f.Data)) / 10000
		if frac <= 0 || frac > 1 {
			frac = 1
		}
		if f.Command == 0x0B {
			c.short.Fraction = frac
		} else {
			c.long.Fraction = frac
		}
		out = kiss.Append(out, f.Command, f.Data)
	case 0x00: // DATA
		switch {
		case !c.set.On:
			reply(0x90, ErrRadioOff)
		case len(f.Data) == 0 || len(f.Data) > 255:
			reply(0x90, ErrTooLong)
		case c.queued+len(f.Data) > c.maxQueued:
			c.Stats.Dropped++
			reply(0x90, ErrQueueFull)
		default:
			c.queue = append(c.queue, f.Data)
			c.queued += len(f.Data)
		}
	case 0x0A: // LEAVE: the host is gone; what it queued is not sent
		c.queue, c.queued = nil, 0
	}
	return out
}

func (c *Core) modem() lora.Modem {
	return lora.Modem{Bandwidth: int(c.set.Bandwidth), SpreadingFactor: int(c.set.SF), CodingRate: int(c.set.CR), Preamble: c.preamble}
}

// Poll starts the next transmission if it may: the radio is on and idle,
// the channel is clear, and the airtime limits allow the frame. It returns
// how long to wait before polling again (0: poll when the transmission
// ends, or when something is queued).
func (c *Core) Poll(now time.Time) time.Duration {
	if c.sending || len(c.queue) == 0 || !c.set.On {
		return 0
	}
	if c.radio.Busy(now) {
		c.Stats.Deferred++
		return 50 * time.Millisecond // listen before talk: try again shortly
	}
	next := c.queue[0]
	air := c.modem().Airtime(len(next))
	if w := max(c.short.Wait(now, air), c.long.Wait(now, air)); w > 0 {
		return w
	}
	c.queue = c.queue[1:]
	c.queued -= len(next)
	c.short.Record(now, air)
	c.long.Record(now, air)
	c.sending = true
	c.radio.Transmit(now, next)
	c.Stats.Sent++
	return 0
}

// TxDone reports the end of a transmission; the board tells the host it
// can take more.
func (c *Core) TxDone(now time.Time) []byte {
	c.sending = false
	return kiss.Append(nil, 0x0F, []byte{0x01})
}

// Received passes a frame from the air to the host, with its signal
// statistics first, as RNode does.
func (c *Core) Received(now time.Time, payload []byte, rssi int, snr float64) []byte {
	c.Stats.Received++
	r := rssi + 157
	r = min(max(r, 0), 255)
	q := int(snr * 4)
	q = min(max(q, -128), 127)
	out := kiss.Append(nil, 0x23, []byte{byte(r)})
	out = kiss.Append(out, 0x24, []byte{byte(int8(q))})
	return kiss.Append(out, 0x00, payload)
}

// Airtime returns the airtime of a payload of n bytes at the current
// settings.
func (c *Core) Airtime(n int) time.Duration { return c.modem().Airtime(n) }

// Queued is how many frames and bytes wait.
func (c *Core) Queued() (frames, bytes int) { return len(c.queue), c.queued }
