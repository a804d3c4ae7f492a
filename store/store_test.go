package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"lifeline/message"
)

func TestPutGetHas(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	e := text(t, alice, "general", "hello", clk.Now())
	clk.Advance(time.Second)

	r := mustPut(t, s, e)
	if !r.New || r.ID != e.ID() {
		t.Fatalf("first put = %+v, want new %s", r, e.ID())
	}
	if r := mustPut(t, s, e); r.New || r.ID != e.ID() {
		t.Fatalf("duplicate put = %+v, want not new", r)
	}
	if r, err := s.PutOwn(t.Context(), e.Raw()); err != nil || r.New {
		t.Fatalf("duplicate PutOwn = %+v, %v", r, err)
	}
	rec, err := s.Get(e.ID())
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Envelope.Raw()) != string(e.Raw()) || rec.Received != clk.Now().UnixMilli() || rec.Delivered {
		t.Fatalf("record = %+v", rec)
	}
	if !rec.Own {
		t.Fatal("duplicate PutOwn did not mark the message own")
	}
	if ok, err := s.Has(e.ID()); err != nil || !ok {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	missing := message.ID{1}
	if ok, err := s.Has(missing); err != nil || ok {
		t.Fatalf("Has(missing) = %v, %v", ok, err)
	}
	if _, err := s.Get(missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) err = %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Messages != 1 || st.Bytes != logicalSize(e) {
		t.Fatalf("stats = %+v", st)
	}
	checkConsistent(t, s)
}

func TestPutInvalid(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)

	tampered := append([]byte(nil), text(t, alice, "general", "hello", clk.Now()).Raw()...)
	tampered[len(tampered)-message.SignatureSize-1] ^= 1 // last body byte
	expired := sign(t, alice, message.Draft{Kind: message.KindText, Created: clk.Now().Add(-2 * time.Minute).UnixMilli(),
		TTL: time.Minute, Channel: message.ChannelID{1}, Body: []byte("old")})
	future := text(t, alice, "general", "later", clk.Now().Add(message.MaxClockSkew+time.Minute))

	for _, c := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"signature", tampered, message.ErrSignature},
		{"expired", expired.Raw(), message.ErrExpired},
		{"future", future.Raw(), message.ErrFuture},
		{"truncated", tampered[:20], message.ErrTruncated},
		{"empty", nil, message.ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Put(t.Context(), c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			_, err = s.PutOwn(t.Context(), c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("PutOwn err = %v, want %v", err, c.want)
			}
		})
	}
	if st := s.Stats(); st.Messages != 0 {
		t.Fatalf("stored %d invalid messages", st.Messages)
	}
	if all, _ := s.List(Query{}); len(all) != 0 {
		t.Fatalf("list has %d", len(all))
	}
	checkConsistent(t, s)
}

func ids(recs []*Record) []message.ID {
	out := make([]message.ID, len(recs))
	for i, r := range recs {
		out[i] = r.Envelope.ID()
	}
	return out
}

func envIDs(es []*message.Envelope) []message.ID {
	out := make([]message.ID, len(es))
	for i, e := range es {
		out[i] = e.ID()
	}
	return out
}

func TestList(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice, bob := identity(1), identity(2)
	general, _ := message.Channel("general")
	other, _ := message.Channel("other")

	// Created times go backwards for half of them, so that ordering by
	// created and ordering by arrival differ.
	var onGeneral, onOther, toBob, all []*message.Envelope
	for i := range 20 {
		at := t0.Add(time.Duration((i*7)%20) * time.Second)
		g := text(t, alice, "general", fmt.Sprint("g", i), at)
		o := text(t, alice, "other", fmt.Sprint("o", i), at)
		d := direct(t, alice, bob.Public(), fmt.Sprint("d", i), at)
		for _, e := range []*message.Envelope{g, o, d} {
			mustPut(t, s, e)
		}
		onGeneral, onOther, toBob = append(onGeneral, g), append(onOther, o), append(toBob, d)
		all = append(all, g, o, d)
	}
	receipt, err := bob.NewReceipt(alice.Public(), []message.ID{toBob[0].ID()}, t0.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, receipt)
	toAlice := []*message.Envelope{receipt}
	all = append(all, receipt)

	order := func(es []*message.Envelope) []*message.Envelope {
		es = slices.Clone(es)
		slices.SortFunc(es, func(a, b *message.Envelope) int {
			if a.Created != b.Created {
				return int(a.Created - b.Created)
			}
			ai, bi := a.ID(), b.ID()
			return slices.Compare(ai[:], bi[:])
		})
		return es
	}
	newest := func(es []*message.Envelope, n int) []message.ID {
		es = order(es)
		return envIDs(es[max(0, len(es)-n):])
	}
	after := func(es []*message.Envelope, since int64, n int) []message.ID {
		var out []*message.Envelope
		for _, e := range order(es) {
			if e.Created > since && len(out) < n {
				out = append(out, e)
			}
		}
		return envIDs(out)
	}
	bobKey, aliceKey := bob.Public(), alice.Public()
	since := t0.Add(12 * time.Second).UnixMilli()
	for _, c := range []struct {
		name string
		q    Query
		want []message.ID
	}{
		{"all newest", Query{}, newest(all, 100)},
		{"all newest 5", Query{Limit: 5}, newest(all, 5)},
		{"channel newest", Query{Channel: &general, Limit: 4}, newest(onGeneral, 4)},
		{"other channel", Query{Channel: &other}, newest(onOther, 100)},
		{"recipient", Query{Recipient: &bobKey, Limit: 3}, newest(toBob, 3)},
		{"receipts", Query{Recipient: &aliceKey}, envIDs(toAlice)},
		{"channel since", Query{Channel: &general, Since: since, Limit: 3}, after(onGeneral, since, 3)},
		{"all since", Query{Since: since}, after(all, since, 100)},
		{"since beyond", Query{Since: t0.Add(time.Hour).UnixMilli()}, []message.ID{}},
		{"unknown channel", Query{Channel: &message.ChannelID{9}}, []message.ID{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.List(c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), c.want) {
				t.Fatalf("got %d ids %v\nwant %d %v", len(got), ids(got), len(c.want), c.want)
			}
		})
	}
	if _, err := s.List(Query{Channel: &general, Recipient: &bobKey}); !errors.Is(err, ErrQuery) {
		t.Fatalf("exclusive query err = %v", err)
	}
}

func TestListLimits(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true})
	alice := identity(1)
	var wg sync.WaitGroup
	for i := range 1100 {
		e := text(t, alice, "general", fmt.Sprint(i), t0.Add(time.Duration(i)*time.Millisecond))
		wg.Go(func() {
			if _, err := s.Put(context.Background(), e.Raw()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, c := range []struct{ limit, want int }{{0, DefaultLimit}, {-1, DefaultLimit}, {5000, MaxLimit}, {1000, 1000}, {7, 7}} {
		got, err := s.List(Query{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want {
			t.Fatalf("limit %d gave %d, want %d", c.limit, len(got), c.want)
		}
		if last := got[len(got)-1].Envelope.Created; last != t0.Add(1099*time.Millisecond).UnixMilli() {
			t.Fatalf("limit %d: newest is %d", c.limit, last)
		}
	}
}

func TestItems(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now, NoSync: true})
	alice := identity(1)
	var es []*message.Envelope
	var wg sync.WaitGroup
	// More than itemsChunk, with equal created times so IDs break ties.
	for i := range 2*itemsChunk + 37 {
		e := text(t, alice, "general", fmt.Sprint(i), t0.Add(time.Duration(i/3)*time.Millisecond))
		es = append(es, e)
		wg.Go(func() {
			if _, err := s.Put(context.Background(), e.Raw()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	slices.SortFunc(es, func(a, b *message.Envelope) int {
		if a.Created != b.Created {
			return int(a.Created - b.Created)
		}
		ai, bi := a.ID(), b.ID()
		return slices.Compare(ai[:], bi[:])
	})
	walk := func(created int64, id message.ID, max int) []message.ID {
		var out []message.ID
		err := s.Items(created, id, func(c int64, id message.ID) bool {
			out = append(out, id)
			return len(out) < max
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := walk(0, message.ID{}, 1<<30); !slices.Equal(got, envIDs(es)) {
		t.Fatalf("full walk: %d items, want %d in order", len(got), len(es))
	}
	// Start exactly at an item: it is included.
	mid := es[600]
	if got := walk(mid.Created, mid.ID(), 10); !slices.Equal(got, envIDs(es[600:610])) {
		t.Fatal("walk from an existing item")
	}
	// Start between items: the next one comes first.
	next := mid.ID()
	next[31]++ // may wrap; the oracle below does not care
	want := slices.IndexFunc(es, func(e *message.Envelope) bool {
		id := e.ID()
		return e.Created > mid.Created || (e.Created == mid.Created && slices.Compare(id[:], next[:]) >= 0)
	})
	if got := walk(mid.Created, next, 1); len(got) != 1 || got[0] != es[want].ID() {
		t.Fatal("walk from between items")
	}
	if got := walk(t0.Add(time.Hour).UnixMilli(), message.ID{}, 10); len(got) != 0 {
		t.Fatal("walk past the end")
	}
}

func TestExpire(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	mk := func(ttl time.Duration, body string) *message.Envelope {
		return sign(t, alice, message.Draft{Kind: message.KindText, Created: clk.Now().UnixMilli(), TTL: ttl,
			Channel: message.ChannelID{1}, Body: []byte(body)})
	}
	short, hour, long := mk(time.Minute, "a"), mk(time.Hour, "b"), mk(0, "c")
	for _, e := range []*message.Envelope{short, hour, long} {
		mustPut(t, s, e)
	}
	if n, err := s.Expire(clk.Now()); err != nil || n != 0 {
		t.Fatalf("expire now = %d, %v", n, err)
	}
	clk.Advance(time.Minute) // short expires exactly now: Expires() <= now
	if n, err := s.Expire(clk.Now()); err != nil || n != 1 {
		t.Fatalf("expire +1m = %d, %v", n, err)
	}
	if _, err := s.Get(short.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired message still there: %v", err)
	}
	clk.Advance(24 * time.Hour)
	if n, err := s.Expire(clk.Now()); err != nil || n != 1 {
		t.Fatalf("expire +1d = %d, %v", n, err)
	}
	if ok, _ := s.Has(long.ID()); !ok {
		t.Fatal("default-TTL message expired after a day")
	}
	if st := s.Stats(); st.Messages != 1 || st.Expired != 2 || st.Bytes != logicalSize(long) {
		t.Fatalf("stats = %+v", st)
	}
	checkConsistent(t, s)
}

func TestQuotaEviction(t *testing.T) {
	clk := newClock()
	self := identity(9)
	alice := identity(1)
	mk := func(p message.Priority, kind message.Kind, by *message.Identity) *message.Envelope {
		clk.Advance(time.Second)
		// Equal sizes: bodies are 8 bytes.
		return sign(t, by, message.Draft{Kind: kind, Priority: p, Created: clk.Now().UnixMilli(),
			Channel: message.ChannelID{1}, Body: fmt.Appendf(nil, "%08d", clk.Now().Unix()%1e8)})
	}
	one := logicalSize(mk(0, message.KindText, alice))
	s := openTemp(t, Options{Now: clk.Now, Own: self.Public(), Quota: 4 * one})

	alert := mk(message.PriorityAlert, message.KindAlert, alice)
	ownOld := mk(message.PriorityLow, message.KindText, alice) // becomes own through PutOwn
	highOld := mk(message.PriorityHigh, message.KindText, alice)
	lowNew := mk(message.PriorityLow, message.KindText, alice)
	mustPut(t, s, alert)
	if _, err := s.PutOwn(t.Context(), ownOld.Raw()); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, highOld)
	mustPut(t, s, lowNew)
	checkConsistent(t, s)

	present := func(want ...*message.Envelope) {
		t.Helper()
		got, err := s.List(Query{})
		if err != nil {
			t.Fatal(err)
		}
		var w []message.ID
		for _, e := range want {
			w = append(w, e.ID())
		}
		slices.SortFunc(w, func(a, b message.ID) int { return slices.Compare(a[:], b[:]) })
		g := ids(got)
		slices.SortFunc(g, func(a, b message.ID) int { return slices.Compare(a[:], b[:]) })
		if !slices.Equal(g, w) {
			t.Fatalf("stored %d messages, want %d", len(g), len(w))
		}
		checkConsistent(t, s)
	}

	// Full. A normal message evicts the low one, though it is the newest:
	// priority first.
	normal1 := mk(message.PriorityNormal, message.KindText, alice)
	mustPut(t, s, normal1)
	present(alert, ownOld, highOld, normal1)

	// Another normal one evicts the older normal one.
	normal2 := mk(message.PriorityNormal, message.KindText, alice)
	mustPut(t, s, normal2)
	present(alert, ownOld, highOld, normal2)

	// A low message cannot evict anything more important: ErrQuota, and
	// nothing is evicted.
	low := mk(message.PriorityLow, message.KindText, alice)
	if _, err := s.Put(t.Context(), low.Raw()); !errors.Is(err, ErrQuota) {
		t.Fatalf("low put err = %v, want ErrQuota", err)
	}
	present(alert, ownOld, highOld, normal2)

	// A message signed by Options.Own counts as own: protected, and it
	// evicts the normal, then the high message.
	mine1, mine2 := mk(message.PriorityNormal, message.KindText, self), mk(message.PriorityNormal, message.KindText, self)
	mustPut(t, s, mine1)
	mustPut(t, s, mine2)
	present(alert, ownOld, mine1, mine2)
	if rec, _ := s.Get(mine1.ID()); !rec.Own {
		t.Fatal("message signed by Options.Own not marked own")
	}

	// Only alerts and own undelivered messages left: a high message gets
	// ErrQuota.
	if _, err := s.Put(t.Context(), mk(message.PriorityHigh, message.KindText, alice).Raw()); !errors.Is(err, ErrQuota) {
		t.Fatalf("high put err = %v, want ErrQuota", err)
	}
	// A stranger's alert never evicts members' messages or this node's
	// undelivered ones, whatever their priority: it evicts the older
	// stranger's alert.
	alert2 := mk(message.PriorityAlert, message.KindAlert, alice)
	mustPut(t, s, alert2)
	present(alert2, ownOld, mine1, mine2)

	st := s.Stats()
	if st.Evicted != 5 || st.Bytes != 4*one || st.Quota != 4*one {
		t.Fatalf("stats = %+v", st)
	}
	// A message larger than the whole quota.
	huge := sign(t, alice, message.Draft{Kind: message.KindAlert, Priority: message.PriorityAlert, Created: clk.Now().UnixMilli(),
		Channel: message.ChannelID{1}, Body: make([]byte, 4*one)})
	for i := range huge.Body {
		huge.Body[i] = 'x'
	}
	huge = sign(t, alice, message.Draft{Kind: message.KindAlert, Priority: message.PriorityAlert, Created: clk.Now().UnixMilli(),
		Channel: message.ChannelID{1}, Body: huge.Body})
	if _, err := s.Put(t.Context(), huge.Raw()); !errors.Is(err, ErrQuota) {
		t.Fatalf("huge put err = %v, want ErrQuota", err)
	}
	present(alert2, ownOld, mine1, mine2)
}

// TestStrangersAlertFlood: priority is whatever an author claims and keys
// cost nothing, so alerts from any number of fresh keys evict strangers'
// messages only, never members' (Options.Members) or this node's, and a
// member's ordinary message evicts a stranger's alert.
func TestStrangersAlertFlood(t *testing.T) {
	clk := newClock()
	self, member := identity(9), identity(5)
	msg := func(by *message.Identity, p message.Priority, kind message.Kind) *message.Envelope {
		clk.Advance(time.Millisecond)
		return sign(t, by, message.Draft{Kind: kind, Priority: p, Created: clk.Now().UnixMilli(),
			Channel: message.ChannelID{1}, Body: fmt.Appendf(nil, "%08d", clk.Now().UnixMilli()%1e8)})
	}
	one := logicalSize(msg(self, message.PriorityNormal, message.KindText))
	s := openTemp(t, Options{Now: clk.Now, Own: self.Public(), Quota: 100 * one,
		Members: func(k message.PublicKey) bool { return k == member.Public() }})

	var kept []*message.Envelope
	for i := range 30 {
		e := msg(member, message.PriorityLow, message.KindText)
		if i%3 == 0 {
			e = msg(self, message.PriorityNormal, message.KindText)
		}
		mustPut(t, s, e)
		kept = append(kept, e)
	}
	strangerText := msg(identity(100), message.PriorityNormal, message.KindText)
	mustPut(t, s, strangerText)
	// 620 alerts from fresh keys: the quota holds 100.
	var refused int
	for i := range 620 {
		_, err := s.Put(t.Context(), msg(identity(byte(101+i%150)), message.PriorityAlert, message.KindAlert).Raw())
		if errors.Is(err, ErrQuota) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range kept {
		rec, err := s.Get(e.ID())
		if err != nil {
			t.Fatalf("a member's message was evicted by strangers' alerts: %v", err)
		}
		if !rec.Member {
			t.Fatal("a member's message not marked as such")
		}
	}
	if ok, _ := s.Has(strangerText.ID()); ok {
		t.Fatal("a stranger's alert did not evict a stranger's ordinary message")
	}
	st := s.Stats()
	if refused != 0 || st.Bytes != st.Quota {
		t.Fatalf("%d alerts refused, stats %+v: strangers' alerts should evict strangers' older alerts", refused, st)
	}
	// A member's low-priority message still finds room: it evicts a
	// stranger's alert.
	late := msg(member, message.PriorityLow, message.KindText)
	mustPut(t, s, late)
	if after := s.Stats(); after.Evicted != st.Evicted+1 {
		t.Fatalf("evicted %d, want one more than %d", after.Evicted, st.Evicted)
	}
	checkConsistent(t, s)
}

func TestReceiptsMarkDelivered(t *testing.T) {
	clk := newClock()
	self, alice, bob, carol := identity(9), identity(1), identity(2), identity(3)
	s := openTemp(t, Options{Now: clk.Now, Own: self.Public()})

	post := text(t, self, "general", "post", clk.Now())
	secret := direct(t, self, bob.Public(), "for bob", clk.Now())
	for _, e := range []*message.Envelope{post, secret} {
		if _, err := s.PutOwn(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	relayed := direct(t, alice, bob.Public(), "alice to bob, relayed here", clk.Now())
	mustPut(t, s, relayed)
	clk.Advance(time.Second)

	undelivered := func(what string, es ...*message.Envelope) {
		t.Helper()
		for _, e := range es {
			if rec, err := s.Get(e.ID()); err != nil || rec.Delivered {
				t.Fatalf("%s: %s %s delivered (%v)", what, e.Kind, e.ID(), err)
			}
		}
	}
	// A channel post is never delivered, not even by a receipt from someone
	// a channel reaches; a direct message not by a third party's receipt.
	r1, _ := carol.NewReceipt(self.Public(), []message.ID{secret.ID(), post.ID(), {7}}, clk.Now())
	mustPut(t, s, r1)
	r2, _ := bob.NewReceipt(self.Public(), []message.ID{post.ID()}, clk.Now())
	mustPut(t, s, r2)
	undelivered("third party's receipt, receipt for a channel post", secret, post, relayed)
	if rec, _ := s.Get(post.ID()); !rec.Own {
		t.Fatal("own channel post lost its own flag")
	}
	// The recipient's receipt addressed to someone else than the author does
	// not count either.
	r3, _ := bob.NewReceipt(carol.Public(), []message.ID{secret.ID(), relayed.ID()}, clk.Now())
	mustPut(t, s, r3)
	undelivered("receipt addressed to another key", secret, relayed)

	// The recipient's receipt to the author marks the direct message
	// delivered, also one merely relayed through this node.
	r4, _ := bob.NewReceipt(self.Public(), []message.ID{secret.ID(), post.ID()}, clk.Now())
	mustPut(t, s, r4)
	if rec, _ := s.Get(secret.ID()); !rec.Delivered || !rec.Own {
		t.Fatalf("direct message after its recipient's receipt: %+v", rec)
	}
	r5, _ := bob.NewReceipt(alice.Public(), []message.ID{relayed.ID()}, clk.Now())
	mustPut(t, s, r5)
	if rec, _ := s.Get(relayed.ID()); !rec.Delivered || rec.Own {
		t.Fatalf("relayed direct message after its recipient's receipt: %+v", rec)
	}
	undelivered("recipient's receipt for a channel post", post)
	checkConsistent(t, s)
}

// storedClass returns the eviction class of a stored message, read from the
// evict index (not computed), and fails if it has no single entry.
func storedClass(t *testing.T, s *Store, id message.ID) byte {
	t.Helper()
	s.settle()
	var classes []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvict).ForEach(func(k, _ []byte) error {
			if len(k) == 41 && string(k[9:]) == string(id[:]) {
				classes = append(classes, k[0])
			}
			return nil
		})
	})
	if err != nil || len(classes) != 1 {
		t.Fatalf("evict entries for %s: %v, %v", id, classes, err)
	}
	return classes[0]
}

// TestForgedReceiptChangesNothing: receipts signed by a third party mark
// nothing delivered and move nothing in the eviction order, whatever they
// acknowledge and whoever they are addressed to.
func TestForgedReceiptChangesNothing(t *testing.T) {
	clk := newClock()
	self, alice, bob, mallory := identity(9), identity(1), identity(2), identity(4)
	s := openTemp(t, Options{Now: clk.Now, Own: self.Public()})

	post := text(t, self, "general", "own post", clk.Now())
	alert, err := self.NewAlert("general", "own alert", clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	dm := direct(t, self, bob.Public(), "for bob", clk.Now())
	for _, e := range []*message.Envelope{post, alert, dm} {
		if _, err := s.PutOwn(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	theirs := text(t, alice, "general", "alice's post", clk.Now())
	relayed := direct(t, alice, bob.Public(), "alice to bob", clk.Now())
	mustPut(t, s, theirs)
	mustPut(t, s, relayed)
	all := []*message.Envelope{post, alert, dm, theirs, relayed}
	before := make(map[message.ID]byte)
	for _, e := range all {
		before[e.ID()] = storedClass(t, s, e.ID())
	}
	if before[post.ID()] < 4 || before[dm.ID()] < 4 {
		t.Fatalf("own undelivered messages not protected: %v", before)
	}

	clk.Advance(time.Second)
	ids := []message.ID{post.ID(), alert.ID(), dm.ID(), theirs.ID(), relayed.ID()}
	for _, to := range []message.PublicKey{self.Public(), alice.Public(), bob.Public(), mallory.Public()} {
		r, err := mallory.NewReceipt(to, ids, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, r)
	}
	for _, e := range all {
		rec, err := s.Get(e.ID())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Delivered {
			t.Errorf("forged receipt marked %s %s delivered", e.Kind, e.ID())
		}
		if got := storedClass(t, s, e.ID()); got != before[e.ID()] {
			t.Errorf("forged receipt moved %s %s from eviction class %d to %d", e.Kind, e.ID(), before[e.ID()], got)
		}
	}
	checkConsistent(t, s)
}

// TestOwnReceiptsEvictable: the node's own receipts are ordinary
// low-priority messages for eviction, so a quota full of them (an attacker
// sending direct messages from throwaway keys makes the node sign them)
// still takes new messages. A stranger's receipt claiming alert priority is
// not protected either.
func TestOwnReceiptsEvictable(t *testing.T) {
	clk := newClock()
	self, alice, mallory := identity(9), identity(1), identity(4)
	receipt := func(by *message.Identity, p message.Priority) *message.Envelope {
		clk.Advance(time.Second)
		throwaway := identity(byte(100 + clk.Now().Unix()%100))
		id := message.ID{byte(clk.Now().Unix())}
		return sign(t, by, message.Draft{Kind: message.KindReceipt, Priority: p, Created: clk.Now().UnixMilli(),
			Recipient: throwaway.Public(), Body: id[:]})
	}
	fill := []*message.Envelope{
		receipt(self, message.PriorityLow),
		receipt(self, message.PriorityLow),
		receipt(mallory, message.PriorityAlert),
		receipt(self, message.PriorityLow),
	}
	one := logicalSize(fill[0])
	s := openTemp(t, Options{Now: clk.Now, Own: self.Public(), Quota: 4 * one})
	// Both ways the node's receipts can be own: PutOwn, and signed by
	// Options.Own.
	if _, err := s.PutOwn(t.Context(), fill[0].Raw()); err != nil {
		t.Fatal(err)
	}
	for _, e := range fill[1:] {
		mustPut(t, s, e)
	}
	for _, e := range fill {
		if rec, _ := s.Get(e.ID()); rec.Own != (e.Author == self.Public()) {
			t.Fatalf("receipt by %s: own = %v", e.Author, rec.Own)
		}
		if c := storedClass(t, s, e.ID()); c != 0 {
			t.Fatalf("receipt by %s (priority %s) in eviction class %d, want 0", e.Author, e.Priority, c)
		}
	}
	if st := s.Stats(); st.Bytes != st.Quota {
		t.Fatalf("stats = %+v, want a full quota", st)
	}

	// A normal message as large as the whole quota evicts every receipt.
	clk.Advance(time.Second)
	probe := sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal,
		Created: clk.Now().UnixMilli(), Channel: message.ChannelID{1}, Body: []byte("x")})
	big := sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal,
		Created: clk.Now().UnixMilli(), Channel: message.ChannelID{1},
		Body: []byte(strings.Repeat("x", int(4*one-logicalSize(probe))+1))})
	if logicalSize(big) != 4*one {
		t.Fatalf("big is %d bytes, want %d", logicalSize(big), 4*one)
	}
	if _, err := s.Put(t.Context(), big.Raw()); err != nil {
		t.Fatalf("normal message into a quota full of receipts: %v", err)
	}
	for _, e := range fill {
		if ok, _ := s.Has(e.ID()); ok {
			t.Fatalf("receipt by %s not evicted", e.Author)
		}
	}
	if st := s.Stats(); st.Evicted != 4 || st.Messages != 1 {
		t.Fatalf("stats = %+v", st)
	}
	checkConsistent(t, s)
}

func TestDeliveredOwnBecomesEvictable(t *testing.T) {
	clk := newClock()
	self, alice, bob := identity(9), identity(1), identity(2)
	mk := func(by *message.Identity, p message.Priority) *message.Envelope {
		clk.Advance(time.Second)
		return sign(t, by, message.Draft{Kind: message.KindText, Priority: p, Created: clk.Now().UnixMilli(),
			Channel: message.ChannelID{1}, Body: []byte("12345678")})
	}
	clk.Advance(time.Second)
	mine := direct(t, self, bob.Public(), "12345678", clk.Now())
	receipt, _ := bob.NewReceipt(self.Public(), []message.ID{mine.ID()}, clk.Now().Add(time.Hour))
	normal, high := mk(alice, message.PriorityNormal), mk(alice, message.PriorityHigh)
	s := openTemp(t, Options{Now: clk.Now, Quota: logicalSize(mine) + logicalSize(normal) + logicalSize(high) + logicalSize(receipt)})

	if _, err := s.PutOwn(t.Context(), mine.Raw()); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, normal)
	mustPut(t, s, high)
	clk.Advance(time.Hour)
	mustPut(t, s, receipt) // fills the quota exactly
	if st := s.Stats(); st.Bytes != st.Quota || st.Evicted != 0 {
		t.Fatalf("stats = %+v", st)
	}
	// Delivered, mine is an ordinary normal message, and the oldest: a new
	// normal message, larger than the receipt, evicts the receipt (low),
	// then mine.
	clk.Advance(time.Second)
	newer := sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal, Created: clk.Now().UnixMilli(),
		Channel: message.ChannelID{1}, Body: []byte(strings.Repeat("n", 8+60))})
	if n := logicalSize(newer); n <= logicalSize(receipt) || n > logicalSize(receipt)+logicalSize(mine) {
		t.Fatal("test needs a message larger than the receipt, not larger than the receipt and mine")
	}
	mustPut(t, s, newer)
	for _, e := range []*message.Envelope{mine, receipt} {
		if ok, _ := s.Has(e.ID()); ok {
			t.Fatalf("%s not evicted", e.Kind)
		}
	}
	for _, e := range []*message.Envelope{normal, high, newer} {
		if ok, _ := s.Has(e.ID()); !ok {
			t.Fatal("wrong message evicted")
		}
	}
	checkConsistent(t, s)
}

// TestMarkLeft: a link's word that a message left is kept, survives a
// reopen, is idempotent, skips what is not stored, and changes nothing
// else about the message (its eviction class above all).
func TestMarkLeft(t *testing.T) {
	clk := newClock()
	self, bob := identity(9), identity(2)
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now, Own: self.Public()})
	if err != nil {
		t.Fatal(err)
	}
	dm := direct(t, self, bob.Public(), "for bob", clk.Now())
	if _, err := s.PutOwn(t.Context(), dm.Raw()); err != nil {
		t.Fatal(err)
	}
	other := text(t, bob, "general", "from bob", clk.Now())
	mustPut(t, s, other)
	if _, err := s.Get(other.ID()); err != nil { // what links do: read it first
		t.Fatal(err)
	}
	if rec, _ := s.Get(dm.ID()); rec.Left {
		t.Fatal("a new message is marked left")
	}
	if err := s.MarkLeft(t.Context(), []message.ID{dm.ID(), other.ID(), {7}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkLeft(t.Context(), []message.ID{dm.ID()}); err != nil {
		t.Fatal("marking twice:", err)
	}
	for _, e := range []*message.Envelope{dm, other} {
		rec, err := s.Get(e.ID())
		if err != nil || !rec.Left {
			t.Fatalf("%s after MarkLeft: %+v, %v", e.Kind, rec, err)
		}
	}
	if rec, _ := s.Get(dm.ID()); !rec.Own || rec.Delivered {
		t.Fatalf("MarkLeft changed other flags: %+v", rec)
	}
	if has, _ := s.Has(message.ID{7}); has {
		t.Fatal("MarkLeft of an unknown id stored something")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{Now: clk.Now, Own: self.Public()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rec, err := s2.Get(dm.ID()); err != nil || !rec.Left || !rec.Own {
		t.Fatalf("after reopening: %+v, %v", rec, err)
	}
}

// TestListBefore pages back from the newest message to the first, by
// (created, id), without losing messages that share a millisecond.
func TestListBefore(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	var want []message.ID
	for i := range 7 {
		// Pairs share a millisecond: 0,0,1,1,2,2,3.
		e := text(t, alice, "general", fmt.Sprintf("m%d", i), clk.Now().Add(time.Duration(i/2)*time.Millisecond))
		mustPut(t, s, e)
		want = append(want, e.ID())
	}
	mustPut(t, s, text(t, alice, "other", "elsewhere", clk.Now()))
	c, _ := message.Channel("general")
	var got []*Record
	q := Query{Channel: &c, Limit: 2}
	for range 10 {
		page, err := s.List(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(page, got...)
		oldest := page[0].Envelope
		q.Before, q.BeforeID = oldest.Created, oldest.ID()
	}
	if len(got) != len(want) {
		t.Fatalf("paged back through %d messages, want %d", len(got), len(want))
	}
	seen := map[message.ID]bool{}
	for i, r := range got {
		seen[r.Envelope.ID()] = true
		if i > 0 && got[i-1].Envelope.Created > r.Envelope.Created {
			t.Fatal("pages out of order")
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("message %s missed while paging back", id)
		}
	}
	if _, err := s.List(Query{Before: 5, Since: 1}); !errors.Is(err, ErrQuery) {
		t.Fatalf("Before with Since: %v", err)
	}
}
