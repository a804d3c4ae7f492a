// Package lora is LoRa arithmetic, pure and standard library only, so that
// both the node (radio/) and the board's firmware (firmware-bridge/) use
// the same: the airtime of a frame, the modem and region presets, and the
// duty-cycle budget.
package lora

import (
	"fmt"
	"math"
	"time"
)

// Modem is a LoRa modulation.
type Modem struct {
	Bandwidth       int // Hz: 125000, 250000, 500000, ...
	SpreadingFactor int // 7..12
	CodingRate      int // 5..8, for 4/5 .. 4/8
	Preamble        int // symbols
	// ImplicitHeader leaves out the explicit header (both ends must know
	// the length); Lifeline uses explicit headers.
	ImplicitHeader bool
	// NoCRC leaves out the payload CRC; Lifeline keeps it.
	NoCRC bool
}

// Validate reports a modulation no LoRa radio offers.
func (m Modem) Validate() error {
	switch {
	case m.Bandwidth < 7800 || m.Bandwidth > 500000:
		return fmt.Errorf("lora: bandwidth %d Hz: want 7800 to 500000", m.Bandwidth)
	case m.SpreadingFactor < 6 || m.SpreadingFactor > 12:
		return fmt.Errorf("lora: spreading factor %d: want 6 to 12", m.SpreadingFactor)
	case m.CodingRate < 5 || m.CodingRate > 8:
		return fmt.Errorf("lora: coding rate 4/%d: want 4/5 to 4/8", m.CodingRate)
	case m.Preamble < 6 || m.Preamble > 65535:
		return fmt.Errorf("lora: preamble of %d symbols: want 6 to 65535", m.Preamble)
	}
	return nil
}

// Symbol is the duration of one symbol: 2^SF / BW.
func (m Modem) Symbol() time.Duration {
	return time.Duration(float64(int(1)<<m.SpreadingFactor) / float64(m.Bandwidth) * float64(time.Second))
}

// LowDataRateOptimize reports whether the radio must use it: Semtech
// requires it when a symbol lasts more than 16 ms (SF11 and SF12 at
// 125 kHz).
func (m Modem) LowDataRateOptimize() bool { return m.Symbol() > 16*time.Millisecond }

// Airtime is how long a frame of payload bytes occupies the channel, by
// the Semtech formula (SX1276 datasheet, section 4.1.1.7; AN1200.13):
//
//	Tsym     = 2^SF / BW
//	Tpre     = (preamble + 4.25) Tsym
//	symbols  = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0)
//	airtime  = Tpre + symbols Tsym
//
// with CR = 1..4 for 4/5..4/8, IH = 1 for an implicit header, DE = 1 with
// low data rate optimisation. Checked against Semtech's calculator in the
// tests (36 bytes at 250 kHz, SF11, 4/5, 16 symbols: 0.518 s).
func (m Modem) Airtime(payload int) time.Duration {
	sf := float64(m.SpreadingFactor)
	tsym := float64(int(1)<<m.SpreadingFactor) / float64(m.Bandwidth)
	crc, ih, de := 1.0, 0.0, 0.0
	if m.NoCRC {
		crc = 0
	}
	if m.ImplicitHeader {
		ih = 1
	}
	if m.LowDataRateOptimize() {
		de = 1
	}
	n := math.Ceil((8*float64(payload) - 4*sf + 28 + 16*crc - 20*ih) / (4 * (sf - 2*de)))
	symbols := 8 + math.Max(n*float64(m.CodingRate), 0)
	seconds := (float64(m.Preamble)+4.25)*tsym + symbols*tsym
	return time.Duration(math.Round(seconds * float64(time.Second)))
}

// ModemPresets are the modulations a node can be set to by name. The names
// and settings follow Meshtastic's, whose radios many kits already carry;
// the preamble is 16 symbols throughout.
var ModemPresets = map[string]Modem{
	"ShortFast":    {Bandwidth: 250000, SpreadingFactor: 7, CodingRate: 5, Preamble: 16},
	"ShortSlow":    {Bandwidth: 250000, SpreadingFactor: 8, CodingRate: 5, Preamble: 16},
	"MediumFast":   {Bandwidth: 250000, SpreadingFactor: 9, CodingRate: 5, Preamble: 16},
	"MediumSlow":   {Bandwidth: 250000, SpreadingFactor: 10, CodingRate: 5, Preamble: 16},
	"LongFast":     {Bandwidth: 250000, SpreadingFactor: 11, CodingRate: 5, Preamble: 16},
	"LongModerate": {Bandwidth: 125000, SpreadingFactor: 11, CodingRate: 8, Preamble: 16},
	"LongSlow":     {Bandwidth: 125000, SpreadingFactor: 12, CodingRate: 8, Preamble: 16},
}

// DefaultModem is the preset a node uses unless told: long range at a
// usable rate, what most kits in the field run.
const DefaultModem = "LongFast"

// Region is a band's rules: where to transmit and how much.
type Region struct {
	Name      string
	Frequency uint32  // Hz, the default channel
	MaxPower  int     // dBm (ERP), the legal limit at that frequency
	DutyCycle float64 // the fraction of any Window a node may transmit; 1: no limit
	Window    time.Duration
	// MaxDwell bounds one transmission (0: no bound): US915's 400 ms for
	// frequency hopping systems.
	MaxDwell time.Duration
}

// Regions are the presets by name. EU868 uses the 869.4–869.65 MHz
// sub-band (ETSI EN 300 220, band g3): 10 % duty cycle and 27 dBm, the
// most generous in Europe; EU868-1 the common 868.0–868.6 MHz sub-band at
// 1 %. Duty cycle is measured over one hour.
var Regions = map[string]Region{
	"EU868":   {Name: "EU868", Frequency: 869525000, MaxPower: 27, DutyCycle: 0.10, Window: time.Hour},
	"EU868-1": {Name: "EU868-1", Frequency: 868100000, MaxPower: 14, DutyCycle: 0.01, Window: time.Hour},
	"US915":   {Name: "US915", Frequency: 906875000, MaxPower: 30, DutyCycle: 1, Window: time.Hour, MaxDwell: 400 * time.Millisecond},
	"AU915":   {Name: "AU915", Frequency: 916800000, MaxPower: 30, DutyCycle: 1, Window: time.Hour},
	"IN865":   {Name: "IN865", Frequency: 865062500, MaxPower: 30, DutyCycle: 1, Window: time.Hour},
	"AS923":   {Name: "AS923", Frequency: 923200000, MaxPower: 16, DutyCycle: 0.01, Window: time.Hour},
}

// RNodePreamble is the preamble RNode firmware sets for a modulation, in
// symbols: long enough to last a target time, 24 ms (6 ms above 30 kb/s),
// and never under 18 symbols. Boards speaking the RNode protocol (RNodes,
// and Lifeline's own firmware) all send it, so that their receivers,
// which wake on a preamble, hear each other; and the host's airtime
// arithmetic must count it. As documented for RNode firmware and the
// Reticulum interfaces that mirror it.
func RNodePreamble(bandwidth, sf, cr int) int {
	if bandwidth <= 0 || sf <= 0 || sf > 30 {
		return 18 // not set up yet: the floor
	}
	cr = min(max(cr, 5), 8)
	symbol := float64(int(1)<<sf) / float64(bandwidth) * 1000 // ms
	bitrate := float64(sf) * (4 / float64(cr)) / (symbol / 1000)
	target := 24.0
	if bitrate > 30000 {
		target -= 18
	}
	return max(18, int(math.Ceil(target/symbol)))
}

// RNodeSlot is the listen-before-talk slot of RNode firmware: 12 symbols,
// at least 24 ms and at most 100 ms, in whole milliseconds. After the
// channel clears a board waits two slots and up to 15 more at random
// (RNodeMaxWait) before it transmits.
func RNodeSlot(bandwidth, sf int) time.Duration {
	if bandwidth <= 0 || sf <= 0 || sf > 30 {
		return 24 * time.Millisecond
	}
	symbol := time.Duration(uint64(1)<<sf) * time.Second / time.Duration(bandwidth)
	return min(max(12*symbol, 24*time.Millisecond), 100*time.Millisecond).Truncate(time.Millisecond)
}

// RNodeMaxWait is the longest an RNode board waits on a clear channel
// before it transmits: two slots and the 15 of its contention window.
func RNodeMaxWait(bandwidth, sf int) time.Duration { return 17 * RNodeSlot(bandwidth, sf) }
