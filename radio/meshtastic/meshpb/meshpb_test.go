package meshpb

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// The wire bytes of messages the serial API carries, worked out by hand
// from the field numbers in Meshtastic's mesh.proto (ToRadio.want_config_id
// = 3, ToRadio.packet = 1; MeshPacket.to = 2 (fixed32), decoded = 4, id = 6
// (fixed32), hop_limit = 9; Data.portnum = 1, payload = 2), pin that the
// generated code is the API's.
func TestWireBytes(t *testing.T) {
	want := []byte{0x18, 0xb9, 0x60} // field 3, varint 12345
	got, err := proto.Marshal(&ToRadio{PayloadVariant: &ToRadio_WantConfigId{WantConfigId: 12345}})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("want_config_id 12345 = % x, %v; want % x", got, err, want)
	}

	pkt := &ToRadio{PayloadVariant: &ToRadio_Packet{Packet: &MeshPacket{
		To:             0xffffffff,
		Id:             0x01020304,
		HopLimit:       1,
		PayloadVariant: &MeshPacket_Decoded{Decoded: &Data{Portnum: PortNum_PRIVATE_APP, Payload: []byte("hi")}},
	}}}
	want = []byte{
		0x0a, 0x15, // ToRadio.packet, 21 bytes
		0x15, 0xff, 0xff, 0xff, 0xff, // to, fixed32
		0x22, 0x07, 0x08, 0x80, 0x02, 0x12, 0x02, 'h', 'i', // decoded: portnum 256, payload "hi"
		0x35, 0x04, 0x03, 0x02, 0x01, // id, fixed32 little-endian
		0x48, 0x01, // hop_limit 1
	}
	// Field order on the wire is the encoder's choice: compare decoded.
	var back ToRadio
	if err := proto.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, pkt) {
		t.Fatalf("hand-made bytes read as %v, want %v", &back, pkt)
	}
	if d := back.GetPacket().GetDecoded(); d.GetPortnum() != 256 || string(d.GetPayload()) != "hi" {
		t.Fatalf("read back %v", &back)
	}
}
