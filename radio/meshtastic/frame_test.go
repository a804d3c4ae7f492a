package meshtastic

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func frame(t testing.TB, pb []byte) []byte {
	t.Helper()
	f, err := AppendFrame(nil, pb)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// feedAll feeds b in chunks of the given sizes (cycled), and gathers what
// comes out.
func feedAll(d *Deframer, b []byte, chunks ...int) (frames [][]byte, text []string) {
	if len(chunks) == 0 {
		chunks = []int{len(b) + 1}
	}
	for k := 0; len(b) > 0; k++ {
		n := max(1, min(chunks[k%len(chunks)], len(b)))
		f, l := d.Feed(b[:n])
		frames, text = append(frames, f...), append(text, l...)
		b = b[n:]
	}
	return frames, text
}

func TestDeframeTextBetweenFrames(t *testing.T) {
	var in []byte
	in = append(in, "INFO  | 00:00:01 boot\r\n"...)
	in = append(in, frame(t, []byte{1, 2, 3})...)
	in = append(in, "DEBUG | radio ok\n"...)
	in = append(in, frame(t, []byte("second"))...)
	in = append(in, "tail without newline"...)
	for _, chunks := range [][]int{nil, {1}, {2, 3}, {7}} {
		var d Deframer
		frames, text := feedAll(&d, in, chunks...)
		if len(frames) != 2 || !bytes.Equal(frames[0], []byte{1, 2, 3}) || string(frames[1]) != "second" {
			t.Errorf("chunks %v: frames %q", chunks, frames)
		}
		if !slices.Equal(text, []string{"INFO  | 00:00:01 boot", "DEBUG | radio ok"}) {
			t.Errorf("chunks %v: text %q", chunks, text)
		}
		// The unterminated line waits for its end.
		_, more := d.Feed([]byte("\n"))
		if !slices.Equal(more, []string{"tail without newline"}) {
			t.Errorf("chunks %v: last line %q", chunks, more)
		}
	}
}

func TestDeframe0x94InLog(t *testing.T) {
	// 0x94 alone, twice in a row, and before a frame's real start.
	in := []byte("temp \x94 ok \x94\x94 x\n")
	in = append(in, 0x94)
	in = append(in, frame(t, []byte("pb"))...)
	var d Deframer
	frames, text := feedAll(&d, in, 1)
	if len(frames) != 1 || string(frames[0]) != "pb" {
		t.Fatalf("frames %q", frames)
	}
	if len(text) != 1 || text[0] != "temp \x94 ok \x94\x94 x" {
		t.Fatalf("text %q", text)
	}
	_, rest := d.Feed([]byte("\n"))
	if !slices.Equal(rest, []string{"\x94"}) {
		t.Fatalf("the 0x94 before the frame is text: %q", rest)
	}
}

func TestDeframeOversizeResyncs(t *testing.T) {
	// 0x94 0xC3 followed by a length of 513: not a frame. The frame right
	// after it, even one whose start overlaps the bad length's bytes, is
	// still read.
	in := []byte{0x94, 0xC3, 0x02, 0x01}
	in = append(in, frame(t, []byte("good"))...)
	// A bad length whose own bytes are the next frame's start: 0x94 0xC3
	// 0x94 0xC3 0x00 0x02 "ok" reads as length 0x94C3, then "ok".
	in = append(in, 0x94, 0xC3)
	in = append(in, frame(t, []byte("ok"))...)
	// A frame header claiming 0xFFFF, then text.
	in = append(in, 0x94, 0xC3, 0xFF, 0xFF, 'z', '\n')
	for _, chunks := range [][]int{nil, {1}, {3}} {
		var d Deframer
		frames, text := feedAll(&d, in, chunks...)
		if len(frames) != 2 || string(frames[0]) != "good" || string(frames[1]) != "ok" {
			t.Errorf("chunks %v: frames %q", chunks, frames)
		}
		if d.Resyncs() != 3 {
			t.Errorf("chunks %v: %d resyncs, want 3", chunks, d.Resyncs())
		}
		joined := strings.Join(text, "|")
		if !strings.Contains(joined, "\xff\xffz") {
			t.Errorf("chunks %v: the bad header's bytes should be text: %q", chunks, joined)
		}
	}
}

func TestDeframeLargestFrameSplit(t *testing.T) {
	pb := bytes.Repeat([]byte{0x94}, MaxProtobuf) // start bytes inside a frame are data
	in := frame(t, pb)
	var d Deframer
	frames, text := feedAll(&d, in, 100, 1, 37)
	if len(frames) != 1 || !bytes.Equal(frames[0], pb) || len(text) != 0 {
		t.Fatalf("got %d frames, text %q", len(frames), text)
	}
	if _, err := AppendFrame(nil, make([]byte, MaxProtobuf+1)); err == nil {
		t.Fatal("a 513-byte protobuf was framed")
	}
}

func TestDeframeEmptyFrame(t *testing.T) {
	var d Deframer
	frames, _ := d.Feed(frame(t, nil))
	if len(frames) != 1 || len(frames[0]) != 0 {
		t.Fatalf("frames %q", frames)
	}
}

func TestDeframeLongLineBounded(t *testing.T) {
	var d Deframer
	_, text := d.Feed(bytes.Repeat([]byte("a"), 10*MaxLogLine+5))
	if len(text) != 10 {
		t.Fatalf("%d pieces", len(text))
	}
	for _, l := range text {
		if len(l) != MaxLogLine {
			t.Fatalf("a piece of %d bytes", len(l))
		}
	}
	if len(d.text) != 5 {
		t.Fatalf("holds %d bytes of text", len(d.text))
	}
}

// FuzzDeframe checks, for any byte stream: no panic; frames at most 512
// bytes and lines at most MaxLogLine; the same output however the stream
// is split; and frames made by AppendFrame, with text around them free of
// 0x94, all come back.
func FuzzDeframe(f *testing.F) {
	f.Add([]byte("boot\n\x94\xc3\x00\x03abc\x94 text\n"), byte(1), []byte("x"))
	f.Add([]byte{0x94, 0xc3, 0x94, 0xc3, 0x00, 0x01, 'k'}, byte(3), []byte{})
	f.Add([]byte{0x94, 0xc3, 0xff, 0xff}, byte(2), []byte("\x94\xc3"))
	f.Add(bytes.Repeat([]byte{0x94}, 600), byte(5), bytes.Repeat([]byte{0xc3}, 513))
	f.Fuzz(func(t *testing.T, stream []byte, split byte, pb []byte) {
		var whole Deframer
		frames, text := whole.Feed(stream)
		for _, fr := range frames {
			if len(fr) > MaxProtobuf {
				t.Fatalf("a frame of %d bytes", len(fr))
			}
		}
		for _, l := range text {
			if len(l) > MaxLogLine || l == "" {
				t.Fatalf("a line of %d bytes", len(l))
			}
		}
		if len(whole.text) > MaxLogLine || len(whole.body) > MaxProtobuf {
			t.Fatalf("holds %d bytes of text, %d of frame", len(whole.text), len(whole.body))
		}
		var parts Deframer
		frames2, text2 := feedAll(&parts, stream, int(split%17)+1)
		if fmt.Sprint(frames) != fmt.Sprint(frames2) || !slices.Equal(text, text2) {
			t.Fatalf("split by %d: %q %q, whole: %q %q", split%17+1, frames2, text2, frames, text)
		}

		// Round trip: clean text, a frame, clean text.
		if len(pb) > MaxProtobuf {
			pb = pb[:MaxProtobuf]
		}
		clean := bytes.ReplaceAll(stream, []byte{0x94}, nil)
		in := append(append(append([]byte{}, clean...), frame(t, pb)...), clean...)
		var rt Deframer
		got, _ := feedAll(&rt, in, int(split%5)+1)
		if len(got) != 1 || !bytes.Equal(got[0], pb) {
			t.Fatalf("round trip of %d bytes: got %q", len(pb), got)
		}
	})
}
