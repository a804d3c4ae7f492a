// Package serialport keeps a serial port open for a radio driver: it opens
// the port with a read timeout, reads it in a goroutine of its own, tells a
// hung-up line from a quiet one, and when the port fails (a board
// unplugged, a cable pulled) reopens it with backoff. The drivers
// (radio/rnode, radio/tnc) bring the protocol: a Session runs on each
// opening of the port and says whether the device became ready.
//
// It uses tarm/serial, whose Read on Linux returns a read timeout as io.EOF
// with nothing read, and whose Close blocks while a Read without a timeout
// is pending: Open always sets one.
package serialport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/tarm/serial"
)

// DefaultBaud is the line speed when a Config leaves it zero: what RNode
// and MeshCore firmware, and most USB LoRa boards, use.
const DefaultBaud = 115200

// readTimeout is how long one read of the port waits: so that the reader
// notices when to stop, and Close is never left waiting behind a read.
const readTimeout = 100 * time.Millisecond

// ErrHungUp is what Failed reports (wrapped) when the line hung up: reads
// keep coming back empty at once instead of after the read timeout, as
// they do from a pseudo-terminal whose other end closed.
var ErrHungUp = errors.New("the device hung up")

// Port is an open serial port with its reader running. Its methods may be
// called from any goroutine; Write is not serialised, so one goroutine
// should do the writing.
type Port struct {
	path string
	port io.ReadWriteCloser // a *serial.Port but in tests
	in   chan []byte
	errc chan error
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	cerr error
}

// Open opens the serial device at path (a /dev/ttyUSB0, a
// /dev/serial/by-id/ link, a pseudo-terminal) in raw mode at baud
// (DefaultBaud if zero) and starts reading it. The caller must Close it.
func Open(path string, baud int) (*Port, error) {
	if baud == 0 {
		baud = DefaultBaud
	}
	sp, err := serial.OpenPort(&serial.Config{Name: path, Baud: baud, ReadTimeout: readTimeout})
	if err != nil {
		return nil, withPath("open", path, err)
	}
	return start(path, sp), nil
}

// start starts reading dev, which must return from Read within about
// readTimeout, as a tarm/serial port opened with it does.
func start(path string, dev io.ReadWriteCloser) *Port {
	p := &Port{path: path, port: dev, in: make(chan []byte, 16), errc: make(chan error, 1), stop: make(chan struct{})}
	p.wg.Go(p.read)
	return p
}

func (p *Port) read() {
	buf := make([]byte, 1024)
	quick := 0 // empty reads in a row that came back well before the timeout
	for {
		began := time.Now()
		n, err := p.port.Read(buf)
		if n > 0 {
			quick = 0
			select {
			case p.in <- append([]byte(nil), buf[:n]...):
			case <-p.stop:
				return
			}
		}
		// A read timeout comes back as io.EOF with nothing read. The
		// same, at once and again and again, is a line hung up (a
		// pseudo-terminal whose other end closed).
		if err != nil && errors.Is(err, io.EOF) && n == 0 {
			if time.Since(began) < readTimeout/2 {
				quick++
			} else {
				quick = 0
			}
			if quick >= 3 {
				err = ErrHungUp
			} else {
				err = nil
			}
		}
		if err != nil {
			p.errc <- withPath("read", p.path, err)
			return
		}
		select {
		case <-p.stop:
			return
		default:
		}
	}
}

// Incoming delivers the bytes read, in order, in chunks as they came; each
// chunk is the receiver's to keep. It is never closed.
func (p *Port) Incoming() <-chan []byte { return p.in }

// Failed delivers one error, naming the device, when reading failed
// (errors.Is(err, ErrHungUp) when the line hung up): the port is no use
// any more and the caller should Close it. Chunks read before the failure may still be
// waiting in Incoming.
func (p *Port) Failed() <-chan error { return p.errc }

// Write writes b to the device; an error names the device.
func (p *Port) Write(b []byte) (int, error) {
	n, err := p.port.Write(b)
	if err != nil {
		err = withPath("write", p.path, err)
	}
	return n, err
}

// withPath says which device failed, and how, unless err says so already
// (an *fs.PathError, as the os package's errors are).
func withPath(op, path string, err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// Close stops the reader, within a read timeout, and then closes the
// device: in that order, so that tarm/serial's Close never waits behind a
// read. Calling it again returns the first result.
func (p *Port) Close() error {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.cerr = p.port.Close()
	})
	return p.cerr
}

// Config says which port to keep open and how to wait between attempts.
type Config struct {
	// Path is the serial device: /dev/ttyUSB0, /dev/ttyACM0, a
	// /dev/serial/by-id/ link (which survives re-plugging into another
	// port), or a pseudo-terminal.
	Path string
	Baud int // DefaultBaud if zero
	// RetryMin and RetryMax bound the wait before reopening a port that
	// failed; 1 s and 30 s if zero.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger // slog.Default() if nil
}

// Session runs on one opening of the port until the port fails, the
// device misbehaves or ctx ends; it returns why. It reports whether the
// device became ready: after a session that got that far the wait before
// the next attempt starts again from RetryMin, and after one that did not
// it doubles. The port is closed only after Session returns, so a Session
// that sees ctx end may still write a goodbye.
type Session func(ctx context.Context, p *Port) (ready bool, err error)

// Run keeps the port open until ctx ends: it opens it, runs session on it,
// and when the opening or the session fails, calls down (if not nil) with
// the error and the wait before the next attempt, logs it, waits and tries
// again. It never gives up on its own; it returns when ctx ends, once the
// port is closed.
func Run(ctx context.Context, cfg Config, session Session, down func(err error, retryIn time.Duration)) {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	wait := cfg.RetryMin
	for {
		ready, err := once(ctx, cfg, session)
		if ctx.Err() != nil {
			return
		}
		if ready {
			wait = cfg.RetryMin
		}
		if down != nil {
			down(err, wait)
		}
		cfg.Logger.Warn("serial device down", "device", cfg.Path, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !ready {
			wait = min(2*wait, cfg.RetryMax)
		}
	}
}

// once runs one opening of the port.
func once(ctx context.Context, cfg Config, session Session) (ready bool, err error) {
	p, err := Open(cfg.Path, cfg.Baud)
	if err != nil {
		return false, err
	}
	defer p.Close()
	ready, err = session(ctx, p)
	if err == nil && ctx.Err() == nil {
		// A session must say why it ended; a nil here would hide it.
		err = errors.New("the session ended without an error")
	}
	return ready, err
}
