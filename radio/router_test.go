package radio

import (
	"encoding/binary"
	"testing"
	"time"

	"lifeline/radio/lora"
)

func testRouter(st *simStore) *Router {
	return NewRouter(RouterConfig{Tag: 1, Region: lora.Regions["EU868"], Modem: lora.ModemPresets[lora.DefaultModem], Messages: st,
		RepairEvery: time.Hour, Seed: 1})
}

// TestRouterLateEnd: a frame the radio never reported is taken as ended at
// its deadline; when its end does come, late, it is not taken for the end
// of the frame sent since.
func TestRouterLateEnd(t *testing.T) {
	st := newSimStore()
	r := testRouter(st)
	now := simEpoch
	for _, text := range []string{"first", "second"} {
		e, _ := testIdentity().NewText("general", text, now, 0)
		if err := r.Stored(now, e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := r.Next(now)
	if a == nil {
		t.Fatal("nothing to send")
	}
	if f, wait := r.Next(now); f != nil || wait <= 0 {
		t.Fatalf("a second frame while the first is in flight: %v %v", f, wait)
	}
	now = now.Add(time.Minute) // past the first frame's deadline
	b, _ := r.Next(now)
	if b == nil {
		t.Fatal("the second frame did not go after the first's deadline")
	}
	r.Done(now.Add(time.Second)) // the first frame's late end
	if !r.Status(now).Sending {
		t.Fatal("the first frame's late end was taken for the second's")
	}
	r.Done(now.Add(2 * time.Second))
	if r.Status(now).Sending {
		t.Fatal("the second frame's end was not taken")
	}
}

// TestRouterRefusesForgedWhole: a whole frame whose envelope does not
// verify is neither relayed nor handed on, whatever hops it claims.
func TestRouterRefusesForgedWhole(t *testing.T) {
	r := testRouter(newSimStore())
	e, _ := testIdentity().NewText("general", "genuine", simEpoch, 0)
	forged := append([]byte(nil), e.Raw()...)
	forged[len(forged)-1] ^= 1
	b, _ := Frame{Type: FrameWhole, Hops: MaxHops, Payload: forged}.Append(nil)
	if got := r.Heard(simEpoch, b); len(got) != 0 {
		t.Fatal("a forged envelope was handed on")
	}
	if st := r.Status(simEpoch); st.Forged != 1 || st.Delayed != 0 || st.Scheduler.Queue != 0 {
		t.Fatalf("forged frame: %+v", st)
	}
	good, _ := Frame{Type: FrameWhole, Hops: MaxHops, Payload: e.Raw()}.Append(nil)
	if got := r.Heard(simEpoch, good); len(got) != 1 {
		t.Fatal("the genuine envelope was not handed on")
	}
	// Relayed with this node's own hop limit less one, not the sender's.
	if len(r.delayed) != 1 {
		t.Fatalf("%d relays", len(r.delayed))
	}
	if f, _ := DecodeFrame(r.delayed[0].frame); f.Hops != DefaultHops-1 {
		t.Fatalf("relayed with %d hops", f.Hops)
	}
}

// TestRouterAnswersOnce: the same want heard five times (or from five
// neighbours) is answered once a round.
func TestRouterAnswersOnce(t *testing.T) {
	st := newSimStore()
	e, _ := testIdentity().NewText("general", "wanted", simEpoch.Add(-time.Hour), 0)
	st.put(e.Raw(), simEpoch)
	r := testRouter(st)
	r.Next(simEpoch)
	r.startRound(simEpoch) // the round the want answers from
	id := e.ID()
	entry := binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(id[:8]))
	entry = append(entry, 0xFF, 0xFF, 0xFF)
	w, _ := Frame{Type: FrameWant, Node: 1, Payload: entry}.Append(nil)
	for range 5 {
		r.Heard(simEpoch, w)
	}
	if st := r.Status(simEpoch); st.Answered != 1 {
		t.Fatalf("answered %d times", st.Answered)
	}
}

// FuzzRouterHeard: whatever neighbours send, the router does not panic,
// and its queues stay within their bounds.
func FuzzRouterHeard(f *testing.F) {
	e, _ := testIdentity().NewText("general", "seed", simEpoch.Add(-time.Hour), 0)
	whole, _ := Frame{Type: FrameWhole, Hops: 3, Payload: e.Raw()}.Append(nil)
	digest, _ := Frame{Type: FrameDigest, Node: 9, From: 1, To: 2_000_000_000, Payload: make([]byte, 3*14)}.Append(nil)
	want, _ := Frame{Type: FrameWant, Node: 1, Payload: make([]byte, WantEntry)}.Append(nil)
	more, _ := Frame{Type: FrameMore, Node: 1, From: 1, To: 2_000_000_000, Start: 3, Count: 6}.Append(nil)
	for _, b := range [][]byte{whole, digest, want, more} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newSimStore()
		st.put(e.Raw(), simEpoch)
		r := testRouter(st)
		r.Next(simEpoch)
		r.startRound(simEpoch)
		for i := range 3 {
			now := simEpoch.Add(time.Duration(i) * time.Second)
			r.Heard(now, b)
			r.Next(now)
		}
		if s := r.Status(simEpoch); s.Scheduler.Queue > 256 || s.Delayed > 256 || len(r.wants) > maxWantsWaiting || len(r.peers) > maxPeers {
			t.Fatalf("bounds broken: %+v", s)
		}
	})
}

// TestRouterLeft: an own message has left the node once every one of its
// frames has ended on air, not before; a message that came by flood (its
// frames heard, none sent) is not this node's to report.
func TestRouterLeft(t *testing.T) {
	r := testRouter(newSimStore())
	now := simEpoch
	long, _ := testIdentity().NewText("general", string(make([]byte, 600)), now, 0) // three fragments
	if err := r.Stored(now, long.Raw()); err != nil {
		t.Fatal(err)
	}
	frames := 0
	for {
		f, _ := r.Next(now)
		if f == nil {
			break
		}
		frames++
		if got := r.Left(); len(got) != 0 {
			t.Fatalf("left after %d frames on air (none ended yet): %v", frames, got)
		}
		now = now.Add(10 * time.Second)
		r.Done(now)
		if frames < 3 {
			if got := r.Left(); len(got) != 0 {
				t.Fatalf("left after %d of 3 frames", frames)
			}
		}
	}
	if frames != 3 {
		t.Fatalf("%d frames sent, want 3", frames)
	}
	if got := r.Left(); len(got) != 1 || got[0] != long.ID() {
		t.Fatalf("after the last frame: left %v, want [%s]", got, long.ID())
	}
	if got := r.Left(); len(got) != 0 {
		t.Fatal("Left reported the message twice")
	}
}
