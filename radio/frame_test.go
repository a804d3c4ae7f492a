package radio

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"lifeline/message"
	"lifeline/reconcile"
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

// TestRepairFramesRoundTrip: digests, wants and mores, and the repair flag
// on envelopes, encode and decode to the same values, at their largest
// within one LoRa payload.
func TestRepairFramesRoundTrip(t *testing.T) {
	syms := make([]byte, MaxSymbols*reconcile.SymbolSize)
	ids := make([]byte, MaxWants*WantEntry)
	for i := range syms {
		syms[i] = byte(i)
	}
	for i := range ids {
		ids[i] = byte(3 * i)
	}
	for _, f := range []Frame{
		{Type: FrameDigest, Node: 0xBEEF, From: 1_700_000_000, To: 1_700_003_600, Start: 17, Payload: syms},
		{Type: FrameDigest, Node: 1, From: 0, To: 1, Payload: syms[:reconcile.SymbolSize]},
		{Type: FrameWant, Node: 0xBEEF, Payload: ids},
		{Type: FrameWant, Node: 7, Payload: ids[:WantEntry]},
		{Type: FrameMore, Node: 2, From: 10, To: 20, Start: 34, Count: MaxSymbols},
		{Type: FrameWhole, Repair: true, Payload: []byte("an envelope")},
	} {
		b, err := f.Append(nil)
		if err != nil || len(b) > MaxFrame {
			t.Fatalf("%+v: %d bytes, %v", f, len(b), err)
		}
		got, err := DecodeFrame(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if got.Payload == nil {
			got.Payload = f.Payload // a more carries none
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("decoded %+v, sent %+v", got, f)
		}
	}
	for _, bad := range []Frame{
		{Type: FrameDigest, Node: 1, From: 0, To: 1, Payload: append(syms, syms[:reconcile.SymbolSize]...)},
		{Type: FrameWant, Node: 1, Payload: append(ids, ids[:WantEntry]...)},
		{Type: FrameWant, Hops: 1, Node: 1, Payload: ids[:WantEntry]},
		{Type: FrameWhole, Hops: 3, Repair: true, Payload: []byte("x")},
		{Type: FrameMore, Node: 1, From: 5, To: 5, Count: 1},
	} {
		if _, err := bad.Append(nil); !errors.Is(err, ErrFrame) {
			t.Errorf("%+v encoded: %v", bad, err)
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
	// Fragments whose bytes do not join to their message are not handed
	// on; the message waits for the genuine fragment, which completes it.
	env := envelope(t, strings.Repeat("z", 600))
	frames, _ := Fragment(env, 3)
	bad := append([]byte(nil), frames[1].Payload...)
	bad[0] ^= 1
	genuine := frames[1]
	frames[1].Payload = bad
	r = NewReassembler(2, time.Minute)
	var err error
	for _, f := range frames {
		_, err = r.Add(now, f)
	}
	if !errors.Is(err, ErrFrame) || r.Dropped != 0 || r.Pending() != 1 {
		t.Fatalf("corrupt reassembly: %v, dropped %d, pending %d", err, r.Dropped, r.Pending())
	}
	if got, err := r.Add(now, genuine); err != nil || !bytes.Equal(got, env) || r.Substituted != 1 || r.Pending() != 0 {
		t.Fatalf("the genuine fragment after the corrupt one: %d bytes, %v, substituted %d", len(got), err, r.Substituted)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	good, _ := Frame{Type: FrameWhole, Hops: 1, Payload: []byte{1}}.Append(nil)
	for name, b := range map[string][]byte{
		"empty":       {},
		"header only": good[:2],
		"version 2":   append([]byte{0x20}, good[1:]...),
		"reserved":    append([]byte{good[0], 0x21}, good[2:]...),
		"repair hops": append([]byte{good[0], 0x11}, good[2:]...),
		"digest hops": {0x12, 0x01, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		"digest 13B":  {0x12, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		"window 2..1": {0x12, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		"want 10B":    {0x13, 0x00, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		"more 0":      {0x14, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0},
		"more 18":     {0x14, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 18},
		"more long":   {0x14, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 1, 0},
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
	for _, fr := range []Frame{
		{Type: FrameDigest, Node: 9, From: 1, To: 2, Payload: make([]byte, 2*reconcile.SymbolSize)},
		{Type: FrameWant, Node: 9, Payload: make([]byte, 2*WantEntry)},
		{Type: FrameMore, Node: 9, From: 1, To: 2, Start: 4, Count: 8},
	} {
		b, _ := fr.Append(nil)
		f.Add(b)
	}
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
