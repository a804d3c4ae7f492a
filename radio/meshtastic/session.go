package meshtastic

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
)

// MaxPayload is the largest Lifeline frame a PRIVATE_APP packet carries.
// A LoRa frame holds 255 bytes; Meshtastic's header takes 16, leaving 239
// for the encrypted Data protobuf (encryption is AES-CTR: no bytes
// added). Data for a payload of n ≥ 128 bytes is the port (3 bytes: tag
// and 256 as a varint), the payload's tag and length (3) and n, plus the
// bitfield the firmware adds to every packet it originates (2): n + 8 ≤
// 239. Meshtastic's DATA_PAYLOAD_LEN of 233 leaves the bitfield out; a 232-
// or 233-byte payload is refused by the firmware as TOO_LARGE.
const MaxPayload = 231

// airHeader is Meshtastic's on-air packet header: destination, sender,
// packet id (4 bytes each), flags, channel hash, next hop, relay node.
const airHeader = 16

// Broadcast is the MeshPacket destination of a packet for every node.
const Broadcast = 0xffffffff

// State is where a Session is.
type State int

const (
	// Configuring: want_config_id is sent; the device is sending its
	// node, config and channels until config_complete_id.
	Configuring State = iota
	// Ready: the configuration is complete; packets flow both ways.
	Ready
	// Failed: the device never completed its configuration. Start again
	// (after a delay) to retry.
	Failed
)

func (s State) String() string {
	return [...]string{"configuring", "ready", "failed"}[s]
}

// EventKind says what an Event is.
type EventKind int

const (
	// EventReady: the handshake completed (again, after a reboot).
	EventReady EventKind = iota + 1
	// EventReceived: a Lifeline frame from another node (Payload, RSSI,
	// SNR).
	EventReceived
	// EventRebooted: the device restarted; the session has started over.
	EventRebooted
	// EventFailed: see Err; the driver reopens the port.
	EventFailed
	// EventTxDone: the packet handed to Transmit is over (At: its end on
	// air, as reckoned; see Session.Transmit).
	EventTxDone
	// EventDeviceError: the device reported that a packet of ours failed
	// (Meaning: "duty-cycle limit", "too large", ...).
	EventDeviceError
	// EventLog: a line of the device's log (Text), from a LogRecord.
	EventLog
	// EventNotice: a notification for the user from the device (Text).
	EventNotice
)

// Event is something a Session reports.
type Event struct {
	Kind     EventKind
	Payload  []byte
	RSSI     int
	SNR      float64
	HasStats bool
	At       time.Time
	Meaning  string
	Text     string
	Err      error
}

// Config configures a Session.
type Config struct {
	// Region and Preset are the node's (lora.Regions, lora.ModemPresets
	// names), to compare the device's setup with; empty: not compared.
	Region, Preset string
	// HopLimit is the MeshPacket hop limit of what the node sends: 0, sent
	// once to the device's neighbours, as Lifeline floods on its own (see
	// docs/RADIOS.md).
	HopLimit uint32
	// ConfigTimeout bounds the handshake: a device that has not sent
	// config_complete_id by then has failed. 30 s if zero: a device sends
	// a frame for each node it knows (up to a few hundred) first.
	ConfigTimeout time.Duration
	// Heartbeat is how long the host may stay silent: the device must
	// hear from a serial client at least every 300 s. A minute if zero.
	Heartbeat time.Duration
	// Random gives the handshake's nonces and the packet ids; crypto/rand
	// if nil.
	Random func() uint32
}

// recentIDs is how many of our packet ids are remembered for answers
// that come late (a routing error after the device retried): the device
// reports a packet's fate within its retries, a few packets later at most.
const recentIDs = 32

// Session speaks the serial API to one device: the handshake, the
// heartbeat, packets both ways, flow control. It does no I/O and reads no
// clock: feed it every FromRadio (Handle) and call Tick when Next says,
// send the ToRadio messages they return, in order.
type Session struct {
	cfg   Config
	state State
	nonce uint32
	began time.Time // the handshake's start
	quiet time.Time // the last message to the device

	node     uint32 // the device's node number (my_info)
	firmware string
	lora     *meshpb.Config_LoRaConfig
	device   *meshpb.Config_DeviceConfig
	warning  string

	flight *flight  // the packet on its way to the air
	recent []uint32 // our latest packet ids, oldest first
	free   int      // free slots in the device's queue; -1 unknown
	fullAt time.Time

	holdUntil time.Time // no packet before (the device said to wait)
	level     int       // errors in a row asking to wait
	lastHold  time.Time
}

// flight is a packet handed to the device, until its end on air.
type flight struct {
	id       uint32
	airtime  time.Duration
	end      time.Time
	accepted bool
}

// NewSession returns a session; Start opens it.
func NewSession(cfg Config) *Session {
	if cfg.ConfigTimeout <= 0 {
		cfg.ConfigTimeout = 30 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Minute
	}
	if cfg.Random == nil {
		cfg.Random = func() uint32 {
			var b [4]byte
			rand.Read(b[:]) // never fails (crypto/rand)
			return binary.LittleEndian.Uint32(b[:])
		}
	}
	return &Session{cfg: cfg, free: -1}
}

// State returns the session's state.
func (s *Session) State() State { return s.state }

// NodeNum is the device's node number, once it said.
func (s *Session) NodeNum() uint32 { return s.node }

// Firmware is the device's firmware version, once it said (metadata).
func (s *Session) Firmware() string { return s.firmware }

// Warning is what is wrong with the device's setup, as what to do; empty
// when nothing is.
func (s *Session) Warning() string { return s.warning }

// Start (re)starts the handshake: it asks for the device's configuration
// with a fresh nonce. What was in flight is forgotten.
func (s *Session) Start(now time.Time) []*meshpb.ToRadio {
	s.nonce = s.nonZero()
	for s.nonce == nonceConfigOnly || s.nonce == nonceNodesOnly {
		s.nonce = s.nonZero()
	}
	s.state, s.began, s.quiet = Configuring, now, now
	s.flight, s.free = nil, -1
	return []*meshpb.ToRadio{{PayloadVariant: &meshpb.ToRadio_WantConfigId{WantConfigId: s.nonce}}}
}

// Two want_config_id values ask the firmware for part of its answer:
// 69420 leaves out the other nodes (firmware pull request #3949), 69421
// sends only them, without the config (pull request #6792). A random
// nonce must be neither.
const nonceConfigOnly, nonceNodesOnly = 69420, 69421

func (s *Session) nonZero() uint32 {
	for {
		if v := s.cfg.Random(); v != 0 && !slices.Contains(s.recent, v) {
			return v
		}
	}
}

// ErrTooLarge is Transmit's error for a payload over MaxPayload.
var ErrTooLarge = fmt.Errorf("meshtastic: a packet carries at most %d bytes", MaxPayload)

// CanTransmit reports whether Transmit would take a packet now: the
// session is ready, no packet of ours is on its way, the device did not
// ask to wait, and its queue has room (or said it had none long enough
// ago to ask again).
func (s *Session) CanTransmit(now time.Time) bool {
	return s.state == Ready && s.flight == nil && !now.Before(s.holdUntil) &&
		(s.free != 0 || !now.Before(s.fullAt.Add(s.fullRetry())))
}

// fullRetry is how long a full queue holds packets back before the next
// one is offered anyway: the device answers every packet with the queue's
// state, but may not say when a slot frees.
func (s *Session) fullRetry() time.Duration {
	return max(2*s.Airtime(MaxPayload), 2*time.Second)
}

// Transmit returns the message that sends payload to every node in range,
// once: a broadcast on the primary channel, PRIVATE_APP, a random id, the
// configured hop limit, no acknowledgement asked (an acknowledged
// broadcast makes the device retransmit until it hears a rebroadcast).
//
// Meshtastic does not report the end of a transmission: the session
// reckons it as the time the device accepted the packet (its QueueStatus
// answer naming the packet's id; the time of Transmit until one comes)
// plus the longest wait for a quiet channel (contentionWait) and the
// packet's airtime (Airtime), and reports it with EventTxDone.
// A device with its own traffic queued ahead, or waiting for a clear
// channel, transmits later than that: the reckoning is a lower bound.
func (s *Session) Transmit(now time.Time, payload []byte) (*meshpb.ToRadio, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: got %d", ErrTooLarge, len(payload))
	}
	if s.state != Ready {
		return nil, fmt.Errorf("meshtastic: cannot transmit while %s", s.state)
	}
	if s.flight != nil {
		return nil, errors.New("meshtastic: a packet is already on its way")
	}
	id := s.nonZero()
	air := s.Airtime(len(payload))
	s.flight = &flight{id: id, airtime: air, end: now.Add(contentionWait(s.Modem()) + air)}
	s.recent = append(s.recent, id)
	if len(s.recent) > recentIDs {
		s.recent = slices.Delete(s.recent, 0, len(s.recent)-recentIDs)
	}
	s.quiet = now
	return &meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Packet{Packet: &meshpb.MeshPacket{
		To:       Broadcast,
		Channel:  0,
		Id:       id,
		HopLimit: s.cfg.HopLimit,
		PayloadVariant: &meshpb.MeshPacket_Decoded{Decoded: &meshpb.Data{
			Portnum: meshpb.PortNum_PRIVATE_APP,
			Payload: payload,
		}},
	}}}, nil
}

// Airtime is how long a packet of n payload bytes occupies the channel
// with the device's modulation (the node's preset until the device said;
// LongFast if neither is known): Meshtastic's 16-byte header, then the
// Data protobuf as the firmware sends it (Transmit's fields and the
// bitfield it adds), by the Semtech formula with a 16-symbol preamble.
func (s *Session) Airtime(n int) time.Duration {
	return s.Modem().Airtime(AirBytes(n))
}

// AirBytes is the LoRa payload of a PRIVATE_APP packet carrying a
// Lifeline frame of n bytes: 24 bytes more than the frame from 128 bytes
// on (23 below).
func AirBytes(n int) int {
	data := 3 + 2 // the port (tag, 256 as a varint); the bitfield (tag, value)
	if n > 0 {
		data += 1 + protoVarintLen(uint64(n)) + n
	}
	return min(airHeader+data, 255)
}

func protoVarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Modem is the device's modulation, as its LoRa config says (the node's
// preset until it did; LongFast if neither is known), with Meshtastic's
// 16-symbol preamble.
func (s *Session) Modem() lora.Modem {
	if s.lora != nil {
		if m, ok := deviceModem(s.lora); ok {
			return m
		}
	}
	if m, ok := lora.ModemPresets[s.cfg.Preset]; ok {
		m.Preamble = preamble
		return m
	}
	m := lora.ModemPresets[lora.DefaultModem]
	m.Preamble = preamble
	return m
}

// Next is when Tick must run next: the handshake's deadline, the next
// heartbeat, the end of the packet in flight, the end of a wait the
// device asked for, or the retry of a full queue.
func (s *Session) Next() time.Time {
	if s.state == Failed {
		return time.Time{}
	}
	next := s.quiet.Add(s.cfg.Heartbeat)
	if s.state == Configuring {
		next = earliest(next, s.began.Add(s.cfg.ConfigTimeout))
	}
	if s.flight != nil {
		next = earliest(next, s.flight.end)
	}
	if !s.holdUntil.IsZero() {
		next = earliest(next, s.holdUntil)
	}
	if s.free == 0 {
		next = earliest(next, s.fullAt.Add(s.fullRetry()))
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Tick does what is due at now: fail a handshake past its deadline, send
// a heartbeat, report the end of the packet in flight.
func (s *Session) Tick(now time.Time) ([]Event, []*meshpb.ToRadio) {
	var events []Event
	var out []*meshpb.ToRadio
	if s.state == Failed {
		return nil, nil
	}
	if s.state == Configuring && !now.Before(s.began.Add(s.cfg.ConfigTimeout)) {
		s.state = Failed
		// Say what else it may be: a board on the wrong driver is the
		// likely mistake.
		return []Event{{Kind: EventFailed, Err: fmt.Errorf("meshtastic: the device did not complete its configuration within %v: an RNode or a Lifeline board needs driver rnode; a Meshtastic device, its serial API on (security.serial_enabled)", s.cfg.ConfigTimeout)}}, nil
	}
	if f := s.flight; f != nil && !now.Before(f.end) {
		events = append(events, Event{Kind: EventTxDone, At: f.end})
		s.flight = nil
	}
	if !s.holdUntil.IsZero() && !now.Before(s.holdUntil) {
		s.holdUntil = time.Time{}
	}
	if !now.Before(s.quiet.Add(s.cfg.Heartbeat)) {
		s.quiet = now
		out = append(out, &meshpb.ToRadio{PayloadVariant: &meshpb.ToRadio_Heartbeat{Heartbeat: &meshpb.Heartbeat{Nonce: s.cfg.Random()}}})
	}
	return events, out
}

// Handle takes one message from the device at now and returns what
// happened and what to send.
func (s *Session) Handle(now time.Time, m *meshpb.FromRadio) ([]Event, []*meshpb.ToRadio) {
	switch v := m.GetPayloadVariant().(type) {
	case *meshpb.FromRadio_Rebooted:
		return s.rebooted(now)
	case *meshpb.FromRadio_MyInfo:
		if s.state == Ready {
			// The configuration stream again, unasked: the device
			// restarted (without saying so, as only the serial console
			// does) and may have lost what we set up.
			return s.rebooted(now)
		}
		s.node = v.MyInfo.GetMyNodeNum()
	case *meshpb.FromRadio_Metadata:
		s.firmware = v.Metadata.GetFirmwareVersion()
	case *meshpb.FromRadio_Config:
		switch c := v.Config.GetPayloadVariant().(type) {
		case *meshpb.Config_Lora:
			s.lora = c.Lora
		case *meshpb.Config_Device:
			s.device = c.Device
		}
		if s.state == Ready {
			s.warning = warnings(s.cfg, s.lora, s.device) // changed by another client
		}
	case *meshpb.FromRadio_ConfigCompleteId:
		if s.state != Configuring || v.ConfigCompleteId != s.nonce {
			return nil, nil // an earlier request's end
		}
		s.state = Ready
		s.warning = warnings(s.cfg, s.lora, s.device)
		return []Event{{Kind: EventReady}}, nil
	case *meshpb.FromRadio_QueueStatus:
		return s.queueStatus(now, v.QueueStatus), nil
	case *meshpb.FromRadio_Packet:
		return s.packet(now, v.Packet), nil
	case *meshpb.FromRadio_LogRecord:
		return []Event{{Kind: EventLog, Text: v.LogRecord.GetMessage()}}, nil
	case *meshpb.FromRadio_ClientNotification:
		return []Event{{Kind: EventNotice, Text: v.ClientNotification.GetMessage()}}, nil
	}
	return nil, nil
}

func (s *Session) rebooted(now time.Time) ([]Event, []*meshpb.ToRadio) {
	events := []Event{{Kind: EventRebooted}}
	if s.flight != nil {
		// Whatever the device held is gone with its restart.
		events = append(events, Event{Kind: EventTxDone, At: now})
	}
	return events, s.Start(now)
}

func (s *Session) queueStatus(now time.Time, q *meshpb.QueueStatus) []Event {
	s.free = int(q.GetFree())
	if s.free == 0 {
		s.fullAt = now
	}
	f := s.flight
	if f == nil || q.GetMeshPacketId() != f.id || f.accepted {
		return nil
	}
	if q.GetRes() != 0 {
		// Refused: it will not be sent, and took no air.
		s.flight = nil
		return []Event{
			{Kind: EventDeviceError, Meaning: "refused by the device's queue"},
			{Kind: EventTxDone, At: now},
		}
	}
	f.accepted, f.end = true, now.Add(contentionWait(s.Modem())+f.airtime)
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// contentionWait is how long a device may wait on a quiet channel before
// it sends a packet of its own: a random number of slots of a contention
// window of 2^3 (Meshtastic's CWmin), each about two symbols and 12 ms of
// the radio's turnaround (28 ms at LongFast, as measured in the firmware's
// pull request #5749). The end of a packet is reckoned after the whole
// window, so that the next is not handed over while this one may still
// wait: reckoned early, the device would queue one behind the other and
// the budget would count both too early. On a busy channel the window
// grows (to 2^8 slots) and the reckoning is early anyway; the device's
// own duty-cycle limit (EU_868: 10 % of an hour) still holds.
func contentionWait(m lora.Modem) time.Duration { return 8 * (2*m.Symbol() + 12*time.Millisecond) }

func (s *Session) packet(now time.Time, p *meshpb.MeshPacket) []Event {
	if f := s.flight; f != nil && p.GetFrom() != s.node {
		// The device heard a packet end just now: its radio was not
		// sending ours while it received (half duplex), and after the
		// channel clears it waits its contention window again. Ours
		// ends no sooner than that; reckoned earlier, the next frame
		// would queue behind it and the budget would count both early.
		f.end = later(f.end, now.Add(contentionWait(s.Modem())+f.airtime))
	}
	d := p.GetDecoded()
	if d == nil {
		return nil // encrypted: a channel whose key the device lacks
	}
	if d.GetPortnum() == meshpb.PortNum_ROUTING_APP && slices.Contains(s.recent, d.GetRequestId()) {
		return s.routing(now, d)
	}
	if s.node != 0 && p.GetFrom() == s.node {
		return nil // our own, echoed
	}
	if d.GetPortnum() != meshpb.PortNum_PRIVATE_APP || len(d.GetPayload()) == 0 {
		return nil
	}
	rssi, snr := int(p.GetRxRssi()), float64(p.GetRxSnr())
	return []Event{{Kind: EventReceived, Payload: d.GetPayload(), RSSI: rssi, SNR: snr, HasStats: rssi != 0 || snr != 0}}
}

// routing reads the device's answer about one of our packets.
func (s *Session) routing(now time.Time, d *meshpb.Data) []Event {
	var r meshpb.Routing
	if err := proto.Unmarshal(d.GetPayload(), &r); err != nil {
		return nil
	}
	e := r.GetErrorReason()
	if e == meshpb.Routing_NONE {
		s.level = 0 // delivered (or heard rebroadcast): the device is sending again
		return nil
	}
	var events []Event
	if f := s.flight; f != nil && f.id == d.GetRequestId() {
		// It failed before its reckoned end: it is not on air.
		s.flight = nil
		events = append(events, Event{Kind: EventTxDone, At: now})
	}
	if wait := backoff(e, s.level); wait > 0 {
		if now.Sub(s.lastHold) > 10*time.Minute {
			s.level = 0
			wait = backoff(e, 0)
		}
		s.holdUntil, s.lastHold = now.Add(wait), now
		s.level++
	}
	return append(events, Event{Kind: EventDeviceError, Meaning: routingMeaning(e)})
}
