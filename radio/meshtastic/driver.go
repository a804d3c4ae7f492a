package meshtastic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/link"
	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
	"lifeline/radio/serialport"
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Path is the serial device: /dev/ttyUSB0, /dev/ttyACM0, a
	// /dev/serial/by-id/ link, or a pseudo-terminal.
	Path string
	Baud int // 115200 if zero: Meshtastic's serial API speed
	// Session: the node's region and preset (to check the device's
	// against), the hop limit, the handshake's deadline.
	Session Config
	// RetryMin and RetryMax bound the wait before reopening a port that
	// failed; 1 s and 30 s if zero.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
}

// Driver keeps a Meshtastic device in service on a serial port: it opens
// the port, runs the handshake, passes Lifeline's frames both ways as
// PRIVATE_APP packets, keeps the connection alive with heartbeats, and
// when the port fails, the device never completes its configuration or
// misbehaves, reports the link down and reopens it with backoff. A device
// that reboots is configured again on the same port. It never changes the
// device's settings; what is wrong with them is in Status().Warning.
type Driver struct {
	cfg  DriverConfig
	log  *slog.Logger
	rx   chan link.Packet
	tx   chan []byte
	done chan time.Time
	live *link.Live

	// modem is the device's modulation, as last configured (the node's
	// preset before any device said).
	mu    sync.Mutex
	modem lora.Modem
}

// rxQueue and txQueue bound the frames waiting each way.
const rxQueue, txQueue = 64, 64

// NewDriver returns a driver; Run starts it.
func NewDriver(cfg DriverConfig) *Driver {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Driver{cfg: cfg, log: cfg.Logger, rx: make(chan link.Packet, rxQueue), tx: make(chan []byte, txQueue),
		done:  make(chan time.Time, txQueue),
		live:  link.NewLive(link.Status{Driver: "meshtastic", Device: cfg.Path, State: "down", Since: time.Now()}),
		modem: NewSession(cfg.Session).Modem()}
}

// Airtime is how long a frame of n bytes occupies the channel through the
// device: Meshtastic's header and Data around it (AirBytes), with the
// device's modulation. It is more than the node's own reckoning of n
// bytes, by 23 or 24 bytes and by the modulation if the device's differs:
// a duty-cycle budget kept by the node must count this.
func (d *Driver) Airtime(n int) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.modem.Airtime(AirBytes(n))
}

// MaxFrame is the largest frame Send takes (MaxPayload).
func (d *Driver) MaxFrame() int { return MaxPayload }

// Received delivers frames from the air. A frame that waits while the
// channel is full is dropped (and counted): the air does not wait either.
func (d *Driver) Received() <-chan link.Packet { return d.rx }

// Done delivers the end of each transmission. Meshtastic does not report
// one: it is reckoned as the time the device accepted the packet plus the
// packet's airtime with the device's modulation (Session.Transmit). The
// station hands the driver one frame at a time and waits for it.
func (d *Driver) Done() <-chan time.Time { return d.done }

// Send queues a payload for the air. It fails if the payload is over
// MaxPayload or the queue is full.
func (d *Driver) Send(payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: got %d", ErrTooLarge, len(payload))
	}
	select {
	case d.tx <- payload:
		return nil
	default:
		return errors.New("meshtastic: transmit queue full")
	}
}

// Status returns the driver's status: state down, configuring, ready or
// failed.
func (d *Driver) Status() link.Status { return d.live.Status() }

// Run keeps the device in service until ctx ends.
func (d *Driver) Run(ctx context.Context) error {
	port := serialport.Config{Path: d.cfg.Path, Baud: d.cfg.Baud, RetryMin: d.cfg.RetryMin, RetryMax: d.cfg.RetryMax, Logger: d.log}
	serialport.Run(ctx, port, d.session, d.down)
	d.live.SetState("down")
	return nil
}

// down is told why the port or the session failed, before the wait to
// reopen it.
func (d *Driver) down(err error, _ time.Duration) {
	d.live.Update(func(s *link.Status) { s.LastError, s.Reopened = err.Error(), s.Reopened+1 })
	if d.live.Status().State != "failed" {
		d.live.SetState("down")
	}
}

// wake is written before the first frame: Meshtastic's own clients send 32
// START2 bytes so that a sleeping device wakes and a device reader left
// inside a broken frame resyncs (meshtastic-python, StreamInterface's
// connect). A device's reader skips them as bytes outside any frame.
var wake = bytes.Repeat([]byte{start2}, 32)

// session runs on one opening of the port, until it fails or ctx ends. It
// reports whether the device became ready.
func (d *Driver) session(ctx context.Context, port *serialport.Port) (ready bool, err error) {
	s := NewSession(d.cfg.Session)
	write := func(msgs []*meshpb.ToRadio) error {
		var b []byte
		for _, m := range msgs {
			pb, err := proto.Marshal(m)
			if err == nil {
				b, err = AppendFrame(b, pb)
			}
			if err != nil {
				return fmt.Errorf("meshtastic: encoding %v: %w", m, err)
			}
		}
		if len(b) == 0 {
			return nil
		}
		_, err := port.Write(b)
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			// Best effort: the host is going; the port closes after this.
			write([]*meshpb.ToRadio{{PayloadVariant: &meshpb.ToRadio_Disconnect{Disconnect: true}}})
		}
	}()
	d.live.SetState("configuring")
	if _, err := port.Write(wake); err != nil {
		return false, err
	}
	if err := write(s.Start(time.Now())); err != nil {
		return false, err
	}
	var deframer Deframer
	timer := time.NewTimer(time.Until(s.Next()))
	defer timer.Stop()
	handle := func(events []Event, out []*meshpb.ToRadio) error {
		// What the device said of itself first: the events' logs tell it.
		d.mu.Lock()
		d.modem = s.Modem()
		d.mu.Unlock()
		d.live.Update(func(st *link.Status) {
			st.Warning = s.Warning()
			if f := s.Firmware(); f != "" {
				st.Firmware = f
			}
		})
		for _, ev := range events {
			if err := d.event(ev); err != nil {
				return err
			}
			if ev.Kind == EventReady {
				ready = true
			}
		}
		if err := write(out); err != nil {
			return err
		}
		d.live.SetState(s.State().String())
		return nil
	}
	for {
		var txc chan []byte
		if s.CanTransmit(time.Now()) {
			txc = d.tx
		}
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case err := <-port.Failed():
			return ready, err
		case <-timer.C:
			if err := handle(s.Tick(time.Now())); err != nil {
				return ready, fmt.Errorf("%s: %w", d.cfg.Path, err)
			}
		case p := <-txc:
			m, err := s.Transmit(time.Now(), p)
			if err != nil {
				return ready, fmt.Errorf("%s: %w", d.cfg.Path, err)
			}
			if err := write([]*meshpb.ToRadio{m}); err != nil {
				return ready, err
			}
			d.live.Update(func(st *link.Status) { st.Sent++ })
		case b := <-port.Incoming():
			frames, text := deframer.Feed(b)
			for _, line := range text {
				d.log.Debug("meshtastic device log", "device", d.cfg.Path, "line", line)
			}
			for _, f := range frames {
				var m meshpb.FromRadio
				if err := proto.Unmarshal(f, &m); err != nil {
					// Log text that happened to hold start bytes and a
					// small length, or a newer firmware's message.
					d.log.Debug("meshtastic: unreadable frame skipped", "device", d.cfg.Path, "bytes", len(f), "err", err)
					continue
				}
				if err := handle(s.Handle(time.Now(), &m)); err != nil {
					return ready, fmt.Errorf("%s: %w", d.cfg.Path, err)
				}
			}
		}
		// What just happened may have moved the next deadline nearer.
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next := s.Next(); !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

func (d *Driver) event(ev Event) error {
	switch ev.Kind {
	case EventReady:
		d.dropStale()
		d.live.Update(func(s *link.Status) { s.LastError = "" })
		st := d.live.Status()
		d.log.Info("radio ready", "device", d.cfg.Path, "driver", "meshtastic", "firmware", st.Firmware)
		if st.Warning != "" {
			d.log.Warn("meshtastic device setup", "device", d.cfg.Path, "warning", st.Warning)
		}
	case EventRebooted:
		d.live.Update(func(s *link.Status) { s.Reboots++ })
		d.log.Warn("meshtastic device rebooted: asking for its configuration again", "device", d.cfg.Path)
	case EventReceived:
		r := link.Packet{Payload: ev.Payload, RSSI: ev.RSSI, SNR: ev.SNR, HasStats: ev.HasStats, At: time.Now()}
		select {
		case d.rx <- r:
			d.live.Update(func(s *link.Status) {
				s.Received++
				if r.HasStats {
					s.LastRSSI, s.LastSNR = r.RSSI, r.SNR
				}
			})
		default:
			d.live.Update(func(s *link.Status) { s.Dropped++ })
		}
	case EventTxDone:
		select {
		case d.done <- ev.At:
		default: // nobody is taking them: the first few wait, later ones are dropped
		}
	case EventDeviceError:
		d.log.Warn("meshtastic device: a packet failed", "device", d.cfg.Path, "error", ev.Meaning)
		d.live.Update(func(s *link.Status) { s.CountError(ev.Meaning); s.LastError = ev.Meaning })
	case EventLog:
		d.log.Debug("meshtastic device log", "device", d.cfg.Path, "line", ev.Text)
	case EventNotice:
		d.log.Warn("meshtastic device notice", "device", d.cfg.Path, "notice", ev.Text)
	case EventFailed:
		d.live.SetState("failed")
		return ev.Err
	}
	return nil
}

// dropStale empties the transmit queue when the device (re)starts: frames
// handed over before it was lost were given up by the station, which
// resets when it sees the link down; sent now, each one's end would be
// taken for a later frame's. Repair brings what they carried.
func (d *Driver) dropStale() {
	for {
		select {
		case <-d.tx:
		default:
			return
		}
	}
}
