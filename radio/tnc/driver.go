package tnc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
	"lifeline/radio/serialport"
)

// Config configures a Driver.
type Config struct {
	// Path is the serial device: /dev/ttyUSB0, /dev/ttyACM0, a
	// /dev/serial/by-id/ link (which survives re-plugging into another
	// port), or a pseudo-terminal.
	Path string
	Baud int // 115200 if zero
	// RetryMin and RetryMax bound the wait before reopening a port that
	// failed; 1 s and 30 s if zero.
	RetryMin, RetryMax time.Duration
	// Airtime is the modem's airtime of an n-byte payload, as the TNC is
	// configured (lora.Modem.Airtime): the driver cannot ask a plain TNC,
	// and needs it to know when a transmission ends. Required.
	Airtime func(n int) time.Duration
	Logger  *slog.Logger
}

// Driver keeps a KISS TNC on a serial port: it opens the port, passes
// frames both ways, handing the TNC one frame at a time, and when the port
// fails (the board unplugged, a cable pulled), reports the link down and
// reopens it with backoff.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	rx   chan link.Packet
	tx   chan []byte
	done chan time.Time

	live *link.Live
}

// rxQueue and txQueue bound the frames waiting each way.
const rxQueue, txQueue = 64, 64

// NewDriver returns a driver; Run starts it.
func NewDriver(cfg Config) *Driver {
	if cfg.Baud == 0 {
		cfg.Baud = serialport.DefaultBaud // the session's estimates need it
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Driver{cfg: cfg, log: cfg.Logger, rx: make(chan link.Packet, rxQueue), tx: make(chan []byte, txQueue),
		done: make(chan time.Time, txQueue), live: link.NewLive(link.Status{Driver: "kiss", Device: cfg.Path, State: "down", Since: time.Now()})}
}

// Received delivers frames from the air. A frame that waits while the
// channel is full is dropped (and counted): the air does not wait either.
func (d *Driver) Received() <-chan link.Packet { return d.rx }

// Done delivers the time of each transmission's end: as the TNC reports it
// where it does (MeshCore's TxDone), else as estimated from the airtime.
// The driver hands the TNC the next frame only then. If nobody reads it,
// values beyond the channel's capacity are dropped.
func (d *Driver) Done() <-chan time.Time { return d.done }

// Send queues a copy of payload for the air; it fails if the queue is full
// or the payload does not fit a LoRa frame (1 to MaxPayload bytes).
func (d *Driver) Send(payload []byte) error {
	if err := CheckPayload(payload); err != nil {
		return err
	}
	select {
	case d.tx <- append([]byte(nil), payload...):
		return nil
	default:
		return errors.New("tnc: transmit queue full")
	}
}

// Status returns the driver's status.
func (d *Driver) Status() link.Status { return d.live.Status() }

// Run keeps the link up until ctx ends, and then returns nil. It fails at
// once only if the configuration is unusable.
func (d *Driver) Run(ctx context.Context) error {
	if d.cfg.Airtime == nil {
		return errors.New("tnc: Config.Airtime is required: the driver cannot tell when a transmission ends")
	}
	port := serialport.Config{Path: d.cfg.Path, Baud: d.cfg.Baud, RetryMin: d.cfg.RetryMin, RetryMax: d.cfg.RetryMax, Logger: d.log}
	serialport.Run(ctx, port, d.session, d.down)
	d.live.SetState("down")
	return nil
}

// down is told why the port or the session failed, before the wait to
// reopen it.
func (d *Driver) down(err error, _ time.Duration) {
	d.live.Update(func(s *link.Status) { s.LastError, s.Reopened = err.Error(), s.Reopened+1 })
	d.live.SetState("down")
}

// session runs on one opening of the port, until it fails or ctx ends. A
// frame handed to the TNC when the port fails is reported done then: the
// TNC may or may not have sent it, nothing more will come of it, and the
// next frame goes to the next opening of the port.
func (d *Driver) session(ctx context.Context, port *serialport.Port) (ready bool, err error) {
	s := NewSession(d.cfg.Airtime, d.cfg.Baud)
	if _, err := port.Write(s.Start()); err != nil {
		return false, err
	}
	defer func() { d.events(s.End(time.Now())) }()
	d.live.Update(func(st *link.Status) { st.LastError = "" })
	d.live.SetState("ready") // KISS has no handshake: an open port is a link
	d.log.Info("radio ready", "device", d.cfg.Path, "driver", "kiss")
	deframer := kiss.NewDeframer(MaxFrame)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var txc chan []byte
		if s.Idle() {
			txc = d.tx
		}
		var tick <-chan time.Time
		if next := s.Next(); !next.IsZero() {
			timer.Reset(time.Until(next))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-port.Failed():
			return true, err
		case p := <-txc:
			b, err := s.Transmit(time.Now(), p)
			if err != nil {
				return true, fmt.Errorf("%s: %w", d.cfg.Path, err) // Send checked the payload: a bug
			}
			if _, err := port.Write(b); err != nil {
				return true, err
			}
			d.live.Update(func(st *link.Status) { st.Sent++ })
		case <-tick:
			d.events(s.Tick(time.Now()))
		case b := <-port.Incoming():
			now := time.Now()
			for _, f := range deframer.Feed(b) {
				d.events(s.Handle(now, f))
			}
		}
	}
}

func (d *Driver) events(events []Event) {
	for _, ev := range events {
		switch ev.Kind {
		case EventReceived:
			p := ev.Packet
			select {
			case d.rx <- p:
				d.live.Update(func(s *link.Status) {
					s.Received++
					if p.HasStats {
						s.LastRSSI, s.LastSNR = p.RSSI, p.SNR
					}
				})
			default:
				d.live.Update(func(s *link.Status) { s.Dropped++ })
			}
		case EventTxDone:
			select {
			case d.done <- ev.At:
			default: // nobody is counting: the channel holds the first few
			}
		case EventDeviceError:
			d.log.Warn("radio TNC error", "device", d.cfg.Path, "err", ev.Err)
			d.live.Update(func(s *link.Status) { s.LastError = ev.Err.Error() })
		}
	}
}
