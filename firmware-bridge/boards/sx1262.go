package boards

import (
	"errors"
	"fmt"
	"time"

	bridge "lifeline/firmware-bridge"
)

// SX1262Bus is how the adapter reaches an SX1262: one command per SPI
// transaction, the chip's BUSY line waited on by the implementation.
// *sx126x.Device from tinygo.org/x/drivers has the first four methods;
// the board adds ReadPayload.
type SX1262Bus interface {
	// ExecSetCommand sends an opcode and its parameters.
	ExecSetCommand(cmd uint8, params []uint8)
	// ExecGetCommand sends an opcode and returns the size bytes of its
	// answer that follow the status byte, in the bus's own buffer (valid
	// until the next call).
	ExecGetCommand(cmd uint8, size uint8) []uint8
	ReadRegister(addr, size uint16) ([]uint8, error)
	WriteRegister(addr uint16, data []uint8)
	// ReadPayload fills p from the chip's data buffer, starting at
	// offset (the buffer wraps at 256). The driver's ReadBuffer cannot
	// stand in: its size is a uint8 that counts the status byte, so it
	// reads at most 254 bytes, one short of a full LoRa frame.
	ReadPayload(offset uint8, p []byte)
}

// SX1262Config is how a board wires its SX1262.
type SX1262Config struct {
	// TCXOMillivolts is the supply DIO3 gives a temperature-compensated
	// crystal oscillator (1800 on the RAK4631); 0 for a plain crystal.
	TCXOMillivolts int
	// DIO2Switch: DIO2 drives the antenna switch, so the chip flips it
	// itself between transmit and receive (RAK4631, most modules).
	DIO2Switch bool
	// DCDC: the board has the inductor for the chip's DC-DC regulator,
	// which halves the receive current compared with the LDO.
	DCDC bool
}

// SX1262 commands, registers and interrupt bits (Semtech SX1261/2 data
// sheet, rev. 2.1, chapters 12 and 13).
const (
	sx62ClearIrqStatus      = 0x02
	sx62ClearDeviceErrors   = 0x07
	sx62SetDioIrqParams     = 0x08
	sx62WriteBuffer         = 0x0E
	sx62GetIrqStatus        = 0x12
	sx62GetRxBufferStatus   = 0x13
	sx62GetPacketStatus     = 0x14
	sx62GetDeviceErrors     = 0x17
	sx62SetStandby          = 0x80
	sx62SetRx               = 0x82
	sx62SetTx               = 0x83
	sx62SetRfFrequency      = 0x86
	sx62SetPacketType       = 0x8A
	sx62SetModulationParams = 0x8B
	sx62SetPacketParams     = 0x8C
	sx62SetTxParams         = 0x8E
	sx62SetBufferBaseAddr   = 0x8F
	sx62Calibrate           = 0x89
	sx62SetPaConfig         = 0x95
	sx62SetRegulatorMode    = 0x96
	sx62SetDIO3AsTCXOCtrl   = 0x97
	sx62CalibrateImage      = 0x98
	sx62SetDIO2AsRfSwitch   = 0x9D

	sx62RegSyncWord     = 0x0740
	sx62RegTxModulation = 0x0889
	sx62RegTxClamp      = 0x08D8
	sx62RegOCP          = 0x08E7

	sx62IrqTxDone      = 1 << 0
	sx62IrqRxDone      = 1 << 1
	sx62IrqPreamble    = 1 << 2
	sx62IrqHeaderValid = 1 << 4
	sx62IrqHeaderErr   = 1 << 5
	sx62IrqCrcErr      = 1 << 6
	sx62IrqTimeout     = 1 << 9
	sx62IrqAll         = 0x03FF

	// The interrupts that raise DIO1: the ends of things. A preamble or
	// header being heard is latched in the status only, for Busy.
	sx62Dio1 = sx62IrqTxDone | sx62IrqRxDone | sx62IrqHeaderErr | sx62IrqCrcErr | sx62IrqTimeout
	sx62Irqs = sx62Dio1 | sx62IrqPreamble | sx62IrqHeaderValid

	// syncWord62 is LoRa's private sync word as the SX126x spells it: it
	// hears, and is heard by, an SX127x set to 0x12. RNode firmware uses
	// the same pair.
	syncWord62 = 0x1424
)

// sx62Bandwidth is the SX126x code for each of bandwidths.
var sx62Bandwidth = [len(bandwidths)]uint8{0x00, 0x08, 0x01, 0x09, 0x02, 0x0A, 0x03, 0x04, 0x05, 0x06}

// SX1262 drives a Semtech SX1262 (or SX1268) as a Transceiver. It keeps
// the chip in continuous receive whenever it is on and not transmitting.
type SX1262 struct {
	bus SX1262Bus
	irq func() bool
	cfg SX1262Config

	set      bridge.Settings
	sending  bool
	cut      bool      // Apply interrupted the transmission
	deadline time.Time // the transmission is given up as lost after this
	image    uint32    // the frequency the image rejection is calibrated for
	// A frame being heard (Busy): until when it can still be on the air,
	// and whether its header has been decoded.
	hearing time.Time
	header  bool

	frame [256]byte
	out   [257]byte // offset and payload for WriteBuffer
}

// NewSX1262 returns the adapter for the chip on bus. irq reads the DIO1
// line; nil asks the chip over SPI at every Check instead.
func NewSX1262(bus SX1262Bus, irq func() bool, cfg SX1262Config) *SX1262 {
	return &SX1262{bus: bus, irq: irq, cfg: cfg}
}

// tcxoCode returns SetDIO3AsTCXOCtrl's code for a supply in millivolts.
func tcxoCode(mv int) (uint8, bool) {
	for code, v := range [...]int{1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300} {
		if v == mv {
			return uint8(code), true
		}
	}
	return 0, false
}

// Init brings the chip from reset to standby, ready for Apply: oscillator,
// regulator, antenna switch, LoRa packets with Lifeline's sync word. The
// board resets the chip (NRESET) before. It fails if nothing answers on
// the bus or the chip reports a fault, typically a TCXO voltage that does
// not match the board.
func (r *SX1262) Init() error {
	b := r.bus
	b.ExecSetCommand(sx62SetStandby, []uint8{0x00}) // on the RC oscillator
	if mv := r.cfg.TCXOMillivolts; mv != 0 {
		code, ok := tcxoCode(mv)
		if !ok {
			return fmt.Errorf("sx1262: no TCXO supply of %d mV", mv)
		}
		// Start-up time 5 ms, in 15.625 µs steps: 320.
		b.ExecSetCommand(sx62SetDIO3AsTCXOCtrl, []uint8{code, 0x00, 0x01, 0x40})
	}
	// The calibration at power-on ran without the TCXO and failed, which
	// the chip keeps as an oscillator error: clear the errors, calibrate
	// again, and what is left is a real fault.
	b.ExecSetCommand(sx62ClearDeviceErrors, []uint8{0x00, 0x00})
	b.ExecSetCommand(sx62Calibrate, []uint8{0x7F})
	if r.cfg.DCDC {
		b.ExecSetCommand(sx62SetRegulatorMode, []uint8{0x01})
	}
	if r.cfg.DIO2Switch {
		b.ExecSetCommand(sx62SetDIO2AsRfSwitch, []uint8{0x01})
	}
	b.ExecSetCommand(sx62SetPacketType, []uint8{0x01}) // LoRa
	b.ExecSetCommand(sx62SetBufferBaseAddr, []uint8{0x00, 0x00})
	b.WriteRegister(sx62RegSyncWord, []uint8{syncWord62 >> 8, syncWord62 & 0xFF})
	if sw, err := b.ReadRegister(sx62RegSyncWord, 2); err != nil || len(sw) != 2 || sw[0] != syncWord62>>8 || sw[1] != syncWord62&0xFF {
		return errors.New("sx1262: no chip answers on the SPI bus")
	}
	e := b.ExecGetCommand(sx62GetDeviceErrors, 2)
	if errs := uint16(e[0])<<8 | uint16(e[1]); errs != 0 {
		return fmt.Errorf("sx1262: device errors %#04x after calibration (wrong TCXO voltage?)", errs)
	}
	// Errata 15.2: clamp the PA against a mismatched antenna.
	if v, err := b.ReadRegister(sx62RegTxClamp, 1); err == nil && len(v) == 1 {
		b.WriteRegister(sx62RegTxClamp, []uint8{v[0] | 0x1E})
	}
	b.ExecSetCommand(sx62SetDioIrqParams, []uint8{
		sx62Irqs >> 8, sx62Irqs & 0xFF, sx62Dio1 >> 8, sx62Dio1 & 0xFF, 0, 0, 0, 0})
	return nil
}

// Apply normalises s to what the chip can do, programs it, and listens
// when s.On. It returns what it applied: the frequency on the chip's
// 0.95 Hz grid, the nearest bandwidth, SF 5..12, CR 5..8, power -9..22 dBm.
func (r *SX1262) Apply(s bridge.Settings) bridge.Settings {
	bw := nearestBandwidth(s.Bandwidth)
	s.Bandwidth = bandwidths[bw]
	reg, applied := synth(clamp(s.Frequency, 150_000_000, 960_000_000), 25)
	s.Frequency = applied
	s.SF = clamp(s.SF, 5, 12)
	s.CR = clamp(s.CR, 5, 8)
	s.TxPower = clamp(s.TxPower, -9, 22)
	s.Preamble = preamble(s)
	r.set = s

	r.standby()
	if r.sending {
		r.cut = true
	}
	if !s.On {
		return s
	}
	b := r.bus
	if r.image != s.Frequency {
		// Image rejection is calibrated over a band, in 4 MHz steps:
		// 4 MHz either side of the channel.
		lo, hi := (s.Frequency-4_000_000)/4_000_000, (s.Frequency+4_000_000+3_999_999)/4_000_000
		b.ExecSetCommand(sx62CalibrateImage, []uint8{uint8(lo), uint8(hi)})
		r.image = s.Frequency
	}
	b.ExecSetCommand(sx62SetRfFrequency, []uint8{uint8(reg >> 24), uint8(reg >> 16), uint8(reg >> 8), uint8(reg)})
	ldro := uint8(0)
	if modem(s).LowDataRateOptimize() {
		ldro = 1
	}
	b.ExecSetCommand(sx62SetModulationParams, []uint8{s.SF, sx62Bandwidth[bw], s.CR - 4, ldro})
	// Errata 15.1: bit 2 of TxModulation clear at 500 kHz, set otherwise.
	if v, err := b.ReadRegister(sx62RegTxModulation, 1); err == nil && len(v) == 1 {
		if s.Bandwidth == 500000 {
			b.WriteRegister(sx62RegTxModulation, []uint8{v[0] &^ 0x04})
		} else {
			b.WriteRegister(sx62RegTxModulation, []uint8{v[0] | 0x04})
		}
	}
	// The SX1262's high-power PA at full size; SetTxParams then sets the
	// output (-9..+22 dBm). Ramp 200 µs. Current limit 140 mA.
	b.ExecSetCommand(sx62SetPaConfig, []uint8{0x04, 0x07, 0x00, 0x01})
	b.ExecSetCommand(sx62SetTxParams, []uint8{uint8(s.TxPower), 0x04})
	b.WriteRegister(sx62RegOCP, []uint8{0x38})
	r.listen()
	return s
}

func (r *SX1262) standby() { r.bus.ExecSetCommand(sx62SetStandby, []uint8{0x00}) }

func (r *SX1262) packetParams(length int) {
	// Explicit header, CRC on, standard IQ.
	r.bus.ExecSetCommand(sx62SetPacketParams, []uint8{uint8(r.set.Preamble >> 8), uint8(r.set.Preamble), 0x00, uint8(length), 0x01, 0x00})
}

func (r *SX1262) clearIrqs() {
	r.bus.ExecSetCommand(sx62ClearIrqStatus, []uint8{sx62IrqAll >> 8, sx62IrqAll & 0xFF})
	r.hearing, r.header = time.Time{}, false
}

// listen enters continuous receive: the chip stays there across frames.
func (r *SX1262) listen() {
	r.packetParams(255) // the most it takes; each frame's header says its length
	r.clearIrqs()
	r.bus.ExecSetCommand(sx62SetRx, []uint8{0xFF, 0xFF, 0xFF})
}

// Transmit starts sending payload (at most 255 bytes; the core enforces
// it). Check reports the end.
func (r *SX1262) Transmit(now time.Time, payload []byte) {
	r.standby()
	r.out[0] = 0 // buffer offset: the transmit base address
	n := copy(r.out[1:], payload)
	r.bus.ExecSetCommand(sx62WriteBuffer, r.out[:1+n])
	r.packetParams(n)
	r.clearIrqs()
	// No timeout on the chip: the deadline here covers a lost signal.
	r.bus.ExecSetCommand(sx62SetTx, []uint8{0x00, 0x00, 0x00})
	r.sending, r.cut = true, false
	r.deadline = txDeadline(now, modem(r.set), n)
}

func (r *SX1262) irqStatus() uint16 {
	s := r.bus.ExecGetCommand(sx62GetIrqStatus, 2)
	return uint16(s[0])<<8 | uint16(s[1])
}

// Busy reports a frame on the air: the chip has detected a preamble, or
// decoded a header, since it last finished a frame. Those flags latch, so
// each lasts only as long as what it announced could: a preamble and
// header (the preamble plus 12 symbols), or a whole 255-byte frame once
// the header is in. A false preamble detection in noise then costs one
// short deferral, not a stuck channel.
func (r *SX1262) Busy(now time.Time) bool {
	if !r.set.On || r.sending {
		return false
	}
	st := r.irqStatus()
	if st&(sx62IrqPreamble|sx62IrqHeaderValid) == 0 {
		r.hearing, r.header = time.Time{}, false
		return false
	}
	m := modem(r.set)
	switch {
	case st&sx62IrqHeaderValid != 0 && !r.header:
		r.header = true
		r.hearing = now.Add(m.Airtime(255))
	case r.hearing.IsZero():
		r.hearing = now.Add(time.Duration(m.Preamble+12) * m.Symbol())
	}
	if now.After(r.hearing) {
		r.bus.ExecSetCommand(sx62ClearIrqStatus, []uint8{0, sx62IrqPreamble | sx62IrqHeaderValid})
		r.hearing, r.header = time.Time{}, false
		return false
	}
	return true
}

// Check reports the end of a transmission, or a frame received intact.
// Frames with a bad CRC or header are dropped here.
func (r *SX1262) Check(now time.Time) Event {
	if r.sending && (r.cut || now.After(r.deadline)) {
		r.sending, r.cut = false, false
		if r.set.On {
			r.listen()
		}
		return Event{Kind: TxDone}
	}
	if r.irq != nil && !r.irq() {
		return Event{}
	}
	st := r.irqStatus()
	if st&sx62Dio1 == 0 {
		return Event{}
	}
	switch {
	case r.sending && st&sx62IrqTxDone != 0:
		r.sending = false
		r.listen()
		return Event{Kind: TxDone}
	case !r.sending && st&sx62IrqRxDone != 0 && st&(sx62IrqCrcErr|sx62IrqHeaderErr) == 0:
		s := r.bus.ExecGetCommand(sx62GetRxBufferStatus, 2)
		n, start := s[0], s[1]
		p := r.frame[:n]
		r.bus.ReadPayload(start, p)
		ps := r.bus.ExecGetCommand(sx62GetPacketStatus, 3)
		rssi, snr := -int(ps[0])/2, float64(int8(ps[1]))/4
		r.clearIrqs() // the chip itself stays in receive
		return Event{Kind: RxDone, Frame: p, RSSI: rssi, SNR: snr}
	}
	// A damaged frame, or a stray flag: clear what was seen, and only
	// that, so an end of transmission landing meanwhile is not lost.
	r.bus.ExecSetCommand(sx62ClearIrqStatus, []uint8{uint8(st >> 8), uint8(st)})
	r.hearing, r.header = time.Time{}, false
	return Event{}
}
