package lifeline

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"lifeline/clock"
	"lifeline/message"
	"lifeline/store"
)

// receiptRig is the receipt agent of a node over a real store, without
// the rest of the node: the test stores messages as links would and reads
// the receipts the agent stores.
type receiptRig struct {
	t  *testing.T
	st *store.Store
	me *message.Identity
	rc *receipts
}

func newReceiptRig(t *testing.T, vouched func(message.PublicKey) bool) *receiptRig {
	t.Helper()
	me, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), StoreFile), store.Options{Own: me.Public(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	n := &Node{cfg: Config{Now: time.Now}, clock: clock.New(clock.Options{}), log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	rc := &receipts{n: n, st: st, id: me, me: me.Public(), sub: st.Subscribe(receiptBuffer),
		acked: make(map[message.ID]bool), vouched: vouched}
	return &receiptRig{t: t, st: st, me: me, rc: rc}
}

// run starts the agent's loop until the test ends.
func (g *receiptRig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.rc.run(ctx); close(done) }()
	g.t.Cleanup(func() { cancel(); <-done })
}

// dm stores a direct message from author to the node, as from a link.
func (g *receiptRig) dm(author *message.Identity, text string) message.ID {
	g.t.Helper()
	e, err := author.NewDirect(rand.Reader, g.me.Public(), text, message.PriorityNormal, time.Now(), 0)
	if err == nil {
		_, err = g.st.Put(g.t.Context(), e.Raw())
	}
	if err != nil {
		g.t.Fatal(err)
	}
	return e.ID()
}

// write stores a direct message of the node's to k, as the API does.
func (g *receiptRig) write(k message.PublicKey) {
	g.t.Helper()
	e, err := g.me.NewDirect(rand.Reader, k, "are you safe?", message.PriorityNormal, time.Now(), 0)
	if err == nil {
		_, err = g.st.PutOwn(g.t.Context(), e.Raw())
	}
	if err != nil {
		g.t.Fatal(err)
	}
}

// acked returns the ids the node's stored receipts to k acknowledge.
func (g *receiptRig) acked(k message.PublicKey) map[message.ID]bool {
	g.t.Helper()
	recs, err := g.st.List(store.Query{Recipient: &k, Limit: store.MaxLimit})
	if err != nil {
		g.t.Fatal(err)
	}
	out := map[message.ID]bool{}
	for _, rec := range recs {
		if e := rec.Envelope; e.Kind == message.KindReceipt && e.Author == g.me.Public() {
			for _, id := range e.ReceiptIDs() {
				out[id] = true
			}
		}
	}
	return out
}

// waitAcked polls until the node's receipts to k acknowledge id.
func (g *receiptRig) waitAcked(k message.PublicKey, id message.ID) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !g.acked(k)[id] {
		if time.Now().After(deadline) {
			g.t.Fatalf("no receipt to %s for %s", k, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newIdentity(t *testing.T) *message.Identity {
	t.Helper()
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestReceiptsOnlyForCorrespondents: the node acknowledges a direct message
// from a key it wrote to, or one the operator vouched for, and nothing from
// throwaway keys, even a hundred of them at once (more than the lookups of
// one batch); their messages are stored all the same.
func TestReceiptsOnlyForCorrespondents(t *testing.T) {
	member, friend := newIdentity(t), newIdentity(t)
	g := newReceiptRig(t, func(k message.PublicKey) bool { return k == member.Public() })
	g.run()
	g.write(friend.Public())

	var strangers []*message.Identity
	var theirs []message.ID
	stranger := func() {
		s := newIdentity(t)
		strangers = append(strangers, s)
		theirs = append(theirs, g.dm(s, "are you there?"))
	}
	stranger()
	fromFriend := g.dm(friend, "yes, at the school")
	fromMember := g.dm(member, "the kit is yours")
	for range 100 {
		stranger()
	}
	// The agent takes messages in the order they were stored: once the
	// last one is acknowledged, every stranger's has been looked at.
	last := g.dm(friend, "still there?")
	g.waitAcked(friend.Public(), last)
	if !g.acked(friend.Public())[fromFriend] {
		t.Errorf("the correspondent's first message has no receipt")
	}
	g.waitAcked(member.Public(), fromMember)
	for i, s := range strangers {
		if got := g.acked(s.Public()); len(got) != 0 {
			t.Fatalf("stranger %d got a receipt for %v", i, got)
		}
		if ok, err := g.st.Has(theirs[i]); err != nil || !ok {
			t.Fatalf("stranger %d's message is not stored: %v %v", i, ok, err)
		}
	}
	// A stranger the operator then writes to is a correspondent from then on.
	g.write(strangers[0].Public())
	next := g.dm(strangers[0], "thank you")
	g.waitAcked(strangers[0].Public(), next)
	if g.acked(strangers[0].Public())[theirs[0]] {
		t.Errorf("the message from before the node wrote was acknowledged later")
	}
}

// TestReceiptCatchUpOnlyForCorrespondents: the scan at start acknowledges
// what a correspondent sent while the node was down, and nothing of a
// stranger's.
func TestReceiptCatchUpOnlyForCorrespondents(t *testing.T) {
	friend, stranger := newIdentity(t), newIdentity(t)
	g := newReceiptRig(t, nil)
	g.write(friend.Public())
	fromStranger := g.dm(stranger, "hello?")
	fromFriend := g.dm(friend, "we are fine")

	// catchUp stores its receipts before it returns: nothing to wait for.
	g.rc.catchUp(t.Context())
	if !g.acked(friend.Public())[fromFriend] {
		t.Errorf("the correspondent's message has no receipt")
	}
	if got := g.acked(stranger.Public()); len(got) != 0 || g.rc.acked[fromStranger] {
		t.Errorf("the stranger got a receipt: %v", got)
	}
}
