package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"lifeline/message"
)

func seqs(recs []*Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func mustListAfter(t *testing.T, s *Store, q Query) Page {
	t.Helper()
	p, err := s.ListAfter(q)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The bug this sequence exists for: a message that arrives late, carrying
// a created time older than what a client has already seen, is found by
// paging on arrival and not by paging on created.
func TestLateArrival(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice, bob := identity(1), identity(2)
	general := message.ChannelID{1}
	mk := func(by *message.Identity, at time.Time, body string) *message.Envelope {
		return sign(t, by, message.Draft{Kind: message.KindText, Created: at.UnixMilli(), Channel: general, Body: []byte(body)})
	}
	// Bob wrote this a day ago while offline; it reaches this node only
	// after today's messages.
	late := mk(bob, clk.Now().Add(-24*time.Hour), "written yesterday")
	clk.Advance(time.Minute)
	var today []*message.Envelope
	for i := range 3 {
		clk.Advance(time.Second)
		e := mk(alice, clk.Now(), fmt.Sprint("today ", i))
		mustPut(t, s, e)
		today = append(today, e)
	}
	// The client has read everything so far.
	p := mustListAfter(t, s, Query{Channel: &general})
	if got := seqs(p.Records); fmt.Sprint(got) != "[1 2 3]" || p.Next != 3 || p.More || p.Last != 3 {
		t.Fatalf("first read: seqs %v, page %+v", got, p)
	}
	newestCreated := today[2].Created

	clk.Advance(time.Second)
	if r := mustPut(t, s, late); !r.New {
		t.Fatal("late message not new")
	}

	bySince, err := s.List(Query{Channel: &general, Since: newestCreated})
	if err != nil || len(bySince) != 0 {
		t.Fatalf("since paging: %d records, %v (created order cannot see it: that is the bug)", len(bySince), err)
	}
	for _, q := range []Query{{Channel: &general, After: p.Next}, {After: p.Next}} {
		recs, err := s.List(q)
		if err != nil || len(recs) != 1 || recs[0].Envelope.ID() != late.ID() || recs[0].Seq != 4 {
			t.Fatalf("after paging %+v: %v, %v", q, seqs(recs), err)
		}
	}
	rec, err := s.Get(late.ID())
	if err != nil || rec.Seq != 4 {
		t.Fatalf("get: %+v, %v", rec, err)
	}
	if _, err := s.List(Query{After: 1, Since: 1}); !errors.Is(err, ErrQuery) {
		t.Fatalf("After with Since: %v", err)
	}
	checkConsistent(t, s)
}

// Many messages created in the same millisecond: paging by created loses
// the rest of a page that ends among them, paging by arrival does not.
func TestAfterSameMillisecond(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice := identity(1)
	ch := message.ChannelID{7}
	var want []message.ID
	for i := range 23 {
		e := sign(t, alice, message.Draft{Kind: message.KindText, Created: clk.Now().UnixMilli(), Channel: ch, Body: fmt.Appendf(nil, "m%d", i)})
		mustPut(t, s, e)
		want = append(want, e.ID())
	}
	var got []message.ID
	after, pages := uint64(0), 0
	for {
		p := mustListAfter(t, s, Query{Channel: &ch, After: after, Limit: 4})
		pages++
		for i, r := range p.Records {
			if r.Seq <= after || (i > 0 && r.Seq <= p.Records[i-1].Seq) {
				t.Fatalf("page %d out of order: %v after %d", pages, seqs(p.Records), after)
			}
			got = append(got, r.Envelope.ID())
		}
		if p.Next < after {
			t.Fatalf("Next went back: %d < %d", p.Next, after)
		}
		after = p.Next
		if !p.More {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 6 {
		t.Fatalf("after paging: %d of %d messages in %d pages", len(got), len(want), pages)
	}
	// Since paging, for contrast: one page of 4, then nothing.
	first, _ := s.List(Query{Channel: &ch, Limit: 4, Since: clk.Now().UnixMilli() - 1})
	rest, _ := s.List(Query{Channel: &ch, Limit: 4, Since: first[len(first)-1].Envelope.Created})
	if len(first) != 4 || len(rest) != 0 {
		t.Fatalf("since paging: %d then %d", len(first), len(rest))
	}
}

// Seqs persist across reopen and are never reused, even when the newest
// messages are evicted or expired.
func TestSeqPersistsNeverReused(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	alice := identity(1)
	one := logicalSize(text(t, alice, "general", "m00", clk.Now()))
	opts := Options{Now: clk.Now, Quota: 2 * (one + 1)} // room for two
	ch := message.ChannelID{1}
	mk := func(i int, ttl time.Duration) *message.Envelope {
		clk.Advance(time.Second)
		return sign(t, alice, message.Draft{Kind: message.KindText, Priority: message.PriorityNormal, Created: clk.Now().UnixMilli(),
			TTL: ttl, Channel: ch, Body: fmt.Appendf(nil, "m%02d", i)})
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subscribe(16)
	for i := range 4 { // the third and fourth evict the first two
		mustPut(t, s, mk(i, time.Hour))
		if r, ok := recv(t, sub); !ok || r.Seq != uint64(i+1) {
			t.Fatalf("notified seq %d, want %d", r.Seq, i+1)
		}
	}
	sub.Close()
	if st := s.Stats(); st.Evicted != 2 || st.LastSeq != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Expire everything, so the newest seq is gone from the index too.
	clk.Advance(2 * time.Hour)
	if n, err := s.Expire(clk.Now()); err != nil || n != 2 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	checkConsistent(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.LastSeq != 4 || st.Messages != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
	e := mk(9, time.Hour)
	mustPut(t, s, e)
	if rec, err := s.Get(e.ID()); err != nil || rec.Seq != 5 {
		t.Fatalf("first seq after reopen: %+v, %v", rec, err)
	}
	// A client at seq 4, whose messages are all gone, still gets seq 5.
	if p := mustListAfter(t, s, Query{After: 4}); fmt.Sprint(seqs(p.Records)) != "[5]" || p.Next != 5 || p.Last != 5 {
		t.Fatalf("page %+v", p)
	}
	// A client from some other file, ahead of this one: told by Last.
	if p := mustListAfter(t, s, Query{After: 99}); len(p.Records) != 0 || p.Next != 99 || p.Last != 5 || p.More {
		t.Fatalf("page beyond the end %+v", p)
	}
	checkConsistent(t, s)
}

// After with a destination filter: only that destination, in arrival
// order; entries of others are skipped through the index alone, at most
// scanCap per call, and Next lets the client continue past them.
func TestAfterFiltered(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	s.scanCap = 10
	alice, bob := identity(1), identity(2)
	quiet, busy := message.ChannelID{1}, message.ChannelID{2}
	mkText := func(ch message.ChannelID, body string) *message.Envelope {
		clk.Advance(time.Millisecond)
		return sign(t, alice, message.Draft{Kind: message.KindText, Created: clk.Now().UnixMilli(), Channel: ch, Body: []byte(body)})
	}
	var wantQuiet []message.ID
	put := func(e *message.Envelope) { mustPut(t, s, e) }
	q1 := mkText(quiet, "q1")
	put(q1)
	wantQuiet = append(wantQuiet, q1.ID())
	for i := range 25 {
		put(mkText(busy, fmt.Sprint("b", i)))
	}
	dm := direct(t, alice, bob.Public(), "hi bob", clk.Now())
	put(dm)
	q2 := mkText(quiet, "q2")
	put(q2)
	wantQuiet = append(wantQuiet, q2.ID())
	// seqs: q1=1, busy 2..26, dm 27, q2 28.

	var got []message.ID
	var nexts []uint64
	after := uint64(0)
	for range 10 {
		p := mustListAfter(t, s, Query{Channel: &quiet, After: after, Limit: 100})
		got = append(got, ids(p.Records)...)
		nexts = append(nexts, p.Next)
		after = p.Next
		if !p.More {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantQuiet) || fmt.Sprint(nexts) != "[10 20 28]" {
		t.Fatalf("quiet channel: %d messages, Next %v", len(got), nexts)
	}
	// The recipient filter: just the DM.
	bk := bob.Public()
	if p := mustListAfter(t, s, Query{Recipient: &bk, After: 20}); len(p.Records) != 1 || p.Records[0].Envelope.ID() != dm.ID() || p.Next != 28 || p.More {
		t.Fatalf("recipient: %v, %+v", seqs(p.Records), p)
	}
	// Limit stops before the cap; Next is then the last record's seq.
	if p := mustListAfter(t, s, Query{Channel: &busy, Limit: 3}); fmt.Sprint(seqs(p.Records)) != "[2 3 4]" || p.Next != 4 || !p.More {
		t.Fatalf("busy: %v, %+v", seqs(p.Records), p)
	}
	// Limit reached exactly at the end: More is false.
	if p := mustListAfter(t, s, Query{After: 26, Limit: 2}); fmt.Sprint(seqs(p.Records)) != "[27 28]" || p.More {
		t.Fatalf("end: %+v", p)
	}
	if _, err := s.ListAfter(Query{Channel: &quiet, Recipient: &bk}); !errors.Is(err, ErrQuery) {
		t.Fatalf("both filters: %v", err)
	}
}

// A file of schema version 1 is refused with a message saying what to do.
func TestSchemaV1Refused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(metaVersion, []byte{1})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "schema version 1") || !strings.Contains(err.Error(), "move the file aside") {
		t.Fatalf("open v1: %v", err)
	}
}
