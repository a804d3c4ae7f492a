package serialport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/radio/testbed"
)

// device is the far end of a pseudo-terminal, standing for a board: the
// code under test opens the terminal through tarm/serial, as it would
// /dev/ttyUSB0. It keeps what it reads.
type device struct {
	master, slave *os.File
	mu            sync.Mutex
	got           []byte
	done          chan struct{}
}

func plug(t *testing.T, link string) *device {
	t.Helper()
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	d := &device{master: master, slave: slave, done: make(chan struct{})}
	os.Remove(link)
	if err := os.Symlink(slave.Name(), link); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		buf := make([]byte, 1024)
		for {
			n, err := d.master.Read(buf)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.got = append(d.got, buf[:n]...)
			d.mu.Unlock()
		}
	}()
	t.Cleanup(d.unplug)
	return d
}

func (d *device) read() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.got...)
}

// unplug is the cable pulled: both ends of the terminal go away.
func (d *device) unplug() {
	d.master.Close()
	d.slave.Close()
	<-d.done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closes checks that Close returns within a few read timeouts.
func closes(t *testing.T, p *Port) {
	t.Helper()
	start := time.Now()
	p.Close()
	if took := time.Since(start); took > 10*readTimeout {
		t.Fatalf("Close took %v", took)
	}
	p.Close() // a second Close is harmless
}

// TestRaw: every byte value goes both ways unchanged; the terminal
// neither echoes, nor translates line ends, nor takes flow control or
// signal characters.
func TestRaw(t *testing.T) {
	path := filepath.Join(t.TempDir(), "radio")
	dev := plug(t, path)
	p, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closes(t, p)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	dev.master.Write(all)
	var got []byte
	deadline := time.After(20 * time.Second)
	for len(got) < len(all) {
		select {
		case b := <-p.Incoming():
			got = append(got, b...)
		case err := <-p.Failed():
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("read %d bytes of %d", len(got), len(all))
		}
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("read % x", got)
	}
	if _, err := p.Write(all); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the device to read 256 bytes", func() bool { return len(dev.read()) >= len(all) })
	if got := dev.read(); !bytes.Equal(got, all) {
		t.Fatalf("the device read % x", got)
	}
}

// TestQuiet: a port with nothing to say is not a port hung up, however
// many read timeouts pass.
func TestQuiet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "radio")
	plug(t, path)
	p, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.Failed():
		t.Fatalf("a quiet port failed: %v", err)
	case <-time.After(5 * readTimeout):
	}
	closes(t, p)
}

// TestHungUp: reads that come back empty at once, again and again, are a
// line hung up. A pseudo-terminal's slave does that once its master has
// gone; a read already waiting then gets an I/O error instead, so here
// the master goes before the reading starts.
func TestHungUp(t *testing.T) {
	ptmx, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer slave.Close()
	ptmx.Close()
	p := start("/dev/ttyTEST", slave)
	select {
	case err := <-p.Failed():
		if !errors.Is(err, ErrHungUp) || !strings.Contains(err.Error(), "/dev/ttyTEST") {
			t.Fatalf("failed with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the hang-up went unnoticed")
	}
	closes(t, p)
}

// TestUnplug: the device going away while the port is open fails it,
// and Close still returns at once.
func TestUnplug(t *testing.T) {
	path := filepath.Join(t.TempDir(), "radio")
	dev := plug(t, path)
	p, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev.unplug()
	select {
	case err := <-p.Failed():
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("the error does not name the device: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the unplugging went unnoticed")
	}
	closes(t, p)
}

// downs records what Run reports.
type downs struct {
	mu    sync.Mutex
	errs  []error
	waits []time.Duration
}

func (d *downs) down(err error, retryIn time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs, d.waits = append(d.errs, err), append(d.waits, retryIn)
}

func (d *downs) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waits)
}

func testConfig(t *testing.T, path string) Config {
	return Config{Path: path, RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

// run runs Run until stop is called, which checks that it returns
// promptly.
func run(t *testing.T, cfg Config, session Session, down func(error, time.Duration)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { Run(ctx, cfg, session, down); close(stopped) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of its context ending")
		}
	}
}

// TestBackoff: a port that will not open is tried again after a wait that
// doubles up to RetryMax; cancelling the context ends the wait.
func TestBackoff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	var d downs
	stop := run(t, testConfig(t, path), func(context.Context, *Port) (bool, error) {
		t.Error("a session on a port that cannot open")
		return false, nil
	}, d.down)
	waitFor(t, "five failures", func() bool { return d.count() >= 5 })
	stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	ms := time.Millisecond
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms}; !slices.Equal(d.waits[:5], want) {
		t.Fatalf("waits %v, want %v", d.waits[:5], want)
	}
	for _, err := range d.errs {
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v", err)
		}
	}
}

// TestSessions: each session gets the port freshly opened; one that got
// the device ready starts the backoff over; one that returns no error is
// still reported down; the port is closed only after the session
// returns, so a session can say goodbye when the context ends.
func TestSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "radio")
	dev := plug(t, path)
	script := []struct {
		ready bool
		err   error
	}{{false, errors.New("one")}, {false, nil}, {true, errors.New("three")}, {false, errors.New("four")}}
	var d downs
	calls := 0
	stop := run(t, testConfig(t, path), func(ctx context.Context, p *Port) (bool, error) {
		n := calls
		calls++
		if _, err := fmt.Fprintf(p, "session %d\n", n); err != nil {
			return false, err
		}
		if n < len(script) {
			return script[n].ready, script[n].err
		}
		<-ctx.Done()
		_, err := p.Write([]byte("bye\n"))
		return true, errors.Join(ctx.Err(), err)
	}, d.down)
	waitFor(t, "the last session", func() bool { return bytes.Contains(dev.read(), []byte("session 4\n")) })
	stop()
	waitFor(t, "the goodbye", func() bool { return bytes.HasSuffix(dev.read(), []byte("bye\n")) })
	d.mu.Lock()
	defer d.mu.Unlock()
	ms := time.Millisecond
	if want := []time.Duration{10 * ms, 20 * ms, 10 * ms, 10 * ms}; !slices.Equal(d.waits, want) {
		t.Fatalf("waits %v, want %v", d.waits, want)
	}
	if d.errs[1] == nil {
		t.Fatal("a session that ended without an error was reported without one")
	}
	if want := "session 0\nsession 1\nsession 2\nsession 3\nsession 4\nbye\n"; string(dev.read()) != want {
		t.Fatalf("the device read %q", dev.read())
	}
}
