// Package bridge is the firmware of a Lifeline LoRa board: the device side
// of the RNode serial protocol (docs/PROTOCOL.md), behaving as RNode
// firmware 1.86 does, so that Lifeline's node and Reticulum's RNode host
// driver can both use the board, and the board shares a channel with real
// RNodes. It has a transmit queue bounded in bytes and frames, listen
// before talk, the host's airtime limits, RNode's one header byte on every
// frame on air (with frames of up to 508 bytes split in two), and RNode's
// statistics frames, behind a small Radio interface. The core is portable
// and pure: it does no I/O of its own and takes the time from its caller,
// so the same code runs on a board (TinyGo, see README.md) and on the host
// as the simulated device of the testbed.
//
// It imports only the standard library and the two standard-library-only
// leaves it shares with the node: radio/kiss (framing) and radio/lora
// (airtime and duty-cycle arithmetic).
//
// Where each RNode behaviour comes from: the host side of the protocol as
// Reticulum's RNodeInterface (RNS/Interfaces/RNodeInterface.py) speaks and
// parses it (commands, the layouts of STAT_CHTM, STAT_PHYPRM and
// STAT_CSMA, the error codes, the firmware check); Reticulum's manual for
// the airtime limits' windows (about 15 s and a rolling hour); the RNode
// firmware's published constants (Config.h, Boards.h of RNode_Firmware
// 1.86: MTU 508, a single frame 255, preamble at least 18 symbols with a
// 24 ms target, CSMA slots of 12 symbols within 24..100 ms, a queue of
// 6144 bytes and 200 frames on ESP32 and nRF52); and a published
// description of RNode's air frame (the header byte, the split and its
// reassembly: jlpoole/reticulum-specification, section 8.3). What no
// document says is decided here and said so where it is done.
package bridge

import (
	"encoding/binary"
	"math"
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
	// Preamble in symbols: the core sets it from the bandwidth and
	// spreading factor (RNode's rule, PreambleSymbols) and the radio
	// programs it, so that the airtime the core counts is the air's.
	Preamble int
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

// RSSIMeter is a Radio that can read the channel's signal strength at
// once (the SX127x's RegRssiValue, the SX126x's GetRssiInst). STAT_CHTM
// reports the current RSSI and the noise floor from it; without one both
// are sent as 0 (-157 dBm, nothing measured).
type RSSIMeter interface {
	RSSI(now time.Time) int // dBm
}

// Identity of this firmware, as reported to the host.
//
// The version is that of the RNode firmware whose behaviour the core
// implements, 1.86; Reticulum refuses anything under 1.52.
//
// The platform is RNode's nRF52 class (0x70), whatever the chip: it tells
// a host how the board behaves, and Reticulum reads nothing else from it.
// It accepts any platform, and for ESP32 and nRF52 it (1) expects
// STAT_CHTM after each transmission, as this core sends, (2) may drive a
// display through the framebuffer commands, which the core ignores, and
// (3) only for ESP32 reconfigures the board when it announces a reset
// while online, because an ESP32 sits behind a USB-serial bridge that
// keeps the port open across a reset. Lifeline's boards have native USB,
// whose port closes on a reset, as an nRF52's does. The MCU byte says the
// chip (MCUHost here; boards report their own). docs/DECISIONS.md.
const (
	FirmwareMajor = 1
	FirmwareMinor = 86
	Platform      = 0x70 // RNode's PLATFORM_NRF52
	MCUHost       = 0x01 // the host simulation; boards report their own
)

// Error codes sent with CmdError, with RNode's meanings only. The core
// itself sends none of them: a full queue drops the frame (Reticulum takes
// 0x04 as a hardware failure and drops the interface), and so do frames
// the board cannot send (see Stats).
const (
	ErrInitRadio    = 0x01
	ErrTxFailed     = 0x02
	ErrEEPROMLocked = 0x03
	ErrQueueFull    = 0x04
	ErrMemoryLow    = 0x05
	ErrModemTimeout = 0x06
)

// Sizes of RNode's frames.
const (
	// MTU is the longest DATA frame the host may send: two frames on air.
	MTU = 508
	// SingleFrame is the longest LoRa payload, the header byte included.
	SingleFrame = 255
	// MaxQueuedFrames bounds the queue in frames, as RNode's does on
	// ESP32 and nRF52 (CONFIG_QUEUE_MAX_LENGTH); the bytes are bounded by
	// New's caller.
	MaxQueuedFrames = 200
)

// The header byte that starts every frame on air: a random sequence
// number in the upper nibble, and FlagSplit on both halves of a frame
// that was split in two.
const (
	FlagSplit = 0x01
	seqMask   = 0xF0
)

// Windows of the airtime limits the host may set (ST_ALOCK, LT_ALOCK),
// and of the airtime and channel load reported in STAT_CHTM.
const (
	ShortWindow = 15 * time.Second
	LongWindow  = time.Hour
)

// Commands the core answers and sends (RNode's numbers).
const (
	cmdData       = 0x00
	cmdFrequency  = 0x01
	cmdBandwidth  = 0x02
	cmdTxPower    = 0x03
	cmdSF         = 0x04
	cmdCR         = 0x05
	cmdRadioState = 0x06
	cmdDetect     = 0x08
	cmdLeave      = 0x0A
	cmdSTALock    = 0x0B
	cmdLTALock    = 0x0C
	cmdReady      = 0x0F
	cmdStatRSSI   = 0x23
	cmdStatSNR    = 0x24
	cmdStatCHTM   = 0x25
	cmdStatPHYPRM = 0x26
	cmdStatCSMA   = 0x28
	cmdPlatform   = 0x48
	cmdMCU        = 0x49
	cmdFWVersion  = 0x50
	cmdReset      = 0x55
)

// rssiOffset: RNode sends signal strengths as dBm + 157 in a byte.
const rssiOffset = 157

// Stats are the core's counters.
type Stats struct {
	// Received and Sent count DATA frames to and from the host; a frame
	// split in two on air counts once.
	Received, Sent int
	// Dropped: frames from the host that did not fit the queue. RNode
	// drops them silently, and so does the core.
	Dropped int
	// Refused: frames from the host the board cannot send: empty, over
	// MTU, or sent while the radio is off.
	Refused int
	// OverBudget: frames longer than the host's airtime limits allow in
	// a whole window, which would wait for ever.
	OverBudget int
	// Deferred: times listen before talk found the channel busy.
	Deferred int
	// Unjoined: frames heard that were not passed on: a half of a split
	// frame whose other half never came, or a frame too short to hold
	// more than the header byte.
	Unjoined int
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

	sending bool   // a frame is on air
	rest    []byte // the second half of a split frame, sent when the first ends

	short, long lora.DutyCycle // the host's airtime limits, and the board's own airtime
	heard       heardAirtime   // frames heard: with the own airtime, the channel's load

	sawBusy bool      // listen before talk found the channel busy at the last look
	backoff time.Time // when the contention after a busy channel ends

	noise   float64   // the channel's noise floor, dBm (0: not measured yet)
	noiseAt time.Time // the last sample of it
	rng     uint64
	pending []byte // the first half of a split frame heard, waiting for its second
	pendSeq byte
	hasPend bool
	tooLong int // frames the deframer dropped, already counted in Stats
	Stats   Stats
}

// New returns a core driving r that queues at most maxQueued bytes.
func New(r Radio, mcu byte, maxQueued int) *Core {
	return &Core{radio: r, mcu: mcu, in: kiss.NewDeframer(MTU + 1), maxQueued: maxQueued, rng: 0x6c69666531696e65,
		short: lora.DutyCycle{Window: ShortWindow, Fraction: 1}, long: lora.DutyCycle{Window: LongWindow, Fraction: 1}}
}

// Seed mixes s into the core's random numbers (the header's sequence
// numbers, the contention window). A board seeds it from its hardware's
// entropy; unseeded, the times of transmissions still make boards differ.
func (c *Core) Seed(s uint64) { c.rng ^= s }

// random is splitmix64 over the seed and the time: a board's clock in
// nanoseconds at the moment of a transmission is unpredictable enough to
// keep two boards' sequence numbers apart.
func (c *Core) random(now time.Time) uint64 {
	c.rng += 0x9E3779B97F4A7C15 + uint64(now.UnixNano())
	z := c.rng
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Boot returns what the board says when it starts: that it rebooted, so a
// host that was configuring it starts over.
func (c *Core) Boot() []byte { return kiss.Append(nil, cmdReset, []byte{0xF8}) }

// FromHost takes bytes from the serial line and returns the bytes to
// write back.
func (c *Core) FromHost(now time.Time, p []byte) []byte {
	var out []byte
	for _, f := range c.in.Feed(p) {
		out = c.command(now, f, out)
	}
	if n := c.in.TooLong; n != c.tooLong { // DATA over MTU: refused, as a shorter bad one
		c.Stats.Refused += n - c.tooLong
		c.tooLong = n
	}
	return out
}

func (c *Core) command(now time.Time, f kiss.Frame, out []byte) []byte {
	reply := func(cmd byte, data ...byte) { out = kiss.Append(out, cmd, data) }
	switch f.Command {
	case cmdDetect:
		if len(f.Data) == 1 && f.Data[0] == 0x73 {
			reply(cmdDetect, 0x46)
		}
	case cmdFWVersion:
		reply(cmdFWVersion, FirmwareMajor, FirmwareMinor)
	case cmdPlatform:
		reply(cmdPlatform, Platform)
	case cmdMCU:
		reply(cmdMCU, c.mcu)
	case cmdFrequency, cmdBandwidth:
		if len(f.Data) != 4 {
			return out
		}
		v := binary.BigEndian.Uint32(f.Data)
		s := c.set
		if f.Command == cmdFrequency {
			s.Frequency = v
		} else {
			s.Bandwidth = v
		}
		c.apply(s)
		applied := c.set.Frequency
		if f.Command == cmdBandwidth {
			applied = c.set.Bandwidth
		}
		out = kiss.Append(out, f.Command, binary.BigEndian.AppendUint32(nil, applied))
	case cmdTxPower, cmdSF, cmdCR:
		if len(f.Data) != 1 {
			return out
		}
		s := c.set
		switch f.Command {
		case cmdTxPower:
			s.TxPower = int8(f.Data[0])
		case cmdSF:
			s.SF = f.Data[0]
		case cmdCR:
			s.CR = f.Data[0]
		}
		c.apply(s)
		v := []byte{byte(c.set.TxPower), c.set.SF, c.set.CR}[f.Command-cmdTxPower]
		reply(f.Command, v)
	case cmdRadioState:
		if len(f.Data) == 1 && f.Data[0] != 0xFF {
			s := c.set
			s.On = f.Data[0] == 0x01
			c.apply(s)
		}
		state := byte(0x00)
		if c.set.On {
			state = 0x01
		}
		reply(cmdRadioState, state)
		if c.set.On {
			// The modem's timing once the radio is up, as RNode reports
			// it then; decided here: also on a state query while on.
			out = c.appendPhysical(out)
		}
	case cmdSTALock, cmdLTALock: // percent × 100
		if len(f.Data) != 2 {
			return out
		}
		frac := float64(binary.BigEndian.Uint16(f.Data)) / 10000
		if frac <= 0 || frac > 1 {
			frac = 1
		}
		if f.Command == cmdSTALock {
			c.short.Fraction = frac
		} else {
			c.long.Fraction = frac
		}
		out = kiss.Append(out, f.Command, f.Data)
	case cmdReady:
		// RNode 1.86 sends READY only when asked. The answer says
		// whether the queue takes a frame of the largest size now (0x01)
		// or not (0x00): our reading, since no document gives the byte.
		ready := byte(0x00)
		if c.queued+MTU <= c.maxQueued && len(c.queue) < MaxQueuedFrames {
			ready = 0x01
		}
		reply(cmdReady, ready)
	case cmdData:
		switch {
		case len(f.Data) == 0 || len(f.Data) > MTU || !c.set.On:
			// RNode has no error for these (0x05 and 0x06 mean memory
			// low and modem timeout): the frame is dropped, and counted.
			c.Stats.Refused++
		case c.queued+len(f.Data) > c.maxQueued || len(c.queue) >= MaxQueuedFrames:
			c.Stats.Dropped++
		default:
			c.queue = append(c.queue, f.Data)
			c.queued += len(f.Data)
		}
	case cmdLeave: // the host is gone; what it queued is not sent
		c.queue, c.queued = nil, 0
	}
	// Everything else (framebuffer, display, Bluetooth, ROM commands of
	// RNode's) is ignored, as a board without them would.
	return out
}

// apply gives the radio s with the preamble RNode uses for its modem.
func (c *Core) apply(s Settings) {
	s.Preamble = PreambleSymbols(s.Bandwidth, s.SF, s.CR)
	c.set = c.radio.Apply(s)
	if c.set.Preamble == 0 { // a radio that does not say keeps what it was given
		c.set.Preamble = s.Preamble
	}
}

// contentionWindow is the number of slots a board waits at most after the
// channel clears: RNode's first band (CSMA_CW_PER_BAND_WINDOWS). The slot
// is lora.RNodeSlot.
const contentionWindow = 15

// symbol is the duration of one LoRa symbol, 2^SF / BW.
func symbol(bw uint32, sf uint8) time.Duration {
	if bw == 0 || sf > 30 {
		return 0
	}
	return time.Duration(uint64(1)<<sf) * time.Second / time.Duration(bw)
}

// PreambleSymbols is the preamble RNode sends: as many symbols as last
// 24 ms, and never fewer than 18 (lora.RNodePreamble, which the node's
// airtime arithmetic uses too).
func PreambleSymbols(bw uint32, sf, cr uint8) int {
	return lora.RNodePreamble(int(bw), int(sf), int(cr))
}

// slot is the CSMA slot: 12 symbols, within 24 and 100 ms, in whole
// milliseconds, the unit RNode reports it in (lora.RNodeSlot).
func (c *Core) slot() time.Duration {
	return lora.RNodeSlot(int(c.set.Bandwidth), int(c.set.SF))
}

// difs is the wait after a busy channel clears before the contention
// window starts: 802.11's DIFS, a short interframe space (0 in RNode)
// and two slots.
func (c *Core) difs() time.Duration { return 2 * c.slot() }

// appendPhysical appends STAT_PHYPRM (symbol time in µs, symbol rate in
// baud, preamble in symbols and in ms, CSMA slot and DIFS in ms, u16 BE
// each: the layout Reticulum parses) and STAT_CSMA (contention window
// band, its least and most slots).
func (c *Core) appendPhysical(out []byte) []byte {
	ts := symbol(c.set.Bandwidth, c.set.SF)
	u16 := func(b []byte, v int64) []byte {
		return binary.BigEndian.AppendUint16(b, uint16(min(max(v, 0), math.MaxUint16)))
	}
	var p []byte
	p = u16(p, ts.Microseconds())
	rate := int64(0)
	if ts > 0 {
		rate = int64(time.Second / ts)
	}
	p = u16(p, rate)
	p = u16(p, int64(c.set.Preamble))
	p = u16(p, (time.Duration(c.set.Preamble) * ts).Milliseconds())
	p = u16(p, c.slot().Milliseconds())
	p = u16(p, c.difs().Milliseconds())
	out = kiss.Append(out, cmdStatPHYPRM, p)
	return kiss.Append(out, cmdStatCSMA, []byte{1, 0, contentionWindow})
}

func (c *Core) modem() lora.Modem {
	return lora.Modem{Bandwidth: int(c.set.Bandwidth), SpreadingFactor: int(c.set.SF), CodingRate: int(c.set.CR), Preamble: c.set.Preamble}
}

// airFrames splits a host frame into what goes on air: one frame of a
// header byte and the data, or, over 254 bytes, two frames each of 255
// bytes at most, both with the split flag and the same sequence number.
func airFrames(data []byte, seq byte) (first, second []byte) {
	h := seq & seqMask
	if len(data) <= SingleFrame-1 {
		return append([]byte{h}, data...), nil
	}
	h |= FlagSplit
	cut := SingleFrame - 1
	return append([]byte{h}, data[:cut]...), append([]byte{h}, data[cut:]...)
}

// Poll starts the next transmission if it may: the radio is on and idle,
// the channel is clear and was clear for the contention after it was
// busy, and the airtime limits allow the whole frame (both halves of a
// split one). It returns how long to wait before polling again (0: poll
// when the transmission ends, or when something is queued).
//
// Listen before talk: no document describes RNode's CSMA beyond its
// constants, so the core does what they suggest: a busy channel is looked
// at again a slot later; once it is clear, the board waits DIFS and a
// random number of slots of its contention window (0..14), and looks
// again. A channel found clear without having been busy is used at once.
func (c *Core) Poll(now time.Time) time.Duration {
	c.sampleNoise(now)
	if c.sending || len(c.queue) == 0 || !c.set.On {
		return 0
	}
	if c.radio.Busy(now) {
		c.Stats.Deferred++
		c.sawBusy = true
		return c.slot()
	}
	if c.sawBusy {
		c.sawBusy = false
		c.backoff = now.Add(c.difs() + time.Duration(c.random(now)%contentionWindow)*c.slot())
	}
	if now.Before(c.backoff) {
		return c.backoff.Sub(now)
	}
	next := c.queue[0]
	first, second := airFrames(next, byte(c.random(now)))
	air := c.modem().Airtime(len(first))
	total := air
	if second != nil {
		total += c.modem().Airtime(len(second))
	}
	ws, wl := c.short.Wait(now, total), c.long.Wait(now, total)
	if ws >= 0 && wl >= 0 && max(ws, wl) > 0 {
		return max(ws, wl)
	}
	c.queue = c.queue[1:]
	c.queued -= len(next)
	if ws < 0 || wl < 0 { // longer than a whole window's budget: it would wait for ever
		c.Stats.OverBudget++
		return c.Poll(now) // the next one may go (at most MaxQueuedFrames deep)
	}
	c.transmit(now, first, air)
	c.rest = second
	c.Stats.Sent++
	return 0
}

func (c *Core) transmit(now time.Time, frame []byte, air time.Duration) {
	c.short.Record(now, air)
	c.long.Record(now, air)
	c.sending = true
	c.radio.Transmit(now, frame)
}

// TxDone reports the end of a transmission. The second half of a split
// frame follows the first at once (a receiver keeps one first half only);
// after the last, the board reports its channel statistics (STAT_CHTM),
// as RNode does on ESP32 and nRF52 after every transmission, and sends no
// READY (RNode 1.86 answers READY only when asked).
func (c *Core) TxDone(now time.Time) []byte {
	c.sending = false
	if c.rest != nil && c.set.On {
		second := c.rest
		c.rest = nil
		c.transmit(now, second, c.modem().Airtime(len(second)))
		return nil
	}
	c.rest = nil
	return c.channelStats(now)
}

// channelStats is STAT_CHTM: the board's own airtime and the channel's
// load over the short and long windows (u16 BE each, in 1/100 %), the
// current RSSI and the noise floor (u8, dBm + 157), and interference (u8,
// 0xFF: none detected; the core does not detect it). The load is the time
// the channel was occupied as the board knows it: its own transmissions
// and the frames it heard.
func (c *Core) channelStats(now time.Time) []byte {
	pct := func(used, window time.Duration) uint16 {
		return uint16(min(float64(used)/float64(window)*10000+0.5, 10000))
	}
	ownShort, ownLong := c.short.Used(now), c.long.Used(now)
	var p []byte
	p = binary.BigEndian.AppendUint16(p, pct(ownShort, ShortWindow))
	p = binary.BigEndian.AppendUint16(p, pct(ownLong, LongWindow))
	p = binary.BigEndian.AppendUint16(p, pct(ownShort+c.heard.used(now, ShortWindow), ShortWindow))
	p = binary.BigEndian.AppendUint16(p, pct(ownLong+c.heard.used(now, LongWindow), LongWindow))
	current, floor := byte(0), byte(0)
	if m, ok := c.radio.(RSSIMeter); ok {
		current = rssiByte(m.RSSI(now))
		if c.noise != 0 {
			floor = rssiByte(int(math.Round(c.noise)))
		}
	}
	p = append(p, current, floor, 0xFF)
	return kiss.Append(nil, cmdStatCHTM, p)
}

// sampleNoise reads the channel's RSSI at most once a second while nothing
// is on it, into a slow average: the noise floor.
func (c *Core) sampleNoise(now time.Time) {
	m, ok := c.radio.(RSSIMeter)
	if !ok || !c.set.On || c.sending || now.Sub(c.noiseAt) < time.Second || c.radio.Busy(now) {
		return
	}
	c.noiseAt = now
	v := float64(m.RSSI(now))
	if c.noise == 0 {
		c.noise = v
		return
	}
	c.noise += (v - c.noise) / 8
}

func rssiByte(dBm int) byte { return byte(min(max(dBm+rssiOffset, 0), 255)) }

// Received takes a frame from the air: it strips the header byte, joins
// the halves of a split frame, and passes the frame to the host with its
// signal statistics first, as RNode does. The board keeps one first half
// at a time: a second half with its sequence number completes it; another
// first half replaces it, and a frame that is not split drops it (both
// counted in Unjoined). No timer drops a first half: as RNode, the next
// frame heard does. One thing the core adds: a split frame shorter than a
// full frame is never kept as a first half (senders cut after a full
// one), so a lone second half is dropped rather than joined to the next
// frame that happens to have its sequence number.
func (c *Core) Received(now time.Time, payload []byte, rssi int, snr float64) []byte {
	c.heard.add(now, c.modem().Airtime(len(payload)))
	if len(payload) < 2 {
		c.Stats.Unjoined++
		return nil
	}
	header, data := payload[0], payload[1:]
	if header&FlagSplit == 0 {
		c.dropPending()
		return c.toHost(data, rssi, snr)
	}
	seq := header & seqMask
	if c.hasPend && c.pendSeq == seq {
		whole := append(c.pending, data...)
		c.pending, c.hasPend = nil, false
		return c.toHost(whole, rssi, snr)
	}
	c.dropPending()
	if len(payload) < SingleFrame {
		// A sender cuts a split frame after a full first frame, so a
		// shorter one is a second half whose first was lost: kept, it
		// would be joined to the next frame of its sequence number.
		c.Stats.Unjoined++
		return nil
	}
	c.pending, c.pendSeq, c.hasPend = append([]byte(nil), data...), seq, true
	return nil
}

func (c *Core) dropPending() {
	if c.hasPend {
		c.Stats.Unjoined++
	}
	c.pending, c.hasPend = nil, false
}

func (c *Core) toHost(data []byte, rssi int, snr float64) []byte {
	c.Stats.Received++
	q := int(snr * 4)
	q = min(max(q, -128), 127)
	out := kiss.Append(nil, cmdStatRSSI, []byte{rssiByte(rssi)})
	out = kiss.Append(out, cmdStatSNR, []byte{byte(int8(q))})
	return kiss.Append(out, cmdData, data)
}

// Airtime returns the airtime of a payload of n bytes on air (the header
// byte included) at the current settings.
func (c *Core) Airtime(n int) time.Duration { return c.modem().Airtime(n) }

// Queued is how many frames and bytes wait.
func (c *Core) Queued() (frames, bytes int) { return len(c.queue), c.queued }

// heardAirtime adds up the airtime of frames heard: exactly over the
// short window, by the minute over the long one, so that an hour of short
// frames takes 60 counters, not a record each.
type heardAirtime struct {
	recent  lora.DutyCycle // the short window's frames
	minutes [60]time.Duration
	minute  [60]int64 // the minute (unix time / 60) each counter holds
}

func (h *heardAirtime) add(end time.Time, air time.Duration) {
	if h.recent.Window == 0 {
		h.recent = lora.DutyCycle{Window: ShortWindow, Fraction: 1}
	}
	h.recent.Record(end.Add(-air), air)
	m := end.Unix() / 60
	i := m % 60
	if h.minute[i] != m {
		h.minute[i], h.minutes[i] = m, 0
	}
	h.minutes[i] += air
}

func (h *heardAirtime) used(now time.Time, window time.Duration) time.Duration {
	if window <= ShortWindow {
		if h.recent.Window == 0 {
			return 0
		}
		return h.recent.Used(now)
	}
	m := now.Unix() / 60
	var sum time.Duration
	for i := range h.minutes {
		if h.minute[i] > m-60 && h.minute[i] <= m {
			sum += h.minutes[i]
		}
	}
	return sum
}
