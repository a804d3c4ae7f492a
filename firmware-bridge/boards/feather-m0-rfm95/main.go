//go:build tinygo && feather_m0

// Command feather-m0-rfm95 is the Lifeline bridge firmware for the
// Adafruit Feather M0 RFM95 LoRa Radio (868/915 MHz; product 3178): a
// SAMD21 and a HopeRF RFM95, an SX1276 whose antenna is on PA_BOOST, on
// the Feather's SPI bus with chip select on D8, reset on D4 and DIO0 on
// D3. The host reaches it on the SAMD21's own USB port. Flashing: see the
// Boards section of ../../README.md.
//
// TinyGo's feather-m0 target sets the feather_m0 build tag, so
//
//	tinygo flash -target=feather-m0 ./feather-m0-rfm95
//
// builds this file and nothing else needs a tag; ordinary Go builds skip
// it.
package main

import (
	"context"
	"machine"
	"time"

	"tinygo.org/x/drivers/sx127x"

	"lifeline/firmware-bridge/boards"
)

// maxQueued bounds the frames waiting to be sent: the SAMD21 has 32 KB of
// RAM, so 8 full frames.
const maxQueued = 8 * 255

// The RFM95's wiring on the Feather M0 RFM9x (Adafruit's pinout: RFM95_CS
// 8, RFM95_RST 4, RFM95_INT 3). DIO1 is not wired; the loop needs only
// DIO0.
const (
	nssPin   = machine.D8
	resetPin = machine.D4
	dio0Pin  = machine.D3
)

func main() {
	clock := boards.SystemClock{}
	led := machine.LED
	led.Configure(machine.PinConfig{Mode: machine.PinOutput})
	fail := func(err error) {
		boards.Halt(context.Background(), machine.Serial, led.Set, clock, err)
	}

	// Reset: NRESET low for at least 100 µs, then 5 ms for the chip.
	resetPin.Configure(machine.PinConfig{Mode: machine.PinOutput})
	resetPin.Low()
	time.Sleep(time.Millisecond)
	resetPin.High()
	time.Sleep(10 * time.Millisecond)
	dio0Pin.Configure(machine.PinConfig{Mode: machine.PinInputPulldown})

	spi := machine.SPI0
	if err := spi.Configure(machine.SPIConfig{
		Frequency: 4_000_000, Mode: 0,
		SCK: machine.SPI0_SCK_PIN, SDO: machine.SPI0_SDO_PIN, SDI: machine.SPI0_SDI_PIN,
	}); err != nil {
		fail(err)
	}
	dev := sx127x.New(spi, resetPin)
	if err := dev.SetRadioController(control{nss: nssPin}); err != nil {
		fail(err)
	}
	radio := boards.NewSX1276(dev, dio0Pin.Get)
	if err := radio.Init(); err != nil {
		fail(err)
	}
	loop := boards.NewLoop(radio, boards.MCUSAMD21, maxQueued)
	fail(loop.Run(context.Background(), boards.PortReader(machine.Serial), machine.Serial, clock))
}

// control is the RFM95's chip select, as the driver needs it. It installs
// no interrupt handler: the loop polls DIO0 instead, so the loop is the
// SPI bus's only user and the serial line is served while a frame is on
// the air.
type control struct{ nss machine.Pin }

func (c control) Init() error {
	c.nss.Configure(machine.PinConfig{Mode: machine.PinOutput})
	c.nss.High()
	return nil
}

func (c control) SetNss(high bool) error     { c.nss.Set(high); return nil }
func (control) SetupInterrupts(func()) error { return nil }

// The adapter's interfaces, checked where both sides are in view.
var (
	_ boards.SX1276Bus       = (*sx127x.Device)(nil)
	_ sx127x.RadioController = control{}
)
