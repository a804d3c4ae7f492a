package boards

import (
	"fmt"
	"time"

	bridge "lifeline/firmware-bridge"
)

// SX1276Bus is how the adapter reaches an SX1276: single register reads
// and writes, chip select handled by the implementation. Writing or
// reading the FIFO register moves the chip's FIFO pointer by one.
// *sx127x.Device from tinygo.org/x/drivers has both methods.
type SX1276Bus interface {
	ReadRegister(reg uint8) uint8
	WriteRegister(reg uint8, value uint8) uint8
}

// SX1276 registers and values in LoRa mode (Semtech SX1276/77/78/79 data
// sheet, rev. 7, section 6.4).
const (
	sx76Fifo          = 0x00
	sx76OpMode        = 0x01
	sx76FrfMsb        = 0x06
	sx76PaConfig      = 0x09
	sx76Ocp           = 0x0B
	sx76Lna           = 0x0C
	sx76FifoAddrPtr   = 0x0D
	sx76FifoTxBase    = 0x0E
	sx76FifoRxBase    = 0x0F
	sx76FifoRxCurrent = 0x10
	sx76IrqFlagsMask  = 0x11
	sx76IrqFlags      = 0x12
	sx76RxNbBytes     = 0x13
	sx76ModemStat     = 0x18
	sx76PktSnr        = 0x19
	sx76PktRssi       = 0x1A
	sx76ModemConfig1  = 0x1D
	sx76ModemConfig2  = 0x1E
	sx76PreambleMsb   = 0x20
	sx76PayloadLength = 0x22
	sx76ModemConfig3  = 0x26
	sx76DetectOpt     = 0x31
	sx76DetectThresh  = 0x37
	sx76SyncWord      = 0x39
	sx76DioMapping1   = 0x40
	sx76Version       = 0x42
	sx76PaDac         = 0x4D

	sx76LoRa         = 0x80 // OpMode: LongRangeMode
	sx76LowFreq      = 0x08 // OpMode: LowFrequencyModeOn, below 525 MHz
	sx76Sleep        = 0x00
	sx76Standby      = 0x01
	sx76Tx           = 0x03
	sx76RxContinuous = 0x05

	sx76IrqRxDone = 0x40
	sx76IrqCrcErr = 0x20
	sx76IrqTxDone = 0x08

	// syncWord76 is LoRa's private sync word, which an SX126x set to
	// 0x1424 hears; RNode firmware uses the same.
	syncWord76 = 0x12
	// Below lowBand the SX1276 uses its low-frequency port, which has
	// its own RSSI offset.
	lowBand = 525_000_000
)

// SX1276 drives a Semtech SX1276 (HopeRF RFM95) whose antenna is on the
// PA_BOOST pin, as on every RFM95 module, as a Transceiver. It keeps the
// chip in continuous receive whenever it is on and not transmitting.
type SX1276 struct {
	bus SX1276Bus
	irq func() bool

	set      bridge.Settings
	sending  bool
	cut      bool
	deadline time.Time
	frame    [256]byte
}

// NewSX1276 returns the adapter for the chip on bus. irq reads the DIO0
// line; nil asks the chip over SPI at every Check instead.
func NewSX1276(bus SX1276Bus, irq func() bool) *SX1276 {
	return &SX1276{bus: bus, irq: irq}
}

// Init puts the chip, after its reset, in LoRa mode on standby with
// Lifeline's sync word, the whole FIFO for each direction in turn, and the
// receiver at full gain. It fails if no SX127x answers on the bus.
func (r *SX1276) Init() error {
	b := r.bus
	if v := b.ReadRegister(sx76Version); v != 0x12 {
		return fmt.Errorf("sx1276: no chip answers on the SPI bus (version register %#02x, want 0x12)", v)
	}
	// LoRa mode can only be entered from sleep.
	b.WriteRegister(sx76OpMode, sx76Sleep)
	b.WriteRegister(sx76OpMode, sx76LoRa|sx76Sleep)
	if b.ReadRegister(sx76OpMode)&sx76LoRa == 0 {
		return fmt.Errorf("sx1276: the chip does not enter LoRa mode")
	}
	b.WriteRegister(sx76OpMode, sx76LoRa|sx76Standby)
	b.WriteRegister(sx76FifoTxBase, 0)
	b.WriteRegister(sx76FifoRxBase, 0)
	b.WriteRegister(sx76Lna, 0x23) // maximum gain, LNA boost on the HF port
	b.WriteRegister(sx76SyncWord, syncWord76)
	b.WriteRegister(sx76IrqFlagsMask, 0x00)
	b.WriteRegister(sx76IrqFlags, 0xFF)
	// Detection settings for SF 7..12 (SF6 would need implicit headers).
	b.WriteRegister(sx76DetectOpt, 0xC3)
	b.WriteRegister(sx76DetectThresh, 0x0A)
	return nil
}

func (r *SX1276) mode(m uint8) {
	if r.set.Frequency < lowBand {
		m |= sx76LowFreq
	}
	r.bus.WriteRegister(sx76OpMode, sx76LoRa|m)
}

// Apply normalises s to what the chip can do, programs it, and listens
// when s.On. It returns what it applied: the frequency on the chip's
// 61 Hz grid, the nearest bandwidth, SF 7..12, CR 5..8, power 2..20 dBm
// (PA_BOOST; above 17 dBm with the high-power DAC).
func (r *SX1276) Apply(s bridge.Settings) bridge.Settings {
	bw := nearestBandwidth(s.Bandwidth)
	s.Bandwidth = bandwidths[bw]
	reg, applied := synth(clamp(s.Frequency, 137_000_000, 1_020_000_000), 19)
	s.Frequency = applied
	s.SF = clamp(s.SF, 7, 12)
	s.CR = clamp(s.CR, 5, 8)
	s.TxPower = clamp(s.TxPower, 2, 20)
	s.Preamble = preamble(s)
	r.set = s

	r.mode(sx76Standby)
	if r.sending {
		r.cut = true
	}
	if !s.On {
		return s
	}
	b := r.bus
	b.WriteRegister(sx76FrfMsb, uint8(reg>>16))
	b.WriteRegister(sx76FrfMsb+1, uint8(reg>>8))
	b.WriteRegister(sx76FrfMsb+2, uint8(reg))
	// Bandwidth, coding rate, explicit header; SF, CRC on; AGC and, for
	// symbols over 16 ms, low data rate optimisation.
	b.WriteRegister(sx76ModemConfig1, uint8(bw)<<4|(s.CR-4)<<1)
	b.WriteRegister(sx76ModemConfig2, s.SF<<4|0x04)
	cfg3 := uint8(0x04)
	if modem(s).LowDataRateOptimize() {
		cfg3 |= 0x08
	}
	b.WriteRegister(sx76ModemConfig3, cfg3)
	b.WriteRegister(sx76PreambleMsb, uint8(s.Preamble>>8))
	b.WriteRegister(sx76PreambleMsb+1, uint8(s.Preamble))
	// PA_BOOST gives 2..17 dBm as 2 + OutputPower; the high-power DAC
	// adds 3 dB for 18..20 dBm, and needs the current limit raised from
	// 100 to 140 mA.
	if s.TxPower > 17 {
		b.WriteRegister(sx76PaDac, 0x87)
		b.WriteRegister(sx76PaConfig, 0x80|0x70|uint8(s.TxPower-5))
		b.WriteRegister(sx76Ocp, 0x20|17) // 140 mA: -30 + 10 × 17
	} else {
		b.WriteRegister(sx76PaDac, 0x84)
		b.WriteRegister(sx76PaConfig, 0x80|0x70|uint8(s.TxPower-2))
		b.WriteRegister(sx76Ocp, 0x20|11) // 100 mA: 45 + 5 × 11
	}
	r.listen()
	return s
}

// listen enters continuous receive with DIO0 raised on RxDone.
func (r *SX1276) listen() {
	b := r.bus
	b.WriteRegister(sx76DioMapping1, 0x00)
	b.WriteRegister(sx76FifoAddrPtr, 0)
	b.WriteRegister(sx76IrqFlags, 0xFF)
	r.mode(sx76RxContinuous)
}

// Transmit starts sending payload (at most 255 bytes; the core enforces
// it). Check reports the end.
func (r *SX1276) Transmit(now time.Time, payload []byte) {
	b := r.bus
	// Standby, not sleep: the FIFO cannot be written in sleep.
	r.mode(sx76Standby)
	b.WriteRegister(sx76DioMapping1, 0x40) // DIO0: TxDone
	b.WriteRegister(sx76FifoAddrPtr, 0)    // the transmit base address
	for _, c := range payload {
		b.WriteRegister(sx76Fifo, c)
	}
	b.WriteRegister(sx76PayloadLength, uint8(len(payload)))
	b.WriteRegister(sx76IrqFlags, 0xFF)
	r.mode(sx76Tx)
	r.sending, r.cut = true, false
	r.deadline = txDeadline(now, modem(r.set), len(payload))
}

// Busy reports a frame on the air, from the modem's live status: a LoRa
// preamble detected, the receiver synchronised on it, or a header
// decoded. RNode's carrier detect reads the same bits.
func (r *SX1276) Busy(time.Time) bool {
	if !r.set.On || r.sending {
		return false
	}
	return r.bus.ReadRegister(sx76ModemStat)&0x0B != 0
}

// Check reports the end of a transmission, or a frame received intact.
// Frames with a bad CRC are dropped here.
func (r *SX1276) Check(now time.Time) Event {
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
	b := r.bus
	flags := b.ReadRegister(sx76IrqFlags)
	switch {
	case r.sending && flags&sx76IrqTxDone != 0:
		r.sending = false
		r.listen()
		return Event{Kind: TxDone}
	case r.sending || flags&sx76IrqRxDone == 0:
		// A header decoded mid-frame, or nothing: not ours to clear.
		return Event{}
	case flags&sx76IrqCrcErr != 0:
		b.WriteRegister(sx76IrqFlags, flags)
		return Event{}
	}
	n := b.ReadRegister(sx76RxNbBytes)
	b.WriteRegister(sx76FifoAddrPtr, b.ReadRegister(sx76FifoRxCurrent))
	p := r.frame[:n]
	for i := range p {
		p[i] = b.ReadRegister(sx76Fifo)
	}
	snr := int8(b.ReadRegister(sx76PktSnr))
	rssi := int(b.ReadRegister(sx76PktRssi))
	// RSSI of the packet (data sheet 5.5.5): the offset depends on the
	// port; below the noise floor (SNR < 0) the SNR corrects it.
	if r.set.Frequency < lowBand {
		rssi -= 164
	} else {
		rssi -= 157
	}
	if snr < 0 {
		rssi += int(snr) / 4
	}
	b.WriteRegister(sx76IrqFlags, flags)
	return Event{Kind: RxDone, Frame: p, RSSI: rssi, SNR: float64(snr) / 4}
}
