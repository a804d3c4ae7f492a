//go:build tinygo && rak4631

// Command rak4631 is the Lifeline bridge firmware for the RAKwireless
// RAK4631 WisBlock Core (on a WisBlock Base such as the RAK19007): an
// nRF52840 and, in its RAK4630 module, an SX1262 whose crystal is a TCXO
// fed from DIO3 at 1.8 V and whose antenna switch DIO2 drives. The host
// reaches it on the nRF52840's own USB port. Flashing: see the Boards
// section of ../../README.md.
//
// TinyGo's rak4631 target sets the rak4631 build tag, so
//
//	tinygo flash -target=rak4631 ./rak4631
//
// builds this file and nothing else needs a tag; ordinary Go builds skip
// it.
package main

import (
	"context"
	"errors"
	"machine"
	"time"

	"tinygo.org/x/drivers"
	"tinygo.org/x/drivers/sx126x"

	"lifeline/firmware-bridge/boards"
)

// maxQueued bounds the frames waiting to be sent. The nRF52840 has
// 256 KB of RAM: 32 full frames cost little.
const maxQueued = 32 * 255

// antennaPower is P1.05 (Arduino pin 37), which powers the RAK4630's
// antenna switch (SX126X_POWER_EN in Meshtastic's and RAK's board
// definitions). TinyGo's board file names the other LoRa pins.
const antennaPower = machine.P1_05

func main() {
	clock := boards.SystemClock{}
	led := machine.LED
	led.Configure(machine.PinConfig{Mode: machine.PinOutput})
	fail := func(err error) {
		boards.Halt(context.Background(), machine.Serial, led.Set, clock, err)
	}

	antennaPower.Configure(machine.PinConfig{Mode: machine.PinOutput})
	antennaPower.High()
	reset := machine.LORA_NRESET
	reset.Configure(machine.PinConfig{Mode: machine.PinOutput})
	reset.Low()
	time.Sleep(time.Millisecond)
	reset.High()
	dio1 := machine.LORA_DIO1
	dio1.Configure(machine.PinConfig{Mode: machine.PinInputPulldown})

	spi := machine.SPI1
	if err := spi.Configure(machine.SPIConfig{
		Frequency: 8_000_000, Mode: 0,
		SCK: machine.LORA_SCK, SDO: machine.LORA_MOSI, SDI: machine.LORA_MISO,
	}); err != nil {
		fail(err)
	}
	ctl := control{nss: machine.LORA_NSS, busy: machine.LORA_BUSY}
	dev := sx126x.New(spi)
	dev.SetDeviceType(sx126x.DEVICE_TYPE_SX1262)
	if err := dev.SetRadioController(ctl); err != nil {
		fail(err)
	}
	if err := ctl.WaitWhileBusy(); err != nil { // the chip's start-up after reset
		fail(err)
	}
	radio := boards.NewSX1262(&bus{Device: dev, spi: spi, ctl: ctl}, dio1.Get,
		boards.SX1262Config{TCXOMillivolts: 1800, DIO2Switch: true, DCDC: true})
	if err := radio.Init(); err != nil {
		fail(err)
	}
	loop := boards.NewLoop(radio, boards.MCUNRF52, maxQueued)
	fail(loop.Run(context.Background(), boards.PortReader(machine.Serial), machine.Serial, clock))
}

var errBusy = errors.New("sx1262: BUSY stays high")

// control is the SX1262's chip select and BUSY line, as the driver needs
// them. It installs no interrupt handler: the loop polls DIO1 instead, so
// the loop is the SPI bus's only user and the serial line is served while
// a frame is on the air. DIO2 switches the antenna, so there is no switch
// for the driver to set.
type control struct{ nss, busy machine.Pin }

func (c control) Init() error {
	c.nss.Configure(machine.PinConfig{Mode: machine.PinOutput})
	c.nss.High()
	c.busy.Configure(machine.PinConfig{Mode: machine.PinInput})
	return nil
}

func (control) SetRfSwitchMode(int) error    { return nil }
func (control) SetupInterrupts(func()) error { return nil }
func (c control) SetNss(high bool) error     { c.nss.Set(high); return nil }

// WaitWhileBusy waits out BUSY, which the chip raises for each command
// (microseconds) and for calibrations and oscillator start-up
// (milliseconds); a chip that holds it for 100 ms is wedged.
func (c control) WaitWhileBusy() error {
	start := time.Now()
	for c.busy.Get() {
		if time.Since(start) > 100*time.Millisecond {
			return errBusy
		}
	}
	return nil
}

// bus is the driver's Device, which carries the adapter's commands, plus
// a read of the data buffer long enough for a 255-byte frame (see
// boards.SX1262Bus).
type bus struct {
	*sx126x.Device
	spi drivers.SPI
	ctl control
	cmd [3]byte
}

func (b *bus) ReadPayload(offset uint8, p []byte) {
	b.ctl.WaitWhileBusy()
	b.ctl.SetNss(false)
	b.cmd = [3]byte{sx126x.SX126X_CMD_READ_BUFFER, offset, 0x00} // opcode, offset, status
	b.spi.Tx(b.cmd[:], nil)
	b.spi.Tx(nil, p)
	b.ctl.SetNss(true)
}

// The adapter's interfaces, checked where both sides are in view.
var (
	_ boards.SX1262Bus       = (*bus)(nil)
	_ sx126x.RadioController = control{}
)
