package rnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tarm/serial"

	"lifeline/radio/kiss"
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Path is the serial device: /dev/ttyUSB0, /dev/ttyACM0, a
	// /dev/serial/by-id/ link (which survives re-plugging into another
	// port), or a pseudo-terminal.
	Path  string
	Baud  int // 115200 if zero
	Radio Config
	// RetryMin and RetryMax bound the wait before reopening a port that
	// failed; 1 s and 30 s if zero.
	RetryMin, RetryMax time.Duration
	// Answer bounds the wait for the board to finish the handshake; 5 s
	// if zero.
	Answer time.Duration
	Logger *slog.Logger
}

// Received is a frame from the air.
type Received struct {
	Frame    []byte
	RSSI     int
	SNR      float64
	HasStats bool
	At       time.Time
}

// Status is what the driver shows.
type Status struct {
	Device    string    `json:"device"`
	State     string    `json:"state"` // down, detecting, configuring, ready, failed
	Since     time.Time `json:"since"`
	Platform  byte      `json:"platform,omitempty"`
	Firmware  string    `json:"firmware,omitempty"`
	Received  int       `json:"received"`
	Sent      int       `json:"sent"`
	Dropped   int       `json:"dropped"` // received frames nobody took in time
	Reopened  int       `json:"reopened"`
	Reboots   int       `json:"reboots"`
	LastRSSI  int       `json:"last_rssi,omitempty"`
	LastSNR   float64   `json:"last_snr,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// Driver keeps an RNode session running on a serial port: it opens the
// port, detects and configures the board, passes frames both ways, and
// when the port fails (the board unplugged, a cable pulled) or the board
// misbehaves, reports the link down and reopens it with backoff. It sends
// LEAVE when it stops.
type Driver struct {
	cfg DriverConfig
	log *slog.Logger
	rx  chan Received
	tx  chan []byte

	mu     sync.Mutex
	status Status
}

// rxQueue and txQueue bound the frames waiting each way.
const rxQueue, txQueue = 64, 64

// readTimeout is how long one read of the port waits: so that the reader
// notices when to stop, and Close is never left waiting behind a read
// (tarm/serial's Close blocks while a read without timeout is pending).
const readTimeout = 100 * time.Millisecond

// NewDriver returns a driver; Run starts it.
func NewDriver(cfg DriverConfig) *Driver {
	if cfg.Baud == 0 {
		cfg.Baud = 115200
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.Answer <= 0 {
		cfg.Answer = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Driver{cfg: cfg, log: cfg.Logger, rx: make(chan Received, rxQueue), tx: make(chan []byte, txQueue),
		status: Status{Device: cfg.Path, State: "down", Since: time.Now()}}
}

// Received delivers frames from the air. A frame that waits while the
// channel is full is dropped (and counted): the air does not wait either.
func (d *Driver) Received() <-chan Received { return d.rx }

// Send queues a payload for the air; it fails if the queue is full.
func (d *Driver) Send(payload []byte) error {
	select {
	case d.tx <- payload:
		return nil
	default:
		return errors.New("rnode: transmit queue full")
	}
}

// Status returns the driver's status.
func (d *Driver) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *Driver) update(f func(*Status)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.status)
}

func (d *Driver) setState(state string) {
	d.update(func(s *Status) {
		if s.State != state {
			s.State, s.Since = state, time.Now()
		}
	})
}

// Run keeps the link up until ctx ends.
func (d *Driver) Run(ctx context.Context) error {
	wait := d.cfg.RetryMin
	for {
		ready, err := d.session(ctx)
		if ctx.Err() != nil {
			d.setState("down")
			return nil
		}
		d.update(func(s *Status) { s.LastError, s.Reopened = err.Error(), s.Reopened+1 })
		d.setState("down")
		d.log.Warn("radio link down", "device", d.cfg.Path, "err", err, "retry_in", wait)
		if ready {
			wait = d.cfg.RetryMin
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if !ready {
			wait = min(2*wait, d.cfg.RetryMax)
		}
	}
}

// session runs one opening of the port, until it fails or ctx ends. It
// reports whether the board became ready.
func (d *Driver) session(ctx context.Context) (ready bool, err error) {
	port, err := serial.OpenPort(&serial.Config{Name: d.cfg.Path, Baud: d.cfg.Baud, ReadTimeout: readTimeout})
	if err != nil {
		return false, fmt.Errorf("open %s: %w", d.cfg.Path, err)
	}
	stop := make(chan struct{})
	in := make(chan []byte, 16)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1024)
		quick := 0 // empty reads in a row that came back well before the timeout
		for {
			start := time.Now()
			n, err := port.Read(buf)
			if n > 0 {
				quick = 0
				select {
				case in <- append([]byte(nil), buf[:n]...):
				case <-stop:
					return
				}
			}
			// A read timeout comes back as io.EOF with nothing read. The
			// same, at once and again and again, is a line hung up (a
			// pseudo-terminal whose other end closed).
			if err != nil && errors.Is(err, io.EOF) && n == 0 {
				if time.Since(start) < readTimeout/2 {
					quick++
				} else {
					quick = 0
				}
				if quick >= 3 {
					err = errors.New("the device hung up")
				} else {
					err = nil
				}
			}
			if err != nil {
				errc <- err
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	s := NewSession(d.cfg.Radio)
	write := func(frames []kiss.Frame) error {
		var b []byte
		for _, f := range frames {
			b = kiss.Append(b, f.Command, f.Data)
		}
		if len(b) == 0 {
			return nil
		}
		_, err := port.Write(b)
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			write([]kiss.Frame{s.Leave()}) // best effort: the host is going
		}
		close(stop)
		wg.Wait() // the reader returns within a read timeout
		port.Close()
	}()
	d.setState("detecting")
	if err := write(s.Start()); err != nil {
		return false, fmt.Errorf("write to %s: %w", d.cfg.Path, err)
	}
	deframer := kiss.NewDeframer(MaxFrame)
	answer := time.NewTimer(d.cfg.Answer)
	defer answer.Stop()
	for {
		var txc chan []byte
		if s.State() == Ready {
			txc = d.tx
		}
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case err := <-errc:
			return ready, fmt.Errorf("read %s: %w", d.cfg.Path, err)
		case <-answer.C:
			if s.State() != Ready {
				return false, fmt.Errorf("%s: no RNode answered within %v (state %s)", d.cfg.Path, d.cfg.Answer, s.State())
			}
		case p := <-txc:
			f, err := s.Transmit(p)
			if err == nil {
				err = write([]kiss.Frame{f})
			}
			if err != nil {
				return ready, fmt.Errorf("write to %s: %w", d.cfg.Path, err)
			}
			d.update(func(st *Status) { st.Sent++ })
		case b := <-in:
			for _, f := range deframer.Feed(b) {
				events, out := s.Handle(f)
				for _, ev := range events {
					if err := d.event(ev, answer); err != nil {
						return ready, err
					}
					if ev.Kind == EventReady {
						ready = true
					}
				}
				if err := write(out); err != nil {
					return ready, fmt.Errorf("write to %s: %w", d.cfg.Path, err)
				}
				d.setState(s.State().String())
			}
		}
	}
}

func (d *Driver) event(ev Event, answer *time.Timer) error {
	switch ev.Kind {
	case EventReady:
		d.update(func(s *Status) {
			s.Platform, s.Firmware, s.LastError = ev.Platform, fmt.Sprintf("%d.%02d", ev.Firmware[0], ev.Firmware[1]), ""
		})
		d.log.Info("radio ready", "device", d.cfg.Path, "platform", ev.Platform)
	case EventRebooted:
		d.update(func(s *Status) { s.Reboots++ })
		d.log.Warn("radio board rebooted: configuring it again", "device", d.cfg.Path)
		answer.Reset(d.cfg.Answer)
	case EventReceived:
		r := Received{Frame: ev.Frame, RSSI: ev.RSSI, SNR: ev.SNR, HasStats: ev.HasStats, At: time.Now()}
		select {
		case d.rx <- r:
			d.update(func(s *Status) {
				s.Received++
				if r.HasStats {
					s.LastRSSI, s.LastSNR = r.RSSI, r.SNR
				}
			})
		default:
			d.update(func(s *Status) { s.Dropped++ })
		}
	case EventBoardError:
		d.log.Warn("radio board error", "device", d.cfg.Path, "err", ev.Err)
		d.update(func(s *Status) { s.LastError = ev.Err.Error() })
	case EventFailed:
		return ev.Err
	}
	return nil
}
