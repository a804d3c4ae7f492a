package rnode_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bridge "lifeline/firmware-bridge"
	"lifeline/radio/rnode"
	"lifeline/radio/testbed"
)

// chip is the board's transceiver: it applies what it is told and records
// what it sends.
type chip struct {
	mu   sync.Mutex
	set  bridge.Settings
	sent []string
}

func (c *chip) Apply(s bridge.Settings) bridge.Settings { c.set = s; return s }
func (c *chip) Transmit(_ time.Time, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, string(p[1:])) // without RNode's header byte
}
func (c *chip) Busy(time.Time) bool { return false }
func (c *chip) has(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.sent {
		if x == s {
			return true
		}
	}
	return false
}

// board is the firmware core behind a pseudo-terminal: the node opens the
// terminal's other end through tarm/serial, as it would /dev/ttyUSB0.
type board struct {
	master, slave *os.File
	core          *bridge.Core
	chip          *chip
	mu            sync.Mutex // orders writes to master
	coreMu        sync.Mutex // the core is single-owner: the reader and the test take turns
	done          chan struct{}
}

func plugBoard(t *testing.T, link string) *board {
	t.Helper()
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	b := &board{master: master, slave: slave, chip: &chip{}, done: make(chan struct{})}
	b.core = bridge.New(b.chip, bridge.MCUHost, 4096)
	os.Remove(link)
	if err := os.Symlink(slave.Name(), link); err != nil {
		t.Fatal(err)
	}
	b.write(b.core.Boot()) // a board announces that it started
	go func() {
		defer close(b.done)
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			b.coreMu.Lock()
			out := b.core.FromHost(now, buf[:n])
			for {
				before := len(b.chip.sent)
				b.core.Poll(now)
				if len(b.chip.sent) == before {
					break
				}
				out = append(out, b.core.TxDone(now)...)
			}
			b.coreMu.Unlock()
			b.write(out)
		}
	}()
	t.Cleanup(b.unplug)
	return b
}

func (b *board) write(p []byte) {
	if len(p) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.master.Write(p)
}

// unplug is the cable pulled: both ends of the terminal go away.
func (b *board) unplug() {
	b.master.Close()
	b.slave.Close()
	<-b.done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDriverThroughPTY: the driver opens a pseudo-terminal with
// tarm/serial, configures the board behind it, sends and receives, and
// when the board is unplugged and plugged back (at the same path, as
// /dev/serial/by-id keeps it), reports the link down and comes back.
func TestDriverThroughPTY(t *testing.T) {
	link := filepath.Join(t.TempDir(), "radio")
	b := plugBoard(t, link)
	cfg := rnode.Config{Frequency: 869525000, Bandwidth: 250000, TxPower: 14, SF: 11, CR: 5}
	d := rnode.NewDriver(rnode.DriverConfig{Path: link, Radio: cfg, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Answer: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the radio ready", func() bool { return d.Status().State == "ready" })
	if st := d.Status(); st.Platform != bridge.Platform || st.Firmware != "1.86" {
		t.Fatalf("status %+v", st)
	}
	if err := d.Send([]byte("hello air")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame on air", func() bool { return b.chip.has("hello air") })

	b.coreMu.Lock()
	heard := b.core.Received(time.Now(), []byte("\x00hello node"), -101, 6.25)
	b.coreMu.Unlock()
	b.write(heard)
	select {
	case r := <-d.Received():
		if string(r.Payload) != "hello node" || r.RSSI != -101 || r.SNR != 6.25 {
			t.Fatalf("received %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}

	// Unplugged mid-operation: the link goes down and keeps retrying.
	b.unplug()
	waitFor(t, "the link down", func() bool { st := d.Status(); return st.State == "down" && st.LastError != "" })
	// A frame handed over while the board is gone was given up with it
	// (the station resets): it is not sent to the next board.
	if err := d.Send([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	// Plugged back in.
	b2 := plugBoard(t, link)
	waitFor(t, "the radio ready again", func() bool { return d.Status().State == "ready" })
	if err := d.Send([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame on air after re-plugging", func() bool { return b2.chip.has("still here") })
	if b2.chip.has("stale") {
		t.Fatal("a frame handed over while the board was gone went on air after it came back")
	}
	if st := d.Status(); st.Reopened < 1 || st.Sent != 2 || st.Received != 1 || st.LastRSSI != -101 {
		t.Fatalf("status %+v", st)
	}
}

// TestDriverPeriodicReports: an RNode on an ESP32 sends STAT_CHTM after
// each transmission and about once a second besides (the simulated one
// does too); the driver takes no report as the end of a frame sooner than
// the frame's airtime after it handed the frame over, and none as an end
// when nothing is in flight.
func TestDriverPeriodicReports(t *testing.T) {
	tb, err := testbed.NewWith([]testbed.Firmware{testbed.RNodeBoard(testbed.RNodeOptions{})}, 1)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer tb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { tb.Run(ctx) })
	cfg := rnode.Config{Frequency: 869525000, Bandwidth: 125000, TxPower: 14, SF: 12, CR: 5}
	d := rnode.NewDriver(rnode.DriverConfig{Path: tb.Path(0), Radio: cfg, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	wg.Go(func() { d.Run(ctx) })

	waitFor(t, "the radio ready", func() bool { return d.Status().State == "ready" })
	waitFor(t, "a report unasked", func() bool { return d.Status().Board != nil })
	select {
	case end := <-d.Done():
		t.Fatalf("an end at %v with nothing sent", end)
	default:
	}
	payload := make([]byte, 20)
	air := d.Airtime(len(payload))
	if air < 1200*time.Millisecond {
		t.Fatalf("airtime %v: too short to see a report in between", air)
	}
	sent := time.Now()
	if err := d.Send(payload); err != nil {
		t.Fatal(err)
	}
	select {
	case end := <-d.Done():
		if end.Sub(sent) < air {
			t.Fatalf("the frame ended %v after it was sent; its airtime is %v", end.Sub(sent), air)
		}
	case <-time.After(air + 10*time.Second):
		t.Fatal("no end")
	}
}
