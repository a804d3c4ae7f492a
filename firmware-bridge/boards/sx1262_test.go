package boards

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/rnode"
)

// chip62 is an SX1262 at the level of its commands (data sheet chapter
// 13): what the adapter sends goes into its state, and a test makes
// transmissions end and frames arrive. absent makes it a bus with no chip
// on it: every read comes back zero.
type chip62 struct {
	absent bool
	errors uint16 // GetDeviceErrors
	// calErrors are the errors a calibration leaves: a TCXO that does
	// not start sets XOSC_START_ERR.
	calErrors uint16
	log       []uint8
	regs      map[uint16]uint8
	buf       [256]byte
	mode      string // standby, rx, tx
	irq       uint16
	irqMask   uint16
	dio1      uint16
	// As programmed.
	freqReg         uint32
	mod             [4]uint8 // SF, BW code, CR code, LDRO
	pkt             [6]uint8 // preamble (2), header, length, CRC, IQ
	txParams        [2]uint8
	tcxo            []uint8
	dcdc, dio2      bool
	rxLen, rxStart  uint8
	rssiRaw, snrRaw uint8
	sent            [][]byte
	answer          []uint8
}

// newChip62 returns the chip as it comes out of reset on a board with a
// TCXO: its power-on calibration ran without a clock and left an
// oscillator error.
func newChip62() *chip62 {
	return &chip62{regs: map[uint16]uint8{sx62RegTxModulation: 0x00, sx62RegTxClamp: 0xC0}, mode: "standby", errors: 1 << 5}
}

func (c *chip62) ExecSetCommand(cmd uint8, p []uint8) {
	c.log = append(c.log, cmd)
	switch cmd {
	case sx62SetStandby:
		c.mode = "standby"
	case sx62SetRx:
		c.mode = "rx"
	case sx62SetTx:
		c.mode = "tx"
		c.sent = append(c.sent, append([]byte(nil), c.buf[:c.pkt[3]]...))
	case sx62WriteBuffer:
		copy(c.buf[p[0]:], p[1:])
	case sx62SetPacketParams:
		copy(c.pkt[:], p)
	case sx62SetModulationParams:
		copy(c.mod[:], p)
	case sx62SetRfFrequency:
		c.freqReg = uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	case sx62SetTxParams:
		copy(c.txParams[:], p)
	case sx62ClearIrqStatus:
		c.irq &^= uint16(p[0])<<8 | uint16(p[1])
	case sx62SetDioIrqParams:
		c.irqMask, c.dio1 = uint16(p[0])<<8|uint16(p[1]), uint16(p[2])<<8|uint16(p[3])
	case sx62SetDIO3AsTCXOCtrl:
		c.tcxo = append([]uint8(nil), p...)
	case sx62SetRegulatorMode:
		c.dcdc = p[0] == 1
	case sx62SetDIO2AsRfSwitch:
		c.dio2 = p[0] == 1
	case sx62ClearDeviceErrors:
		c.errors = 0
	case sx62Calibrate:
		c.errors |= c.calErrors
	}
}

func (c *chip62) ExecGetCommand(cmd uint8, size uint8) []uint8 {
	c.answer = make([]uint8, size)
	if c.absent {
		return c.answer
	}
	switch cmd {
	case sx62GetIrqStatus:
		c.answer[0], c.answer[1] = uint8(c.irq>>8), uint8(c.irq)
	case sx62GetRxBufferStatus:
		c.answer[0], c.answer[1] = c.rxLen, c.rxStart
	case sx62GetPacketStatus:
		c.answer[0], c.answer[1] = c.rssiRaw, c.snrRaw
	case sx62GetDeviceErrors:
		c.answer[0], c.answer[1] = uint8(c.errors>>8), uint8(c.errors)
	}
	return c.answer
}

func (c *chip62) ReadRegister(addr, size uint16) ([]uint8, error) {
	out := make([]uint8, size)
	if !c.absent {
		for i := range out {
			out[i] = c.regs[addr+uint16(i)]
		}
	}
	return out, nil
}

func (c *chip62) WriteRegister(addr uint16, data []uint8) {
	for i, v := range data {
		c.regs[addr+uint16(i)] = v
	}
}

func (c *chip62) ReadPayload(offset uint8, p []byte) {
	for i := range p {
		p[i] = c.buf[uint8(int(offset)+i)]
	}
}

func (c *chip62) line() bool { return c.irq&c.dio1 != 0 }

// raise latches interrupts the chip has enabled.
func (c *chip62) raise(bits uint16) { c.irq |= bits & c.irqMask }

// finish ends the transmission in progress.
func (c *chip62) finish() {
	c.mode = "standby" // the fallback mode after TxDone
	c.raise(sx62IrqTxDone)
}

// hear delivers a frame, wrapping around the end of the buffer from
// start, with raw packet statistics.
func (c *chip62) hear(p []byte, start, rssiRaw uint8, snrRaw int8, crcErr bool) {
	for i, b := range p {
		c.buf[uint8(int(start)+i)] = b
	}
	c.rxLen, c.rxStart, c.rssiRaw, c.snrRaw = uint8(len(p)), start, rssiRaw, uint8(snrRaw)
	bits := uint16(sx62IrqPreamble | sx62IrqHeaderValid | sx62IrqRxDone)
	if crcErr {
		bits |= sx62IrqCrcErr
	}
	c.raise(bits)
}

// modulation is what the chip would put on the air, in units both chip
// families share.
func (c *chip62) modulation() onAir {
	bw := uint32(0)
	for i, code := range sx62Bandwidth {
		if code == c.mod[1] {
			bw = bandwidths[i]
		}
	}
	sync := uint8(c.regs[sx62RegSyncWord]&0xF0 | c.regs[sx62RegSyncWord+1]>>4)
	return onAir{
		Frequency: uint32((uint64(c.freqReg)*32_000_000 + 1<<24) >> 25),
		Bandwidth: bw, SF: c.mod[0], CR: c.mod[2] + 4, LDRO: c.mod[3] == 1,
		Preamble: int(c.pkt[0])<<8 | int(c.pkt[1]), Explicit: c.pkt[2] == 0, CRC: c.pkt[4] == 1,
		InvertIQ: c.pkt[5] == 1, Sync: sync,
	}
}

func initChip62(t *testing.T) (*chip62, *SX1262) {
	t.Helper()
	c := newChip62()
	r := NewSX1262(c, c.line, SX1262Config{TCXOMillivolts: 1800, DIO2Switch: true, DCDC: true})
	if err := r.Init(); err != nil {
		t.Fatal(err)
	}
	return c, r
}

var on = bridge.Settings{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5, On: true}

// TestSX1262Init: the RAK4631's oscillator is powered before calibration,
// the regulator and antenna switch are set, the sync word is Lifeline's;
// a bus with no chip, or a chip that reports a fault, fails.
func TestSX1262Init(t *testing.T) {
	c, _ := initChip62(t)
	tcxo, cal := slices.Index(c.log, sx62SetDIO3AsTCXOCtrl), slices.Index(c.log, sx62Calibrate)
	if tcxo < 0 || cal < tcxo || !bytes.Equal(c.tcxo, []uint8{0x02, 0x00, 0x01, 0x40}) {
		t.Fatalf("TCXO %x at %d, calibration at %d", c.tcxo, tcxo, cal)
	}
	if c.errors != 0 {
		t.Fatalf("errors %#x left", c.errors) // the power-on one was cleared
	}
	if !c.dcdc || !c.dio2 || c.regs[sx62RegSyncWord] != 0x14 || c.regs[sx62RegSyncWord+1] != 0x24 || c.regs[sx62RegTxClamp] != 0xDE {
		t.Fatalf("dcdc %v dio2 %v registers %x", c.dcdc, c.dio2, c.regs)
	}

	absent := newChip62()
	absent.absent = true
	if err := NewSX1262(absent, nil, SX1262Config{}).Init(); err == nil || !strings.Contains(err.Error(), "no chip") {
		t.Fatalf("no chip: %v", err)
	}
	faulty := newChip62()
	faulty.calErrors = 1 << 5 // XOSC_START_ERR: a TCXO that does not start
	if err := NewSX1262(faulty, nil, SX1262Config{TCXOMillivolts: 1800}).Init(); err == nil || !strings.Contains(err.Error(), "0x0020") {
		t.Fatalf("oscillator fault: %v", err)
	}
	if err := NewSX1262(newChip62(), nil, SX1262Config{TCXOMillivolts: 1900}).Init(); err == nil {
		t.Fatal("a TCXO voltage the chip cannot supply was accepted")
	}
}

// TestSX1262Apply: what the host asks is normalised to what the chip can
// do and reported back; the chip is programmed with it and listens.
func TestSX1262Apply(t *testing.T) {
	c, r := initChip62(t)
	got := r.Apply(bridge.Settings{Frequency: 869525000, Bandwidth: 200000, TxPower: 27, SF: 4, CR: 9})
	if d := int64(got.Frequency) - 869525000; d < -1 || d > 1 {
		t.Errorf("frequency %d", got.Frequency)
	}
	if got.Bandwidth != 250000 || got.TxPower != 22 || got.SF != 5 || got.CR != 8 || got.On {
		t.Errorf("applied %+v", got)
	}
	if c.mode != "standby" {
		t.Errorf("off, the chip is in %s", c.mode)
	}

	for _, tc := range []struct {
		bw       uint32
		sf       uint8
		mod      [4]uint8
		ldro     bool
		preamble uint8 // RNode's: 24 ms, at least 18 symbols
	}{
		{250000, 11, [4]uint8{11, 0x05, 1, 0}, false, 18}, // LongFast: 8.2 ms symbols
		{125000, 12, [4]uint8{12, 0x04, 1, 1}, true, 18},  // 32.8 ms symbols
		{500000, 7, [4]uint8{7, 0x06, 1, 0}, false, 94},   // 0.256 ms symbols
	} {
		s := on
		s.Bandwidth, s.SF = tc.bw, tc.sf
		want := s
		want.Preamble = int(tc.preamble)
		if got := r.Apply(s); got != want {
			t.Errorf("applied %+v, asked %+v", got, s)
		}
		if c.mod != tc.mod || c.mode != "rx" || c.pkt != [6]uint8{0, tc.preamble, 0, 255, 1, 0} || c.txParams != [2]uint8{14, 0x04} {
			t.Errorf("%d Hz SF%d: modulation %x packet %x tx %x, chip in %s", tc.bw, tc.sf, c.mod, c.pkt, c.txParams, c.mode)
		}
		// Errata 15.1: bit 2 of TxModulation only below 500 kHz.
		if bit := c.regs[sx62RegTxModulation]&0x04 != 0; bit != (tc.bw != 500000) {
			t.Errorf("%d Hz: TxModulation %#x", tc.bw, c.regs[sx62RegTxModulation])
		}
	}
}

// TestSX1262TxRx: a transmission ends when the chip says so and the chip
// listens again; a full 255-byte frame comes out whole, wherever it sits
// in the chip's buffer, with its statistics; a damaged one is dropped.
func TestSX1262TxRx(t *testing.T) {
	c, r := initChip62(t)
	r.Apply(on)
	now := time.Now()
	r.Transmit(now, []byte("to the air"))
	if c.mode != "tx" || string(c.sent[0]) != "to the air" || c.pkt[3] != 10 {
		t.Fatalf("chip in %s sent %q, length %d", c.mode, c.sent, c.pkt[3])
	}
	if ev := r.Check(now.Add(time.Millisecond)); ev.Kind != NoEvent {
		t.Fatalf("before the chip finished: %+v", ev)
	}
	c.finish()
	if ev := r.Check(now.Add(300 * time.Millisecond)); ev.Kind != TxDone || c.mode != "rx" || c.pkt[3] != 255 {
		t.Fatalf("after: %+v, chip in %s, length %d", ev, c.mode, c.pkt[3])
	}

	frame := make([]byte, 255)
	for i := range frame {
		frame[i] = byte(i * 7)
	}
	c.hear(frame, 200, 195, -30, false) // -97.5 dBm, -7.5 dB
	ev := r.Check(now)
	if ev.Kind != RxDone || !bytes.Equal(ev.Frame, frame) || ev.RSSI != -97 || ev.SNR != -7.5 {
		t.Fatalf("received %+v", ev)
	}
	if c.irq != 0 || c.mode != "rx" {
		t.Fatalf("after reception: irq %#x, chip in %s", c.irq, c.mode)
	}
	c.hear([]byte("damaged"), 0, 195, -30, true)
	if ev := r.Check(now); ev.Kind != NoEvent || c.irq != 0 {
		t.Fatalf("CRC error: %+v, irq %#x", ev, c.irq)
	}
}

// TestSX1262Busy: a preamble heard makes the channel busy for as long as
// a preamble and header last, a header for as long as a whole frame; the
// latched flags are then cleared, so noise cannot hold the channel.
func TestSX1262Busy(t *testing.T) {
	c, r := initChip62(t)
	r.Apply(on)
	now := time.Now()
	if r.Busy(now) {
		t.Fatal("busy on a quiet channel")
	}
	c.raise(sx62IrqPreamble)
	if c.line() {
		t.Fatal("a preamble raised DIO1")
	}
	sym := modem(on).Symbol()
	if !r.Busy(now) || !r.Busy(now.Add(29*sym)) {
		t.Fatal("a preamble heard, the channel is free")
	}
	if r.Busy(now.Add(31*sym)) || c.irq != 0 {
		t.Fatalf("a preamble with no header still holds the channel (irq %#x)", c.irq)
	}
	c.raise(sx62IrqPreamble | sx62IrqHeaderValid)
	later := now.Add(time.Second)
	air := modem(on).Airtime(255)
	if !r.Busy(later) || !r.Busy(later.Add(air-time.Millisecond)) || r.Busy(later.Add(air+time.Millisecond)) {
		t.Fatal("a header heard does not hold the channel for one frame")
	}
}

// TestSX1262LostSignal: a transmission whose end the chip never signals
// is given up at its deadline, and one that Apply cut short ends at once,
// so the core never waits for READY forever.
func TestSX1262LostSignal(t *testing.T) {
	c, r := initChip62(t)
	r.Apply(on)
	now := time.Now()
	r.Transmit(now, make([]byte, 100))
	air := modem(on).Airtime(100)
	if ev := r.Check(now.Add(air + air/4)); ev.Kind != NoEvent {
		t.Fatalf("given up early: %+v", ev)
	}
	if ev := r.Check(now.Add(2 * air)); ev.Kind != TxDone || c.mode != "rx" {
		t.Fatalf("at the deadline: %+v, chip in %s", ev, c.mode)
	}
	r.Transmit(now, []byte("cut"))
	r.Apply(on)
	if ev := r.Check(now); ev.Kind != TxDone || c.mode != "rx" {
		t.Fatalf("cut short: %+v, chip in %s", ev, c.mode)
	}
}

// TestSX1262MeetsHost: the node's RNode session configures the simulated
// RAK4631 through the loop; 27 dBm is more than an SX1262 has, and the
// handshake says so.
func TestSX1262MeetsHost(t *testing.T) {
	_, r := initChip62(t)
	l := NewLoop(r, MCUNRF52, 4096)
	h := newHost(t, cfg)
	now := time.Now()
	if evs := h.exchange(l, now, h.s.Start()...); len(evs) != 1 || evs[0].Kind != rnode.EventReady {
		t.Fatalf("handshake: %+v", evs)
	}
	strong := cfg
	strong.TxPower = 27
	h = newHost(t, strong)
	if evs := h.exchange(l, now, h.s.Start()...); len(evs) != 1 || evs[0].Kind != rnode.EventFailed {
		t.Fatalf("27 dBm: %+v", evs)
	}
}
