package reconcile

import (
	"errors"
	mrand "math/rand/v2"
	"testing"
)

// FuzzMessage feeds arbitrary messages to both roles over a fixed set. No
// panic, every error classified, and no output over the frame limit.
func FuzzMessage(f *testing.F) {
	r := mrand.New(mrand.NewPCG(5, 6))
	a, b, _, _ := sets(r, 300, 20, 20, 40)
	va, vb := NewVector(a), NewVector(b)
	// Seeds: real messages from a session, and some hand-made edge cases.
	ia, _ := New(va, MinFrameSizeLimit)
	rb, _ := New(vb, MinFrameSizeLimit)
	msg, _ := ia.Initiate()
	for msg != nil {
		f.Add(msg)
		reply, err := rb.Respond(msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(reply)
		msg, _, _, _ = ia.Reconcile(reply, nil, nil)
	}
	f.Add([]byte{Version})
	f.Add([]byte{0x62})
	f.Add([]byte{Version, 0x00, 0x00, modeIDList, 0x00})
	f.Add([]byte{Version, 0x00, 0x20, 0xff, modeSkip})
	f.Fuzz(func(t *testing.T, msg []byte) {
		resp, _ := New(vb, MinFrameSizeLimit)
		out, err := resp.Respond(msg)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("responder: unclassified error %v", err)
		}
		if len(out) > MinFrameSizeLimit {
			t.Fatalf("responder produced %d bytes over the limit", len(out))
		}
		init, _ := New(va, MinFrameSizeLimit)
		if _, err := init.Initiate(); err != nil {
			t.Fatal(err)
		}
		next, _, _, err := init.Reconcile(msg, nil, nil)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("initiator: unclassified error %v", err)
		}
		if len(next) > MinFrameSizeLimit {
			t.Fatalf("initiator produced %d bytes over the limit", len(next))
		}
	})
}
