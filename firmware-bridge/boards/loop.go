// Package boards runs the bridge firmware (lifeline/firmware-bridge) on a
// LoRa board: a loop that carries the serial line to the core and the
// core's work to the radio chip, and adapters for the two chip families
// Lifeline supports, SX1262 and SX1276. This package imports only the
// standard library and the core, never TinyGo's machine package or its
// drivers, so it builds and is tested with ordinary Go; the per-board
// entry points in the subdirectories (build-tagged for TinyGo) wire it to
// pins, SPI and the USB serial port.
//
// One goroutine does all the work (another only reads the serial line)
// and nothing blocks: the chip is polled, its interrupt line read as a
// plain input, not driven from an interrupt handler, so the SPI bus has a
// single user and the serial line is served while a frame is on the air.
package boards

import (
	"context"
	"io"
	"time"

	bridge "lifeline/firmware-bridge"
)

// MCU codes the boards report (the RNode MCU query). The nRF52 code is
// RNode's own; RNode has none for the SAMD21, so 0x61 is Lifeline's.
const (
	MCUNRF52  = 0x71
	MCUSAMD21 = 0x61
)

// pollPeriod is how often Run looks at the chip and the serial line when
// nothing is happening: well within the airtime of the shortest frame
// (some 7 ms at SF7, 500 kHz), and a sleep each time, so an idle board
// mostly waits.
const pollPeriod = time.Millisecond

// EventKind says what a Transceiver finished.
type EventKind uint8

const (
	NoEvent EventKind = iota
	// TxDone: the transmission Transmit started has ended (or was cut
	// short); the chip is listening again.
	TxDone
	// RxDone: a frame arrived intact (its CRC checked).
	RxDone
)

// Event is what Transceiver.Check reports.
type Event struct {
	Kind EventKind
	// RxDone: the payload, in the transceiver's own buffer: valid until
	// the next call to Check. The loop copies it out at once.
	Frame []byte
	RSSI  int     // dBm
	SNR   float64 // dB
}

// Transceiver is a radio chip as the loop drives it: the core's Radio
// (Apply, Transmit, Busy) and Check, which the loop calls every
// millisecond or so. No method may block for longer than a few SPI
// transactions: the same goroutine serves the serial line.
type Transceiver interface {
	bridge.Radio
	// Check reports the end of a transmission or a frame received since
	// the last call, one event per call, or NoEvent.
	Check(now time.Time) Event
}

// Clock is the board's time. Tests drive the loop with Step and their
// own times; Run, which sleeps, takes a Clock.
type Clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

// SystemClock is the time package's clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time        { return time.Now() }
func (SystemClock) Sleep(d time.Duration) { time.Sleep(d) }

// Loop is the firmware of one board: a bridge core and the chip it
// drives.
type Loop struct {
	core  *bridge.Core
	radio Transceiver
	// retry is when the core asked to be polled again (a busy channel,
	// an airtime limit); zero when it waits for an event instead.
	retry time.Time
}

// NewLoop returns a loop whose core drives radio, reports mcu to the
// host and queues at most maxQueued bytes of frames to send.
func NewLoop(radio Transceiver, mcu byte, maxQueued int) *Loop {
	return &Loop{core: bridge.New(radio, mcu, maxQueued), radio: radio}
}

// Stats returns the core's counters.
func (l *Loop) Stats() bridge.Stats { return l.core.Stats }

// Step is one turn of the loop at now: it gives the core the bytes that
// arrived from the host (in, possibly none), passes on what the chip
// finished, and starts the next transmission when the core may. It
// returns the bytes to write to the host, in order: answers to the host's
// commands, then READY and received frames.
func (l *Loop) Step(now time.Time, in []byte) []byte {
	var out []byte
	kick := false // something the core's Poll waits for happened
	if len(in) > 0 {
		out = append(out, l.core.FromHost(now, in)...)
		kick = true
	}
	// A chip reports one event per Check; a few in a row is already
	// more than half-duplex hardware can produce between two steps.
	for range 4 {
		ev := l.radio.Check(now)
		if ev.Kind == NoEvent {
			break
		}
		switch ev.Kind {
		case TxDone:
			out = append(out, l.core.TxDone(now)...)
			kick = true
		case RxDone:
			out = append(out, l.core.Received(now, ev.Frame, ev.RSSI, ev.SNR)...)
		}
	}
	if kick || (!l.retry.IsZero() && !now.Before(l.retry)) {
		l.retry = time.Time{}
		if wait := l.core.Poll(now); wait > 0 {
			l.retry = now.Add(wait)
		}
	}
	return out
}

// Run is the board's main loop: it announces the (re)start to the host,
// then steps the loop as serial bytes arrive and, between them, every
// millisecond, writing what each step returns to w. It returns when ctx
// is done or the serial line fails.
//
// r may block (a pipe, a host's serial port) or not (PortReader over a
// TinyGo serial port, which returns what has arrived, possibly nothing):
// a goroutine reads it, pausing between empty reads. That goroutine ends
// at its next read after Run returns, so a blocking r should be closed by
// the caller once Run is done.
func (l *Loop) Run(ctx context.Context, r io.Reader, w io.Writer, clock Clock) error {
	chunks := make(chan []byte, 4)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			if err != nil {
				readErr <- err
				return
			}
			if n == 0 {
				if ctx.Err() != nil {
					return
				}
				clock.Sleep(pollPeriod)
				continue
			}
			select {
			case chunks <- append([]byte(nil), buf[:n]...):
			case <-ctx.Done():
				return
			}
		}
	}()

	if _, err := w.Write(l.core.Boot()); err != nil {
		return err
	}
	for {
		var in []byte
		idle := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case in = <-chunks:
		default:
			idle = true
		}
		out := l.Step(clock.Now(), in)
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				return err
			}
			idle = false
		}
		if idle {
			clock.Sleep(pollPeriod)
		}
	}
}

// Port is a serial port as TinyGo's machine.Serialer offers it (USB CDC
// or a UART): the bytes received so far, taken one at a time; neither
// call blocks. Its Read, where there is one, blocks in some TinyGo
// releases and not in others, so the loop uses only these two.
type Port interface {
	Buffered() int
	ReadByte() (byte, error)
}

// PortReader returns an io.Reader over p that never blocks: Read returns
// the bytes already received, up to len(b), or 0 and no error.
func PortReader(p Port) io.Reader { return portReader{p} }

type portReader struct{ p Port }

func (r portReader) Read(b []byte) (int, error) {
	n := min(r.p.Buffered(), len(b))
	for i := range n {
		c, err := r.p.ReadByte()
		if err != nil {
			return i, nil // Buffered overstated: the rest comes next time
		}
		b[i] = c
	}
	return n, nil
}

// Halt is what a board does when its radio did not start: it writes why
// to the serial line every second, for whoever opens the port (a terminal
// shows the line; the host's KISS decoder drops it and reports no RNode),
// and blinks led, so that a board with a fault is told from one without
// power. It returns only when ctx is done: on a board, never.
func Halt(ctx context.Context, w io.Writer, led func(on bool), clock Clock, err error) {
	msg := []byte("lifeline bridge: " + err.Error() + "\r\n")
	on := false
	for i := 0; ctx.Err() == nil; i++ {
		if i%10 == 0 {
			w.Write(msg)
		}
		on = !on
		led(on)
		clock.Sleep(100 * time.Millisecond)
	}
}
