package radio

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"lifeline/message"
)

func testIdentity() *message.Identity {
	var seed [32]byte
	seed[0] = 7
	return message.IdentityFromKey(ed25519.NewKeyFromSeed(seed[:]))
}

func envelope(t testing.TB, text string) []byte {
	t.Helper()
	e, err := testIdentity().NewText("general", text, time.UnixMilli(1_800_000_000_000), 0)
	if err != nil {
		t.Fatal(err)
	}
	return e.Raw()
}

// TestHundredCharactersOneFrame: the brief's target, a 100-character
// message in one frame.
func TestHundredCharactersOneFrame(t *testing.T) {
	env := envelope(t, strings.Repeat("x", 100))
	frames, err := Fragment(env, 3)
	if err != nil || len(frames) != 1 || frames[0].Type != FrameWhole {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	b, err := frames[0].Append(nil)
	if err != nil || len(b) != len(env)+2 || len(b) > MaxFrame {
		t.Fatalf("frame of %d bytes for a %d-byte envelope: %v", len(b), len(env), err)
	}
	t.Logf("100 characters: %d-byte envelope, %d bytes on air", len(env), len(b))
}

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{1, 100, 141, 142, 500, 2000, message.MaxBody} {
		env := envelope(t, strings.Repeat("é", n/2)+strings.Repeat("a", n%2))
		frames, err := Fragment(env, 5)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if len(env) > MaxWhole {
			want = (len(env) + FragmentSize - 1) / FragmentSize
		}
		if len(frames) != want {
			t.Fatalf("%d-byte envelope in %d frames, want %d", len(env), len(frames), want)
		}
		r := NewReassembler(4, time.Minute)
		var got []byte
		for _, f := range frames {
			b, err := f.Append(nil)
			if err != nil || len(b) > MaxFrame {
				t.Fatalf("append: %d bytes, %v", len(b), err)
			}
			d, err := DecodeFrame(b)
			if err != nil || d.Hops != 5 {
				t.Fatalf("decode: %+v %v", d, err)
			}
			if d.Type == FrameWhole {
				got = d.Payload
				continue
			}
			if env, err := r.Add(time.Now(), d); err != nil {
				t.Fatal(err)
			} else if env != nil {
				got = env
			}
		}
		if !bytes.Equal(got, env) {
			t.Fatalf("%d-byte envelope did not survive", len(env))
		}
	}
}

// TestReassemblyLostAndReordered: fragments shuffled, duplicated, one lost
// and sent again later; the envelope comes out once, when the last
// missing fragment arrives.
func TestReassemblyLostAndReordered(t *testing.T) {
	r0 := rand.New(rand.NewPCG(5, 6))
	env := envelope(t, strings.Repeat("long message ", 200))
	frames, _ := Fragment(env, 3)
	if len(frames) < 5 {
		t.Fatalf("only %d fragments", len(frames))
	}
	for round := range 50 {
		r := NewReassembler(8, time.Minute)
		order := r0.Perm(len(frames))
		lost := order[r0.IntN(len(order))]
		now := time.Now()
		for _, i := range order {
			if i == lost {
				continue
			}
			for range 1 + r0.IntN(2) { // some twice
				if got, err := r.Add(now, frames[i]); err != nil || got != nil {
					t.Fatalf("round %d: incomplete message gave %d bytes, %v", round, len(got), err)
				}
			}
		}
		if r.Pending() != 1 {
			t.Fatalf("pending %d", r.Pending())
		}
		got, err := r.Add(now.Add(time.Second), frames[lost])
		if err != nil || !bytes.Equal(got, env) {
			t.Fatalf("round %d: after the lost fragment: %d bytes, %v", round, len(got), err)
		}
		if r.Pending() != 0 {
			t.Fatal("completed message still pending")
		}
	}
}

func TestReassemblyBounds(t *testing.T) {
	r := NewReassembler(2, time.Minute)
	now := time.Now()
	var firsts []Frame
	for i := range 3 {
		frames, _ := Fragment(envelope(t, strings.Repeat(string(rune('a'+i)), 600)), 3)
		firsts = append(firsts, frames[0])
		r.Add(now.Add(time.Duration(i)*time.Second), frames[0])
	}
	if r.Pending() != 2 || r.Dropped != 1 {
		t.Fatalf("pending %d, dropped %d: the oldest should give way", r.Pending(), r.Dropped)
	}
	r.Add(now.Add(2*time.Minute), firsts[0])
	if r.Pending() != 1 || r.Dropped != 3 {
		t.Fatalf("pending %d, dropped %d: stale messages should expire", r.Pending(), r.Dropped)
	}
	// Fragments whose bytes do not hash to their key are refused whole.
	env := envelope(t, strings.Repeat("z", 600))
	frames, _ := Fragment(env, 3)
	bad := append([]byte(nil), frames[1].Payload...)
	bad[0] ^= 1
	frames[1].Payload = bad
	r = NewReassembler(2, time.Minute)
	var err error
	for _, f := range frames {
		_, err = r.Add(now, f)
	}
	if !errors.Is(err, ErrFrame) || r.Dropped != 1 {
		t.Fatalf("corrupt reassembly: %v, dropped %d", err, r.Dropped)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	good, _ := Frame{Type: FrameWhole, Hops: 1, Payload: []byte{1}}.Append(nil)
	for name, b := range map[string][]byte{
		"empty":       {},
		"header only": good[:2],
		"version 2":   append([]byte{0x20}, good[1:]...),
		"reserved":    append([]byte{good[0], 0x11}, good[2:]...),
		"type 9":      append([]byte{0x19}, good[1:]...),
		"too long":    append(good, make([]byte, MaxFrame)...),
		"one of one":  {0x11, 0, 1, 2, 3, 4, 0, 1, 9},
		"index 5/3":   {0x11, 0, 1, 2, 3, 4, 5, 3, 9},
		"short first": {0x11, 0, 1, 2, 3, 4, 0, 3, 9},
	} {
		if _, err := DecodeFrame(b); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}

// FuzzDecodeFrame: whatever arrives on air, the decoder does not panic,
// and what it accepts encodes back to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	env := envelope(f, strings.Repeat("fuzz ", 100))
	frames, _ := Fragment(env, 2)
	for _, fr := range frames[:2] {
		b, _ := fr.Append(nil)
		f.Add(b)
	}
	whole, _ := Frame{Type: FrameWhole, Hops: 3, Payload: envelope(f, "hi")}.Append(nil)
	f.Add(whole)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			return
		}
		again, err := fr.Append(nil)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted % x, re-encoded % x (%v)", b, again, err)
		}
		if fr.Type == FrameFragment {
			NewReassembler(1, time.Minute).Add(time.Now(), fr)
		}
	})
}
