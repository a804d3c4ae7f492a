package testbed

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/meshtastic/meshpb"
)

// TestMeshtasticChannelHash: the default channel with the default key
// hashes to 8, the one value Meshtastic's docs give ("The default
// LongFast channel with default psk will hash to channel = 8").
func TestMeshtasticChannelHash(t *testing.T) {
	if h := channelHash("LongFast", []byte{1}); h != 8 {
		t.Fatalf("LongFast with the default key hashes to %d, want 8", h)
	}
	if channelHash("LongFast", []byte{1}) == channelHash("LongFast", []byte{2}) {
		t.Fatal("simple1 hashes as the default key")
	}
	c, err := resolveMeshtastic(MeshtasticOptions{})
	if err != nil || c.hash != 8 || c.channel != "LongFast" {
		t.Fatalf("the default device's channel: %q hash %d, %v", c.channel, c.hash, err)
	}
}

// TestMeshtasticAirFormat pins the 16-byte header's layout: little-endian
// addresses and id, the flags byte, the channel hash, next hop and relay.
func TestMeshtasticAirFormat(t *testing.T) {
	p := &airPacket{to: meshBroadcast, from: 0x11223344, id: 0xA1B2C3D4, hopLimit: 2, hopStart: 3, wantAck: true,
		channelHash: 8, nextHop: 0, relayNode: 0x44, data: &meshpb.Data{Portnum: meshpb.PortNum_PRIVATE_APP, Payload: []byte("hi")}}
	f, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	head := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x44, 0x33, 0x22, 0x11, 0xD4, 0xC3, 0xB2, 0xA1, 0x02 | 0x08 | 3<<5, 8, 0, 0x44}
	if !bytes.Equal(f[:16], head) {
		t.Fatalf("header % x, want % x", f[:16], head)
	}
	body, _ := proto.Marshal(p.data)
	if !bytes.Equal(f[16:], body) {
		t.Fatalf("body % x, want the Data % x", f[16:], body)
	}
	q, err := parseAirPacket(f)
	if err != nil {
		t.Fatal(err)
	}
	if q.to != p.to || q.from != p.from || q.id != p.id || q.hopLimit != 2 || q.hopStart != 3 || !q.wantAck ||
		q.channelHash != 8 || q.relayNode != 0x44 || string(q.data.Payload) != "hi" {
		t.Fatalf("parsed %+v", q)
	}

	// The largest packet: 233 bytes on PRIVATE_APP fill a 255-byte frame.
	p.data.Payload = make([]byte, meshMaxPayload)
	if f, err := p.encode(); err != nil || len(f) != meshMaxFrame {
		t.Fatalf("233 bytes of payload: a frame of %d bytes, %v", len(f), err)
	}
	p.data.Payload = make([]byte, meshMaxPayload+1)
	if _, err := p.encode(); err == nil {
		t.Fatal("234 bytes of payload encoded")
	}
}

// TestMeshtasticRejectsOtherFrames: frames of other radios on the shared
// air are not taken for Meshtastic packets.
func TestMeshtasticRejectsOtherFrames(t *testing.T) {
	good := &airPacket{to: meshBroadcast, from: 7, id: 9, channelHash: 8, data: &meshpb.Data{Portnum: meshpb.PortNum_TEXT_MESSAGE_APP, Payload: []byte("x")}}
	f, _ := good.encode()
	for name, frame := range map[string][]byte{
		"short":                  f[:15],
		"an RNode header byte":   append([]byte{0x50}, f...),
		"hop limit over start":   append(append(append([]byte(nil), f[:12]...), 0x03), f[13:]...),
		"sender 0":               append(append([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}, f[8:16]...), f[16:]...),
		"unknown field in Data":  append(append([]byte(nil), f...), 0x58, 0x01), // field 11, varint
		"not a protobuf":         append(append([]byte(nil), f[:16]...), 0xFF, 0xFF, 0xFF),
		"lifeline text in clear": []byte("LIFELINE frame from another board, with its own bytes"),
	} {
		if _, err := parseAirPacket(frame); !errors.Is(err, errNotMeshtastic) {
			t.Errorf("%s: %v, want errNotMeshtastic", name, err)
		}
	}
	if _, err := parseAirPacket(f); err != nil {
		t.Fatal(err)
	}
}

// TestSerialFrames: frames are found among debug text, split across
// reads, past a false start (0x94 in the text, a length over 512).
func TestSerialFrames(t *testing.T) {
	a := appendSerialFrame(nil, []byte("first"))
	b := appendSerialFrame(nil, []byte("second"))
	stream := []byte("INFO | booting — ok\r\n")     // the em dash holds 0x94
	stream = append(stream, 0x94, 0xC3, 0x02, 0x01) // a length of 513: corrupt
	stream = append(stream, a...)
	stream = append(stream, "DEBUG | between\r\n"...)
	stream = append(stream, b...)
	for split := range len(stream) {
		var s serialFrames
		got := append(s.feed(stream[:split]), s.feed(stream[split:])...)
		if len(got) != 2 || string(got[0]) != "first" || string(got[1]) != "second" {
			t.Fatalf("split at %d: %q", split, got)
		}
		if len(s.buf) != 0 {
			t.Fatalf("split at %d: %d bytes left over", split, len(s.buf))
		}
	}
}

func FuzzMeshtasticAirPacket(f *testing.F) {
	p := &airPacket{to: meshBroadcast, from: 0x0badcafe, id: 1, hopLimit: 1, hopStart: 3, channelHash: 8, relayNode: 0xfe,
		data: &meshpb.Data{Portnum: meshpb.PortNum_PRIVATE_APP, Payload: []byte("lifeline")}}
	frame, _ := p.encode()
	f.Add(frame)
	p.data = &meshpb.Data{Portnum: meshpb.PortNum_ROUTING_APP, Payload: routingBody(meshpb.Routing_NONE), RequestId: 5}
	frame, _ = p.encode()
	f.Add(frame)
	f.Add([]byte{0x50, 'L', 'I', 'F', 'E'})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := parseAirPacket(frame)
		if err != nil {
			return
		}
		again, err := p.encode()
		if err != nil {
			t.Fatalf("a packet parsed from %d bytes does not encode: %v", len(frame), err)
		}
		q, err := parseAirPacket(again)
		if err != nil || q.from != p.from || q.id != p.id || q.hopLimit != p.hopLimit || !proto.Equal(q.data, p.data) {
			t.Fatalf("round trip: %+v then %+v, %v", p, q, err)
		}
	})
}

func FuzzSerialFrames(f *testing.F) {
	f.Add(appendSerialFrame([]byte("log — line\r\n"), []byte("frame")), 3)
	f.Add([]byte{0x94, 0xC3, 0xFF, 0xFF, 0x94, 0xC3, 0, 1, 'x'}, 5)
	f.Fuzz(func(t *testing.T, stream []byte, split int) {
		var whole serialFrames
		want := whole.feed(stream)
		if split < 0 || split > len(stream) {
			split = len(stream) / 2
		}
		var parts serialFrames
		got := append(parts.feed(stream[:split]), parts.feed(stream[split:])...)
		if len(got) != len(want) {
			t.Fatalf("%d frames whole, %d split at %d", len(want), len(got), split)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || len(got[i]) > serialMaxFrame {
				t.Fatalf("frame %d: %q whole, %q split", i, want[i], got[i])
			}
		}
		if len(parts.buf) > 4+serialMaxFrame {
			t.Fatalf("%d bytes held", len(parts.buf))
		}
	})
}
