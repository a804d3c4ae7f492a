package testbed

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
)

// A simulated Meshtastic device (firmware 2.6), written from Meshtastic's
// documentation, never from its firmware's code: the client API
// (meshtastic.org/docs/development/device/client-api), the mesh algorithm
// (docs/overview/mesh-algo), the LoRa and device configuration
// (docs/configuration/radio/lora, .../device), the comments of the
// .proto files (github.com/meshtastic/protobufs), and what Meshtastic's
// developers wrote in the pull requests cited where they are used. Each
// behaviour says where it comes from.
//
// Host side it speaks the serial API: frames of 0x94 0xC3, a big-endian
// 16-bit length (at most 512) and a protobuf, ToRadio from the host,
// FromRadio to it; until a host speaks protobufs the device writes its
// debug log as text. Air side it sends and hears Meshtastic packets (see
// meshtastic_air.go) with managed flooding.
//
// It does not send the traffic a real device adds by itself (NodeInfo
// every 3 hours, telemetry every 30 minutes, position): what is on the
// simulated air is what its host sent and what it relays, so a test or a
// benchmark counts only that. It has no Bluetooth, no admin messages
// (AdminMessage configuration from the host is ignored), no MQTT, no
// store and forward, no encryption (see meshtastic_air.go) and no
// next-hop learning: direct messages are flooded, as 2.6 does until it has
// learned a route.

// MeshtasticOptions set up a simulated Meshtastic device. The zero value
// is a device as it comes out of the box with its region set to EU_868:
// LongFast on the default channel, three hops, role CLIENT, rebroadcast
// mode ALL. Names are those of the .proto enums (and of the apps and the
// Python CLI).
type MeshtasticOptions struct {
	Region          string // lora.region: "EU_868" unless set; "UNSET" transmits nothing
	Preset          string // lora.modem_preset: "LONG_FAST" unless set
	HopLimit        int    // lora.hop_limit, 1..7: what the device's own answers (ACKs) start with; 3 unless set
	Role            string // device.role: "CLIENT" unless set
	RebroadcastMode string // device.rebroadcast_mode: "ALL" unless set
	// Channel is the primary channel's name; empty, the default channel,
	// which goes by the preset's name (channel.proto, ChannelSettings.name).
	Channel string
	// PSK is the primary channel's key; nil is the default key, AQ== (1).
	PSK []byte
	// NodeSeed picks the node numbers: a board's number comes from the
	// seed and its place on the testbed, so it stays the same when the
	// board is plugged back in (a real one derives it from its MAC).
	NodeSeed uint64
	// FirmwareVersion is what metadata reports: "2.6.11.testbed" unless set.
	FirmwareVersion string
	TxDisabled      bool // lora.tx_enabled false: it hears but never transmits
	// OverrideDutyCycle is lora.override_duty_cycle: transmit over the
	// region's limit.
	OverrideDutyCycle bool
	// DutyCycleWindow shortens the region's hour for tests: the same share
	// of a shorter window.
	DutyCycleWindow time.Duration
	// NeverCompleteConfig: the device answers want_config_id with its
	// config but never with config_complete_id, as one that hangs
	// midway, for the host's tests.
	NeverCompleteConfig bool
	// QuietBoot leaves out the FromRadio.rebooted a device writes after
	// its boot log, as a device whose transport does not send it.
	QuietBoot bool
	// APITimeout is how long the device keeps a silent host's API open: 15
	// minutes unless set (a host must send a heartbeat more often: "after
	// 15 minutes of inactivity ... the radio will consider the connection
	// closed and will no longer send message packets", meshtastic/js issue
	// #114; the Python client sends one every 300 s).
	APITimeout time.Duration
}

// The device's limits.
const (
	// meshTxQueue is the transmit queue: "An attempt to send more than 16
	// messages discards some of them" (firmware issue #1819), and devices
	// report maxlen 16 in QueueStatus.
	meshTxQueue = 16
	// meshOffline holds received packets for a host that is not connected:
	// "The radio will store a small amount of packets (around 30) in its
	// memory for when it's not connected to a client app. If it's full, it
	// will replace the oldest packets with newly incoming text messages
	// only" (Meshtastic's overview, quoted in firmware issue #3637).
	meshOffline = 30
	meshNodeDB  = 100 // nodes remembered; the oldest heard is forgotten first
	meshRecent  = 256 // (sender, id) pairs remembered against duplicates
	// meshMaxRetransmit: "A reliable packet ... will be resent a maximum
	// of three times" (mesh-algo, layer 2).
	meshMaxRetransmit = 3
	// meshTextInterval: text messages from the host, at most one per 2 s
	// (Meshtastic's airtime fairness rate limit, Routing.Error
	// RATE_LIMIT_EXCEEDED). Firmware 2.7 brought it; the simulated 2.6
	// keeps it, so that hosts are tested against it.
	meshTextInterval = 2 * time.Second
	meshAPITimeout   = 15 * time.Minute
	meshUtilWindow   = time.Minute // channel utilisation is measured over this
	meshUtilRecords  = 4096
)

// QueueStatus.res carries the firmware's ErrorCode, not a Routing.Error
// (as Meshtastic's clients decode it: the Android app names 32 to 35
// ERRNO_UNKNOWN, ERRNO_NO_INTERFACES, ERRNO_DISABLED, ERRNO_SHOULD_RELEASE).
// Firmware pull request #1820, which added QueueStatus, lists a refused
// packet as "res != 0, free = 0" for a full queue.
const (
	errnoOK       = 0
	errnoUnknown  = 32 // the packet was not queued
	errnoDisabled = 34 // the radio does not transmit (tx disabled, region unset)
)

// meshConfig is the options resolved to the .proto's values.
type meshConfig struct {
	region   meshpb.Config_LoRaConfig_RegionCode
	preset   meshpb.Config_LoRaConfig_ModemPreset
	role     meshpb.Config_DeviceConfig_Role
	mode     meshpb.Config_DeviceConfig_RebroadcastMode
	hopLimit uint32
	modem    lora.Modem
	channel  string // the primary channel's name as hashed
	psk      []byte
	hash     byte
	duty     float64 // the region's share of the window; 1 or more: no limit
	window   time.Duration
	version  string
	timeout  time.Duration
}

func resolveMeshtastic(o MeshtasticOptions) (meshConfig, error) {
	c := meshConfig{hopLimit: 3, version: "2.6.11.testbed", timeout: meshAPITimeout, window: time.Hour, psk: []byte{1}}
	enum := func(what, name, def string, values map[string]int32) (int32, error) {
		if name == "" {
			name = def
		}
		v, ok := values[name]
		if !ok {
			return 0, fmt.Errorf("testbed: meshtastic %s %q: not one of Meshtastic's", what, name)
		}
		return v, nil
	}
	v, err := enum("region", o.Region, "EU_868", meshpb.Config_LoRaConfig_RegionCode_value)
	if err != nil {
		return c, err
	}
	c.region = meshpb.Config_LoRaConfig_RegionCode(v)
	if v, err = enum("modem preset", o.Preset, "LONG_FAST", meshpb.Config_LoRaConfig_ModemPreset_value); err != nil {
		return c, err
	}
	c.preset = meshpb.Config_LoRaConfig_ModemPreset(v)
	p, ok := meshPresets[c.preset]
	if !ok {
		return c, fmt.Errorf("testbed: meshtastic modem preset %s is not simulated", c.preset)
	}
	c.modem = p.modem
	if v, err = enum("role", o.Role, "CLIENT", meshpb.Config_DeviceConfig_Role_value); err != nil {
		return c, err
	}
	c.role = meshpb.Config_DeviceConfig_Role(v)
	if v, err = enum("rebroadcast mode", o.RebroadcastMode, "ALL", meshpb.Config_DeviceConfig_RebroadcastMode_value); err != nil {
		return c, err
	}
	c.mode = meshpb.Config_DeviceConfig_RebroadcastMode(v)
	if o.HopLimit != 0 {
		if o.HopLimit < 1 || o.HopLimit > meshMaxHops {
			return c, fmt.Errorf("testbed: meshtastic hop limit %d: want 1 to %d", o.HopLimit, meshMaxHops)
		}
		c.hopLimit = uint32(o.HopLimit)
	}
	if o.PSK != nil {
		if n := len(o.PSK); n != 0 && n != 1 && n != 16 && n != 32 {
			return c, fmt.Errorf("testbed: meshtastic channel key of %d bytes: want 0, 1, 16 or 32", n)
		}
		c.psk = o.PSK
	}
	c.channel = o.Channel
	if c.channel == "" {
		c.channel = p.name
	}
	c.hash = channelHash(c.channel, c.psk)
	c.duty = 1
	if f, ok := meshRegionDutyCycle[c.region]; ok && !o.OverrideDutyCycle {
		c.duty = f
	}
	if o.DutyCycleWindow > 0 {
		c.window = o.DutyCycleWindow
	}
	if o.FirmwareVersion != "" {
		c.version = o.FirmwareVersion
	}
	if o.APITimeout > 0 {
		c.timeout = o.APITimeout
	}
	return c, nil
}

// MeshtasticDevice is the firmware of a simulated Meshtastic device with
// these options, or an error saying which option is wrong.
func MeshtasticDevice(o MeshtasticOptions) (Firmware, error) {
	c, err := resolveMeshtastic(o)
	if err != nil {
		return nil, err
	}
	return func(r Radio) Device {
		index := 0
		if ch, ok := r.(*chip); ok {
			index = ch.b.index
		}
		node := meshNodeNumber(o.NodeSeed, index)
		d := &meshtasticDevice{
			cfg:     c,
			opts:    o,
			radio:   r,
			node:    node,
			rnd:     rand.New(rand.NewPCG(uint64(node), uint64(time.Now().UnixNano()))),
			recent:  map[[2]uint32]bool{},
			nodes:   map[uint32]*meshNode{},
			pending: map[uint32]*meshAckWait{},
		}
		if c.duty < 1 {
			d.duty = &lora.DutyCycle{Window: c.window, Fraction: c.duty}
		}
		return d
	}, nil
}

// meshNodeNumber is a board's node number: never 0, never the broadcast
// address, the same for the same seed and place.
func meshNodeNumber(seed uint64, index int) uint32 {
	x := seed + uint64(index+1)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	n := uint32(x ^ x>>31)
	if n < 4 || n == meshBroadcast {
		n += 4
	}
	return n
}

// meshtasticDevice is one simulated device. Every method runs under the
// testbed's lock.
type meshtasticDevice struct {
	cfg   meshConfig
	opts  MeshtasticOptions
	radio Radio
	node  uint32
	rnd   *rand.Rand
	duty  *lora.DutyCycle // nil: no limit

	// host side
	in         serialFrames
	out        []byte // what the device writes, returned by the call that made it
	protobufs  bool   // the host speaks protobufs: no more text log
	configured bool   // config sent: packets go to the host
	lastHost   time.Time
	fromID     uint32
	offline    []*meshpb.MeshPacket // for a host that is not connected
	lastText   time.Time
	lastID     uint32

	// air side
	queue   []*meshTx
	seq     uint64
	sending *meshTx
	full    bool // the queue was full: say when it is not
	recent  map[[2]uint32]bool
	order   [][2]uint32 // recent, oldest first
	nodes   map[uint32]*meshNode
	pending map[uint32]*meshAckWait // own packets that want an ACK, by id
	use     []meshUse               // airtime heard and sent, for channel utilisation
}

type meshNode struct {
	lastHeard time.Time
	snr       float64
	hops      uint32 // hops away when last heard
}

type meshUse struct {
	end time.Time
	dur time.Duration
}

func (d *meshtasticDevice) Listening() bool { return true }

// Boot writes what a device prints on its serial port when it starts: its
// debug log, as text, and a frame saying it rebooted; then nothing until a
// host asks. Meshtastic's log lines may hold any UTF-8 (the em
// dash below has a 0x94 byte, the first byte of a frame's start); a host
// must find frames by their whole header.
func (d *meshtasticDevice) Boot(now time.Time) []byte {
	d.lastHost = now
	d.logf("INFO  | ??:??:?? 0 \r\n\r\n//\\ E S H T /\\ S T / C\r\n\r\n")
	d.logf("INFO  | ??:??:?? 0 Booted — firmware %s, node !%08x, region %s, preset %s", d.cfg.version, d.node, d.cfg.region, d.cfg.preset)
	d.logf("DEBUG | ??:??:?? 0 [RadioIf] Slot time %d ms, preamble %d symbols", slotTime(d.cfg.modem).Milliseconds(), d.cfg.modem.Preamble)
	if !d.opts.QuietBoot {
		// "Sent to tell clients the radio has just rebooted ... currently
		// just used for the serial console" (FromRadio.rebooted): a host
		// that had the device configured starts over.
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Rebooted{Rebooted: true}})
	}
	return d.flush()
}

// logf writes a line of debug log while the host has not asked for
// protobufs; after that the log stays on the device, as with a real one
// unless debug_log_api_enabled is set.
func (d *meshtasticDevice) logf(format string, args ...any) {
	if d.protobufs {
		return
	}
	d.out = fmt.Appendf(d.out, format, args...)
	d.out = append(d.out, '\r', '\n')
}

func (d *meshtasticDevice) flush() []byte {
	out := d.out
	d.out = nil
	return out
}

// write frames a FromRadio for the host.
func (d *meshtasticDevice) write(m *meshpb.FromRadio) {
	d.fromID++
	m.Id = d.fromID
	b, err := proto.Marshal(m)
	if err != nil || len(b) > serialMaxFrame {
		return // not reached: every message the device makes fits
	}
	d.out = appendSerialFrame(d.out, b)
}

// FromHost takes the host's bytes: ToRadio frames, and whatever lies
// between them, which the device ignores.
func (d *meshtasticDevice) FromHost(now time.Time, p []byte) []byte {
	d.lastHost = now
	for _, f := range d.in.feed(p) {
		m := &meshpb.ToRadio{}
		if err := proto.Unmarshal(f, m); err != nil {
			d.logf("WARN  | [SerialAPI] Bad ToRadio of %d bytes: %v", len(f), err)
			continue
		}
		d.protobufs = true
		switch v := m.PayloadVariant.(type) {
		case *meshpb.ToRadio_WantConfigId:
			d.sendConfig(now, v.WantConfigId)
		case *meshpb.ToRadio_Packet:
			d.fromHost(now, v.Packet)
		case *meshpb.ToRadio_Heartbeat:
			// Kept alive, with no answer: firmware 2.6 answers nothing
			// (an answer came with 2.7, firmware pull request #7506).
		case *meshpb.ToRadio_Disconnect:
			d.protobufs, d.configured = false, false
		}
	}
	return d.flush()
}

// sendConfig answers want_config_id: "This will cause the device to send
// its node DB and radio config via the fromradio endpoint. After sending
// the full DB, the radio will send a want_config_id to indicate it is
// done" (client API), the nonce coming back as config_complete_id; then
// the packets it kept while no host was connected.
func (d *meshtasticDevice) sendConfig(now time.Time, nonce uint32) {
	c := d.cfg
	d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_MyInfo{MyInfo: &meshpb.MyNodeInfo{
		MyNodeNum: d.node, PioEnv: "lifeline-testbed", NodedbCount: uint32(len(d.nodes) + 1)}}})
	d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Metadata{Metadata: &meshpb.DeviceMetadata{
		FirmwareVersion: c.version, DeviceStateVersion: 23, HasBluetooth: true, HasPKC: true,
		Role: c.role, HwModel: meshpb.HardwareModel_PORTDUINO}}})
	d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_NodeInfo{NodeInfo: &meshpb.NodeInfo{
		Num: d.node, User: d.user(), LastHeard: uint32(now.Unix())}}})
	for num, n := range d.nodes {
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_NodeInfo{NodeInfo: &meshpb.NodeInfo{
			Num: num, Snr: float32(n.snr), LastHeard: uint32(n.lastHeard.Unix()), HopsAway: &n.hops}}})
	}
	configs := []*meshpb.Config{
		{PayloadVariant: &meshpb.Config_Device{Device: &meshpb.Config_DeviceConfig{
			Role: c.role, RebroadcastMode: c.mode, NodeInfoBroadcastSecs: 10800}}},
		{PayloadVariant: &meshpb.Config_Position{Position: &meshpb.Config_PositionConfig{}}},
		{PayloadVariant: &meshpb.Config_Power{Power: &meshpb.Config_PowerConfig{}}},
		{PayloadVariant: &meshpb.Config_Lora{Lora: &meshpb.Config_LoRaConfig{
			UsePreset: true, ModemPreset: c.preset, Region: c.region, HopLimit: c.hopLimit,
			TxEnabled: !d.opts.TxDisabled, OverrideDutyCycle: d.opts.OverrideDutyCycle,
			Bandwidth: uint32(c.modem.Bandwidth / 1000), SpreadFactor: uint32(c.modem.SpreadingFactor),
			CodingRate: uint32(c.modem.CodingRate)}}},
		{PayloadVariant: &meshpb.Config_Bluetooth{Bluetooth: &meshpb.Config_BluetoothConfig{Enabled: true}}},
		{PayloadVariant: &meshpb.Config_Security{Security: &meshpb.Config_SecurityConfig{SerialEnabled: true}}},
	}
	for _, cf := range configs {
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Config{Config: cf}})
	}
	modules := []*meshpb.ModuleConfig{
		{PayloadVariant: &meshpb.ModuleConfig_Mqtt{Mqtt: &meshpb.ModuleConfig_MQTTConfig{}}},
		{PayloadVariant: &meshpb.ModuleConfig_Serial{Serial: &meshpb.ModuleConfig_SerialConfig{}}},
		{PayloadVariant: &meshpb.ModuleConfig_Telemetry{Telemetry: &meshpb.ModuleConfig_TelemetryConfig{DeviceUpdateInterval: 1800}}},
		{PayloadVariant: &meshpb.ModuleConfig_RangeTest{RangeTest: &meshpb.ModuleConfig_RangeTestConfig{}}},
	}
	for _, m := range modules {
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_ModuleConfig{ModuleConfig: m}})
	}
	// Eight channel slots, the primary first ("One packet is sent for each
	// channel", FromRadio.channel). The default channel has an empty name.
	name := d.opts.Channel
	for i := int32(0); i < 8; i++ {
		ch := &meshpb.Channel{Index: i, Role: meshpb.Channel_DISABLED, Settings: &meshpb.ChannelSettings{}}
		if i == 0 {
			ch.Role = meshpb.Channel_PRIMARY
			ch.Settings = &meshpb.ChannelSettings{Name: name, Psk: c.psk}
		}
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Channel{Channel: ch}})
	}
	if d.opts.NeverCompleteConfig {
		return
	}
	d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_ConfigCompleteId{ConfigCompleteId: nonce}})
	d.configured = true
	for _, p := range d.offline {
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: p}})
	}
	d.offline = nil
}

func (d *meshtasticDevice) user() *meshpb.User {
	return &meshpb.User{Id: fmt.Sprintf("!%08x", d.node), LongName: fmt.Sprintf("Meshtastic %04x", d.node&0xffff),
		ShortName: fmt.Sprintf("%04x", d.node&0xffff), HwModel: meshpb.HardwareModel_PORTDUINO, Role: d.cfg.role}
}

// toHost gives the host a packet: at once if it is connected, else kept
// for when it is, within the offline queue's bound.
func (d *meshtasticDevice) toHost(p *meshpb.MeshPacket) {
	if d.configured {
		d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_Packet{Packet: p}})
		return
	}
	if len(d.offline) >= meshOffline {
		if p.GetDecoded().GetPortnum() != meshpb.PortNum_TEXT_MESSAGE_APP {
			return
		}
		d.offline = d.offline[1:]
	}
	d.offline = append(d.offline, p)
}

// queueStatus tells the host how its packet id fared and how much room
// the transmit queue has (firmware pull request #1820: "Upon reception of
// every MeshPacket ... combines status of the attempt to queue the message
// with queue status", and a status with id 0 when a full queue frees up).
func (d *meshtasticDevice) queueStatus(res int32, id uint32) {
	if !d.configured {
		return
	}
	d.write(&meshpb.FromRadio{PayloadVariant: &meshpb.FromRadio_QueueStatus{QueueStatus: &meshpb.QueueStatus{
		Res: res, Free: uint32(meshTxQueue - len(d.queue)), Maxlen: meshTxQueue, MeshPacketId: id}}})
}

// routing gives the host a ROUTING_APP packet about its packet
// requestID: an error, or with reason NONE an acknowledgement. The answer
// carries the request's id in Data.request_id ("Indicates the original
// message ID that this message is reporting failure on", mesh.proto).
func (d *meshtasticDevice) routing(now time.Time, from, requestID uint32, reason meshpb.Routing_Error) {
	d.toHost(&meshpb.MeshPacket{From: from, To: d.node, Id: d.newID(), RxTime: uint32(now.Unix()),
		Priority: meshpb.MeshPacket_ACK,
		PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{Portnum: meshpb.PortNum_ROUTING_APP,
			Payload: routingBody(reason), RequestId: requestID}}})
}

// routingBody is a Routing message with an error reason (NONE: an
// acknowledgement).
func routingBody(reason meshpb.Routing_Error) []byte {
	b, _ := proto.Marshal(&meshpb.Routing{Variant: &meshpb.Routing_ErrorReason{ErrorReason: reason}})
	return b
}

// newID is a fresh packet id: random at boot, then counting, so that a
// rebooted device does not reuse the ids its neighbours remember.
func (d *meshtasticDevice) newID() uint32 {
	if d.lastID == 0 {
		d.lastID = d.rnd.Uint32()
	}
	d.lastID++
	if d.lastID == 0 {
		d.lastID++
	}
	return d.lastID
}

// The serial API's framing (client API, "Streaming version"): START1
// 0x94, START2 0xC3, the protobuf's length as a big-endian 16-bit number,
// the protobuf. "The receiver will validate length and if >512 it will
// assume the packet is corrupted and return to looking for START1. While
// looking for START1 any other characters are printed as debug output."
const (
	serialStart1   = 0x94
	serialStart2   = 0xC3
	serialMaxFrame = 512
)

func appendSerialFrame(out, msg []byte) []byte {
	out = append(out, serialStart1, serialStart2, 0, 0)
	binary.BigEndian.PutUint16(out[len(out)-2:], uint16(len(msg)))
	return append(out, msg...)
}

// serialFrames finds frames in a byte stream. It holds at most one
// incomplete frame (516 bytes): everything before a frame's start is
// dropped as it comes.
type serialFrames struct {
	buf []byte
}

// feed takes the next bytes of the stream and returns the frames they
// complete, each a copy.
func (s *serialFrames) feed(p []byte) [][]byte {
	s.buf = append(s.buf, p...)
	var frames [][]byte
	for {
		i := 0
		for i < len(s.buf) && s.buf[i] != serialStart1 {
			i++
		}
		s.buf = s.buf[i:]
		if len(s.buf) < 2 {
			break
		}
		if s.buf[1] != serialStart2 {
			s.buf = s.buf[1:]
			continue
		}
		if len(s.buf) < 4 {
			break
		}
		n := int(binary.BigEndian.Uint16(s.buf[2:]))
		if n > serialMaxFrame {
			s.buf = s.buf[1:] // corrupted: look for START1 again
			continue
		}
		if len(s.buf) < 4+n {
			break
		}
		frames = append(frames, append([]byte(nil), s.buf[4:4+n]...))
		s.buf = s.buf[4+n:]
	}
	s.buf = append([]byte(nil), s.buf...) // let go of what was consumed
	return frames
}
