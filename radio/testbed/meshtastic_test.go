package testbed

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/meshtastic/meshpb"
)

// These tests drive one simulated device as the pure state machine it is:
// the test passes the time and plays the air (a radio that records what
// is sent), so minutes of contention windows and acknowledgement
// timeouts pass in microseconds. meshtastic_pty_test.go runs devices on
// the testbed's air behind real pseudo-terminals.

// airRecorder is a device's radio: it records what the device sends and
// says the channel is busy when told.
type airRecorder struct {
	sent []Transmission
	busy bool
}

func (r *airRecorder) Transmit(now time.Time, airtime time.Duration, frame []byte) {
	r.sent = append(r.sent, Transmission{Start: now, Airtime: airtime, Frame: append([]byte(nil), frame...)})
}
func (r *airRecorder) Busy(time.Time) bool { return r.busy }

// unitDevice is a device, its radio and its clock.
type unitDevice struct {
	t     *testing.T
	d     *meshtasticDevice
	radio *airRecorder
	now   time.Time
	got   []*meshpb.FromRadio // everything the device wrote to its host
	text  []byte
	in    serialFrames
}

func newUnitDevice(t *testing.T, o MeshtasticOptions) *unitDevice {
	t.Helper()
	fw, err := MeshtasticDevice(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unitDevice{t: t, radio: &airRecorder{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	u.d = fw(u.radio).(*meshtasticDevice)
	u.take(u.d.Boot(u.now))
	if rebooted := len(u.got) == 1 && u.got[0].GetRebooted(); rebooted == o.QuietBoot || len(u.text) < 100 {
		t.Fatalf("booting wrote %d frames (rebooted: %v) and %q", len(u.got), rebooted, u.text)
	}
	u.got, u.text = nil, nil
	return u
}

// take reads what the device wrote: frames, and the text around them.
func (u *unitDevice) take(out []byte) {
	u.t.Helper()
	u.text = append(u.text, out...)
	for _, f := range u.in.feed(out) {
		m := &meshpb.FromRadio{}
		if err := proto.Unmarshal(f, m); err != nil {
			u.t.Fatalf("the device wrote a bad FromRadio: %v", err)
		}
		u.got = append(u.got, m)
	}
}

func (u *unitDevice) send(m *meshpb.ToRadio) {
	u.t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		u.t.Fatal(err)
	}
	u.take(u.d.FromHost(u.now, appendSerialFrame(nil, b)))
}

// connect is a host asking for the config, as every client starts.
func (u *unitDevice) connect() {
	u.t.Helper()
	u.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: 77}})
	if u.find(func(m *meshpb.FromRadio) bool { return m.GetConfigCompleteId() == 77 }) == nil {
		u.t.Fatal("no config_complete_id")
	}
	u.got = nil
}

// sendPacket is ToRadio.packet.
func (u *unitDevice) sendPacket(p *meshpb.MeshPacket) {
	u.t.Helper()
	u.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Packet{Packet: p}})
}

// hear is a frame arriving from the air.
func (u *unitDevice) hear(p *airPacket, snr float64) {
	u.t.Helper()
	f, err := p.encode()
	if err != nil {
		u.t.Fatal(err)
	}
	u.take(u.d.Received(u.now, f, -101, snr))
}

// run moves time on by d, in the testbed's steps (tick), ending
// transmissions as the testbed does.
func (u *unitDevice) run(d time.Duration) {
	end := u.now.Add(d)
	for u.now.Before(end) {
		u.now = u.now.Add(min(tick, end.Sub(u.now)))
		if tx := u.d.sending; tx != nil {
			last := u.radio.sent[len(u.radio.sent)-1]
			if ends := last.Start.Add(last.Airtime); !ends.After(u.now) {
				u.take(u.d.TxDone(ends))
			}
		}
		u.take(u.d.Poll(u.now))
	}
}

func (u *unitDevice) find(pred func(*meshpb.FromRadio) bool) *meshpb.FromRadio {
	for _, m := range u.got {
		if pred(m) {
			return m
		}
	}
	return nil
}

func (u *unitDevice) count(pred func(*meshpb.FromRadio) bool) int {
	n := 0
	for _, m := range u.got {
		if pred(m) {
			n++
		}
	}
	return n
}

// routingAbout finds the ROUTING_APP packet the host got about id.
func routingAbout(id uint32) func(*meshpb.FromRadio) bool {
	return func(m *meshpb.FromRadio) bool {
		d := m.GetPacket().GetDecoded()
		return d.GetPortnum() == meshpb.PortNum_ROUTING_APP && d.GetRequestId() == id
	}
}

func routingError(t *testing.T, m *meshpb.FromRadio) meshpb.Routing_Error {
	t.Helper()
	r := &meshpb.Routing{}
	if err := proto.Unmarshal(m.GetPacket().GetDecoded().GetPayload(), r); err != nil {
		t.Fatal(err)
	}
	return r.GetErrorReason()
}

func sentPacket(t *testing.T, tr Transmission) *airPacket {
	t.Helper()
	p, err := parseAirPacket(tr.Frame)
	if err != nil {
		t.Fatalf("the device sent what is not a Meshtastic packet: %v", err)
	}
	return p
}

func private(payload string) *meshpb.Data {
	return &meshpb.Data{Portnum: meshpb.PortNum_PRIVATE_APP, Payload: []byte(payload)}
}

// neighbour is a broadcast from another node on the device's channel.
func (u *unitDevice) neighbour(from, id, hopLimit, hopStart uint32, data *meshpb.Data) *airPacket {
	return &airPacket{to: meshBroadcast, from: from, id: id, hopLimit: hopLimit, hopStart: hopStart, channelHash: u.d.cfg.hash,
		relayNode: byte(from), data: data}
}

// settle is longer than any contention window at ShortFast.
const settle = 10 * time.Second

func shortFast(o MeshtasticOptions) MeshtasticOptions { o.Preset = "SHORT_FAST"; return o }

// TestMeshtasticRelaysWithOneHopLess: a packet heard with hops left is
// delivered with what it was heard with, and rebroadcast once with one
// hop less, the same sender and id, the relay byte its own; one heard
// with hop limit 0 is delivered and not rebroadcast.
func TestMeshtasticRelaysWithOneHopLess(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{}))
	u.connect()
	u.hear(u.neighbour(0x1000, 1, 2, 3, private("two hops left")), 5)
	got := u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 1 })
	if got == nil {
		t.Fatal("not delivered")
	}
	if p := got.GetPacket(); p.From != 0x1000 || p.HopLimit != 2 || p.HopStart != 3 || p.RxSnr != 5 || p.RxRssi != -101 ||
		string(p.GetDecoded().GetPayload()) != "two hops left" {
		t.Fatalf("delivered %v", p)
	}
	u.run(settle)
	if len(u.radio.sent) != 1 {
		t.Fatalf("%d transmissions, want the one rebroadcast", len(u.radio.sent))
	}
	r := sentPacket(t, u.radio.sent[0])
	if r.from != 0x1000 || r.id != 1 || r.hopLimit != 1 || r.hopStart != 3 || r.relayNode != byte(u.d.node) {
		t.Fatalf("rebroadcast %+v", r)
	}

	u.hear(u.neighbour(0x1000, 2, 0, 3, private("last hop")), 5)
	if u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 2 }) == nil {
		t.Fatal("hop limit 0 not delivered")
	}
	u.run(settle)
	if len(u.radio.sent) != 1 {
		t.Fatal("a packet heard with hop limit 0 was rebroadcast")
	}
}

// TestMeshtasticCancelsOnHear: a CLIENT that hears another node relay
// the packet before its own turn does not relay it; a ROUTER does. Heard
// twice, a packet reaches the host once.
func TestMeshtasticCancelsOnHear(t *testing.T) {
	for _, c := range []struct {
		role string
		want int
	}{{"CLIENT", 0}, {"ROUTER", 1}, {"CLIENT_MUTE", 0}} {
		u := newUnitDevice(t, shortFast(MeshtasticOptions{Role: c.role}))
		u.connect()
		u.hear(u.neighbour(0x2000, 5, 3, 3, private("flood")), -15) // far away: a short window
		copy := u.neighbour(0x2000, 5, 2, 3, private("flood"))
		copy.relayNode = 0x77
		u.hear(copy, 9)
		u.run(settle)
		if len(u.radio.sent) != c.want {
			t.Errorf("%s: %d rebroadcasts, want %d", c.role, len(u.radio.sent), c.want)
		}
		if n := u.count(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 5 }); n != 1 {
			t.Errorf("%s: delivered %d times", c.role, n)
		}
	}
}

// TestMeshtasticListensBeforeTalking: while the channel is busy nothing
// is sent; once it is free, the packet goes.
func TestMeshtasticListensBeforeTalking(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{}))
	u.connect()
	u.radio.busy = true
	u.sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: 9, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("wait")}})
	u.run(settle)
	if len(u.radio.sent) != 0 {
		t.Fatal("sent on a busy channel")
	}
	u.radio.busy = false
	u.run(settle)
	if len(u.radio.sent) != 1 || sentPacket(t, u.radio.sent[0]).id != 9 {
		t.Fatalf("sent %d", len(u.radio.sent))
	}
}

// TestMeshtasticQueue: the transmit queue takes 16 packets, each answered
// with a QueueStatus carrying its id and the room left; the 17th is
// refused (res not 0, free 0); when one leaves, the device says there is
// room again (a status with id 0).
func TestMeshtasticQueue(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{}))
	u.connect()
	u.radio.busy = true
	for i := uint32(1); i <= meshTxQueue+1; i++ {
		u.sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: i, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("q")}})
		qs := u.got[len(u.got)-1].GetQueueStatus()
		switch {
		case qs == nil || qs.MeshPacketId != i || qs.Maxlen != meshTxQueue:
			t.Fatalf("packet %d: status %v", i, qs)
		case i <= meshTxQueue && (qs.Res != 0 || qs.Free != meshTxQueue-i):
			t.Fatalf("packet %d: status %v", i, qs)
		case i > meshTxQueue && (qs.Res == 0 || qs.Free != 0):
			t.Fatalf("packet %d over the queue: status %v", i, qs)
		}
	}
	u.got = nil
	u.radio.busy = false
	u.run(time.Second)
	if qs := u.find(func(m *meshpb.FromRadio) bool { return m.GetQueueStatus() != nil }); qs == nil ||
		qs.GetQueueStatus().MeshPacketId != 0 || qs.GetQueueStatus().Free != 1 || qs.GetQueueStatus().Res != 0 {
		t.Fatalf("after the first left: %v", qs)
	}
}

// TestMeshtasticRefusals: a payload over 231 bytes (233 and the 2-byte
// bitfield the firmware adds overflow the frame), a second text within
// 2 s, an encrypted packet from the host, a channel not set up: each is
// answered with a ROUTING_APP error carrying the packet's id, and nothing
// goes on air; nor does a packet for the device itself.
func TestMeshtasticRefusals(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{}))
	u.connect()
	u.radio.busy = true // keep what is accepted in the queue
	text := func(s string) *meshpb.Data {
		return &meshpb.Data{Portnum: meshpb.PortNum_TEXT_MESSAGE_APP, Payload: []byte(s)}
	}
	for _, c := range []struct {
		p    *meshpb.MeshPacket
		want meshpb.Routing_Error
	}{
		{&meshpb.MeshPacket{Id: 1, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(string(make([]byte, 234)))}}, meshpb.Routing_TOO_LARGE},
		{&meshpb.MeshPacket{Id: 8, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(string(make([]byte, 233)))}}, meshpb.Routing_TOO_LARGE},
		{&meshpb.MeshPacket{Id: 9, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(string(make([]byte, 232)))}}, meshpb.Routing_TOO_LARGE},
		{&meshpb.MeshPacket{Id: 2, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(string(make([]byte, 231)))}}, meshpb.Routing_NONE},
		{&meshpb.MeshPacket{Id: 3, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: text("hello")}}, meshpb.Routing_NONE},
		{&meshpb.MeshPacket{Id: 4, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: text("again")}}, meshpb.Routing_RATE_LIMIT_EXCEEDED},
		{&meshpb.MeshPacket{Id: 5, PayloadVariant: &meshpb.MeshPacket_Encrypted{Encrypted: []byte{1, 2, 3}}}, meshpb.Routing_BAD_REQUEST},
		{&meshpb.MeshPacket{Id: 6, Channel: 3, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("x")}}, meshpb.Routing_NO_CHANNEL},
		{&meshpb.MeshPacket{Id: 10, To: u.d.node, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{Portnum: meshpb.PortNum_ADMIN_APP, Payload: []byte{0x08, 0x01}}}}, meshpb.Routing_NONE},
	} {
		u.sendPacket(c.p)
		r := u.find(routingAbout(c.p.Id))
		if c.want == meshpb.Routing_NONE {
			if r != nil {
				t.Fatalf("packet %d refused: %v", c.p.Id, routingError(t, r))
			}
			continue
		}
		if r == nil || routingError(t, r) != c.want {
			t.Fatalf("packet %d: %v, want %v", c.p.Id, r, c.want)
		}
		if r.GetPacket().From != u.d.node {
			t.Fatalf("the error comes from %x", r.GetPacket().From)
		}
	}
	u.now = u.now.Add(2 * time.Second)
	u.sendPacket(&meshpb.MeshPacket{Id: 7, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: text("2 s later")}})
	if u.find(routingAbout(7)) != nil {
		t.Fatal("a text 2 s after the last refused")
	}
	u.radio.busy = false
	u.run(settle)
	ids := map[uint32]bool{}
	for _, tr := range u.radio.sent {
		p := sentPacket(t, tr)
		ids[p.id] = true
		if p.data.Bitfield == nil {
			t.Fatalf("packet %d went without the firmware's bitfield", p.id)
		}
		if p.id == 2 && len(tr.Frame) != meshMaxFrame {
			t.Fatalf("231 bytes of payload took a frame of %d bytes, want %d", len(tr.Frame), meshMaxFrame)
		}
	}
	if len(ids) != 3 || !ids[2] || !ids[3] || !ids[7] {
		t.Fatalf("on air: %v, want 2, 3 and 7", ids)
	}
}

// TestMeshtasticAcknowledgements: a broadcast that wants an ACK is
// acknowledged by a neighbour's rebroadcast (an implicit ACK from the
// device itself); one nobody relays is sent 1+3 times and then reported
// MAX_RETRANSMIT; a direct message to the device that wants an ACK is
// answered with a ROUTING_APP ACK carrying its id.
func TestMeshtasticAcknowledgements(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{}))
	u.connect()
	u.sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: 40, HopLimit: 3, WantAck: true, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("ack me")}})
	u.run(time.Second)
	if len(u.radio.sent) != 1 {
		t.Fatal("not sent")
	}
	relayed := sentPacket(t, u.radio.sent[0])
	relayed.hopLimit--
	relayed.relayNode = 0x99
	u.hear(relayed, 3)
	ack := u.find(routingAbout(40))
	if ack == nil || routingError(t, ack) != meshpb.Routing_NONE {
		t.Fatalf("no implicit ACK: %v", ack)
	}
	u.run(5 * time.Minute)
	if len(u.radio.sent) != 1 {
		t.Fatalf("sent %d times though acknowledged", len(u.radio.sent))
	}

	u.sendPacket(&meshpb.MeshPacket{To: meshBroadcast, Id: 41, HopLimit: 3, WantAck: true, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("alone")}})
	u.run(5 * time.Minute)
	if n := len(u.radio.sent) - 1; n != 1+meshMaxRetransmit {
		t.Fatalf("sent %d times, want %d", n, 1+meshMaxRetransmit)
	}
	nak := u.find(routingAbout(41))
	if nak == nil || routingError(t, nak) != meshpb.Routing_MAX_RETRANSMIT {
		t.Fatalf("no MAX_RETRANSMIT: %v", nak)
	}

	before := len(u.radio.sent)
	dm := &airPacket{to: u.d.node, from: 0x3000, id: 50, hopLimit: 2, hopStart: 3, wantAck: true, channelHash: u.d.cfg.hash, data: private("direct")}
	u.hear(dm, 6)
	if got := u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 50 }); got == nil || got.GetPacket().To != u.d.node {
		t.Fatal("direct message not delivered")
	}
	u.run(settle)
	if len(u.radio.sent) != before+1 {
		t.Fatalf("%d transmissions after the direct message, want its ACK only", len(u.radio.sent)-before)
	}
	a := sentPacket(t, u.radio.sent[before])
	if a.to != 0x3000 || a.from != u.d.node || a.data.Portnum != meshpb.PortNum_ROUTING_APP || a.data.RequestId != 50 {
		t.Fatalf("ACK %+v %v", a, a.data)
	}
}

// TestMeshtasticRebroadcastModes: CORE_PORTNUMS_ONLY ignores PRIVATE_APP
// (neither delivered nor relayed) and keeps text; a packet of another
// channel is never delivered, relayed in mode ALL, not in LOCAL_ONLY.
func TestMeshtasticRebroadcastModes(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{RebroadcastMode: "CORE_PORTNUMS_ONLY"}))
	u.connect()
	u.hear(u.neighbour(0x4000, 1, 3, 3, private("lifeline")), 0)
	u.hear(u.neighbour(0x4000, 2, 3, 3, &meshpb.Data{Portnum: meshpb.PortNum_TEXT_MESSAGE_APP, Payload: []byte("text")}), 0)
	u.run(settle)
	if u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 1 }) != nil {
		t.Fatal("PRIVATE_APP delivered in CORE_PORTNUMS_ONLY")
	}
	if u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket().GetId() == 2 }) == nil {
		t.Fatal("text not delivered in CORE_PORTNUMS_ONLY")
	}
	if len(u.radio.sent) != 1 || sentPacket(t, u.radio.sent[0]).id != 2 {
		t.Fatalf("relayed %d packets, want the text only", len(u.radio.sent))
	}

	for mode, relays := range map[string]int{"ALL": 1, "LOCAL_ONLY": 0} {
		u := newUnitDevice(t, shortFast(MeshtasticOptions{RebroadcastMode: mode}))
		u.connect()
		other := u.neighbour(0x5000, 1, 3, 3, private("other mesh"))
		other.channelHash = 99
		u.hear(other, 0)
		u.run(settle)
		if u.find(func(m *meshpb.FromRadio) bool { return m.GetPacket() != nil }) != nil {
			t.Errorf("%s: another channel's packet delivered", mode)
		}
		if len(u.radio.sent) != relays {
			t.Errorf("%s: relayed %d, want %d", mode, len(u.radio.sent), relays)
		}
	}
}

// TestMeshtasticWithoutHost: what is heard while no host is connected
// waits (up to 30 packets) and reaches the host after its config; a host
// silent for the API timeout is disconnected and the log is text again.
func TestMeshtasticWithoutHost(t *testing.T) {
	u := newUnitDevice(t, shortFast(MeshtasticOptions{APITimeout: time.Minute}))
	for i := uint32(1); i <= meshOffline+5; i++ {
		u.hear(u.neighbour(0x6000, i, 0, 0, private("while away")), 0)
	}
	if len(u.got) != 0 {
		t.Fatalf("%d frames to a host that did not ask", len(u.got))
	}
	u.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: 1}})
	n := u.count(func(m *meshpb.FromRadio) bool { return m.GetPacket() != nil })
	if n != meshOffline {
		t.Fatalf("%d packets kept for the host, want %d", n, meshOffline)
	}
	last := u.got[len(u.got)-1].GetPacket()
	if last.GetId() != meshOffline {
		t.Fatalf("kept up to packet %d: PRIVATE_APP beyond the 30th should be dropped", last.GetId())
	}

	u.got, u.text = nil, nil
	u.run(2 * time.Minute) // no heartbeat
	u.hear(u.neighbour(0x6000, 100, 0, 0, private("nobody listens")), 0)
	if len(u.got) != 0 || len(u.text) == 0 {
		t.Fatalf("after the API timeout: %d frames, %q", len(u.got), u.text)
	}
}

// TestMeshtasticConfig: the config stream says what the device is set to,
// and ends with the nonce; a device made never to finish stops before it.
func TestMeshtasticConfig(t *testing.T) {
	u := newUnitDevice(t, MeshtasticOptions{Region: "EU_868", Preset: "LONG_FAST", HopLimit: 5, RebroadcastMode: "CORE_PORTNUMS_ONLY", NodeSeed: 42})
	u.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: 0xCAFE}})
	if u.got[0].GetMyInfo().GetMyNodeNum() != u.d.node || u.d.node != meshNodeNumber(42, 0) {
		t.Fatalf("first %v, want my_info with node %x", u.got[0], u.d.node)
	}
	if last := u.got[len(u.got)-1]; last.GetConfigCompleteId() != 0xCAFE {
		t.Fatalf("last %v, want config_complete_id", last)
	}
	var lora *meshpb.Config_LoRaConfig
	var dev *meshpb.Config_DeviceConfig
	var primary *meshpb.Channel
	channels := 0
	for _, m := range u.got {
		if l := m.GetConfig().GetLora(); l != nil {
			lora = l
		}
		if d := m.GetConfig().GetDevice(); d != nil {
			dev = d
		}
		if c := m.GetChannel(); c != nil {
			channels++
			if c.Role == meshpb.Channel_PRIMARY {
				primary = c
			}
		}
	}
	if lora == nil || lora.Region != meshpb.Config_LoRaConfig_EU_868 || lora.ModemPreset != meshpb.Config_LoRaConfig_LONG_FAST ||
		!lora.UsePreset || lora.HopLimit != 5 || !lora.TxEnabled || lora.Bandwidth != 250 || lora.SpreadFactor != 11 {
		t.Fatalf("lora %v", lora)
	}
	if dev == nil || dev.Role != meshpb.Config_DeviceConfig_CLIENT || dev.RebroadcastMode != meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY {
		t.Fatalf("device %v", dev)
	}
	if channels != 8 || primary == nil || primary.Index != 0 || primary.Settings.Name != "" || string(primary.Settings.Psk) != "\x01" {
		t.Fatalf("%d channels, primary %v", channels, primary)
	}
	if md := u.find(func(m *meshpb.FromRadio) bool { return m.GetMetadata() != nil }); md == nil || md.GetMetadata().FirmwareVersion[:4] != "2.6." {
		t.Fatalf("metadata %v", md)
	}
	if u.count(func(m *meshpb.FromRadio) bool { return m.GetModuleConfig() != nil }) == 0 {
		t.Fatal("no module config")
	}

	hang := newUnitDevice(t, MeshtasticOptions{NeverCompleteConfig: true})
	hang.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: 3}})
	if hang.find(func(m *meshpb.FromRadio) bool { return m.GetChannel() != nil }) == nil ||
		hang.find(func(m *meshpb.FromRadio) bool { return m.GetConfigCompleteId() != 0 }) != nil {
		t.Fatal("a device that never completes its config completed it")
	}

	for name, want := range map[string]meshpb.Config_LoRaConfig_ModemPreset{
		"meshtastic": meshpb.Config_LoRaConfig_LONG_FAST, "meshtastic:ShortFast": meshpb.Config_LoRaConfig_SHORT_FAST,
		"meshtastic:MEDIUM_SLOW": meshpb.Config_LoRaConfig_MEDIUM_SLOW,
	} {
		fw, err := FirmwareNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		if d := fw(&airRecorder{}).(*meshtasticDevice); d.cfg.preset != want || d.cfg.region != meshpb.Config_LoRaConfig_EU_868 {
			t.Errorf("%s: %v in %v", name, d.cfg.preset, d.cfg.region)
		}
	}
	if _, err := FirmwareNamed("meshtastic:Fastest"); err == nil {
		t.Error("meshtastic:Fastest accepted")
	}
	for _, bad := range []MeshtasticOptions{{Region: "EU868"}, {Preset: "LongFast"}, {HopLimit: 8}, {PSK: []byte{1, 2}}, {Role: "BOSS"}} {
		if _, err := MeshtasticDevice(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestMeshtasticDutyCycleUnit: over the window's budget the host's packet
// is refused with DUTY_CYCLE_LIMIT; what was queued waits for the window
// to allow it, and the budget is never exceeded.
func TestMeshtasticDutyCycleUnit(t *testing.T) {
	window := 10 * time.Second // 1 s of airtime at 10 %
	u := newUnitDevice(t, MeshtasticOptions{Preset: "MEDIUM_FAST", DutyCycleWindow: window})
	u.connect()
	payload := string(make([]byte, 200))
	for id := uint32(1); id <= 2; id++ {
		u.sendPacket(&meshpb.MeshPacket{Id: id, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(payload)}})
	}
	for len(u.radio.sent) == 0 {
		u.run(time.Millisecond)
	}
	// While the first is on air, what is left of it counts already.
	u.sendPacket(&meshpb.MeshPacket{Id: 3, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private(payload)}})
	if r := u.find(routingAbout(3)); r == nil || routingError(t, r) != meshpb.Routing_DUTY_CYCLE_LIMIT {
		t.Fatalf("over the duty cycle: %v", r)
	}
	u.run(time.Second)
	if len(u.radio.sent) != 1 {
		t.Fatalf("%d sent in the first second, want 1 (the second does not fit the budget)", len(u.radio.sent))
	}
	u.run(window + time.Second)
	if len(u.radio.sent) != 2 || sentPacket(t, u.radio.sent[1]).id != 2 {
		t.Fatalf("%d sent (%+v): the queued packet should go once the window allows", len(u.radio.sent), sentPacket(t, u.radio.sent[len(u.radio.sent)-1]))
	}
	if used := MaxWindowUse(u.radio.sent, window); used > window/10 {
		t.Fatalf("%v on air in a window of %v", used, window)
	}
}

// TestMeshtasticTransmitDisabled: with transmit disabled (or no region)
// the device still hears and delivers, relays nothing, and refuses the
// host's packets (QueueStatus res ERRNO_DISABLED); the nodes it heard are
// in the node database it sends with its config.
func TestMeshtasticTransmitDisabled(t *testing.T) {
	for _, o := range []MeshtasticOptions{{TxDisabled: true}, {Region: "UNSET"}} {
		u := newUnitDevice(t, shortFast(o))
		u.connect()
		u.hear(u.neighbour(0x8000, 1, 2, 3, private("heard")), 0)
		u.sendPacket(&meshpb.MeshPacket{Id: 2, PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: private("mine")}})
		u.run(settle)
		if u.find(packetWithID(1)) == nil || len(u.radio.sent) != 0 {
			t.Fatalf("%+v: delivered %v, sent %d", o, u.find(packetWithID(1)) != nil, len(u.radio.sent))
		}
		if qs := u.find(func(m *meshpb.FromRadio) bool { return m.GetQueueStatus().GetMeshPacketId() == 2 }); qs.GetQueueStatus().GetRes() != errnoDisabled {
			t.Fatalf("%+v: %v", o, qs)
		}
		u.connect()
		u.send(&meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: 78}})
		n := u.find(func(m *meshpb.FromRadio) bool { return m.GetNodeInfo().GetNum() == 0x8000 })
		if n == nil || n.GetNodeInfo().GetHopsAway() != 1 {
			t.Fatalf("%+v: the node heard is %v", o, n)
		}
	}
}
