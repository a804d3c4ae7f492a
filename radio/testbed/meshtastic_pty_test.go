package testbed

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/meshtastic/meshpb"
	"lifeline/radio/serialport"
)

// Simulated Meshtastic devices on the testbed's air, each behind its
// pseudo-terminal, with a host program in the test talking to each through
// tarm/serial (radio/serialport) as a node talks to /dev/ttyUSB0.

// stretch is d, or d times LIFELINE_TEST_SLOWDOWN where everything runs
// slower (emulated ARM): waits stretch, never what is asserted.
func stretch(d time.Duration) time.Duration {
	if f, err := strconv.Atoi(os.Getenv("LIFELINE_TEST_SLOWDOWN")); err == nil && f > 1 {
		return d * time.Duration(f)
	}
	return d
}

// meshHost is a host program on a device's serial port: it keeps every
// FromRadio the device wrote, and all the bytes.
type meshHost struct {
	t    *testing.T
	port *serialport.Port
	mu   sync.Mutex
	got  []*meshpb.FromRadio
	raw  []byte
	stop chan struct{}
	done chan struct{}
}

func openMeshHost(t *testing.T, path string) *meshHost {
	t.Helper()
	port, err := serialport.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := &meshHost{t: t, port: port, stop: make(chan struct{}), done: make(chan struct{})}
	go h.read()
	t.Cleanup(h.close)
	return h
}

func (h *meshHost) read() {
	defer close(h.done)
	var frames serialFrames
	for {
		select {
		case b := <-h.port.Incoming():
			h.mu.Lock()
			h.raw = append(h.raw, b...)
			for _, f := range frames.feed(b) {
				m := &meshpb.FromRadio{}
				if err := proto.Unmarshal(f, m); err == nil {
					h.got = append(h.got, m)
				}
			}
			h.mu.Unlock()
		case <-h.port.Failed():
			return
		case <-h.stop:
			return
		}
	}
}

func (h *meshHost) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
	h.port.Close()
}

// send writes the messages in one write: the device takes them together.
func (h *meshHost) send(ms ...*meshpb.ToRadio) {
	h.t.Helper()
	var out []byte
	for _, m := range ms {
		b, err := proto.Marshal(m)
		if err != nil {
			h.t.Fatal(err)
		}
		out = appendSerialFrame(out, b)
	}
	if _, err := h.port.Write(out); err != nil {
		h.t.Fatal(err)
	}
}

func (h *meshHost) sendPacket(p *meshpb.MeshPacket) {
	h.t.Helper()
	h.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Packet{Packet: p}})
}

// waitFor waits for the first FromRadio that matches, and returns it.
func (h *meshHost) waitFor(what string, pred func(*meshpb.FromRadio) bool) *meshpb.FromRadio {
	h.t.Helper()
	deadline := time.Now().Add(stretch(20 * time.Second))
	for {
		h.mu.Lock()
		for _, m := range h.got {
			if pred(m) {
				h.mu.Unlock()
				return m
			}
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *meshHost) count(pred func(*meshpb.FromRadio) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.got {
		if pred(m) {
			n++
		}
	}
	return n
}

// roundTrip sends a packet the device answers at once (one over the
// largest payload: refused) and waits for the answer: everything the
// device wrote before has reached the host by then.
func (h *meshHost) roundTrip(id uint32) {
	h.t.Helper()
	h.sendPacket(&meshpb.MeshPacket{Id: id, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(string(make([]byte, meshMaxPayload+1)))}})
	h.waitFor("the device's answer", routingAbout(id))
}

// handshake asks for the config and returns the device's node number.
func (h *meshHost) handshake(nonce uint32) uint32 {
	h.t.Helper()
	h.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: nonce}})
	h.waitFor("config_complete_id", func(m *meshpb.FromRadio) bool { return m.GetConfigCompleteId() == nonce })
	return h.waitFor("my_info", func(m *meshpb.FromRadio) bool { return m.GetMyInfo() != nil }).GetMyInfo().MyNodeNum
}

// meshTestbed runs a testbed of devices, one for each set of options.
func meshTestbed(t *testing.T, opts ...MeshtasticOptions) *Testbed {
	t.Helper()
	fws := make([]Firmware, len(opts))
	for i, o := range opts {
		fw, err := MeshtasticDevice(o)
		if err != nil {
			t.Fatal(err)
		}
		fws[i] = fw
	}
	return runTestbed(t, fws)
}

func runTestbed(t *testing.T, fws []Firmware) *Testbed {
	t.Helper()
	if _, _, err := OpenTerminal(); err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	tb, err := NewWith(fws, 13)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tb.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; tb.Close() })
	return tb
}

func packetWithID(id uint32) func(*meshpb.FromRadio) bool {
	return func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == id }
}

// TestMeshtasticHandshakeOverTerminal: the device boots writing its log as
// text (a 0x94 byte in it), answers want_config_id with its config ending
// in the nonce, stays silent at a heartbeat, and after its reset button
// (the terminal staying open) logs again and has forgotten the host: it
// answers a new want_config_id. A device made never to complete its config
// sends the rest and never config_complete_id.
func TestMeshtasticHandshakeOverTerminal(t *testing.T) {
	tb := meshTestbed(t, MeshtasticOptions{NodeSeed: 1}, MeshtasticOptions{NodeSeed: 1, NeverCompleteConfig: true})
	h := openMeshHost(t, tb.Path(0))
	tb.Reset(0) // the host opened the port after the boot: boot again to see the log
	waitUntil(t, "the boot log", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return bytes.Contains(h.raw, []byte("Booted")) && bytes.IndexByte(h.raw, 0x94) >= 0
	})
	node := h.handshake(1234)
	if node != meshNodeNumber(1, 0) {
		t.Fatalf("node %x", node)
	}
	h.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Heartbeat{Heartbeat: &meshpb.Heartbeat{Nonce: 1}}})
	before := h.count(func(*meshpb.FromRadio) bool { return true })
	h.roundTrip(1)
	if after := h.count(func(*meshpb.FromRadio) bool { return true }); after != before+2 { // the refusal's queueStatus and routing error
		t.Fatalf("%d frames after a heartbeat and a refused packet, want 2", after-before)
	}

	rebooted := func(m *meshpb.FromRadio) bool { return m.GetRebooted() }
	before = h.count(rebooted)
	tb.Reset(0)
	waitUntil(t, "the device saying it rebooted", func() bool { return h.count(rebooted) > before })
	h.handshake(5678)
	if h.count(func(m *meshpb.FromRadio) bool { return m.GetMyInfo() != nil }) != 2 {
		t.Fatal("the config was not sent again after the reset")
	}

	hang := openMeshHost(t, tb.Path(1))
	for nonce := uint32(1); nonce <= 2; nonce++ {
		hang.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: nonce}})
		want := int(nonce) * 8
		waitUntil(t, "all eight channels", func() bool {
			return hang.count(func(m *meshpb.FromRadio) bool { return m.GetChannel() != nil }) == want
		})
	}
	if hang.count(func(m *meshpb.FromRadio) bool { return m.GetConfigCompleteId() != 0 }) != 0 {
		t.Fatal("the device that never completes its config completed it")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(stretch(20 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMeshtasticAcrossTheAir: a PRIVATE_APP packet from one host reaches
// the other device's host with the signal it was heard at and its hops.
func TestMeshtasticAcrossTheAir(t *testing.T) {
	o := shortFast(MeshtasticOptions{NodeSeed: 2})
	tb := meshTestbed(t, o, o)
	tb.Link(0, 1, 0)
	a, b := openMeshHost(t, tb.Path(0)), openMeshHost(t, tb.Path(1))
	na := a.handshake(1)
	b.handshake(2)
	a.sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: 0x1001, HopLimit: 0, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("over the air")}})
	qs := a.waitFor("the queue status", func(m *meshpb.FromRadio) bool { return m.GetQueueStatus().GetMeshPacketId() == 0x1001 })
	if qs.GetQueueStatus().Res != 0 {
		t.Fatalf("refused: %v", qs)
	}
	p := b.waitFor("the packet", packetWithID(0x1001)).GetPacket()
	if p.From != na || p.GetDecoded().GetPortnum() != meshpb.PortNum_PRIVATE_APP || string(p.GetDecoded().GetPayload()) != "over the air" ||
		p.RxRssi != -95 || p.RxSnr != 7.5 || p.HopLimit != 0 || p.HopStart != 0 {
		t.Fatalf("received %v", p)
	}
	if sent := tb.Sent(0); len(sent) != 1 || sent[0].Airtime != meshPresets[meshpb.Config_LoRaConfig_SHORT_FAST].modem.Airtime(len(sent[0].Frame)) {
		t.Fatalf("on air %+v", sent)
	}
}

// TestMeshtasticFloodsALine: in a line 0-1-2, a packet sent with hop
// limit 2 reaches 2 through 1 (one hop used), and 2 relays it once more;
// 1 hears that copy and does not deliver it again, 0 never gets its own
// packet back.
func TestMeshtasticFloodsALine(t *testing.T) {
	o := shortFast(MeshtasticOptions{NodeSeed: 3})
	tb := meshTestbed(t, o, o, o)
	tb.Line(0)
	hosts := []*meshHost{openMeshHost(t, tb.Path(0)), openMeshHost(t, tb.Path(1)), openMeshHost(t, tb.Path(2))}
	for i, h := range hosts {
		h.handshake(uint32(i + 1))
	}
	hosts[0].sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: 0x2002, HopLimit: 2, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("down the line")}})
	p := hosts[2].waitFor("the packet at the end of the line", packetWithID(0x2002)).GetPacket()
	if p.HopLimit != 1 || p.HopStart != 2 || string(p.GetDecoded().GetPayload()) != "down the line" {
		t.Fatalf("at 2: %v", p)
	}
	// 0 sends, 1 relays (heard by 0 and 2), 2 relays (heard by 1): four
	// deliveries on the air, and then it is quiet.
	waitUntil(t, "device 2's rebroadcast heard", func() bool { _, delivered, _, _, _ := tb.Stats(); return delivered >= 4 })
	for _, h := range hosts {
		h.roundTrip(9)
	}
	if n := hosts[1].count(packetWithID(0x2002)); n != 1 {
		t.Fatalf("1 delivered the packet %d times", n)
	}
	if n := hosts[0].count(packetWithID(0x2002)); n != 0 {
		t.Fatal("0 got its own packet back")
	}
	if n := len(tb.Sent(2)); n != 1 {
		t.Fatalf("2 sent %d frames", n)
	}
	if r := sentPacket(t, tb.Sent(2)[0]); r.hopLimit != 0 || r.id != 0x2002 {
		t.Fatalf("2 relayed %+v", r)
	}
}

// TestMeshtasticDutyCycleOnAir: with EU_868's 10 % over a shortened
// window, the device refuses the host's packet once the window's budget
// is spent (DUTY_CYCLE_LIMIT, with the packet's id), and the air shows it
// never used more than the budget.
func TestMeshtasticDutyCycleOnAir(t *testing.T) {
	window := 3 * time.Second
	tb := meshTestbed(t, MeshtasticOptions{Preset: "MEDIUM_FAST", DutyCycleWindow: window})
	h := openMeshHost(t, tb.Path(0))
	h.handshake(1)
	payload := private(string(make([]byte, 70))) // 0.27 s at MediumFast: one fits 0.3 s
	two := func(id uint32) *meshpb.ToRadio {
		return &meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Packet{Packet: &meshpb.MeshPacket{Id: id,
			PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: payload}}}}
	}
	h.send(two(1), two(2)) // together: both queued before the first goes
	for id := uint32(1); id <= 2; id++ {
		qs := h.waitFor("queued", func(m *meshpb.FromRadio) bool { return m.GetQueueStatus().GetMeshPacketId() == id })
		if qs.GetQueueStatus().Res != 0 {
			t.Fatalf("packet %d refused: %v", id, qs)
		}
	}
	waitUntil(t, "the first on air", func() bool { return len(tb.Sent(0)) == 1 })
	h.sendPacket(&meshpb.MeshPacket{Id: 3, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: payload}})
	r := h.waitFor("the refusal", routingAbout(3))
	if routingError(t, r) != meshpb.Routing_DUTY_CYCLE_LIMIT {
		t.Fatalf("refused with %v", routingError(t, r))
	}
	waitUntil(t, "the second on air, once the window allowed it", func() bool { return len(tb.Sent(0)) == 2 })
	sent := tb.Sent(0)
	if used := MaxWindowUse(sent, window); used > window/10 {
		t.Fatalf("%v on air within %v: over 10 %%", used, window)
	}
	if gap := sent[1].Start.Sub(sent[0].Start); gap < window-sent[0].Airtime {
		t.Fatalf("the second went %v after the first", gap)
	}
}

// TestMeshtasticIgnoresOtherRadios: a Lifeline board shares the air;
// its RNode-format frames and a Meshtastic packet of another channel do not
// reach the device's host, a packet on its own channel does.
func TestMeshtasticIgnoresOtherRadios(t *testing.T) {
	fw, err := MeshtasticDevice(shortFast(MeshtasticOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	tb := runTestbed(t, []Firmware{fw, LifelineBoard})
	tb.Link(0, 1, 0)
	h := openMeshHost(t, tb.Path(0))
	h.handshake(1)

	mine := &airPacket{to: meshBroadcast, from: 0x7777, id: 3, channelHash: channelHash("ShortFast", []byte{1}), data: private("mine")}
	other := *mine
	other.id, other.channelHash = 2, mine.channelHash^0x55
	otherFrame, _ := other.encode()
	mineFrame, _ := mine.encode()
	// An RNode frame: one header byte (a sequence nibble, no split flag)
	// before Lifeline's own frame; the same bytes with the Meshtastic
	// channel hash where a header would have it, to tempt the parser.
	rnode := append([]byte{0x70, 0x01, 'L', 'F'}, bytes.Repeat([]byte{0xA5}, 40)...)
	rnode[13] = mine.channelHash
	at := time.Now()
	tb.mu.Lock()
	for _, f := range [][]byte{rnode, otherFrame, mineFrame} {
		airtime := meshPresets[meshpb.Config_LoRaConfig_SHORT_FAST].modem.Airtime(len(f))
		tb.air.Transmit(1, at, airtime, f)
		at = at.Add(airtime + time.Millisecond)
	}
	tb.mu.Unlock()

	h.waitFor("the packet on its channel", packetWithID(3))
	if n := h.count(func(m *meshpb.FromRadio) bool { return m.GetPacket() != nil }); n != 1 {
		t.Fatalf("%d packets reached the host, want only the one on its channel", n)
	}
}

// TestMeshtasticFiltersOnTheAir: in a line 0-1-2 whose middle device is
// in CORE_PORTNUMS_ONLY, a text crosses it and a PRIVATE_APP packet does
// not (neither delivered to its host nor relayed); a payload over 233
// bytes is refused with TOO_LARGE and the packet's id.
func TestMeshtasticFiltersOnTheAir(t *testing.T) {
	o := shortFast(MeshtasticOptions{NodeSeed: 4})
	core := o
	core.RebroadcastMode = "CORE_PORTNUMS_ONLY"
	tb := meshTestbed(t, o, core, o)
	tb.Line(0)
	hosts := []*meshHost{openMeshHost(t, tb.Path(0)), openMeshHost(t, tb.Path(1)), openMeshHost(t, tb.Path(2))}
	for i, h := range hosts {
		h.handshake(uint32(i + 1))
	}
	packet := func(id uint32, data *meshpb.Data) *meshpb.ToRadio {
		return &meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Packet{Packet: &meshpb.MeshPacket{To: meshBroadcast, Id: id, HopLimit: 1,
			PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: data}}}}
	}
	text := &meshpb.Data{Portnum: meshpb.PortNum_TEXT_MESSAGE_APP, Payload: []byte("core")}
	hosts[0].send(packet(0x51, private("lifeline")), packet(0x52, text), packet(0x53, private(string(make([]byte, meshMaxPayload+1)))))
	if r := hosts[0].waitFor("the refusal", routingAbout(0x53)); routingError(t, r) != meshpb.Routing_TOO_LARGE {
		t.Fatalf("234 bytes: %v", routingError(t, r))
	}
	hosts[2].waitFor("the text relayed by 1", packetWithID(0x52))
	// 1 heard the PRIVATE_APP packet before the text: had it kept it for
	// relaying, it would still be in its queue or on air.
	tb.mu.Lock()
	d := tb.boards[1].dev.(*meshtasticDevice)
	left := len(d.queue)
	tb.mu.Unlock()
	if left != 0 {
		t.Fatalf("1 holds %d packets to relay", left)
	}
	hosts[1].roundTrip(9)
	hosts[2].roundTrip(9)
	for i, h := range hosts[1:] {
		if h.count(packetWithID(0x51)) != 0 || h.count(packetWithID(0x52)) != 1 {
			t.Fatalf("host %d: PRIVATE_APP %d times, text %d times", i+1, h.count(packetWithID(0x51)), h.count(packetWithID(0x52)))
		}
	}
	if n := len(tb.Sent(1)); n != 1 {
		t.Fatalf("1 sent %d frames, want the text", n)
	}
}
