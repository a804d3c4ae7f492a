package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/lora"
	"lifeline/radio/meshtastic/meshpb"
)

// What a Meshtastic device puts on air, as Meshtastic's documentation
// describes it ("Mesh Broadcast Algorithm", meshtastic.org/docs/overview/
// mesh-algo, layer 1; "A Meshtastic Packet Over the Air",
// meshtastic.org/docs/overview): a 16-byte header sent as raw bytes, then
// the packet's Data protobuf.
//
//	0x00  4  destination node number, little-endian (0xFFFFFFFF: broadcast)
//	0x04  4  sender node number, little-endian
//	0x08  4  packet id, little-endian, unique per sender
//	0x0C  1  flags: hop limit (bits 0-2), want ack (bit 3), via MQTT (bit 4),
//	         hop start, the original hop limit (bits 5-7)
//	0x0D  1  channel hash: a hint of which channel (and key) the packet is on
//	0x0E  1  next hop: last byte of the relay that should forward it (0: any)
//	0x0F  1  relay node: last byte of the node that sent this copy
//	0x10  …  the Data protobuf, at most 239 bytes (a LoRa frame is at most 255)
//
// A real device encrypts the Data with the channel's key (AES-CTR, the
// sender and packet id as the nonce). On the simulated air nobody listens
// who should not, and what is tested is the flooding, the airtime and the
// serial API above it, so the simulation sends the Data in the clear: the
// airtime is the same, AES-CTR keeping the length.
const (
	meshHeaderLen = 16
	meshMaxFrame  = 255 // the LoRa radio's largest frame
	// meshMaxPayload is Constants.DATA_PAYLOAD_LEN in mesh.proto: the
	// most application bytes one packet carries.
	meshMaxPayload = 233
	meshBroadcast  = 0xFFFFFFFF

	flagHopLimit   = 0x07
	flagWantAck    = 0x08
	flagViaMQTT    = 0x10
	flagHopStart   = 0xE0
	hopStartShift  = 5
	meshMaxHops    = 7 // three bits: "This can't be greater than 7" (LoRa config, Max Hops)
	meshPreambleSy = 16
)

// airPacket is one Meshtastic packet on air: the header's fields and the
// decoded Data.
type airPacket struct {
	to, from, id       uint32
	hopLimit, hopStart uint32
	wantAck, viaMQTT   bool
	channelHash        byte
	nextHop, relayNode byte
	data               *meshpb.Data
}

// errNotMeshtastic is a frame a Meshtastic radio would not take for one of
// its packets.
var errNotMeshtastic = errors.New("not a Meshtastic packet")

// encode is the packet as it goes on air.
func (p *airPacket) encode() ([]byte, error) {
	body, err := proto.Marshal(p.data)
	if err != nil {
		return nil, fmt.Errorf("meshtastic: %w", err)
	}
	if meshHeaderLen+len(body) > meshMaxFrame {
		return nil, fmt.Errorf("meshtastic: packet of %d bytes: the radio sends at most %d", meshHeaderLen+len(body), meshMaxFrame)
	}
	f := make([]byte, meshHeaderLen, meshHeaderLen+len(body))
	binary.LittleEndian.PutUint32(f[0:], p.to)
	binary.LittleEndian.PutUint32(f[4:], p.from)
	binary.LittleEndian.PutUint32(f[8:], p.id)
	flags := byte(p.hopLimit&flagHopLimit) | byte(p.hopStart&7)<<hopStartShift
	if p.wantAck {
		flags |= flagWantAck
	}
	if p.viaMQTT {
		flags |= flagViaMQTT
	}
	f[12] = flags
	f[13] = p.channelHash
	f[14] = p.nextHop
	f[15] = p.relayNode
	return append(f, body...), nil
}

// parseAirPacket reads a frame heard on air. The simulated air is shared
// with boards that are not Meshtastic devices (RNodes, Lifeline's own):
// a real Meshtastic radio never hears those at all (its sync word, 0x2B,
// is not theirs), so the parser is strict where a real device need not
// be, and everything that is not clearly a Meshtastic packet is an error:
// a sender or id of 0, a sender of the broadcast address, a hop limit above
// its hop start (firmware since 2.3 fills hop start), and a Data that does
// not decode, carries fields Data does not have, or names no known port.
func parseAirPacket(f []byte) (*airPacket, error) {
	if len(f) < meshHeaderLen || len(f) > meshMaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", errNotMeshtastic, len(f))
	}
	p := &airPacket{
		to:          binary.LittleEndian.Uint32(f[0:]),
		from:        binary.LittleEndian.Uint32(f[4:]),
		id:          binary.LittleEndian.Uint32(f[8:]),
		hopLimit:    uint32(f[12] & flagHopLimit),
		wantAck:     f[12]&flagWantAck != 0,
		viaMQTT:     f[12]&flagViaMQTT != 0,
		hopStart:    uint32(f[12]&flagHopStart) >> hopStartShift,
		channelHash: f[13],
		nextHop:     f[14],
		relayNode:   f[15],
	}
	switch {
	case p.from == 0 || p.from == meshBroadcast || p.id == 0 || p.to == 0:
		return nil, fmt.Errorf("%w: addresses", errNotMeshtastic)
	case p.hopLimit > p.hopStart:
		return nil, fmt.Errorf("%w: hop limit %d over its start %d", errNotMeshtastic, p.hopLimit, p.hopStart)
	}
	d := &meshpb.Data{}
	if err := proto.Unmarshal(f[meshHeaderLen:], d); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotMeshtastic, err)
	}
	if len(d.ProtoReflect().GetUnknown()) > 0 {
		return nil, fmt.Errorf("%w: unknown fields", errNotMeshtastic)
	}
	if _, known := meshpb.PortNum_name[int32(d.Portnum)]; !known || d.Portnum == meshpb.PortNum_UNKNOWN_APP {
		return nil, fmt.Errorf("%w: port %d", errNotMeshtastic, d.Portnum)
	}
	p.data = d
	return p, nil
}

// channelHash is the header's channel byte: the XOR of the channel name's
// bytes with the XOR of its key's. The docs give one value to check it by:
// "The default LongFast channel with default psk will hash to channel = 8"
// (meshtastic.org/docs/overview), and so it does (see the tests). A
// one-byte key is shorthand (channel.proto, ChannelSettings.psk): 0 no
// key, 1 the default key, 2..10 the default key with 1..9 added to its
// last byte.
func channelHash(name string, psk []byte) byte {
	if len(psk) == 1 {
		psk = expandPSK(psk[0])
	}
	var h byte
	for i := 0; i < len(name); i++ {
		h ^= name[i]
	}
	for _, b := range psk {
		h ^= b
	}
	return h
}

// defaultPSK is the "default" channel key, published in channel.proto.
var defaultPSK = [16]byte{0xd4, 0xf1, 0xbb, 0x3a, 0x20, 0x29, 0x07, 0x59, 0xf0, 0xbc, 0xff, 0xab, 0xcf, 0x4e, 0x69, 0x01}

func expandPSK(b byte) []byte {
	if b == 0 {
		return nil
	}
	k := defaultPSK
	k[15] += b - 1
	return k[:]
}

// meshPreset is a Meshtastic modem preset: its name as the apps show it
// (and as the default channel is named) and its modulation, from the
// presets table of meshtastic.org/docs/overview/radio-settings. The
// preamble is 16 symbols ("We use a preamble length of 16", mesh-algo,
// layer 0).
type meshPreset struct {
	name  string
	modem lora.Modem
}

var meshPresets = map[meshpb.Config_LoRaConfig_ModemPreset]meshPreset{
	meshpb.Config_LoRaConfig_SHORT_TURBO:   {"ShortTurbo", lora.Modem{Bandwidth: 500000, SpreadingFactor: 7, CodingRate: 5, Preamble: meshPreambleSy}},
	meshpb.Config_LoRaConfig_SHORT_FAST:    {"ShortFast", lora.ModemPresets["ShortFast"]},
	meshpb.Config_LoRaConfig_SHORT_SLOW:    {"ShortSlow", lora.ModemPresets["ShortSlow"]},
	meshpb.Config_LoRaConfig_MEDIUM_FAST:   {"MediumFast", lora.ModemPresets["MediumFast"]},
	meshpb.Config_LoRaConfig_MEDIUM_SLOW:   {"MediumSlow", lora.ModemPresets["MediumSlow"]},
	meshpb.Config_LoRaConfig_LONG_TURBO:    {"LongTurbo", lora.Modem{Bandwidth: 500000, SpreadingFactor: 11, CodingRate: 8, Preamble: meshPreambleSy}},
	meshpb.Config_LoRaConfig_LONG_FAST:     {"LongFast", lora.ModemPresets["LongFast"]},
	meshpb.Config_LoRaConfig_LONG_MODERATE: {"LongModerate", lora.ModemPresets["LongModerate"]},
	meshpb.Config_LoRaConfig_LONG_SLOW:     {"LongSlow", lora.ModemPresets["LongSlow"]},
}

// meshRegionDutyCycle is the share of any hour a device in the region may
// transmit, from the regions table of meshtastic.org/docs/configuration/
// radio/lora ("EU_433 and EU_868 have to adhere to an hourly duty cycle
// limitation of 10%, calculated every minute on a rolling 1-hour basis.
// Your device will stop transmitting if you reach it, until it is allowed
// again"). Regions not listed have no limit (100 %).
var meshRegionDutyCycle = map[meshpb.Config_LoRaConfig_RegionCode]float64{
	meshpb.Config_LoRaConfig_EU_433: 0.10,
	meshpb.Config_LoRaConfig_EU_868: 0.10,
	meshpb.Config_LoRaConfig_UA_433: 0.10,
	meshpb.Config_LoRaConfig_TH:     0.10,
}

// The contention window, as documented for layer 1 and managed flooding
// (mesh-algo): before transmitting a node waits a random number of slots
// from a contention window of 2^CW slots; for its own packets CW grows
// with the channel utilisation, for a rebroadcast with the SNR it heard
// the packet at, so that far nodes (low SNR) flood first and near ones,
// hearing them, cancel. The slot is the time to sense the channel: about
// 28 ms on LongFast as measured by Meshtastic's developers (firmware pull
// request #5749: CAD of a fixed number of symbols and the radio's
// turnaround), here two symbols and 12 ms. CWmax 8 is the value in the
// discussion of pull request #4469 ("the absolute maximum delay on
// LongFast before rebroadcasting is 2^8 * slotTimeMsec"); SNR above 10 dB
// counts as 10 ("SNR_MAX to 10dB", #5749), below -20 dB as -20.
const (
	cwMin     = 3
	cwMax     = 8
	snrMin    = -20.0
	snrMax    = 10.0
	slotFixed = 12 * time.Millisecond
)

func slotTime(m lora.Modem) time.Duration { return 2*m.Symbol() + slotFixed }

// cwForSNR is the contention window's exponent for a rebroadcast of a
// packet heard at snr.
func cwForSNR(snr float64) int {
	snr = math.Max(snrMin, math.Min(snrMax, snr))
	return cwMin + int((snr-snrMin)/(snrMax-snrMin)*(cwMax-cwMin))
}

// cwForUtilisation is the exponent for a device's own packet when the
// channel was busy for the fraction util of the last minute.
func cwForUtilisation(util float64) int {
	util = math.Max(0, math.Min(1, util))
	return cwMin + int(util*(cwMax-cwMin))
}

// corePort reports the ports a device in CORE_PORTNUMS_ONLY keeps: "Only
// rebroadcasts packets with standard portnums: NodeInfo, Text, Position,
// Telemetry, and Routing" (meshtastic.org/docs/configuration/radio/device).
func corePort(p meshpb.PortNum) bool {
	switch p {
	case meshpb.PortNum_NODEINFO_APP, meshpb.PortNum_TEXT_MESSAGE_APP, meshpb.PortNum_POSITION_APP,
		meshpb.PortNum_TELEMETRY_APP, meshpb.PortNum_ROUTING_APP:
		return true
	}
	return false
}
