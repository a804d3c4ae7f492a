package meshtastic

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
)

var t0 = time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)

const deviceNode = 0x1234abcd

// counter gives 1, 2, 3, ...: predictable nonces and packet ids.
func counter() func() uint32 {
	var n uint32
	return func() uint32 { n++; return n }
}

func newTestSession(cfg Config) *Session {
	if cfg.Random == nil {
		cfg.Random = counter()
	}
	return NewSession(cfg)
}

// loraConfig is a device set as Lifeline's docs ask: EU_868, LongFast.
func loraConfig() *meshpb.Config_LoRaConfig {
	return &meshpb.Config_LoRaConfig{UsePreset: true, ModemPreset: meshpb.Config_LoRaConfig_LONG_FAST,
		Region: meshpb.Config_LoRaConfig_EU_868, HopLimit: 3, TxEnabled: true}
}

// configStream is what a device sends after want_config_id: its node,
// metadata, config, a channel, then the nonce back.
func configStream(nonce uint32, lc *meshpb.Config_LoRaConfig, dc *meshpb.Config_DeviceConfig) []*meshpb.FromRadio {
	return []*meshpb.FromRadio{
		{PayloadVariant: &meshpb.FromRadio_MyInfo{MyInfo: &meshpb.MyNodeInfo{MyNodeNum: deviceNode}}},
		{PayloadVariant: &meshpb.FromRadio_Metadata{Metadata: &meshpb.DeviceMetadata{FirmwareVersion: "2.7.15.567b8ea"}}},
		{PayloadVariant: &meshpb.FromRadio_Config{Config: &meshpb.Config{PayloadVariant: &meshpb.Config_Lora{Lora: lc}}}},
		{PayloadVariant: &meshpb.FromRadio_Config{Config: &meshpb.Config{PayloadVariant: &meshpb.Config_Device{Device: dc}}}},
		{PayloadVariant: &meshpb.FromRadio_Channel{Channel: &meshpb.Channel{Index: 0, Role: meshpb.Channel_PRIMARY}}},
		{PayloadVariant: &meshpb.FromRadio_ConfigCompleteId{ConfigCompleteId: nonce}},
	}
}

func wantConfigID(t *testing.T, out []*meshpb.ToRadio) uint32 {
	t.Helper()
	if len(out) != 1 || out[0].GetWantConfigId() == 0 {
		t.Fatalf("want a want_config_id, got %v", out)
	}
	return out[0].GetWantConfigId()
}

// feed hands the session each message and gathers the events and output.
func feed(s *Session, now time.Time, msgs ...*meshpb.FromRadio) (events []Event, out []*meshpb.ToRadio) {
	for _, m := range msgs {
		ev, o := s.Handle(now, m)
		events, out = append(events, ev...), append(out, o...)
	}
	return events, out
}

func kinds(events []Event) []EventKind {
	var k []EventKind
	for _, e := range events {
		k = append(k, e.Kind)
	}
	return k
}

func has(events []Event, kind EventKind) bool {
	for _, e := range events {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

// ready returns a session that completed its handshake at t0.
func ready(t *testing.T, cfg Config) *Session {
	t.Helper()
	s := newTestSession(cfg)
	nonce := wantConfigID(t, s.Start(t0))
	events, _ := feed(s, t0, configStream(nonce, loraConfig(), &meshpb.Config_DeviceConfig{})...)
	if !has(events, EventReady) || s.State() != Ready {
		t.Fatalf("not ready: %v, %s", kinds(events), s.State())
	}
	return s
}

func TestHandshake(t *testing.T) {
	s := newTestSession(Config{Region: "EU868", Preset: "LongFast"})
	nonce := wantConfigID(t, s.Start(t0))
	stream := configStream(nonce, loraConfig(), &meshpb.Config_DeviceConfig{})

	// A config_complete_id for another request (an earlier client's) is
	// not ours.
	events, _ := feed(s, t0, &meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_ConfigCompleteId{ConfigCompleteId: nonce + 1}})
	if len(events) != 0 || s.State() != Configuring {
		t.Fatalf("a foreign nonce completed the handshake: %v", kinds(events))
	}
	if _, err := s.Transmit(t0, []byte("x")); err == nil {
		t.Fatal("transmitted while configuring")
	}
	events, _ = feed(s, t0, stream...)
	if !has(events, EventReady) || s.State() != Ready {
		t.Fatalf("events %v, state %s", kinds(events), s.State())
	}
	if s.NodeNum() != deviceNode || s.Firmware() != "2.7.15.567b8ea" || s.Warning() != "" {
		t.Fatalf("node %#x firmware %q warning %q", s.NodeNum(), s.Firmware(), s.Warning())
	}
}

func TestNonceAvoidsSpecialValues(t *testing.T) {
	values := []uint32{0, 69421, 69420, 5}
	s := NewSession(Config{Random: func() uint32 { v := values[0]; values = values[1:]; return v }})
	if nonce := wantConfigID(t, s.Start(t0)); nonce != 5 {
		t.Fatalf("nonce %d", nonce)
	}
}

func TestNeverCompletesFails(t *testing.T) {
	s := newTestSession(Config{ConfigTimeout: 10 * time.Second})
	nonce := wantConfigID(t, s.Start(t0))
	// Half a config stream, no end.
	feed(s, t0, configStream(nonce, loraConfig(), &meshpb.Config_DeviceConfig{})[:3]...)
	if next := s.Next(); !next.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("next tick %v", next.Sub(t0))
	}
	if events, _ := s.Tick(t0.Add(9 * time.Second)); len(events) != 0 {
		t.Fatalf("failed early: %v", kinds(events))
	}
	events, _ := s.Tick(t0.Add(10 * time.Second))
	if len(events) != 1 || events[0].Kind != EventFailed || !strings.Contains(events[0].Err.Error(), "did not complete") || !strings.Contains(events[0].Err.Error(), "driver rnode") {
		t.Fatalf("events %+v", events)
	}
	if s.State() != Failed {
		t.Fatalf("state %s", s.State())
	}
	// Starting again asks anew, with another nonce.
	if again := wantConfigID(t, s.Start(t0.Add(11*time.Second))); again == nonce {
		t.Fatal("the nonce was reused")
	}
}

func TestRebootMidSession(t *testing.T) {
	for name, reboot := range map[string]*meshpb.FromRadio{
		"rebooted": {PayloadVariant: &meshpb.FromRadio_Rebooted{Rebooted: true}},
		// A device that restarted without saying so starts its config
		// stream (my_info first) with nobody asking.
		"unasked my_info": {PayloadVariant: &meshpb.FromRadio_MyInfo{MyInfo: &meshpb.MyNodeInfo{MyNodeNum: deviceNode}}},
	} {
		t.Run(name, func(t *testing.T) {
			s := ready(t, Config{})
			if _, err := s.Transmit(t0, []byte("in flight")); err != nil {
				t.Fatal(err)
			}
			events, out := s.Handle(t0.Add(time.Second), reboot)
			if !has(events, EventRebooted) || !has(events, EventTxDone) || s.State() != Configuring {
				t.Fatalf("events %v, state %s", kinds(events), s.State())
			}
			nonce := wantConfigID(t, out)
			if s.CanTransmit(t0.Add(time.Second)) {
				t.Fatal("may transmit while configuring again")
			}
			events, _ = feed(s, t0.Add(2*time.Second), configStream(nonce, loraConfig(), &meshpb.Config_DeviceConfig{})...)
			if !has(events, EventReady) || !s.CanTransmit(t0.Add(2*time.Second)) {
				t.Fatalf("events %v; can transmit %v", kinds(events), s.CanTransmit(t0.Add(2*time.Second)))
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	s := ready(t, Config{Heartbeat: 60 * time.Second})
	if next := s.Next(); !next.Equal(t0.Add(60 * time.Second)) {
		t.Fatalf("first heartbeat due after %v", next.Sub(t0))
	}
	if _, out := s.Tick(t0.Add(59 * time.Second)); len(out) != 0 {
		t.Fatalf("early heartbeat: %v", out)
	}
	_, out := s.Tick(t0.Add(60 * time.Second))
	if len(out) != 1 || out[0].GetHeartbeat() == nil {
		t.Fatalf("out %v", out)
	}
	// A packet sent counts as hearing from the host: the next heartbeat
	// is a full period after it.
	if _, err := s.Transmit(t0.Add(90*time.Second), []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Tick(t0.Add(100 * time.Second)) // the packet's end
	if _, out := s.Tick(t0.Add(149 * time.Second)); len(out) != 0 {
		t.Fatalf("heartbeat 59 s after a packet: %v", out)
	}
	if _, out := s.Tick(t0.Add(150 * time.Second)); len(out) != 1 {
		t.Fatal("no heartbeat 60 s after a packet")
	}
	// Over a long quiet stretch, ticking when Next says, no gap between
	// messages to the device exceeds the period (and 300 s).
	last, now := t0.Add(150*time.Second), t0.Add(150*time.Second)
	for range 100 {
		now = s.Next()
		if _, out := s.Tick(now); len(out) == 1 {
			if gap := now.Sub(last); gap > 60*time.Second {
				t.Fatalf("a gap of %v", gap)
			}
			last = now
		}
	}
	if now.Sub(t0) < 90*time.Minute {
		t.Fatalf("100 ticks covered only %v", now.Sub(t0))
	}
}

func TestTransmitPacket(t *testing.T) {
	s := ready(t, Config{Preset: "LongFast"})
	payload := bytes.Repeat([]byte{7}, MaxPayload)
	msg, err := s.Transmit(t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	p := msg.GetPacket()
	if p.GetTo() != Broadcast || p.GetChannel() != 0 || p.GetHopLimit() != 0 || p.GetId() == 0 || p.GetWantAck() ||
		p.GetDecoded().GetPortnum() != meshpb.PortNum_PRIVATE_APP || !bytes.Equal(p.GetDecoded().GetPayload(), payload) {
		t.Fatalf("packet %v", p)
	}
	if _, err := s.Transmit(t0, []byte("x")); err == nil {
		t.Fatal("a second packet while the first is on its way")
	}
	if _, err := newTestSession(Config{}).Transmit(t0, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d bytes: %v", MaxPayload+1, err)
	}

	// What goes on air, encoded as the firmware would (with the bitfield),
	// fills a LoRa frame exactly at MaxPayload.
	d := proto.Clone(p.GetDecoded()).(*meshpb.Data)
	d.Bitfield = proto.Uint32(1)
	b, _ := proto.Marshal(d)
	if got := airHeader + len(b); got != 255 || AirBytes(MaxPayload) != 255 {
		t.Fatalf("on air: %d bytes, reckoned %d; want 255", got, AirBytes(MaxPayload))
	}
	for _, n := range []int{1, 50, 127, 128, 200} {
		b, _ := proto.Marshal(&meshpb.Data{Portnum: meshpb.PortNum_PRIVATE_APP, Payload: make([]byte, n), Bitfield: proto.Uint32(0)})
		if AirBytes(n) != airHeader+len(b) {
			t.Errorf("%d bytes: reckoned %d on air, encoded %d", n, AirBytes(n), airHeader+len(b))
		}
	}
}

// TestDoneIsAcceptancePlusAirtime: the end of a packet is reckoned from
// when the device accepted it, after its longest wait for a quiet channel
// (at LongFast 8 slots of two 8.192 ms symbols and 12 ms: 227 ms) and
// its airtime.
func TestDoneIsAcceptancePlusAirtime(t *testing.T) {
	s := ready(t, Config{})
	m := lora.ModemPresets["LongFast"]
	if w := contentionWait(m); w != 8*(2*m.Symbol()+12*time.Millisecond) || w < 220*time.Millisecond || w > 230*time.Millisecond {
		t.Fatalf("contention wait %v", w)
	}
	air := m.Airtime(AirBytes(100)) // the device's modem, 16-symbol preamble
	if s.Airtime(100) != air {
		t.Fatalf("airtime %v, want %v", s.Airtime(100), air)
	}
	air += contentionWait(m)
	msg, _ := s.Transmit(t0, make([]byte, 100))
	id := msg.GetPacket().GetId()
	if !s.Next().Equal(t0.Add(air)) {
		t.Fatalf("end reckoned at %v before the device answers", s.Next().Sub(t0))
	}
	// The device takes it 300 ms later: the end moves with it.
	accepted := t0.Add(300 * time.Millisecond)
	feed(s, accepted, queueStatus(0, 15, id))
	if !s.Next().Equal(accepted.Add(air)) {
		t.Fatalf("end reckoned at %v, want %v", s.Next().Sub(t0), accepted.Add(air).Sub(t0))
	}
	if events, _ := s.Tick(accepted.Add(air - time.Millisecond)); has(events, EventTxDone) {
		t.Fatal("done early")
	}
	events, _ := s.Tick(accepted.Add(air))
	if len(events) != 1 || events[0].Kind != EventTxDone || !events[0].At.Equal(accepted.Add(air)) {
		t.Fatalf("events %+v", events)
	}
	if !s.CanTransmit(accepted.Add(air)) {
		t.Fatal("cannot send the next")
	}
}

func TestAirtimeFollowsDevice(t *testing.T) {
	s := newTestSession(Config{Preset: "LongFast"})
	nonce := wantConfigID(t, s.Start(t0))
	lc := loraConfig()
	lc.ModemPreset = meshpb.Config_LoRaConfig_SHORT_TURBO
	feed(s, t0, configStream(nonce, lc, &meshpb.Config_DeviceConfig{})...)
	want := lora.Modem{Bandwidth: 500000, SpreadingFactor: 7, CodingRate: 5, Preamble: 16}.Airtime(AirBytes(100))
	if s.Airtime(100) != want {
		t.Fatalf("airtime %v, want %v (ShortTurbo)", s.Airtime(100), want)
	}
	if !strings.Contains(s.Warning(), "lora.modem_preset LONG_FAST") {
		t.Fatalf("warning %q", s.Warning())
	}
}

func queueStatus(res int32, free, id uint32) *meshpb.FromRadio {
	return &meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_QueueStatus{QueueStatus: &meshpb.QueueStatus{Res: res, Free: free, Maxlen: 16, MeshPacketId: id}}}
}

func TestQueueFlowControl(t *testing.T) {
	s := ready(t, Config{})
	msg, _ := s.Transmit(t0, []byte("a"))
	id := msg.GetPacket().GetId()
	feed(s, t0, queueStatus(0, 0, id)) // taken, and the queue is now full
	end := s.Next()
	s.Tick(end)
	if s.CanTransmit(end) {
		t.Fatal("may transmit into a full queue")
	}
	// A slot frees (the device says so with its next status).
	feed(s, end.Add(time.Second), queueStatus(0, 3, 0))
	if !s.CanTransmit(end.Add(time.Second)) {
		t.Fatal("cannot transmit with free slots")
	}

	// Full again and silent: after a while the next packet is offered
	// anyway, and the device's answer tells.
	msg, _ = s.Transmit(end.Add(time.Second), []byte("b"))
	feed(s, end.Add(time.Second), queueStatus(0, 0, msg.GetPacket().GetId()))
	retry := end.Add(time.Second).Add(s.fullRetry())
	s.Tick(s.Next())
	if s.CanTransmit(retry.Add(-time.Millisecond)) || !s.CanTransmit(retry) {
		t.Fatal("the full queue's retry is not at its time")
	}

	// A packet the queue refuses ends at once, counted.
	msg, _ = s.Transmit(retry, []byte("c"))
	events, _ := feed(s, retry, queueStatus(1, 0, msg.GetPacket().GetId()))
	if len(events) != 2 || events[0].Meaning != "refused by the device's queue" || events[1].Kind != EventTxDone || !events[1].At.Equal(retry) {
		t.Fatalf("events %+v", events)
	}
}

func routingAnswer(from, requestID uint32, e meshpb.Routing_Error) *meshpb.FromRadio {
	r, _ := proto.Marshal(&meshpb.Routing{Variant: &meshpb.Routing_ErrorReason{ErrorReason: e}})
	return &meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: &meshpb.MeshPacket{
		From: from, To: deviceNode,
		PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{Portnum: meshpb.PortNum_ROUTING_APP, Payload: r, RequestId: requestID}},
	}}}
}

func TestRoutingErrors(t *testing.T) {
	s := ready(t, Config{})
	msg, _ := s.Transmit(t0, []byte("a"))
	id := msg.GetPacket().GetId()
	feed(s, t0, queueStatus(0, 10, id))

	// An answer about someone else's packet is not ours.
	if events, _ := feed(s, t0, routingAnswer(deviceNode, id+1000, meshpb.Routing_DUTY_CYCLE_LIMIT)); len(events) != 0 {
		t.Fatalf("events %v", kinds(events))
	}
	// Duty-cycle limit: counted, the packet ends (not on air), and the
	// next waits a minute.
	at := t0.Add(time.Second)
	events, _ := feed(s, at, routingAnswer(deviceNode, id, meshpb.Routing_DUTY_CYCLE_LIMIT))
	if len(events) != 2 || events[0].Kind != EventTxDone || events[1].Meaning != "duty-cycle limit" {
		t.Fatalf("events %+v", events)
	}
	if s.CanTransmit(at.Add(59*time.Second)) || !s.CanTransmit(at.Add(time.Minute)) {
		t.Fatal("no minute's wait after a duty-cycle limit")
	}
	if next := s.Next(); next.After(at.Add(time.Minute)) {
		t.Fatalf("next tick %v after the wait's end", next.Sub(at))
	}
	s.Tick(at.Add(time.Minute))

	// Again at once: twice the wait.
	at = at.Add(time.Minute)
	msg, _ = s.Transmit(at, []byte("b"))
	feed(s, at, routingAnswer(deviceNode, msg.GetPacket().GetId(), meshpb.Routing_DUTY_CYCLE_LIMIT))
	if s.CanTransmit(at.Add(119*time.Second)) || !s.CanTransmit(at.Add(2*time.Minute)) {
		t.Fatal("the second wait is not two minutes")
	}
	s.Tick(at.Add(2 * time.Minute))

	// Rate limit: seconds, not minutes; and the meanings of the others.
	at = at.Add(2 * time.Minute)
	msg, _ = s.Transmit(at, []byte("c"))
	s.Tick(at.Add(time.Hour)) // the packet's end passes
	at = at.Add(time.Hour)
	events, _ = feed(s, at, routingAnswer(deviceNode, msg.GetPacket().GetId(), meshpb.Routing_RATE_LIMIT_EXCEEDED))
	if len(events) != 1 || events[0].Meaning != "rate limit exceeded" {
		t.Fatalf("events %+v", events)
	}
	if s.CanTransmit(at.Add(4*time.Second)) || !s.CanTransmit(at.Add(5*time.Second)) {
		t.Fatal("no 5 s wait after a rate limit (the earlier errors are an hour old)")
	}
	for e, meaning := range map[meshpb.Routing_Error]string{
		meshpb.Routing_MAX_RETRANSMIT: "max retransmit",
		meshpb.Routing_TOO_LARGE:      "too large",
		meshpb.Routing_NO_CHANNEL:     "no channel",
		meshpb.Routing_Error(99):      "routing error 99",
	} {
		events, _ := feed(s, at, routingAnswer(0x99, msg.GetPacket().GetId(), e))
		if len(events) != 1 || events[0].Meaning != meaning {
			t.Errorf("%v: %+v", e, events)
		}
	}
	// An acknowledgement (error NONE) is no error.
	if events, _ := feed(s, at, routingAnswer(0x99, msg.GetPacket().GetId(), meshpb.Routing_NONE)); len(events) != 0 {
		t.Fatalf("NONE: %+v", events)
	}
}

func dataPacket(from uint32, port meshpb.PortNum, payload []byte) *meshpb.FromRadio {
	return &meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: &meshpb.MeshPacket{
		From: from, To: Broadcast, Id: 77, RxRssi: -97, RxSnr: 6.25,
		PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{Portnum: port, Payload: payload}},
	}}}
}

func TestReceive(t *testing.T) {
	s := ready(t, Config{})
	events, _ := feed(s, t0,
		dataPacket(0x55, meshpb.PortNum_TEXT_MESSAGE_APP, []byte("hello")),     // a person's text: not ours
		dataPacket(deviceNode, meshpb.PortNum_PRIVATE_APP, []byte("echo")),     // our own
		dataPacket(0x55, meshpb.PortNum_PRIVATE_APP, []byte("lifeline frame")), // another kit's
		&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: &meshpb.MeshPacket{From: 0x56, PayloadVariant: &meshpb.MeshPacket_Encrypted{Encrypted: []byte{1, 2}}}}},
	)
	if len(events) != 1 {
		t.Fatalf("events %+v", events)
	}
	e := events[0]
	if e.Kind != EventReceived || string(e.Payload) != "lifeline frame" || e.RSSI != -97 || e.SNR != 6.25 || !e.HasStats {
		t.Fatalf("event %+v", e)
	}
}

func TestWarnings(t *testing.T) {
	for _, c := range []struct {
		name   string
		cfg    Config
		lora   func(*meshpb.Config_LoRaConfig)
		device *meshpb.Config_DeviceConfig
		want   []string // substrings; none: no warning
	}{
		{name: "as documented", cfg: Config{Region: "EU868", Preset: "LongFast"}},
		{name: "custom modem equal to the preset", cfg: Config{Region: "EU868", Preset: "LongFast"},
			lora: func(l *meshpb.Config_LoRaConfig) {
				l.UsePreset, l.Bandwidth, l.SpreadFactor, l.CodingRate = false, 250, 11, 5
			}},
		{name: "region", cfg: Config{Region: "US915", Preset: "LongFast"},
			want: []string{"region is EU_868, the node's US915: meshtastic --set lora.region US"}},
		{name: "region unset", cfg: Config{Region: "EU868"},
			lora: func(l *meshpb.Config_LoRaConfig) { l.Region = meshpb.Config_LoRaConfig_UNSET },
			want: []string{"not set, so it does not transmit: meshtastic --set lora.region EU_868"}},
		{name: "region without equivalent", cfg: Config{Region: "EU868-1"},
			want: []string{"EU868-1 has no Meshtastic equivalent"}},
		{name: "preset", cfg: Config{Preset: "MediumFast"},
			want: []string{"modem is LONG_FAST, the node's MediumFast: meshtastic --set lora.use_preset true --set lora.modem_preset MEDIUM_FAST"}},
		{name: "transmitter off", lora: func(l *meshpb.Config_LoRaConfig) { l.TxEnabled = false },
			want: []string{"lora.tx_enabled true"}},
		{name: "core portnums only", device: &meshpb.Config_DeviceConfig{RebroadcastMode: meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY},
			want: []string{"ignores Lifeline's packets", "device.rebroadcast_mode ALL"}},
		{name: "known only", device: &meshpb.Config_DeviceConfig{RebroadcastMode: meshpb.Config_DeviceConfig_KNOWN_ONLY},
			want: []string{"KNOWN_ONLY", "device.rebroadcast_mode ALL"}},
		{name: "local only is fine", device: &meshpb.Config_DeviceConfig{RebroadcastMode: meshpb.Config_DeviceConfig_LOCAL_ONLY}},
		{name: "two at once", cfg: Config{Region: "US915", Preset: "LongFast"},
			device: &meshpb.Config_DeviceConfig{RebroadcastMode: meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY},
			want:   []string{"lora.region US", "; ", "rebroadcast_mode ALL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lc := loraConfig()
			if c.lora != nil {
				c.lora(lc)
			}
			dc := c.device
			if dc == nil {
				dc = &meshpb.Config_DeviceConfig{}
			}
			s := newTestSession(c.cfg)
			nonce := wantConfigID(t, s.Start(t0))
			feed(s, t0, configStream(nonce, lc, dc)...)
			w := s.Warning()
			if len(c.want) == 0 && w != "" {
				t.Fatalf("warning %q", w)
			}
			for _, sub := range c.want {
				if !strings.Contains(w, sub) {
					t.Errorf("warning %q lacks %q", w, sub)
				}
			}
		})
	}
}

func TestPresetAndRegionNames(t *testing.T) {
	// Every Lifeline preset has a Meshtastic name with the same modem.
	for name, m := range lora.ModemPresets {
		p, ok := Presets[name]
		if !ok {
			t.Errorf("%s has no Meshtastic preset", name)
			continue
		}
		if !sameModulation(presetModems[p], m) {
			t.Errorf("%s: Lifeline %+v, Meshtastic %s %+v", name, m, p, presetModems[p])
		}
	}
	for name := range Regions {
		if _, ok := lora.Regions[name]; !ok {
			t.Errorf("%s is not a Lifeline region", name)
		}
	}
}

// FuzzSessionHandle feeds a ready session any FromRadio bytes the
// deframer could hand it: it must not panic, and whatever it receives is
// a PRIVATE_APP payload of at most what a frame holds.
func FuzzSessionHandle(f *testing.F) {
	for _, m := range append(configStream(1, loraConfig(), &meshpb.Config_DeviceConfig{}),
		dataPacket(0x55, meshpb.PortNum_PRIVATE_APP, []byte("frame")),
		routingAnswer(deviceNode, 2, meshpb.Routing_DUTY_CYCLE_LIMIT),
		queueStatus(0, 0, 2),
		&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Rebooted{Rebooted: true}}) {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m meshpb.FromRadio
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		s := NewSession(Config{Random: counter()})
		nonce := s.Start(t0)[0].GetWantConfigId()
		feed(s, t0, configStream(nonce, loraConfig(), &meshpb.Config_DeviceConfig{})...)
		s.Transmit(t0, []byte("x"))
		events, _ := s.Handle(t0, &m)
		for _, e := range events {
			if e.Kind == EventReceived && (len(e.Payload) == 0 || len(e.Payload) > MaxProtobuf) {
				t.Fatalf("received %d bytes", len(e.Payload))
			}
		}
		s.Tick(s.Next())
	})
}

// TestHeardPacketDelaysEnd: a packet the device hears while ours waits
// means its radio was receiving, not sending ours, and it waits for the
// channel again: the end reckoned moves to no sooner than its contention
// window and our airtime after that; it never moves earlier.
func TestHeardPacketDelaysEnd(t *testing.T) {
	s := ready(t, Config{})
	m := lora.ModemPresets["LongFast"]
	msg, _ := s.Transmit(t0, make([]byte, 100))
	feed(s, t0, queueStatus(0, 15, msg.GetPacket().GetId()))
	first := s.Next()
	heard := t0.Add(time.Second)
	feed(s, heard, dataPacket(0x56, meshpb.PortNum_TEXT_MESSAGE_APP, []byte("hello"))) // any port counts
	want := heard.Add(contentionWait(m) + s.Airtime(100))
	if !s.Next().Equal(want) || !want.After(first) {
		t.Fatalf("end reckoned at %v after hearing a packet, want %v (was %v)", s.Next().Sub(t0), want.Sub(t0), first.Sub(t0))
	}
	// One heard long before the end reckoned does not bring it forward.
	feed(s, t0, dataPacket(0x57, meshpb.PortNum_PRIVATE_APP, []byte("x")))
	if !s.Next().Equal(want) {
		t.Fatalf("end moved to %v", s.Next().Sub(t0))
	}
}
