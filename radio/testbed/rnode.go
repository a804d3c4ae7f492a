package testbed

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/lora"
)

// The simulated RNode: a board running RNode firmware 1.86 as its
// documentation and its hosts describe it, written apart from
// firmware-bridge so that our board and our driver are checked against
// it, not against themselves. Its sources:
//   - Reticulum's RNode host driver (RNS/Interfaces/RNodeInterface.py):
//     the commands and their echoes, the firmware check (at least 1.52),
//     the layouts of STAT_CHTM (11 bytes), STAT_PHYPRM (12) and STAT_CSMA
//     (3), the error codes and what each means, the reset announcement
//     (CMD_RESET 0xF8, which the host takes as the board having
//     restarted), the MTU of 508 bytes;
//   - Reticulum's manual (interfaces, RNode): the airtime limits are
//     percentages over about 15 seconds and a rolling hour;
//   - RNode_Firmware 1.86's published constants (Config.h, Boards.h): the
//     version, a single frame of 255 bytes, the preamble's 24 ms target
//     and 18-symbol floor, CSMA slots of 12 symbols within 24..100 ms and
//     a contention window of 15 slots, the queue of 6144 bytes and 200
//     frames;
//   - a published description of RNode's air frame
//     (jlpoole/reticulum-specification, section 8.3): one header byte, its
//     upper nibble a random sequence number, FLAG_SPLIT (0x01) on both
//     halves of a frame over 254 bytes, cut after the first 255 bytes on
//     air; a receiver keeps at most one first half, keyed by sequence
//     number, with no timeout;
//   - what the project measured on RNode 1.86: READY only when asked (older
//     firmware also sent it when a frame was queued), STAT_CHTM after every
//     transmission on ESP32 and nRF52 boards, none on AVR ones;
//   - Config.h's UTIL_UPDATE_INTERVAL_MS (1000): an ESP32 or nRF52 board
//     updates its channel statistics, and sends STAT_CHTM, about once a
//     second while its radio is on, whether or not it transmitted.
//
// Where none of them says, the simulation decides, and says so.

// RNode platforms (the answer to CMD_PLATFORM).
const (
	RNodeESP32 = 0x80
	RNodeNRF52 = 0x70
	RNodeAVR   = 0x90
)

// RNodeOptions set up a simulated RNode.
type RNodeOptions struct {
	// Platform: RNodeESP32 if zero. An AVR board (RNodeAVR) reports no
	// channel statistics after its transmissions.
	Platform byte
	// MCU reported (CMD_MCU): RNode's code for the platform if zero.
	MCU byte
	// QueueBytes and QueueFrames bound the transmit queue: 6144 bytes and
	// 200 frames if zero, RNode's on ESP32, nRF52 and the ATmega1284p.
	QueueBytes, QueueFrames int
	// RadioFails: the radio does not start; switching it on answers
	// ERROR_INITRADIO (0x01), as a board whose transceiver does not
	// answer does.
	RadioFails bool
	// Seed for the header's sequence numbers and the contention window,
	// with the board's place on the testbed: boards made with the same
	// seed at the same place draw the same numbers.
	Seed uint64
}

// RNodeBoard is the firmware of a simulated RNode 1.86 board.
func RNodeBoard(opts RNodeOptions) Firmware {
	if opts.Platform == 0 {
		opts.Platform = RNodeESP32
	}
	if opts.MCU == 0 {
		opts.MCU = map[byte]byte{RNodeESP32: 0x81, RNodeNRF52: 0x71, RNodeAVR: 0x91}[opts.Platform]
	}
	if opts.QueueBytes == 0 {
		opts.QueueBytes = 6144
	}
	if opts.QueueFrames == 0 {
		opts.QueueFrames = 200
	}
	return func(r Radio) Device {
		// Each board of a testbed draws its own numbers, as real boards
		// do: boards with one sequence would pick the same contention
		// slots after a busy channel and collide every time.
		index := 0
		if ch, ok := r.(*chip); ok {
			index = ch.b.index
		}
		return &rnodeDevice{opts: opts, radio: r, in: kiss.NewDeframer(rnodeMTU + 1),
			rand:  rand.New(rand.NewPCG(opts.Seed, 0x726e6f6465+uint64(index))),
			short: lora.DutyCycle{Window: 15 * time.Second, Fraction: 1},
			long:  lora.DutyCycle{Window: time.Hour, Fraction: 1}}
	}
}

// RNode's frame sizes and commands.
const (
	rnodeMTU    = 508
	rnodeSingle = 255 // a LoRa payload, the header byte included
	rnodeSplit  = 0x01

	rnData       = 0x00
	rnFrequency  = 0x01
	rnBandwidth  = 0x02
	rnTxPower    = 0x03
	rnSF         = 0x04
	rnCR         = 0x05
	rnRadioState = 0x06
	rnDetect     = 0x08
	rnLeave      = 0x0A
	rnSTALock    = 0x0B
	rnLTALock    = 0x0C
	rnReady      = 0x0F
	rnStatRSSI   = 0x23
	rnStatSNR    = 0x24
	rnStatCHTM   = 0x25
	rnStatPHYPRM = 0x26
	rnStatCSMA   = 0x28
	rnPlatform   = 0x48
	rnMCU        = 0x49
	rnFWVersion  = 0x50
	rnReset      = 0x55
	rnError      = 0x90

	rnErrInitRadio = 0x01
)

// noiseFloor is the simulated air's noise, in dBm: the testbed models
// none, so the RNode reports a quiet 250 kHz channel's.
const noiseFloor = -115

type rnodeDevice struct {
	opts  RNodeOptions
	radio Radio
	in    *kiss.Deframer
	rand  *rand.Rand

	freq, bw  uint32
	power     int8
	sf, cr    uint8
	on        bool
	preamble  int
	short     lora.DutyCycle // airtime locks, and the board's own airtime
	long      lora.DutyCycle
	heard     lora.DutyCycle // frames heard, for the short-term channel load
	heardLong time.Duration  // and over the hour, approximately: see channelStats
	heardFrom time.Time

	queue   [][]byte
	queued  int
	sending bool
	second  []byte    // the second half of a split frame, sent when the first ends
	clear   time.Time // when contention after a busy channel ends (zero: none)
	busy    bool      // the channel was busy at the last look

	half    []byte // a first half heard
	halfSeq byte
	hasHalf bool

	lastStats time.Time // the last periodic STAT_CHTM
}

// statsEvery is how often an ESP32 or nRF52 board sends STAT_CHTM
// unasked, between those that follow its transmissions.
const statsEvery = time.Second

func (d *rnodeDevice) Boot(time.Time) []byte {
	// RNode announces a (re)start with CMD_RESET 0xF8; Reticulum takes it
	// from an ESP32 board as a reset that needs configuring again.
	return kiss.Append(nil, rnReset, []byte{0xF8})
}

func (d *rnodeDevice) Listening() bool { return d.on }

func (d *rnodeDevice) FromHost(now time.Time, p []byte) []byte {
	var out []byte
	for _, f := range d.in.Feed(p) {
		out = d.command(now, f, out)
	}
	return out
}

func (d *rnodeDevice) command(now time.Time, f kiss.Frame, out []byte) []byte {
	echo := func(cmd byte, data []byte) { out = kiss.Append(out, cmd, data) }
	one := len(f.Data) == 1
	switch f.Command {
	case rnDetect:
		if one && f.Data[0] == 0x73 {
			echo(rnDetect, []byte{0x46})
		}
	case rnFWVersion:
		echo(rnFWVersion, []byte{1, 86})
	case rnPlatform:
		echo(rnPlatform, []byte{d.opts.Platform})
	case rnMCU:
		echo(rnMCU, []byte{d.opts.MCU})
	case rnFrequency, rnBandwidth:
		if len(f.Data) != 4 {
			break
		}
		if f.Command == rnFrequency {
			d.freq = binary.BigEndian.Uint32(f.Data)
		} else {
			d.bw = binary.BigEndian.Uint32(f.Data)
		}
		d.modemChanged()
		echo(f.Command, f.Data)
	case rnTxPower:
		if one {
			d.power = int8(f.Data[0])
			echo(rnTxPower, f.Data)
		}
	case rnSF:
		if one {
			d.sf = min(max(f.Data[0], 5), 12)
			d.modemChanged()
			echo(rnSF, []byte{d.sf})
		}
	case rnCR:
		if one {
			d.cr = min(max(f.Data[0], 5), 8)
			echo(rnCR, []byte{d.cr})
		}
	case rnRadioState:
		if one && f.Data[0] == 0x01 && d.opts.RadioFails {
			echo(rnError, []byte{rnErrInitRadio})
		} else if one && f.Data[0] != 0xFF {
			d.on = f.Data[0] == 0x01
		}
		state := byte(0)
		if d.on {
			state = 1
		}
		echo(rnRadioState, []byte{state})
		if d.on && d.statistics() {
			out = d.physical(out)
		}
	case rnSTALock, rnLTALock:
		if len(f.Data) != 2 {
			break
		}
		frac := float64(binary.BigEndian.Uint16(f.Data)) / 10000
		if frac <= 0 || frac > 1 {
			frac = 1
		}
		if f.Command == rnSTALock {
			d.short.Fraction = frac
		} else {
			d.long.Fraction = frac
		}
		echo(f.Command, f.Data)
	case rnReady:
		// Decided: 0x01 when a frame of the largest size fits the queue.
		ready := byte(0)
		if d.queued+rnodeMTU <= d.opts.QueueBytes && len(d.queue) < d.opts.QueueFrames {
			ready = 1
		}
		echo(rnReady, []byte{ready})
	case rnData:
		// RNode drops what it cannot queue, without an error (0x04
		// would make Reticulum drop the interface). Decided: it drops a
		// frame sent while its radio is off too.
		if n := len(f.Data); n > 0 && n <= rnodeMTU && d.on && d.queued+n <= d.opts.QueueBytes && len(d.queue) < d.opts.QueueFrames {
			d.queue = append(d.queue, f.Data)
			d.queued += n
		}
	case rnLeave:
		d.queue, d.queued = nil, 0
	}
	return out
}

// statistics: ESP32 and nRF52 boards report channel statistics, AVR ones
// do not.
func (d *rnodeDevice) statistics() bool { return d.opts.Platform != RNodeAVR }

func (d *rnodeDevice) symbol() time.Duration {
	if d.bw == 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * float64(uint(1)<<d.sf) / float64(d.bw))
}

// modemChanged sets the preamble for the modem: enough symbols for
// 24 ms, never fewer than 18.
func (d *rnodeDevice) modemChanged() {
	d.preamble = 18
	if ts := d.symbol(); ts > 0 {
		d.preamble = max(18, int(float64(24*time.Millisecond)/float64(ts)+0.999999))
	}
}

// slot is the CSMA slot: 12 symbols, at least 24 ms, at most 100, in
// whole milliseconds (RNode's unit for it).
func (d *rnodeDevice) slot() time.Duration {
	return min(max(12*d.symbol(), 24*time.Millisecond), 100*time.Millisecond).Truncate(time.Millisecond)
}

func (d *rnodeDevice) physical(out []byte) []byte {
	ts := d.symbol()
	var p []byte
	put := func(v float64) { p = binary.BigEndian.AppendUint16(p, uint16(min(max(v, 0), 65535))) }
	put(float64(ts.Microseconds()))
	if ts > 0 {
		put(float64(time.Second / ts))
	} else {
		put(0)
	}
	put(float64(d.preamble))
	put(float64((time.Duration(d.preamble) * ts).Milliseconds()))
	put(float64(d.slot().Milliseconds()))
	put(float64((2 * d.slot()).Milliseconds()))
	out = kiss.Append(out, rnStatPHYPRM, p)
	return kiss.Append(out, rnStatCSMA, []byte{1, 0, 15})
}

func (d *rnodeDevice) airtime(n int) time.Duration {
	return lora.Modem{Bandwidth: int(d.bw), SpreadingFactor: int(d.sf), CodingRate: int(d.cr), Preamble: d.preamble}.Airtime(n)
}

// Poll reports the channel statistics (STAT_CHTM) every statsEvery on an
// ESP32 or nRF52 board, and sends the next queued frame when the radio is
// idle, the channel has been clear through the contention (after a busy
// channel: two slots and up to 15 more, at random) and the airtime locks
// allow the whole frame; a frame that would break a lock waits until it
// would not.
func (d *rnodeDevice) Poll(now time.Time) []byte {
	var out []byte
	if d.on && d.statistics() && now.Sub(d.lastStats) >= statsEvery {
		d.lastStats = now
		out = kiss.Append(nil, rnStatCHTM, d.channelStats(now))
	}
	if !d.on || d.sending || len(d.queue) == 0 {
		return out
	}
	if d.radio.Busy(now) {
		d.busy = true
		return out
	}
	if d.busy {
		d.busy = false
		d.clear = now.Add(2*d.slot() + time.Duration(d.rand.IntN(16))*d.slot())
	}
	if now.Before(d.clear) {
		return out
	}
	data := d.queue[0]
	header := byte(d.rand.IntN(16)) << 4
	var frames [][]byte
	if len(data) > rnodeSingle-1 {
		header |= rnodeSplit
		frames = [][]byte{append([]byte{header}, data[:rnodeSingle-1]...), append([]byte{header}, data[rnodeSingle-1:]...)}
	} else {
		frames = [][]byte{append([]byte{header}, data...)}
	}
	var total time.Duration
	for _, f := range frames {
		total += d.airtime(len(f))
	}
	ws, wl := d.short.Wait(now, total), d.long.Wait(now, total)
	if ws > 0 && wl >= 0 || wl > 0 && ws >= 0 {
		return out
	}
	d.queue = d.queue[1:]
	d.queued -= len(data)
	if ws < 0 || wl < 0 { // more than a whole window allows: it would never go
		return out
	}
	d.send(now, frames[0])
	if len(frames) == 2 {
		d.second = frames[1]
	}
	return out
}

func (d *rnodeDevice) send(now time.Time, frame []byte) {
	air := d.airtime(len(frame))
	d.short.Record(now, air)
	d.long.Record(now, air)
	d.sending = true
	d.radio.Transmit(now, air, frame)
}

// TxDone: the second half of a split frame follows its first at once;
// after the last, an ESP32 or nRF52 board reports STAT_CHTM. No READY.
func (d *rnodeDevice) TxDone(now time.Time) []byte {
	d.sending = false
	if d.second != nil {
		f := d.second
		d.second = nil
		if d.on {
			d.send(now, f)
			return nil
		}
	}
	if !d.statistics() {
		return nil
	}
	return kiss.Append(nil, rnStatCHTM, d.channelStats(now))
}

// channelStats is STAT_CHTM's 11 bytes: own airtime and channel load over
// 15 s and an hour (u16, 1/100 %), current RSSI and noise floor (u8, dBm
// + 157), interference (0xFF: none). The load counts the board's own
// frames and those it heard. The long-term load of frames heard is
// approximated by their total since the first, spread over at least an
// hour: a simulation runs for minutes.
func (d *rnodeDevice) channelStats(now time.Time) []byte {
	pct := func(used, window time.Duration) uint16 {
		return uint16(min(10000, float64(used)/float64(window)*10000+0.5))
	}
	var p []byte
	ownS, ownL := d.short.Used(now), d.long.Used(now)
	heardS := time.Duration(0)
	if d.heard.Window > 0 {
		heardS = d.heard.Used(now)
	}
	p = binary.BigEndian.AppendUint16(p, pct(ownS, 15*time.Second))
	p = binary.BigEndian.AppendUint16(p, pct(ownL, time.Hour))
	p = binary.BigEndian.AppendUint16(p, pct(ownS+heardS, 15*time.Second))
	p = binary.BigEndian.AppendUint16(p, pct(ownL+d.heardLong, max(time.Hour, now.Sub(d.heardFrom))))
	rssi := d.currentRSSI(now)
	return append(p, byte(rssi+157), byte(noiseFloor+157), 0xFF)
}

func (d *rnodeDevice) currentRSSI(now time.Time) int {
	if d.radio.Busy(now) {
		return -95 // what the testbed's frames arrive at
	}
	return noiseFloor
}

// Received strips the header byte and joins the halves of a split frame,
// as RNode does: one first half kept at a time, completed by a split frame
// of the same sequence number, replaced by one of another, dropped by a
// frame that is not split. The frame goes to the host behind its RSSI and
// SNR.
func (d *rnodeDevice) Received(now time.Time, frame []byte, rssi int, snr float64) []byte {
	air := d.airtime(len(frame))
	if d.heard.Window == 0 {
		d.heard = lora.DutyCycle{Window: 15 * time.Second, Fraction: 1}
		d.heardFrom = now
	}
	d.heard.Record(now.Add(-air), air)
	d.heardLong += air
	if len(frame) < 2 {
		return nil
	}
	header, data := frame[0], frame[1:]
	if header&rnodeSplit == 0 {
		d.hasHalf, d.half = false, nil
		return d.up(data, rssi, snr)
	}
	if d.hasHalf && d.halfSeq == header>>4 {
		whole := append(d.half, data...)
		d.hasHalf, d.half = false, nil
		return d.up(whole, rssi, snr)
	}
	d.half, d.halfSeq, d.hasHalf = append([]byte(nil), data...), header>>4, true
	return nil
}

func (d *rnodeDevice) up(data []byte, rssi int, snr float64) []byte {
	out := kiss.Append(nil, rnStatRSSI, []byte{byte(min(max(rssi+157, 0), 255))})
	out = kiss.Append(out, rnStatSNR, []byte{byte(int8(min(max(snr*4, -128), 127)))})
	return kiss.Append(out, rnData, data)
}
