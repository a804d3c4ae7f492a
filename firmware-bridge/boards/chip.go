package boards

import (
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/lora"
)

// What both chip families share: how Lifeline frames are modulated, and
// the arithmetic of turning asked settings into what a chip can do.

// preamble is the preamble in symbols for s: the one the core asked for,
// which is RNode's (bridge.PreambleSymbols: 24 ms, at least 18 symbols)
// and the one its airtime arithmetic counts; settings made without the
// core (the adapters' tests) get the same rule.
func preamble(s bridge.Settings) int {
	if s.Preamble > 0 {
		return min(s.Preamble, 0xFFFF)
	}
	return bridge.PreambleSymbols(s.Bandwidth, s.SF, s.CR)
}

// bandwidths are the LoRa bandwidths both families offer, in Hz, as the
// host names them (RNode's values); a chip's code for each is its index
// (SX127x) or a table lookup (SX126x).
var bandwidths = [...]uint32{7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000}

// nearestBandwidth returns the index in bandwidths closest to hz: a
// bandwidth the chip cannot do is answered with one it can, and the host,
// which checks every echo, gives up rather than run on the wrong one.
func nearestBandwidth(hz uint32) int {
	best := 0
	for i, b := range bandwidths {
		if absDiff(b, hz) < absDiff(bandwidths[best], hz) {
			best = i
		}
	}
	return best
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// synth returns the synthesiser register for hz on a chip whose step is
// 32 MHz / 2^shift (2^19 on SX127x, 2^25 on SX126x), rounded to the
// nearest step, and the frequency that register gives.
func synth(hz uint32, shift uint) (reg, applied uint32) {
	const xtal = 32_000_000
	reg = uint32((uint64(hz)<<shift + xtal/2) / xtal)
	applied = uint32((uint64(reg)*xtal + 1<<(shift-1)) >> shift)
	return reg, applied
}

func clamp[T int8 | uint8 | uint32](v, lo, hi T) T { return min(max(v, lo), hi) }

// modem returns the modulation for airtime and low data rate
// optimisation, from settings already normalised.
func modem(s bridge.Settings) lora.Modem {
	return lora.Modem{Bandwidth: int(s.Bandwidth), SpreadingFactor: int(s.SF), CodingRate: int(s.CR), Preamble: preamble(s)}
}

// txDeadline is when a transmission of n bytes that started at now is
// given up as lost: the chip's end-of-transmission signal can be missed
// (a glitch, a wire off the interrupt pin), and without it the core would
// wait for READY forever. Half as long again as the airtime, plus the
// chip's start-up, is far beyond any real transmission.
func txDeadline(now time.Time, m lora.Modem, n int) time.Time {
	air := m.Airtime(n)
	return now.Add(air + air/2 + 100*time.Millisecond)
}
