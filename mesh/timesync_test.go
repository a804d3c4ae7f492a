package mesh

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/clock"
)

// skewed is a system clock off by d.
func skewed(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// TestTimeFromPeers: a node booted three days behind learns the time from
// a static peer that keeps it (and not from a stranger two hours ahead),
// and then stores what the peer wrote, which its own clock would have
// refused as created in the future. The stranger learns it too.
func TestTimeFromPeers(t *testing.T) {
	keeper := startNode(t, t.TempDir(), newIdentity(t), Config{
		Clock: clock.New(clock.Options{Synced: func() bool { return true }})})
	ahead := startNode(t, t.TempDir(), newIdentity(t), Config{
		Clock: clock.New(clock.Options{System: skewed(2 * time.Hour)}), Peers: []string{keeper.addr()}})
	behindClock := clock.New(clock.Options{System: skewed(-72 * time.Hour)})
	written := keeper.send("the time is now")
	behind := startNode(t, t.TempDir(), newIdentity(t), Config{Clock: behindClock,
		Peers: []string{keeper.addr()}, BlockIPAfter: -1})
	// The node two hours ahead is a stranger to the one behind.
	if err := behind.mesh.Host().Connect(context.Background(), peer.AddrInfo{ID: ahead.mesh.Host().ID(), Addrs: ahead.mesh.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the node behind stores the keeper's message and follows the keeper's time", func() bool {
		ok, _ := behind.st.Has(written)
		return ok && behindClock.Status().Quality == clock.Hub
	})
	st := behindClock.Status()
	if st.Quality != clock.Hub || st.Via != "member" || st.Hops != 1 {
		t.Fatalf("the node behind follows %+v, want the keeper (a member, at hub quality, one hop)", st)
	}
	if off := st.Offset - 72*time.Hour; off.Abs() > time.Second {
		t.Fatalf("the node behind is off by %s after learning the time", off)
	}
	if d := st.Time.Sub(time.Now()); d.Abs() > time.Second {
		t.Fatalf("the node behind says %s, %s from the true time", st.Time, d)
	}
	eventually(t, 20*time.Second, "the node ahead learns the time", func() bool {
		st := ahead.cfg.Clock.Status()
		return st.Quality == clock.Hub && st.Time.Sub(time.Now()).Abs() < time.Second
	})
}

func TestTimeAnswerRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_765_000_000_123)
	b := encodeTimeAnswer(at, clock.Hub, 2, 1500*time.Millisecond)
	a, err := decodeTimeAnswer(b)
	if err != nil {
		t.Fatal(err)
	}
	if !a.time.Equal(at) || a.quality != clock.Hub || a.hops != 2 || a.uncertainty != 1500*time.Millisecond {
		t.Fatalf("decoded %+v", a)
	}
	for _, bad := range [][]byte{nil, b[:14], append(bytes.Clone(b), 0), append([]byte{2}, b[1:]...),
		encodeTimeAnswer(time.UnixMilli(0), clock.Hub, 0, 0)} {
		if _, err := decodeTimeAnswer(bad); err == nil {
			t.Errorf("decoded %x", bad)
		}
	}
}

func FuzzDecodeTimeAnswer(f *testing.F) {
	f.Add(encodeTimeAnswer(time.UnixMilli(1_765_000_000_123), clock.Hub, 2, time.Second))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeTimeAnswer(b)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes, but for the
		// quality and hops, which the encoder clamps.
		if got := encodeTimeAnswer(a.time, a.quality, a.hops, a.uncertainty); !bytes.Equal(got, b) {
			t.Fatalf("%x decoded to %+v, encoded back to %x", b, a, got)
		}
	})
}

// TestMessageFromAheadWaits: a node whose clock ran two hours ahead signed
// a message before it learnt the time. Receivers refuse it as created in
// the future without holding it against the sender, the sender keeps it,
// and the first reconciliation after the receiver's clock comes within
// message.MaxClockSkew of its created time delivers it: late, not lost.
func TestMessageFromAheadWaits(t *testing.T) {
	var later atomic.Int64 // how far the receiver's clock has moved on
	receiverClock := clock.New(clock.Options{System: func() time.Time { return time.Now().Add(time.Duration(later.Load())) }})
	receiver := startNode(t, t.TempDir(), newIdentity(t), Config{Clock: receiverClock})
	sender := startNode(t, t.TempDir(), newIdentity(t), Config{
		Clock: clock.New(clock.Options{System: skewed(2 * time.Hour)}), Peers: []string{receiver.addr()}})
	early := sender.id
	e, err := early.NewText("general", "written two hours ahead", time.Now().Add(2*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.st.PutOwn(context.Background(), e.Raw()); err != nil {
		t.Fatal(err)
	}
	// One whole session from here (the sender also starts its own when
	// it connects: "already reconciling" is retried).
	reconciled := func() {
		t.Helper()
		var err error
		eventually(t, 20*time.Second, "a reconciliation", func() bool {
			_, err = sender.mesh.ReconcileWith(context.Background(), receiver.mesh.Host().ID())
			return err == nil
		})
	}
	eventually(t, 20*time.Second, "connected", func() bool { return connected(sender, receiver) })
	reconciled()
	if ok, _ := receiver.st.Has(e.ID()); ok {
		t.Fatal("the receiver stored a message created two hours ahead of its clock")
	}
	if st := receiver.mesh.Status(); st.Misbehaving != 0 || !connected(sender, receiver) {
		t.Fatalf("a clock two hours ahead counted as misbehaviour: %+v", st)
	}
	later.Store(int64(time.Hour + time.Minute))
	reconciled()
	if ok, _ := receiver.st.Has(e.ID()); !ok {
		t.Fatal("once its time came, the message was not delivered")
	}
}
