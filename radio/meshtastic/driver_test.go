package meshtastic_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic"
	"lifeline/radio/meshtastic/meshpb"
	"lifeline/radio/testbed"
)

const (
	deviceNode = 0x0a0b0c0d
	otherNode  = 0x11223344
)

// device is a small scripted Meshtastic device behind a pseudo-terminal:
// enough of the serial API for the driver's test (the handshake, packets
// answered with a QueueStatus, heartbeats), not a simulation of the
// firmware (the testbed has that).
type device struct {
	master, slave *os.File
	done          chan struct{}

	mu         sync.Mutex // guards what follows, and orders writes to master
	configIDs  []uint32
	sent       []*meshpb.MeshPacket
	heartbeats int
	disconnect bool
	woken      bool // the 0xC3 wake-up bytes came before the first frame
	mode       meshpb.Config_DeviceConfig_RebroadcastMode
}

func plugDevice(t *testing.T, path string, mode meshpb.Config_DeviceConfig_RebroadcastMode) *device {
	t.Helper()
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	d := &device{master: master, slave: slave, done: make(chan struct{}), mode: mode}
	os.Remove(path)
	if err := os.Symlink(slave.Name(), path); err != nil {
		t.Fatal(err)
	}
	// A device prints its boot log on the console, 0x94 and all, before
	// any client speaks the API.
	d.writeRaw([]byte("INFO  | ??:??:?? 0 Booting\r\n\x94 DEBUG | SX126x init\r\n"))
	go d.serve()
	t.Cleanup(d.unplug)
	return d
}

func (d *device) writeRaw(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.master.Write(b)
}

func (d *device) send(msgs ...*meshpb.FromRadio) {
	var b []byte
	for _, m := range msgs {
		pb, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		b, _ = meshtastic.AppendFrame(b, pb)
		// Log text between frames, as a device with its debug log on
		// the console sends.
		b = append(b, "DEBUG | [Router] sent to phone\r\n"...)
	}
	d.writeRaw(b)
}

func (d *device) serve() {
	defer close(d.done)
	var deframer meshtastic.Deframer
	buf := make([]byte, 1024)
	var before []byte // what came before the first frame
	for {
		n, err := d.master.Read(buf)
		if err != nil {
			return
		}
		if before != nil || len(d.configIDs) == 0 {
			before = append(before, buf[:n]...)
			d.mu.Lock()
			d.woken = bytes.Contains(before, bytes.Repeat([]byte{0xC3}, 32))
			d.mu.Unlock()
		}
		frames, _ := deframer.Feed(buf[:n])
		if len(frames) > 0 {
			before = nil
		}
		for _, f := range frames {
			var m meshpb.ToRadio
			if proto.Unmarshal(f, &m) != nil {
				continue
			}
			d.handle(&m)
		}
	}
}

func (d *device) handle(m *meshpb.ToRadio) {
	switch v := m.GetPayloadVariant().(type) {
	case *meshpb.ToRadio_WantConfigId:
		d.mu.Lock()
		d.configIDs = append(d.configIDs, v.WantConfigId)
		mode := d.mode
		d.mu.Unlock()
		d.send(
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_MyInfo{MyInfo: &meshpb.MyNodeInfo{MyNodeNum: deviceNode}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Metadata{Metadata: &meshpb.DeviceMetadata{FirmwareVersion: "2.7.15.567b8ea"}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_NodeInfo{NodeInfo: &meshpb.NodeInfo{Num: otherNode}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Channel{Channel: &meshpb.Channel{Index: 0, Role: meshpb.Channel_PRIMARY}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Config{Config: &meshpb.Config{PayloadVariant: &meshpb.Config_Lora{Lora: &meshpb.Config_LoRaConfig{
				UsePreset: true, ModemPreset: meshpb.Config_LoRaConfig_SHORT_FAST, Region: meshpb.Config_LoRaConfig_EU_868, HopLimit: 3, TxEnabled: true}}}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Config{Config: &meshpb.Config{PayloadVariant: &meshpb.Config_Device{Device: &meshpb.Config_DeviceConfig{
				RebroadcastMode: mode}}}}},
			&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_ConfigCompleteId{ConfigCompleteId: v.WantConfigId}},
		)
	case *meshpb.ToRadio_Packet:
		d.mu.Lock()
		d.sent = append(d.sent, v.Packet)
		d.mu.Unlock()
		d.send(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_QueueStatus{QueueStatus: &meshpb.QueueStatus{Free: 15, Maxlen: 16, MeshPacketId: v.Packet.GetId()}}})
	case *meshpb.ToRadio_Heartbeat:
		d.mu.Lock()
		d.heartbeats++
		d.mu.Unlock()
	case *meshpb.ToRadio_Disconnect:
		d.mu.Lock()
		d.disconnect = true
		d.mu.Unlock()
	}
}

// hear is a packet from another node arriving over the air.
func (d *device) hear(port meshpb.PortNum, payload []byte) {
	d.send(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: &meshpb.MeshPacket{
		From: otherNode, To: meshtastic.Broadcast, Id: 4242, RxRssi: -88, RxSnr: 9.5, HopLimit: 0,
		PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{Portnum: port, Payload: payload}},
	}}})
}

func (d *device) state() (configIDs int, sent []*meshpb.MeshPacket, heartbeats int, disconnect, woken bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.configIDs), append([]*meshpb.MeshPacket(nil), d.sent...), d.heartbeats, d.disconnect, d.woken
}

// unplug is the cable pulled: both ends of the terminal go away.
func (d *device) unplug() {
	d.master.Close()
	d.slave.Close()
	<-d.done
}

// lockedBuffer is a log destination safe for the driver's goroutine and
// the test's.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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
// tarm/serial as it would /dev/ttyUSB0, completes the handshake with the
// device behind it through its boot log, sends a Lifeline frame as a
// PRIVATE_APP broadcast with hop limit 0 and reckons its end, receives
// another node's frame and ignores a person's text, keeps the connection
// alive with heartbeats, configures the device again after it reboots,
// and comes back after being unplugged.
func TestDriverThroughPTY(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meshtastic")
	dev := plugDevice(t, path, meshpb.Config_DeviceConfig_ALL)
	logs := &lockedBuffer{}
	d := meshtastic.NewDriver(meshtastic.DriverConfig{Path: path, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Session: meshtastic.Config{Region: "EU868", Preset: "ShortFast", Heartbeat: 300 * time.Millisecond},
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if d.MaxFrame() != meshtastic.MaxPayload {
		t.Fatalf("MaxFrame %d", d.MaxFrame())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			<-done
			stopped = true
		}
	}
	defer stop()

	waitFor(t, "the device ready", func() bool { return d.Status().State == "ready" })
	st := d.Status()
	if st.Driver != "meshtastic" || st.Device != path || st.Firmware != "2.7.15.567b8ea" || st.Warning != "" {
		t.Fatalf("status %+v", st)
	}
	shortFast := lora.Modem{Bandwidth: 250000, SpreadingFactor: 7, CodingRate: 5, Preamble: 16}
	if got, want := d.Airtime(100), shortFast.Airtime(124); got != want {
		t.Errorf("a 100-byte frame takes %v through the device, want %v (124 bytes on air)", got, want)
	}
	if _, _, _, _, woken := dev.state(); !woken {
		t.Error("the driver did not wake the device before its first frame")
	}

	// Send: one packet, as documented, and its end reckoned from the
	// device's acceptance plus ShortFast's airtime.
	sentAt := time.Now()
	if err := d.Send([]byte("hello air")); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(make([]byte, meshtastic.MaxPayload+1)); err == nil || !strings.Contains(err.Error(), "at most 231 bytes") {
		t.Fatalf("an oversize frame: %v", err)
	}
	select {
	case end := <-d.Done():
		air := meshtastic.NewSession(meshtastic.Config{Preset: "ShortFast"}).Airtime(len("hello air"))
		if end.Before(sentAt.Add(air)) || end.After(time.Now()) {
			t.Fatalf("end %v after the send, airtime %v", end.Sub(sentAt), air)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no end of transmission")
	}
	_, sent, _, _, _ := dev.state()
	if len(sent) != 1 {
		t.Fatalf("the device got %d packets", len(sent))
	}
	p := sent[0]
	if p.GetTo() != meshtastic.Broadcast || p.GetHopLimit() != 0 || p.GetWantAck() || p.GetId() == 0 ||
		p.GetDecoded().GetPortnum() != meshpb.PortNum_PRIVATE_APP || string(p.GetDecoded().GetPayload()) != "hello air" {
		t.Fatalf("packet %v", p)
	}

	// Receive: a person's text is not Lifeline's; another kit's frame is.
	dev.hear(meshpb.PortNum_TEXT_MESSAGE_APP, []byte("hi all"))
	dev.hear(meshpb.PortNum_PRIVATE_APP, []byte("hello node"))
	select {
	case r := <-d.Received():
		if string(r.Payload) != "hello node" || r.RSSI != -88 || r.SNR != 9.5 || !r.HasStats {
			t.Fatalf("received %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}

	waitFor(t, "heartbeats", func() bool { _, _, hb, _, _ := dev.state(); return hb >= 2 })
	// The device's log between frames is read past, and logged at debug
	// level; readiness is logged with the firmware.
	if l := logs.String(); !strings.Contains(l, `msg="radio ready"`) || !strings.Contains(l, "firmware=2.7.15.567b8ea") ||
		!strings.Contains(l, `level=DEBUG msg="meshtastic device log"`) || !strings.Contains(l, `line="DEBUG | [Router] sent to phone"`) {
		t.Errorf("the device's log is not in the driver's debug log:\n%s", l)
	}

	// The device reboots: the driver asks for its configuration again and
	// carries on.
	dev.send(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Rebooted{Rebooted: true}})
	waitFor(t, "the handshake again", func() bool { n, _, _, _, _ := dev.state(); return n == 2 })
	waitFor(t, "ready after the reboot", func() bool { st := d.Status(); return st.State == "ready" && st.Reboots == 1 })
	if err := d.Send([]byte("after reboot")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the packet after the reboot", func() bool { _, sent, _, _, _ := dev.state(); return len(sent) == 2 })

	// Unplugged: down, then back when plugged in again.
	dev.unplug()
	waitFor(t, "the link down", func() bool { st := d.Status(); return st.State == "down" && st.LastError != "" })
	dev2 := plugDevice(t, path, meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY)
	waitFor(t, "ready after re-plugging", func() bool { return d.Status().State == "ready" })
	if st := d.Status(); !strings.Contains(st.Warning, "rebroadcast_mode ALL") || st.Reopened < 1 || st.Sent != 2 || st.Received != 1 {
		t.Fatalf("status %+v", st)
	}

	stop()
	waitFor(t, "the goodbye", func() bool { _, _, _, bye, _ := dev2.state(); return bye })
	if d.Status().State != "down" {
		t.Fatalf("state %s after stopping", d.Status().State)
	}
}

// TestDriverDeviceNeverConfigures: a device that never completes the
// handshake fails it at the deadline, and the driver reopens the port and
// asks again.
func TestDriverDeviceNeverConfigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meshtastic")
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	if err := os.Symlink(slave.Name(), path); err != nil {
		t.Fatal(err)
	}
	asks := make(chan uint32, 16)
	go func() {
		var deframer meshtastic.Deframer
		buf := make([]byte, 512)
		for {
			n, err := master.Read(buf)
			if err != nil {
				return
			}
			frames, _ := deframer.Feed(buf[:n])
			for _, f := range frames {
				var m meshpb.ToRadio
				if proto.Unmarshal(f, &m) == nil && m.GetWantConfigId() != 0 {
					asks <- m.GetWantConfigId()
				}
			}
		}
	}()
	d := meshtastic.NewDriver(meshtastic.DriverConfig{Path: path, RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Session: meshtastic.Config{ConfigTimeout: 300 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	first := <-asks
	waitFor(t, "the handshake failed", func() bool {
		st := d.Status()
		return st.Reopened >= 1 && strings.Contains(st.LastError, "did not complete its configuration")
	})
	select {
	case again := <-asks:
		if again == first {
			t.Fatal("the same nonce again")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the driver did not ask again")
	}
	if st := d.Status(); st.State == "ready" {
		t.Fatalf("state %s", st.State)
	}
}
