package radio

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

func testMeshKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// TestAirTag: a sealed frame opens under its key only, whole: not under
// another key, not cut short, not with any one bit changed, not with its
// context changed.
func TestAirTag(t *testing.T) {
	k, other := newAirKey(testMeshKey(1)), newAirKey(testMeshKey(2))
	frame, err := Frame{Type: FrameWhole, Hops: 3, Payload: envelope(t, "keyed")}.append(nil, keyedAir)
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.seal(append([]byte(nil), frame...), nil)
	if len(sealed) != len(frame)+TagSize {
		t.Fatalf("sealed %d bytes, frame %d", len(sealed), len(frame))
	}
	if got, ok := k.open(sealed, nil); !ok || !bytes.Equal(got, frame) {
		t.Fatal("a sealed frame did not open")
	}
	if _, ok := other.open(sealed, nil); ok {
		t.Fatal("opened under another key")
	}
	if _, ok := k.open(sealed, []byte{0, 0, 0, 1}); ok {
		t.Fatal("opened in another context")
	}
	for n := range len(sealed) {
		if _, ok := k.open(sealed[:n], nil); ok {
			t.Fatalf("opened cut to %d bytes", n)
		}
	}
	for i := range len(sealed) * 8 {
		b := append([]byte(nil), sealed...)
		b[i/8] ^= 1 << (i % 8)
		if _, ok := k.open(b, nil); ok {
			t.Fatalf("opened with bit %d flipped", i)
		}
	}
	// The radio key is the mesh key's, under its own label.
	if !bytes.Equal(newAirKey(testMeshKey(1)).tag(frame, nil), k.tag(frame, nil)) {
		t.Fatal("the same mesh key gave another tag")
	}
}

// TestKeyedFrames: on a keyed mesh every frame fits a LoRa payload with
// its tag, fragments carry TagSize bytes less, the keyed flag is set, and
// neither side decodes the other's frames.
func TestKeyedFrames(t *testing.T) {
	short := envelope(t, strings.Repeat("x", 100))
	frames, err := fragment(short, 3, keyedAir)
	if err != nil || len(frames) != 1 {
		t.Fatalf("100 characters keyed: %d frames, %v", len(frames), err)
	}
	long := envelope(t, strings.Repeat("long ", 300))
	open, _ := Fragment(long, 3)
	keyed, _ := fragment(long, 3, keyedAir)
	if len(keyed) < len(open) || len(keyed) > len(open)+1 {
		t.Fatalf("%d-byte envelope: %d fragments open, %d keyed", len(long), len(open), len(keyed))
	}
	k := newAirKey(testMeshKey(1))
	for i, f := range keyed {
		b, err := f.append(nil, keyedAir)
		if err != nil {
			t.Fatal(err)
		}
		sealed := k.seal(b, nil)
		if i < len(keyed)-1 && (len(f.Payload) != KeyedFragmentSize || len(sealed) != MaxFrame) {
			t.Fatalf("fragment %d: %d bytes of payload, %d on air", i, len(f.Payload), len(sealed))
		}
		if b[1]&keyedFlag == 0 {
			t.Fatal("no keyed flag")
		}
		if _, err := DecodeFrame(b); err == nil {
			t.Fatal("an open mesh decoded a keyed frame")
		}
		if got, err := decodeFrame(b, keyedAir); err != nil || !bytes.Equal(got.Payload, f.Payload) {
			t.Fatalf("keyed decode: %v", err)
		}
	}
	ob, _ := open[0].Append(nil)
	if _, err := decodeFrame(ob, keyedAir); err == nil {
		t.Fatal("a keyed mesh decoded an open frame")
	}
	digest := Frame{Type: FrameDigest, Node: 1, From: 1, To: 2, Payload: make([]byte, KeyedMaxSymbols*14)}
	if b, err := digest.append(nil, keyedAir); err != nil || len(b)+TagSize > MaxFrame {
		t.Fatalf("keyed digest of %d symbols: %d bytes, %v", KeyedMaxSymbols, len(b)+TagSize, err)
	}
	digest.Payload = make([]byte, MaxSymbols*14)
	if _, err := digest.append(nil, keyedAir); err == nil {
		t.Fatal("a keyed digest of MaxSymbols symbols was encoded: it does not fit with the tag")
	}
}

// TestReassemblyForgedCandidates: a forged fragment at each index, heard
// before the genuine ones or after, does not keep the message from
// joining; a third different fragment for one index starts over.
func TestReassemblyForgedCandidates(t *testing.T) {
	env := envelope(t, strings.Repeat("bound ", 200))
	frames, _ := Fragment(env, 3)
	forged := make([]Frame, len(frames))
	for i, f := range frames {
		f.Payload = append([]byte(nil), f.Payload...)
		f.Payload[len(f.Payload)/2] ^= 0x55
		forged[i] = f
	}
	now := simEpoch
	for name, order := range map[string][][]Frame{
		"forged first": {forged, frames},
		"forged after": {frames[:len(frames)-1], forged, frames[len(frames)-1:]},
		"one forged":   {forged[2:3], frames},
	} {
		r := NewReassembler(4, time.Minute)
		var got []byte
		for _, fs := range order {
			for _, f := range fs {
				if env, _ := r.Add(now, f); env != nil {
					got = env
				}
			}
		}
		if !bytes.Equal(got, env) || r.Pending() != 0 {
			t.Errorf("%s: got %d bytes, pending %d", name, len(got), r.Pending())
		}
		if r.Substituted != 1 {
			t.Errorf("%s: substituted %d", name, r.Substituted)
		}
	}
	// A third different fragment for index 1: the message starts again
	// from it, and the genuine fragments complete it.
	r := NewReassembler(4, time.Minute)
	third := forged[1]
	third.Payload = append([]byte(nil), third.Payload...)
	third.Payload[0] ^= 1
	for _, f := range []Frame{forged[1], frames[1], third} {
		r.Add(now, f)
	}
	if r.Dropped != 1 || r.Pending() != 1 || r.Missing(frames[0].Key) != uint32(1<<len(frames)-1)&^(1<<1) {
		t.Fatalf("after a third candidate: dropped %d, pending %d, missing %b", r.Dropped, r.Pending(), r.Missing(frames[0].Key))
	}
	var got []byte
	for _, f := range frames {
		if env, _ := r.Add(now, f); env != nil {
			got = env
		}
	}
	if !bytes.Equal(got, env) {
		t.Fatal("not completed after starting over")
	}
	// Bounded: however many forgeries come, at most MaxCandidates are kept
	// for an index.
	r = NewReassembler(1, time.Minute)
	for i := range 50 {
		f := forged[0]
		f.Payload = append([]byte(nil), f.Payload...)
		f.Payload[0] = byte(i)
		r.Add(now, f)
		for _, p := range r.partials {
			if len(p.parts[0]) > MaxCandidates {
				t.Fatalf("%d candidates kept", len(p.parts[0]))
			}
		}
	}
}

// TestRouterKeyedWantBoundToRound: on a keyed mesh a want is answered in
// the round it asks from and the next; captured and sent again later, it
// is dropped unanswered. A want without the tag is never answered.
func TestRouterKeyedWantBoundToRound(t *testing.T) {
	st := newSimStore()
	e, _ := testIdentity().NewText("general", "wanted", simEpoch.Add(-time.Hour), 0)
	st.put(e.Raw(), simEpoch)
	key := testMeshKey(9)
	cfg := func(tag uint16) RouterConfig {
		c := testRouter(st).cfg
		c.Tag, c.AirKey = tag, key
		return c
	}
	r, asker := NewRouter(cfg(1)), NewRouter(cfg(2))
	r.Next(simEpoch)
	r.startRound(simEpoch)
	id := e.ID()
	asker.sendWant(simEpoch, 1, r.round.to, []uint64{binary.BigEndian.Uint64(id[:8])}, []uint32{AllFragments})
	w, _ := asker.Next(simEpoch)
	if w == nil {
		t.Fatal("no want sent")
	}
	forged := append([]byte(nil), w...)
	forged[len(forged)-1] ^= 1
	r.Heard(simEpoch, forged)
	if st := r.Status(simEpoch); st.Answered != 0 || st.Unauthenticated != 1 {
		t.Fatalf("a want with a bad tag: %+v", st.RouterStats)
	}
	r.Heard(simEpoch, w)
	if st := r.Status(simEpoch); st.Answered != 1 {
		t.Fatalf("the genuine want: answered %d", st.Answered)
	}
	// The next round: still the want's (it may cross a round's start).
	r.startRound(simEpoch.Add(10 * time.Minute))
	r.Heard(simEpoch.Add(10*time.Minute), w)
	if st := r.Status(simEpoch); st.Answered != 2 {
		t.Fatalf("in the next round: answered %d", st.Answered)
	}
	// Two rounds on: a replay.
	r.startRound(simEpoch.Add(20 * time.Minute))
	r.Heard(simEpoch.Add(20*time.Minute), w)
	if st := r.Status(simEpoch); st.Answered != 2 || st.Unauthenticated != 2 {
		t.Fatalf("a want replayed two rounds on: %+v", st.RouterStats)
	}
}

// FuzzKeyedHeard: the authenticated decode path. Whatever a keyed
// router hears, bare or sealed with the mesh's key (as a member would
// send it), it does not panic, what opens re-seals to the same bytes, and
// its queues stay within their bounds.
func FuzzKeyedHeard(f *testing.F) {
	e, _ := testIdentity().NewText("general", "seed", simEpoch.Add(-time.Hour), 0)
	key := testMeshKey(3)
	k := newAirKey(key)
	for _, fr := range []Frame{
		{Type: FrameWhole, Hops: 3, Payload: e.Raw()},
		{Type: FrameDigest, Node: 9, From: 1, To: 2_000_000_000, Payload: make([]byte, 3*14)},
		{Type: FrameWant, Node: 1, Payload: make([]byte, WantEntry)},
		{Type: FrameMore, Node: 1, From: 1, To: 2_000_000_000, Start: 3, Count: 6},
	} {
		b, _ := fr.append(nil, keyedAir)
		f.Add(b)
		f.Add(k.seal(b, nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, ok := k.open(b, nil); ok && !bytes.Equal(k.seal(append([]byte(nil), got...), nil), b) {
			t.Fatalf("% x opened and re-sealed differently", b)
		}
		st := newSimStore()
		st.put(e.Raw(), simEpoch)
		c := testRouter(st).cfg
		c.AirKey = key
		r := NewRouter(c)
		r.Next(simEpoch)
		r.startRound(simEpoch)
		for i := range 3 {
			now := simEpoch.Add(time.Duration(i) * time.Second)
			r.Heard(now, b)
			r.Heard(now, k.seal(append([]byte(nil), b...), nil))
			r.Heard(now, k.seal(append([]byte(nil), b...), roundContext(r.round.to)))
			for {
				out, _ := r.Next(now)
				if out == nil {
					break
				}
				if len(out) > MaxFrame {
					t.Fatalf("sent %d bytes", len(out))
				}
				if _, ok := k.open(out, nil); !ok && FrameType(out[0]&0x0f) != FrameWant {
					t.Fatalf("sent a frame without a valid tag: % x", out)
				}
				r.Done(now)
			}
		}
		if s := r.Status(simEpoch); s.Scheduler.Queue > 256 || s.Delayed > 256 || len(r.wants) > maxWantsWaiting || len(r.peers) > maxPeers ||
			s.Heard+s.Unauthenticated > 9 {
			t.Fatalf("bounds broken: %+v", s)
		}
	})
}
