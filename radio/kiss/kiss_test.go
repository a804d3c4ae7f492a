package kiss

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestEscapes(t *testing.T) {
	for _, tc := range []struct {
		cmd  byte
		data []byte
		wire []byte
	}{
		{0x00, nil, []byte{FEND, 0x00, FEND}},
		{0x00, []byte{1, 2, 3}, []byte{FEND, 0x00, 1, 2, 3, FEND}},
		{0x00, []byte{FEND}, []byte{FEND, 0x00, FESC, TFEND, FEND}},
		{0x00, []byte{FESC}, []byte{FEND, 0x00, FESC, TFESC, FEND}},
		{0x00, []byte{FESC, FEND}, []byte{FEND, 0x00, FESC, TFESC, FESC, TFEND, FEND}},
		{0x00, []byte{FEND, FEND, 7}, []byte{FEND, 0x00, FESC, TFEND, FESC, TFEND, 7, FEND}},
		// TFEND and TFESC alone are ordinary bytes.
		{0x00, []byte{TFEND, TFESC}, []byte{FEND, 0x00, TFEND, TFESC, FEND}},
		// The command byte is escaped like the data.
		{FEND, []byte{1}, []byte{FEND, FESC, TFEND, 1, FEND}},
		{FESC, nil, []byte{FEND, FESC, TFESC, FEND}},
	} {
		wire := Append(nil, tc.cmd, tc.data)
		if !bytes.Equal(wire, tc.wire) {
			t.Errorf("Append(%#x, % x) = % x, want % x", tc.cmd, tc.data, wire, tc.wire)
		}
		got := NewDeframer(64).Feed(wire)
		if len(got) != 1 || got[0].Command != tc.cmd || !bytes.Equal(got[0].Data, tc.data) {
			t.Errorf("Feed(% x) = %+v", wire, got)
		}
	}
}

func TestDeframerNoise(t *testing.T) {
	d := NewDeframer(8)
	var stream []byte
	stream = append(stream, "boot banner\r\n"...)                     // before any FEND: ignored
	stream = append(stream, FEND, FEND, FEND)                         // empty frames: skipped
	stream = Append(stream, 0x01, []byte{0xAA})                       // good
	stream = append(stream, FEND, 0x00, FESC, 0x42, 0x01, FEND)       // bad escape: dropped
	stream = append(stream, FEND, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, FEND) // 9 bytes > 8: dropped
	stream = append(stream, FEND, 0x00, 0x01, FESC, FEND)             // escape cut by FEND: dropped
	stream = Append(stream, 0x02, []byte{FEND})                       // good, right after
	got := d.Feed(stream)
	if len(got) != 2 || got[0].Command != 0x01 || got[1].Command != 0x02 || !bytes.Equal(got[1].Data, []byte{FEND}) {
		t.Fatalf("frames %+v", got)
	}
	if d.BadEscape != 2 || d.TooLong != 1 {
		t.Fatalf("dropped: bad escape %d, too long %d", d.BadEscape, d.TooLong)
	}
}

// TestDeframerChunks: frames split anywhere across Feed calls come out
// whole and in order, and noise between them comes out as frames of their
// own, never merged into a real one.
func TestDeframerChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var want []Frame
		var stream []byte
		for i := range 1 + r.IntN(6) {
			if i > 0 && r.IntN(3) == 0 { // noise between frames: a frame "A" with data "A"
				stream = append(stream, 0x41, 0x41)
				want = append(want, Frame{Command: 0x41, Data: []byte{0x41}})
			}
			data := make([]byte, r.IntN(40))
			for i := range data {
				data[i] = []byte{FEND, FESC, TFEND, TFESC, byte(r.Uint32())}[r.IntN(5)]
			}
			f := Frame{Command: byte(r.Uint32()), Data: data}
			want = append(want, f)
			stream = Append(stream, f.Command, f.Data)
		}
		d := NewDeframer(64)
		var got []Frame
		for len(stream) > 0 {
			n := 1 + r.IntN(len(stream))
			got = append(got, d.Feed(stream[:n])...)
			stream = stream[n:]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: got %v, want %v", round, got, want)
		}
	}
}

// FuzzDeframer: whatever the bytes, the deframer does not panic, keeps
// its frames within the limit, and every frame it returns survives being
// framed again.
func FuzzDeframer(f *testing.F) {
	f.Add([]byte{})
	f.Add(Append(nil, 0x00, []byte("hello")))
	f.Add(append(Append(nil, 0x06, []byte{FEND, FESC}), 0x41, FESC, FEND))
	f.Add([]byte{FEND, FESC, FEND, FESC, TFEND, FEND})
	f.Fuzz(func(t *testing.T, p []byte) {
		const max = 300
		frames := NewDeframer(max).Feed(p)
		for _, fr := range frames {
			if 1+len(fr.Data) > max {
				t.Fatalf("frame of %d bytes", 1+len(fr.Data))
			}
			again := NewDeframer(max).Feed(Append(nil, fr.Command, fr.Data))
			if len(again) != 1 || again[0].Command != fr.Command || !bytes.Equal(again[0].Data, fr.Data) {
				t.Fatalf("frame %+v does not survive a round trip: %+v", fr, again)
			}
		}
	})
}
