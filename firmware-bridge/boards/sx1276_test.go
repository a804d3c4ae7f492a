package boards

import (
	"bytes"
	"strings"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/rnode"
)

// chip76 is an SX1276 at the level of its registers (data sheet section
// 6.4): FIFO access through RegFifo moves the FIFO pointer, IRQ flags
// clear when written with ones, LoRa mode changes only in sleep, and a
// test makes transmissions end and frames arrive.
type chip76 struct {
	regs   [0x80]uint8
	fifo   [256]byte
	ptr    uint8
	sent   [][]byte
	absent bool // no chip on the bus: reads are zero
	noLoRa bool // a chip that never takes LoRa mode
}

func newChip76() *chip76 {
	c := &chip76{}
	c.regs[sx76Version] = 0x12
	c.regs[sx76OpMode] = 0x09 // FSK, standby: the reset state
	c.regs[sx76FifoTxBase] = 0x80
	return c
}

func (c *chip76) ReadRegister(reg uint8) uint8 {
	switch {
	case c.absent:
		return 0
	case reg == sx76Fifo:
		v := c.fifo[c.ptr]
		c.ptr++
		return v
	case reg == sx76FifoAddrPtr:
		return c.ptr
	}
	return c.regs[reg]
}

func (c *chip76) WriteRegister(reg uint8, v uint8) uint8 {
	switch reg {
	case sx76Fifo:
		c.fifo[c.ptr] = v
		c.ptr++
	case sx76FifoAddrPtr:
		c.ptr = v
	case sx76IrqFlags:
		c.regs[reg] &^= v
	case sx76OpMode:
		cur := c.regs[reg]
		if cur&0x07 != sx76Sleep || c.noLoRa {
			v = v&^sx76LoRa | cur&sx76LoRa
		}
		c.regs[reg] = v
		if v&0x07 == sx76Tx {
			base := c.regs[sx76FifoTxBase]
			p := make([]byte, c.regs[sx76PayloadLength])
			for i := range p {
				p[i] = c.fifo[uint8(int(base)+i)]
			}
			c.sent = append(c.sent, p)
		}
	default:
		c.regs[reg] = v
	}
	return 0
}

func (c *chip76) mode() uint8 { return c.regs[sx76OpMode] & 0x07 }

// line is DIO0, as RegDioMapping1 routes it.
func (c *chip76) line() bool {
	switch c.regs[sx76DioMapping1] >> 6 {
	case 0:
		return c.regs[sx76IrqFlags]&sx76IrqRxDone != 0
	case 1:
		return c.regs[sx76IrqFlags]&sx76IrqTxDone != 0
	}
	return false
}

func (c *chip76) finish() {
	c.regs[sx76OpMode] = c.regs[sx76OpMode]&^0x07 | sx76Standby
	c.regs[sx76IrqFlags] |= sx76IrqTxDone
}

// hear delivers a frame at FIFO address at, wrapping, with raw packet
// statistics.
func (c *chip76) hear(p []byte, at uint8, rssiRaw uint8, snrRaw int8, crcErr bool) {
	for i, b := range p {
		c.fifo[uint8(int(at)+i)] = b
	}
	c.regs[sx76FifoRxCurrent], c.regs[sx76RxNbBytes] = at, uint8(len(p))
	c.regs[sx76PktRssi], c.regs[sx76PktSnr] = rssiRaw, uint8(snrRaw)
	c.regs[sx76IrqFlags] |= sx76IrqRxDone | 0x10 // and ValidHeader
	if crcErr {
		c.regs[sx76IrqFlags] |= sx76IrqCrcErr
	}
}

func (c *chip76) modulation() onAir {
	frf := uint32(c.regs[sx76FrfMsb])<<16 | uint32(c.regs[sx76FrfMsb+1])<<8 | uint32(c.regs[sx76FrfMsb+2])
	m1, m2 := c.regs[sx76ModemConfig1], c.regs[sx76ModemConfig2]
	return onAir{
		Frequency: uint32((uint64(frf)*32_000_000 + 1<<18) >> 19),
		Bandwidth: bandwidths[m1>>4], SF: m2 >> 4, CR: (m1>>1)&0x07 + 4,
		LDRO:     c.regs[sx76ModemConfig3]&0x08 != 0,
		Preamble: int(c.regs[sx76PreambleMsb])<<8 | int(c.regs[sx76PreambleMsb+1]),
		Explicit: m1&0x01 == 0, CRC: m2&0x04 != 0,
		InvertIQ: false, // RegInvertIQ is left at its reset value
		Sync:     c.regs[sx76SyncWord],
	}
}

func initChip76(t *testing.T) (*chip76, *SX1276) {
	t.Helper()
	c := newChip76()
	r := NewSX1276(c, c.line)
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	return c, r
}

func TestSX1276Init(t *testing.T) {
	c, _ := initChip76(t)
	if c.regs[sx76OpMode] != sx76LoRa|sx76Standby || c.regs[sx76SyncWord] != 0x12 || c.regs[sx76FifoTxBase] != 0 || c.regs[sx76Lna] != 0x23 {
		t.Fatalf("registers after Init: op mode %#x sync %#x tx base %#x lna %#x",
			c.regs[sx76OpMode], c.regs[sx76SyncWord], c.regs[sx76FifoTxBase], c.regs[sx76Lna])
	}
	absent := newChip76()
	absent.absent = true
	if err := NewSX1276(absent, nil).Init(); err == nil || !strings.Contains(err.Error(), "no chip") {
		t.Fatalf("no chip: %v", err)
	}
	stuck := newChip76()
	stuck.noLoRa = true
	if err := NewSX1276(stuck, nil).Init(); err == nil {
		t.Fatal("a chip that stays in FSK mode was accepted")
	}
}

// TestSX1276Apply: what the host asks is normalised to what an RFM95 can
// do and reported back; the chip is programmed with it and listens.
func TestSX1276Apply(t *testing.T) {
	c, r := initChip76(t)
	got := r.Apply(bridge.Settings{Frequency: 869525000, Bandwidth: 200000, TxPower: 27, SF: 6, CR: 5, On: true})
	if d := int64(got.Frequency) - 869525000; d < -31 || d > 31 {
		t.Errorf("frequency %d", got.Frequency)
	}
	if got.Bandwidth != 250000 || got.TxPower != 20 || got.SF != 7 || got.CR != 5 {
		t.Errorf("applied %+v", got)
	}
	if c.regs[sx76PaDac] != 0x87 || c.regs[sx76PaConfig] != 0xFF || c.regs[sx76Ocp] != 0x31 {
		t.Errorf("20 dBm: PaDac %#x PaConfig %#x Ocp %#x", c.regs[sx76PaDac], c.regs[sx76PaConfig], c.regs[sx76Ocp])
	}
	if c.mode() != sx76RxContinuous || c.regs[sx76DioMapping1] != 0 {
		t.Errorf("not listening: op mode %#x", c.regs[sx76OpMode])
	}

	got = r.Apply(bridge.Settings{Frequency: 433175000, Bandwidth: 125000, TxPower: 14, SF: 12, CR: 8, On: true})
	m := c.modulation()
	if got.TxPower != 14 || c.regs[sx76PaDac] != 0x84 || c.regs[sx76PaConfig] != 0xFC || c.regs[sx76Ocp] != 0x2B {
		t.Errorf("14 dBm: %+v PaDac %#x PaConfig %#x Ocp %#x", got, c.regs[sx76PaDac], c.regs[sx76PaConfig], c.regs[sx76Ocp])
	}
	if m.Bandwidth != 125000 || m.SF != 12 || m.CR != 8 || !m.LDRO || !m.CRC || !m.Explicit || m.Preamble != 18 {
		t.Errorf("SF12 at 125 kHz: %+v", m)
	}
	if c.regs[sx76OpMode]&sx76LowFreq == 0 {
		t.Error("433 MHz without the low-frequency port")
	}
	if got := r.Apply(bridge.Settings{Frequency: 868100000}); got.On || c.mode() != sx76Standby {
		t.Errorf("off: %+v, op mode %#x", got, c.regs[sx76OpMode])
	}
}

func TestSX1276TxRx(t *testing.T) {
	c, r := initChip76(t)
	r.Apply(on)
	now := time.Now()
	r.Transmit(now, []byte("to the air"))
	if c.mode() != sx76Tx || len(c.sent) != 1 || string(c.sent[0]) != "to the air" || c.regs[sx76DioMapping1] != 0x40 {
		t.Fatalf("op mode %#x, sent %q", c.regs[sx76OpMode], c.sent)
	}
	if ev := r.Check(now); ev.Kind != NoEvent {
		t.Fatalf("before the chip finished: %+v", ev)
	}
	c.finish()
	if ev := r.Check(now); ev.Kind != TxDone || c.mode() != sx76RxContinuous {
		t.Fatalf("after: %+v, op mode %#x", ev, c.regs[sx76OpMode])
	}

	frame := make([]byte, 255)
	for i := range frame {
		frame[i] = byte(i * 13)
	}
	c.hear(frame, 0x30, 60, -30, false)
	ev := r.Check(now)
	// -157 + 60, corrected by the SNR below the noise floor: -7.5 dB.
	if ev.Kind != RxDone || !bytes.Equal(ev.Frame, frame) || ev.RSSI != -104 || ev.SNR != -7.5 {
		t.Fatalf("received %+v", ev)
	}
	if c.regs[sx76IrqFlags] != 0 {
		t.Fatalf("flags left %#x", c.regs[sx76IrqFlags])
	}
	c.hear([]byte("damaged"), 0, 60, 20, true)
	if ev := r.Check(now); ev.Kind != NoEvent || c.regs[sx76IrqFlags] != 0 {
		t.Fatalf("CRC error: %+v, flags %#x", ev, c.regs[sx76IrqFlags])
	}
	// A header decoded mid-frame is not the end of anything.
	c.regs[sx76IrqFlags] = 0x10
	if ev := NewSX1276(c, nil).Check(now); ev.Kind != NoEvent || c.regs[sx76IrqFlags] != 0x10 {
		t.Fatalf("valid header: %+v, flags %#x", ev, c.regs[sx76IrqFlags])
	}
}

func TestSX1276Busy(t *testing.T) {
	c, r := initChip76(t)
	r.Apply(on)
	now := time.Now()
	for stat, busy := range map[uint8]bool{0x00: false, 0x10: false, 0x01: true, 0x02: true, 0x08: true, 0x0F: true} {
		c.regs[sx76ModemStat] = stat
		if r.Busy(now) != busy {
			t.Errorf("modem status %#x: busy %v", stat, !busy)
		}
	}
}

func TestSX1276LostSignal(t *testing.T) {
	c, r := initChip76(t)
	r.Apply(on)
	now := time.Now()
	r.Transmit(now, make([]byte, 50))
	air := modem(on).Airtime(50)
	if ev := r.Check(now.Add(air)); ev.Kind != NoEvent {
		t.Fatalf("given up early: %+v", ev)
	}
	if ev := r.Check(now.Add(2 * air)); ev.Kind != TxDone || c.mode() != sx76RxContinuous {
		t.Fatalf("at the deadline: %+v, op mode %#x", ev, c.regs[sx76OpMode])
	}
}

func TestSX1276MeetsHost(t *testing.T) {
	_, r := initChip76(t)
	l := NewLoop(r, MCUSAMD21, 2048)
	h := newHost(t, cfg)
	now := time.Now()
	if evs := h.exchange(l, now, h.s.Start()...); len(evs) != 1 || evs[0].Kind != rnode.EventReady || evs[0].MCU != MCUSAMD21 {
		t.Fatalf("handshake: %+v", evs)
	}
	strong := cfg
	strong.TxPower = 22 // an SX1262 can, an RFM95 cannot
	h = newHost(t, strong)
	if evs := h.exchange(l, now, h.s.Start()...); len(evs) != 1 || evs[0].Kind != rnode.EventFailed {
		t.Fatalf("22 dBm: %+v", evs)
	}
}
