// Package testbed is a radio testbed without radios: the simulated air
// (radio/air) with a simulated device for each board (Lifeline's own
// firmware, the firmware-bridge core, or a simulation of another firmware:
// see Device), each behind a pseudo-terminal. A node opens the terminal's path through tarm/serial
// exactly as it opens /dev/ttyUSB0, configures the board over the RNode
// protocol, and sends and hears frames that cross the simulated air with
// real airtime, loss, collisions and half-duplex radios, in real time.
//
// Tests use it for end-to-end runs of the whole stack; `lifeline testbed`
// runs one for people to try the radio without hardware.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/air"
)

// Testbed is the air and the boards on it.
type Testbed struct {
	mu       sync.Mutex // guards the air, the boards and every device
	air      *air.Air
	boards   []*Board
	firmware []Firmware // of each board
	kick     chan struct{}
	dir      string // the stable paths: board-N, a link to the terminal
	// temporary: dir was made for this testbed, and goes with it.
	temporary bool
}

// Device is the firmware of a simulated board as the testbed drives it:
// the host's bytes go in, the device's answers come out, and the air
// reaches it through the Radio it was made with. Every method is called
// under the testbed's lock, with the time.
type Device interface {
	// Boot is what the device writes when it powers up.
	Boot(now time.Time) []byte
	// FromHost takes bytes the host wrote and returns the answer.
	FromHost(now time.Time, p []byte) []byte
	// Listening reports whether the receiver is on: a frame that ends
	// while it is off (or before the host switched the radio on) is not
	// heard, as with a real transceiver in standby.
	Listening() bool
	// Received is a frame heard from the air.
	Received(now time.Time, frame []byte, rssi int, snr float64) []byte
	// TxDone reports the end of the transmission the device started.
	TxDone(now time.Time) []byte
	// Poll lets the device act on time: start what it queued, fire its
	// timers. It is called every few milliseconds.
	Poll(now time.Time) []byte
}

// Radio is a device's transceiver on the simulated air.
type Radio interface {
	// Transmit puts frame on air for airtime; the testbed calls the
	// device's TxDone when it ends. A device transmits one frame at a
	// time.
	Transmit(now time.Time, airtime time.Duration, frame []byte)
	// Busy reports a transmission the device's radio hears at now
	// (channel activity detection).
	Busy(now time.Time) bool
}

// Firmware makes a device around its radio: one for every board, and a
// fresh one each time a board is plugged back in.
type Firmware func(r Radio) Device

// LifelineBoard is Lifeline's own board firmware, firmware-bridge.
func LifelineBoard(r Radio) Device {
	d := &bridgeDevice{radio: r}
	d.core = bridge.New(d, bridge.MCUHost, 4096)
	return d
}

// bridgeDevice is the firmware-bridge core as a Device.
type bridgeDevice struct {
	core  *bridge.Core
	radio Radio
	set   bridge.Settings
}

func (d *bridgeDevice) Apply(s bridge.Settings) bridge.Settings { d.set = s; return s }
func (d *bridgeDevice) Transmit(now time.Time, p []byte) {
	d.radio.Transmit(now, d.core.Airtime(len(p)), p)
}
func (d *bridgeDevice) Busy(now time.Time) bool { return d.radio.Busy(now) }

// RSSI is the channel's signal strength for the core's statistics: the
// testbed's frames arrive at -95 dBm, and the air is otherwise at the
// noise floor the simulated RNode reports too.
func (d *bridgeDevice) RSSI(now time.Time) int {
	if d.radio.Busy(now) {
		return -95
	}
	return noiseFloor
}
func (d *bridgeDevice) Boot(time.Time) []byte                   { return d.core.Boot() }
func (d *bridgeDevice) FromHost(now time.Time, p []byte) []byte { return d.core.FromHost(now, p) }
func (d *bridgeDevice) Listening() bool                         { return d.set.On }
func (d *bridgeDevice) Received(now time.Time, f []byte, rssi int, snr float64) []byte {
	return d.core.Received(now, f, rssi, snr)
}
func (d *bridgeDevice) TxDone(now time.Time) []byte { return d.core.TxDone(now) }
func (d *bridgeDevice) Poll(now time.Time) []byte   { d.core.Poll(now); return nil }

// Board is one simulated board: its firmware, its transceiver on the
// air, and the pseudo-terminal it is plugged in through.
type Board struct {
	index  int
	tb     *Testbed
	dev    Device
	chip   *chip
	master *os.File
	slave  *os.File
	out    chan []byte // to the host, bounded: a host that stops reading loses bytes, as on a real line
	done   chan struct{}
	wdone  chan struct{}
	quit   chan struct{}
	off    bool // unplugged: no power, off the air (guarded by tb.mu)
	once   sync.Once
	err    error
}

// outbox bounds the writes waiting for a host: a board whose host stopped
// reading must not hold up the air for the others.
const outbox = 256

// Transmission is a frame a board put on air.
type Transmission struct {
	Start   time.Time
	Airtime time.Duration
	Frame   []byte
}

// MaxWindowUse is the most airtime the transmissions spend in any window
// of the given length: the duty cycle checked from the air's side,
// independently of the scheduler's own arithmetic.
func MaxWindowUse(txs []Transmission, window time.Duration) time.Duration {
	var most time.Duration
	for _, e := range txs {
		end := e.Start.Add(e.Airtime)
		from := end.Add(-window)
		var used time.Duration
		for _, x := range txs {
			a, b := x.Start, x.Start.Add(x.Airtime)
			if a.Before(from) {
				a = from
			}
			if b.After(end) {
				b = end
			}
			if b.After(a) {
				used += b.Sub(a)
			}
		}
		most = max(most, used)
	}
	return most
}

// chip is the board's transceiver on the simulated air.
type chip struct {
	b        *Board
	sending  bool
	ends     time.Time
	sent     []Transmission
	received int
}

func (c *chip) Transmit(now time.Time, d time.Duration, p []byte) {
	c.b.tb.air.Transmit(c.b.index, now, d, p)
	c.sending, c.ends = true, now.Add(d)
	c.sent = append(c.sent, Transmission{Start: now, Airtime: d, Frame: append([]byte(nil), p...)})
}

func (c *chip) Busy(now time.Time) bool { return c.b.tb.air.Busy(c.b.index, now) }

// New returns a testbed of n Lifeline boards, none of which hear each
// other yet (see Link and Line), whose air draws its randomness from seed.
func New(n int, seed uint64) (*Testbed, error) {
	fw := make([]Firmware, n)
	for i := range fw {
		fw[i] = LifelineBoard
	}
	return NewWith(fw, seed)
}

// NewWith returns a testbed with a board for each firmware, in order.
func NewWith(firmware []Firmware, seed uint64) (*Testbed, error) {
	return NewIn("", firmware, seed)
}

// NewIn is NewWith with the boards' paths in dir (dir/board-N), made if
// missing, so that a testbed started again in the same dir is found by
// the nodes that used the last one, as a board plugged back in is; a new
// temporary directory if dir is empty. Close removes the paths, and dir
// only if it was temporary.
func NewIn(dir string, firmware []Firmware, seed uint64) (*Testbed, error) {
	temporary := dir == ""
	var err error
	if temporary {
		dir, err = os.MkdirTemp("", "lifeline-testbed-")
	} else {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	tb := &Testbed{air: air.New(seed), kick: make(chan struct{}, 1), dir: dir, temporary: temporary, firmware: firmware}
	for i := range firmware {
		b, err := tb.plug(i)
		if err != nil {
			tb.Close()
			return nil, err
		}
		tb.boards = append(tb.boards, b)
	}
	return tb, nil
}

// Link lets boards x and y hear each other, losing each frame with
// probability loss.
func (tb *Testbed) Link(x, y int, loss float64) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.air.Link(x, y, loss)
}

// Line links the boards in a line, each to its neighbours only.
func (tb *Testbed) Line(loss float64) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.air.Line(len(tb.boards), loss)
}

// Path is the serial device of board i, for --radio: a link to its
// terminal that stays the same when the board is unplugged and plugged
// back in, as /dev/serial/by-id/ names do.
func (tb *Testbed) Path(i int) string { return filepath.Join(tb.dir, fmt.Sprintf("board-%d", i)) }

// Unplug pulls board i's cable: the host's port fails, and the board
// loses power, with whatever it had queued.
func (tb *Testbed) Unplug(i int) {
	tb.mu.Lock()
	b := tb.boards[i]
	tb.mu.Unlock()
	b.unplug()
}

// Plug puts board i back in: a fresh board (it boots and says so) behind
// a new terminal, at the same Path.
func (tb *Testbed) Plug(i int) error {
	b, err := tb.plug(i)
	if err != nil {
		return err
	}
	tb.mu.Lock()
	b.chip.sent = tb.boards[i].chip.sent // what was on air stays on the record
	tb.boards[i] = b
	tb.mu.Unlock()
	return nil
}

// Sent lists what board i has put on air.
func (tb *Testbed) Sent(i int) []Transmission {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]Transmission(nil), tb.boards[i].chip.sent...)
}

// Stats are the air's counters: frames sent, and per receiver delivered,
// lost to the link, collided, and missed while transmitting.
func (tb *Testbed) Stats() (sent, delivered, lost, collided, deaf int) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	a := tb.air
	return a.Sent, a.Delivered, a.Lost, a.Collided, a.Deaf
}

// plug starts board i behind a new pseudo-terminal.
func (tb *Testbed) plug(i int) (*Board, error) {
	master, slave, err := OpenTerminal()
	if err != nil {
		return nil, err
	}
	b := &Board{index: i, tb: tb, master: master, slave: slave, done: make(chan struct{}),
		out: make(chan []byte, outbox), wdone: make(chan struct{}), quit: make(chan struct{})}
	link := tb.Path(i)
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(slave.Name(), tmp); err != nil {
		b.master.Close()
		slave.Close()
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil { // atomically: a host never sees no path
		b.master.Close()
		slave.Close()
		return nil, fmt.Errorf("testbed: %w", err)
	}
	go b.writer()
	b.chip = &chip{b: b}
	b.dev = tb.firmware[i](b.chip)
	b.write(b.dev.Boot(time.Now()))
	go b.read()
	return b, nil
}

// OpenTerminal opens a pseudo-terminal: the slave is the device a host
// opens, the master the board's end. pty.Open leaves the master blocking,
// where Close does not interrupt a Read; the master returned is a
// non-blocking copy, which goes through the poller, so closing it (pulling
// the cable) ends a read at once.
func OpenTerminal() (master, slave *os.File, err error) {
	ptmx, slave, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("testbed: pseudo-terminal: %w", err)
	}
	defer ptmx.Close()
	fd, err := syscall.Dup(int(ptmx.Fd()))
	if err == nil {
		if err = syscall.SetNonblock(fd, true); err != nil {
			syscall.Close(fd)
		}
	}
	if err != nil {
		slave.Close()
		return nil, nil, fmt.Errorf("testbed: pseudo-terminal: %w", err)
	}
	return os.NewFile(uintptr(fd), "ptmx"), slave, nil
}

// read feeds the host's bytes to the device.
func (b *Board) read() {
	defer close(b.done)
	buf := make([]byte, 1024)
	for {
		n, err := b.master.Read(buf)
		if err != nil {
			return
		}
		b.tb.mu.Lock()
		out := b.dev.FromHost(time.Now(), buf[:n])
		b.tb.mu.Unlock()
		b.write(out)
		b.tb.wake()
	}
}

func (b *Board) write(p []byte) {
	if len(p) == 0 {
		return
	}
	select {
	case b.out <- p:
	default: // the host is not reading
	}
}

func (b *Board) writer() {
	defer close(b.wdone)
	for {
		select {
		case p := <-b.out:
			if _, err := b.master.Write(p); err != nil {
				return // unplugged
			}
		case <-b.quit:
			return
		}
	}
}

func (tb *Testbed) wake() {
	select {
	case tb.kick <- struct{}{}:
	default:
	}
}

// tick is how often the air is looked at when nothing else wakes it: it
// bounds how late a frame ends or a board retries after listening.
const tick = 5 * time.Millisecond

// Run moves the air in real time until ctx ends: frames that finish
// reach their receivers, transmissions end, and boards send what they
// queued.
func (tb *Testbed) Run(ctx context.Context) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-tb.kick:
		}
		tb.step(time.Now())
	}
}

func (tb *Testbed) step(now time.Time) {
	type out struct {
		b *Board
		p []byte
	}
	var outs []out
	tb.mu.Lock()
	for _, d := range tb.air.Until(now) {
		b := tb.boards[d.To]
		if b.off || !b.dev.Listening() {
			continue
		}
		b.chip.received++
		outs = append(outs, out{b, b.dev.Received(d.At, d.Frame, -95, 7.5)})
	}
	for _, b := range tb.boards {
		if b.off {
			continue
		}
		if b.chip.sending && !b.chip.ends.After(now) {
			b.chip.sending = false
			outs = append(outs, out{b, b.dev.TxDone(b.chip.ends)})
		}
		outs = append(outs, out{b, b.dev.Poll(now)})
	}
	tb.mu.Unlock()
	for _, o := range outs {
		o.b.write(o.p)
	}
}

// unplug closes both ends of the board's terminal, once.
func (b *Board) unplug() error {
	b.once.Do(func() {
		b.tb.mu.Lock()
		b.off = true
		b.tb.mu.Unlock()
		b.err = errors.Join(b.master.Close())
		<-b.done
		close(b.quit)
		<-b.wdone
		b.err = errors.Join(b.err, b.slave.Close())
	})
	return b.err
}

// Close unplugs every board.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	boards := append([]*Board(nil), tb.boards...)
	tb.mu.Unlock()
	var errs []error
	for _, b := range boards {
		errs = append(errs, b.unplug())
	}
	if tb.temporary {
		errs = append(errs, os.RemoveAll(tb.dir))
	} else {
		for i := range boards {
			if err := os.Remove(tb.Path(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// FirmwareNamed returns the firmware people choose by name in `lifeline
// testbed --devices`: lifeline (our board), rnode (RNode firmware 1.86 on
// an ESP32 board), rnode-avr (the same on an AVR board, which sends no
// channel statistics), meshtastic (a Meshtastic device, EU_868 LongFast;
// meshtastic:ShortFast at another preset).
func FirmwareNamed(name string) (Firmware, error) {
	if preset, ok := strings.CutPrefix(name, "meshtastic:"); ok {
		return meshtasticWithPreset(preset)
	}
	switch name {
	case "lifeline":
		return LifelineBoard, nil
	case "rnode":
		return RNodeBoard(RNodeOptions{}), nil
	case "rnode-avr":
		return RNodeBoard(RNodeOptions{Platform: RNodeAVR}), nil
	case "meshtastic":
		return MeshtasticDevice(MeshtasticOptions{})
	}
	return nil, fmt.Errorf("testbed: unknown device %q: want lifeline, rnode, rnode-avr or meshtastic", name)
}
