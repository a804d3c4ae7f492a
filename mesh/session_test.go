package mesh

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"lifeline/message"
)

func storeDeliver(st Store) deliverFunc {
	return func(ctx context.Context, raw []byte) (bool, error) {
		r, err := st.Put(ctx, raw)
		if errors.Is(err, message.ErrSignature) {
			return false, errMisbehaved
		}
		return r.New, err
	}
}

func runPair(t *testing.T, a, b Store) (SessionStats, SessionStats) {
	t.Helper()
	ca, cb := net.Pipe()
	defer ca.Close()
	defer cb.Close()
	ctx := context.Background()
	done := make(chan error, 1)
	var rs SessionStats
	go func() {
		var err error
		rs, err = Respond(ctx, cb, b, storeDeliver(b))
		done <- err
	}()
	is, err := Initiate(ctx, ca, a, storeDeliver(a))
	if err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("responder: %v", err)
	}
	return is, rs
}

func TestSessionExchangesDifference(t *testing.T) {
	a, b := openStore(t, t.TempDir()), openStore(t, t.TempDir())
	alice, bob := newIdentity(t), newIdentity(t)
	common := fill(t, a, alice, 50, "common")
	for _, id := range common {
		rec, _ := a.Get(id)
		b.Put(context.Background(), rec.Envelope.Raw())
	}
	onlyA := fill(t, a, alice, 300, "a") // more than one batch
	onlyB := fill(t, b, bob, 7, "b")
	is, rs := runPair(t, a, b)
	if !hasAll(a, onlyB) || !hasAll(b, onlyA) {
		t.Fatal("stores did not converge")
	}
	if count(a) != 357 || count(b) != 357 {
		t.Fatalf("counts %d %d, want 357", count(a), count(b))
	}
	if is.Sent != 300 || is.Received != 7 || rs.Sent != 7 || rs.Received != 300 {
		t.Fatalf("initiator %+v responder %+v", is, rs)
	}
	// What each side sent has left it; what it only received, and what
	// both held, has not (as far as this session knows).
	left := func(st Store, ids []message.ID, want bool) {
		t.Helper()
		for _, id := range ids {
			if rec, err := st.Get(id); err != nil || rec.Left != want {
				t.Fatalf("message %s: left %v, want %v (%v)", id, rec.Left, want, err)
			}
		}
	}
	left(a, onlyA, true)
	left(b, onlyB, true)
	left(a, onlyB, false)
	left(a, common, false)
	// A second session finds nothing to do, in one round.
	is, _ = runPair(t, a, b)
	if is.Sent != 0 || is.Received != 0 || is.Rounds != 1 {
		t.Fatalf("second session %+v", is)
	}
}

func TestSessionRejectsForgedEnvelope(t *testing.T) {
	a, b := openStore(t, t.TempDir()), openStore(t, t.TempDir())
	alice := newIdentity(t)
	ids := fill(t, a, alice, 1, "x")
	rec, _ := a.Get(ids[0])
	forged := append([]byte(nil), rec.Envelope.Raw()...)
	forged[len(forged)-1] ^= 1
	ca, cb := net.Pipe()
	defer ca.Close()
	go func() {
		s := newSession(ca, a, nil)
		s.w.Write([]byte{streamVersion})
		s.r.ReadByte()
		// One round first: envelopes before any are a violation of their own.
		writeFrame(s.w, frameNeg, []byte{0x61, 0x00, 0x00, 0x02, 0x00}) // an empty id list up to infinity
		readFrame(s.r)
		writeFrame(s.w, frameEnvelopes, encodeEnvelopes([][]byte{forged}))
	}()
	_, err := Respond(context.Background(), cb, b, storeDeliver(b))
	if !errors.Is(err, errMisbehaved) {
		t.Fatalf("responder accepted a forged envelope: %v", err)
	}
	if count(b) != 0 {
		t.Fatal("forged envelope stored")
	}
}

func TestSessionProtocolErrors(t *testing.T) {
	b := openStore(t, t.TempDir())
	cases := map[string][]byte{
		"oversize frame":  {streamVersion, frameNeg, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"length overflow": {streamVersion, frameNeg, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"unknown frame":   {streamVersion, 0x7f, 0x00},
		"bad negentropy":  {streamVersion, frameNeg, 0x01, 0x10},
		"ragged want":     {streamVersion, frameWant, 0x03, 1, 2, 3},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			ca, cb := net.Pipe()
			defer ca.Close()
			go func() {
				ca.Write(in)
				buf := make([]byte, 1024)
				for {
					if _, err := ca.Read(buf); err != nil {
						return
					}
				}
			}()
			_, err := Respond(context.Background(), cb, b, storeDeliver(b))
			cb.Close()
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

// TestSessionLinkFailureIsNotMisbehaviour: a peer whose link drops in the
// middle of a frame, or who speaks another stream version, is not treated
// as misbehaving (which would block it for minutes).
func TestSessionLinkFailureIsNotMisbehaviour(t *testing.T) {
	b := openStore(t, t.TempDir())
	cases := map[string][]byte{
		"cut in the length":  {streamVersion, frameNeg, 0x80},
		"cut in the payload": {streamVersion, frameNeg, 0x10, 0x61, 0x00},
		"other version":      {0x02},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			ca, cb := net.Pipe()
			go func() {
				ca.Write(in)
				if in[0] == streamVersion {
					ca.Close() // the link drops
					return
				}
				io.Copy(io.Discard, ca)
			}()
			_, err := Respond(context.Background(), cb, b, storeDeliver(b))
			cb.Close()
			ca.Close()
			if err == nil || errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want an error that is not a protocol violation", err)
			}
		})
	}
}

// TestSessionQuietPeerTimesOut: a peer that opens a session and goes silent
// frees the session after the idle time, without being called a violator.
func TestSessionQuietPeerTimesOut(t *testing.T) {
	b := openStore(t, t.TempDir())
	ca, cb := net.Pipe()
	defer ca.Close()
	defer cb.Close()
	go func() {
		ca.Write([]byte{streamVersion})
		io.Copy(io.Discard, ca) // reads our hello, then says nothing
	}()
	s := newSession(cb, b, storeDeliver(b))
	s.idle = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- s.respond(context.Background(), maxSessionWork) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrProtocol) {
			t.Fatalf("quiet peer: %v, want a deadline error that is not a violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a quiet peer held the session")
	}
}
