package tnc_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"lifeline/radio/kiss"
	"lifeline/radio/link"
	"lifeline/radio/rnode"
	"lifeline/radio/testbed"
	"lifeline/radio/tnc"
)

// driver is the shape every radio driver has, so that the node takes
// either (radio.Link).
type driver interface {
	Run(ctx context.Context) error
	Send(payload []byte) error
	Received() <-chan link.Packet
	Done() <-chan time.Time
	Status() link.Status
}

var (
	_ driver = (*tnc.Driver)(nil)
	_ driver = (*rnode.Driver)(nil)
)

// fakeTNC is the device end of a pseudo-terminal: the driver opens the
// other end through tarm/serial, as it would /dev/ttyUSB0. It records the
// frames the host sends, with the time each arrived, and can answer each
// DATA frame (onData), as a TNC's firmware would.
type fakeTNC struct {
	master, slave *os.File
	mu            sync.Mutex // orders writes to master; guards got
	got           []heard
	onData        func(payload []byte) []byte
	done          chan struct{}
}

type heard struct {
	frame kiss.Frame
	at    time.Time
}

func plugTNC(t *testing.T, link string, onData func([]byte) []byte) *fakeTNC {
	t.Helper()
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	d := &fakeTNC{master: master, slave: slave, onData: onData, done: make(chan struct{})}
	os.Remove(link)
	if err := os.Symlink(slave.Name(), link); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		deframer := kiss.NewDeframer(tnc.MaxFrame)
		buf := make([]byte, 1024)
		for {
			n, err := d.master.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			for _, f := range deframer.Feed(buf[:n]) {
				d.mu.Lock()
				d.got = append(d.got, heard{f, now})
				d.mu.Unlock()
				if f.Command == tnc.CmdData && d.onData != nil {
					d.write(d.onData(f.Data))
				}
			}
		}
	}()
	t.Cleanup(d.unplug)
	return d
}

func (d *fakeTNC) write(p []byte) {
	if len(p) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.master.Write(p)
}

// heard returns the frames the host sent so far.
func (d *fakeTNC) heard() []heard {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]heard(nil), d.got...)
}

// data returns the DATA frames the host sent so far.
func (d *fakeTNC) data() []heard {
	var out []heard
	for _, h := range d.heard() {
		if h.frame.Command == tnc.CmdData {
			out = append(out, h)
		}
	}
	return out
}

// opened reports whether the host has opened the port and said TXDELAY 0:
// from then on the terminal is in raw mode, and what the device writes
// reaches the host unchanged.
func (d *fakeTNC) opened() bool {
	for _, h := range d.heard() {
		if h.frame.Command == tnc.CmdTxDelay && bytes.Equal(h.frame.Data, []byte{0}) {
			return true
		}
	}
	return false
}

// unplug is the cable pulled: both ends of the terminal go away.
func (d *fakeTNC) unplug() {
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

func receive(t *testing.T, d *tnc.Driver) link.Packet {
	t.Helper()
	select {
	case p := <-d.Received():
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("nothing received")
	}
	return link.Packet{}
}

func done(t *testing.T, d *tnc.Driver) time.Time {
	t.Helper()
	select {
	case at := <-d.Done():
		return at
	case <-time.After(20 * time.Second):
		t.Fatal("no transmission done")
	}
	return time.Time{}
}

// start runs the driver until the test ends, and checks that it stops
// promptly then.
func start(t *testing.T, cfg tnc.Config) *tnc.Driver {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	d := tnc.NewDriver(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the driver did not stop within 5 s of its context ending")
		}
		if st := d.Status(); st.State != "down" {
			t.Errorf("stopped, state %q", st.State)
		}
	})
	return d
}

func fixed(air time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return air }
}

// TestFramesBothWays: frames with bytes that need escaping go both ways;
// boot text, garbage between frames, frames for another port and other
// commands from the device are not delivered.
func TestFramesBothWays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tnc")
	dev := plugTNC(t, path, nil)
	d := start(t, tnc.Config{Path: path, Airtime: fixed(10 * time.Millisecond)})
	waitFor(t, "the host to open the port", dev.opened)
	if st := d.Status(); st.State != "ready" || st.Driver != "kiss" || st.Device != path {
		t.Fatalf("status %+v", st)
	}

	out := []byte{0xC0, 'h', 0xDB, 0xDC, 0xDD, 0x00, 0xC0}
	if err := d.Send(out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame at the TNC", func() bool { return len(dev.data()) == 1 })
	if got := dev.data()[0].frame.Data; !bytes.Equal(got, out) {
		t.Fatalf("TNC got % x, want % x", got, out)
	}

	in1 := []byte{0xDB, 'x', 0xC0, 0xC0, 0xDC}
	in2 := []byte("hello node")
	var b []byte
	b = append(b, "garbage\r\n"...)
	b = kiss.Append(b, tnc.CmdData, in1)
	b = append(b, "noise between frames"...)
	b = kiss.Append(b, 0x10, []byte("for port 1"))
	b = kiss.Append(b, tnc.CmdTxDelay, []byte{50})
	b = append(b, kiss.FEND, 0x00, kiss.FESC, 'z', 'q', kiss.FEND) // a bad escape
	b = kiss.Append(b, tnc.CmdSetHardware, []byte{0x97})           // an unasked MeshCore answer
	b = kiss.Append(b, tnc.CmdData, in2)
	dev.write(b[:7]) // split anywhere: the serial line does
	dev.write(b[7:])
	for _, want := range [][]byte{in1, in2} {
		if p := receive(t, d); !bytes.Equal(p.Payload, want) || p.HasStats || p.At.IsZero() {
			t.Fatalf("received %+v, want % x", p, want)
		}
	}
	// Nothing else came out of that: the next frame is the next one sent.
	dev.write(kiss.Append(nil, tnc.CmdData, []byte("last")))
	if p := receive(t, d); string(p.Payload) != "last" {
		t.Fatalf("received %q, want %q", p.Payload, "last")
	}
	if st := d.Status(); st.Received != 3 || st.Sent != 1 || st.Dropped != 0 || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestOneAtATime: frames sent together reach the TNC one at a time, each
// once the previous one's airtime has passed, and Done follows each.
func TestOneAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tnc")
	dev := plugTNC(t, path, nil)
	const air = 150 * time.Millisecond
	d := start(t, tnc.Config{Path: path, Airtime: fixed(air)})
	waitFor(t, "the host to open the port", dev.opened)

	sent := time.Now()
	for _, p := range []string{"one", "two", "three"} {
		if err := d.Send([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	var ends []time.Time
	for range 3 {
		ends = append(ends, done(t, d))
	}
	waitFor(t, "three frames at the TNC", func() bool { return len(dev.data()) == 3 })
	got := dev.data()
	for i, want := range []string{"one", "two", "three"} {
		if string(got[i].frame.Data) != want {
			t.Fatalf("frame %d is %q, want %q", i, got[i].frame.Data, want)
		}
	}
	if ends[0].Sub(sent) < air {
		t.Fatalf("the first frame done %v after it was sent: under its airtime", ends[0].Sub(sent))
	}
	for i := 1; i < 3; i++ {
		// The host writes a frame only once the previous one is done,
		// and counts it done no sooner than its airtime later.
		if got[i].at.Before(ends[i-1]) {
			t.Fatalf("frame %d reached the TNC %v before frame %d was done", i, ends[i-1].Sub(got[i].at), i-1)
		}
		if gap := ends[i].Sub(ends[i-1]); gap < air {
			t.Fatalf("frame %d done %v after the previous one: under its airtime", i, gap)
		}
	}
	if st := d.Status(); st.Sent != 3 {
		t.Fatalf("status %+v", st)
	}
}

// TestMeshCore: a TNC that reports the ends of its transmissions and the
// signal of each frame it received, as MeshCore's KISS modem does.
func TestMeshCore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tnc")
	txDone := kiss.Append(nil, tnc.CmdSetHardware, []byte{tnc.HWTxDone, 0x01})
	dev := plugTNC(t, path, func([]byte) []byte { return txDone })
	// An airtime of a minute: a Done within the test's deadlines came
	// from the TNC, not from the estimate.
	d := start(t, tnc.Config{Path: path, Airtime: fixed(time.Minute)})
	waitFor(t, "the host to open the port", dev.opened)
	for _, p := range []string{"one", "two"} {
		if err := d.Send([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	done(t, d)
	done(t, d)
	if got := dev.data(); len(got) != 2 || string(got[1].frame.Data) != "two" {
		t.Fatalf("TNC got %+v", got)
	}

	meta := func(snr, rssi int8) []byte {
		return kiss.Append(nil, tnc.CmdSetHardware, []byte{tnc.HWRxMeta, byte(snr), byte(rssi)})
	}
	// The first frame teaches the driver that statistics follow; it goes
	// on without them.
	dev.write(append(kiss.Append(nil, tnc.CmdData, []byte("first")), meta(20, -90)...))
	if p := receive(t, d); string(p.Payload) != "first" || p.HasStats {
		t.Fatalf("received %+v", p)
	}
	dev.write(append(kiss.Append(nil, tnc.CmdData, []byte("second")), meta(-29, -101)...))
	if p := receive(t, d); string(p.Payload) != "second" || !p.HasStats || p.RSSI != -101 || p.SNR != -7.25 {
		t.Fatalf("received %+v", p)
	}
	if st := d.Status(); st.LastRSSI != -101 || st.LastSNR != -7.25 || st.Sent != 2 || st.Received != 2 {
		t.Fatalf("status %+v", st)
	}
}

// TestUnplugged: the TNC unplugged while a frame is on air reports the
// link down, and that frame done; plugged back in at the same path (as /dev/serial/by-id keeps
// it), the link comes back and frames flow both ways.
func TestUnplugged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tnc")
	dev := plugTNC(t, path, nil)
	d := start(t, tnc.Config{Path: path, Airtime: fixed(time.Minute), RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	waitFor(t, "the host to open the port", dev.opened)
	if err := d.Send([]byte("on air")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame at the TNC", func() bool { return len(dev.data()) == 1 })

	dev.unplug()
	waitFor(t, "the link down", func() bool { st := d.Status(); return st.State == "down" && st.LastError != "" })
	// Nothing more will come of the frame on air: whoever waits for its
	// end to send the next need not wait for its minute of airtime.
	done(t, d)

	dev2 := plugTNC(t, path, nil)
	waitFor(t, "the host to open the new port", dev2.opened)
	waitFor(t, "the link ready again", func() bool { return d.Status().State == "ready" })
	if err := d.Send([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame at the new TNC", func() bool {
		got := dev2.data()
		return len(got) == 1 && string(got[0].frame.Data) == "still here"
	})
	dev2.write(kiss.Append(nil, tnc.CmdData, []byte("back")))
	if p := receive(t, d); string(p.Payload) != "back" {
		t.Fatalf("received %q", p.Payload)
	}
	if st := d.Status(); st.Reopened < 1 || st.Sent != 2 || st.Received != 1 || st.LastError != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestSendRefused: a full queue, and payloads no LoRa radio sends.
func TestSendRefused(t *testing.T) {
	d := tnc.NewDriver(tnc.Config{Path: "/nonexistent", Airtime: fixed(time.Second)})
	n := 0
	for ; n < 1000; n++ {
		if err := d.Send([]byte{byte(n)}); err != nil {
			break
		}
	}
	if n == 0 || n == 1000 {
		t.Fatalf("the queue took %d frames", n)
	}
	if err := d.Send(nil); err == nil {
		t.Fatal("took an empty payload")
	}
	if err := d.Send(make([]byte, tnc.MaxPayload+1)); err == nil {
		t.Fatal("took a payload longer than a LoRa frame")
	}
}

// TestStops: Run returns promptly when its context ends while it waits to
// reopen a missing port, and at once without an airtime.
func TestStops(t *testing.T) {
	if err := tnc.NewDriver(tnc.Config{Path: "/nonexistent"}).Run(context.Background()); err == nil {
		t.Fatal("ran without an airtime")
	}
	d := start(t, tnc.Config{Path: filepath.Join(t.TempDir(), "missing"), Airtime: fixed(time.Second), RetryMin: time.Hour})
	waitFor(t, "the open to fail", func() bool { st := d.Status(); return st.Reopened == 1 && st.LastError != "" })
	// start's cleanup checks that it stops.
}
