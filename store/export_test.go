package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"lifeline/message"
)

// exported collects what an export walk gives, in order.
func exported(t *testing.T, walk func(context.Context, ExportQuery, func(*Record) error) error, q ExportQuery) []message.ID {
	t.Helper()
	var ids []message.ID
	last := int64(-1)
	err := walk(t.Context(), q, func(r *Record) error {
		ids = append(ids, r.Envelope.ID())
		if r.Envelope.Created < last {
			t.Errorf("created %d after %d: not in created order", r.Envelope.Created, last)
		}
		last = r.Envelope.Created
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func sameIDs(t *testing.T, what string, got []message.ID, want []*message.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i, e := range want {
		if got[i] != e.ID() {
			t.Fatalf("%s: message %d is %s, want %s", what, i, got[i], e.ID())
		}
	}
}

// TestExport walks everything, a channel, a recipient and time ranges,
// over more than one chunk.
func TestExport(t *testing.T) {
	clk := newClock()
	s := openTemp(t, Options{Now: clk.Now})
	alice, bob := identity(1), identity(2)
	var all, general, toBob []*message.Envelope
	n := 2*exportChunk + 17
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		var e *message.Envelope
		switch i % 3 {
		case 0:
			e = text(t, alice, "general", fmt.Sprint("general ", i), at)
			general = append(general, e)
		case 1:
			e = text(t, alice, "water", fmt.Sprint("water ", i), at)
		case 2:
			e = direct(t, alice, bob.Public(), fmt.Sprint("to bob ", i), at)
			toBob = append(toBob, e)
		}
		all = append(all, e)
	}
	clk.Advance(time.Duration(n) * time.Second)
	// Stored in reverse: the export follows created time, not arrival.
	for i := len(all) - 1; i >= 0; i-- {
		mustPut(t, s, all[i])
	}
	sameIDs(t, "everything", exported(t, s.Export, ExportQuery{}), all)
	ch, _ := message.Channel("general")
	sameIDs(t, "general", exported(t, s.Export, ExportQuery{Channel: &ch}), general)
	bk := bob.Public()
	sameIDs(t, "to bob", exported(t, s.Export, ExportQuery{Recipient: &bk}), toBob)
	since, until := all[100].Created, all[400].Created
	sameIDs(t, "[100, 400)", exported(t, s.Export, ExportQuery{Since: since, Until: until}), all[100:400])
	sameIDs(t, "from 500", exported(t, s.Export, ExportQuery{Since: all[500].Created}), all[500:])
	sameIDs(t, "general until 300", exported(t, s.Export, ExportQuery{Channel: &ch, Until: all[300].Created}), general[:100])
	if ids := exported(t, s.Export, ExportQuery{Since: until, Until: since}); len(ids) != 0 {
		t.Fatalf("an empty range gave %d", len(ids))
	}
	if err := s.Export(t.Context(), ExportQuery{Channel: &ch, Recipient: &bk}, nil); !errors.Is(err, ErrQuery) {
		t.Fatalf("channel and recipient: %v", err)
	}

	// fn's error ends the walk and comes back as is; so does the context's.
	stop := errors.New("stop")
	calls := 0
	if err := s.Export(t.Context(), ExportQuery{}, func(*Record) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("fn's error: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	calls = 0
	err := s.Export(ctx, ExportQuery{}, func(*Record) error { calls++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || calls != exportChunk {
		t.Fatalf("cancelled: %v after %d calls", err, calls)
	}
}

// TestExportReadOnly: a stopped node's store, read without writing, with
// the messages its log held when it stopped (a crash) that never reached
// the database; refused while a node has the store open.
func TestExportReadOnly(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity(1)
	var stored []*message.Envelope
	for i := range 10 {
		e := text(t, alice, "general", fmt.Sprint("stored ", i), clk.Now().Add(time.Duration(i)*time.Millisecond))
		mustPut(t, s, e)
		stored = append(stored, e)
	}
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only open of a store in use: %v", err)
	}
	// What a crash leaves in the log: two new messages, one already
	// stored, and one forged.
	late := []*message.Envelope{
		text(t, alice, "general", "late 1", clk.Now().Add(time.Second)),
		text(t, alice, "water", "late 2", clk.Now().Add(2*time.Second)),
	}
	forged := text(t, alice, "general", "forged", clk.Now()).Raw()
	forged[len(forged)-1] ^= 1
	crash(t, s, path, late[0].Raw(), stored[3].Raw(), forged, late[1].Raw())
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, "read-only, everything", exported(t, ro.Export, ExportQuery{}), append(stored, late...))
	ch, _ := message.Channel("general")
	sameIDs(t, "read-only, general", exported(t, ro.Export, ExportQuery{Channel: &ch}), append(stored, late[0]))
	sameIDs(t, "read-only, until", exported(t, ro.Export, ExportQuery{Until: late[1].Created}), append(stored, late[0]))
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing was written: the log still holds its records, and a node
	// opening the store applies them.
	s = reopenHolding(t, path, Options{Now: clk.Now}, []message.ID{late[0].ID(), late[1].ID()})
	if st := s.Stats(); st.Messages != 12 {
		t.Fatalf("after the read-only export: %+v", st)
	}

	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Fatal("a missing store opened")
	}
}

// crash closes s and leaves in its log, after what it applied, records of
// raws: what a crash leaves when the applier had not committed them yet.
func crash(t *testing.T, s *Store, path string, raws ...[]byte) {
	t.Helper()
	s.Stats()
	applied := s.log.applied
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var recs []walRecord
	for i, raw := range raws {
		recs = append(recs, walRecord{lsn: applied + 1 + uint64(i), received: int64(i + 1), env: raw})
	}
	writeLog(t, path, recs)
}
