package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lifeline/message"
)

// TestCompact: a store whose messages half expired is compacted into a
// smaller file that holds every remaining message, readable, with the
// arrival sequence and the counters as they were, so a phone resuming
// with an after= cursor misses nothing and sees nothing twice.
func TestCompact(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity(1)
	body := strings.Repeat("a message long enough to take room in the file. ", 40)
	var kept []*message.Envelope
	for i := range 1000 {
		ttl := time.Duration(0) // the default: 30 days
		if i%2 == 0 {
			ttl = time.Hour
		}
		e, err := alice.NewText("general", fmt.Sprint(i, body), clk.Now(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, e)
		if ttl == 0 {
			kept = append(kept, e)
		}
	}
	clk.Advance(2 * time.Hour)
	for {
		n, err := s.Expire(clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	// A phone's position, part way through what is left.
	cursor, err := s.ListAfter(Query{Limit: 200})
	if err != nil || !cursor.More {
		t.Fatalf("cursor: %v %+v", err, cursor.More)
	}
	rest, err := s.ListAfter(Query{After: cursor.Next, Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	if before.Messages != 500 || before.Expired != 500 {
		t.Fatalf("before: %+v", before)
	}
	// Not while the store is open.
	if _, err := Compact(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("compacting a store in use: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+CompactSuffix, []byte("left by an interrupted compaction"), 0o600)

	res, err := Compact(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d messages: %d KiB -> %d KiB", res.Messages, res.Before>>10, res.After>>10)
	if res.Messages != 500 || res.After >= res.Before || res.After > res.Before*3/4 {
		t.Fatalf("compact: %+v", res)
	}
	if info, err := os.Stat(path); err != nil || info.Size() != res.After || info.Mode().Perm() != 0o600 {
		t.Fatalf("the file after: %v %v", info, err)
	}
	if _, err := os.Stat(path + CompactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the copy is left: %v", err)
	}

	s = reopenHolding(t, path, Options{Now: clk.Now}, nil)
	for _, e := range kept {
		r, err := s.Get(e.ID())
		if err != nil || string(r.Envelope.Raw()) != string(e.Raw()) {
			t.Fatalf("kept %s after compacting: %v", e.ID(), err)
		}
	}
	after := s.Stats()
	if after.Messages != before.Messages || after.Bytes != before.Bytes || after.Expired != before.Expired || after.LastSeq != before.LastSeq {
		t.Fatalf("stats before %+v, after %+v", before, after)
	}
	again, err := s.ListAfter(Query{After: cursor.Next, Limit: MaxLimit})
	if err != nil || len(again.Records) != len(rest.Records) || again.Next != rest.Next {
		t.Fatalf("resuming after=%d: %d records (next %d), before compacting %d (next %d); %v",
			cursor.Next, len(again.Records), again.Next, len(rest.Records), rest.Next, err)
	}
	for i := range again.Records {
		if again.Records[i].Seq != rest.Records[i].Seq || again.Records[i].Envelope.ID() != rest.Records[i].Envelope.ID() {
			t.Fatalf("record %d differs after compacting", i)
		}
	}
	// The next message takes the next seq: no cursor sees it twice or
	// misses it.
	e := text(t, alice, "general", "after compacting", clk.Now())
	mustPut(t, s, e)
	if r, err := s.Get(e.ID()); err != nil || r.Seq != before.LastSeq+1 {
		t.Fatalf("the next message: %+v %v, want seq %d", r, err, before.LastSeq+1)
	}
}

// TestCompactAppliesLog: what the log held when the node stopped (a
// crash) is in the compacted store.
func TestCompactAppliesLog(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	alice := identity(1)
	mustPut(t, s, text(t, alice, "general", "stored", clk.Now()))
	late := text(t, alice, "general", "logged, not applied", clk.Now())
	crash(t, s, path, late.Raw())
	res, err := Compact(path)
	if err != nil || res.Messages != 2 || res.Replayed != 1 {
		t.Fatalf("compact: %+v %v", res, err)
	}
	if got := readWALFile(t, walPath(path)); len(got) != 0 {
		t.Fatalf("the log holds %d records after compacting", len(got))
	}
	reopenHolding(t, path, Options{Now: clk.Now}, []message.ID{late.ID()})
}

// TestCompactKeepsOwner: compacted by root, a store of a node that runs
// as its own user stays that user's, with its log and key.
func TestCompactKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	const nobody = 65534
	dir := t.TempDir()
	path := filepath.Join(dir, "store.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, text(t, identity(1), "general", "hello", time.Now()))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, FilesOf(path).Key} {
		if err := os.Chown(f, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(FilesOf(path).Log) // Compact's Open makes it again, as root
	if _, err := Compact(path); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, FilesOf(path).Key, FilesOf(path).Log} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody || info.Mode().Perm() != 0o600 {
			t.Errorf("%s after compacting: owner %d:%d, mode %04o; want %d:%d, 0600", f, st.Uid, st.Gid, info.Mode().Perm(), nobody, nobody)
		}
	}
}

func TestCompactNoStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	if _, err := Compact(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("compacting nothing: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("compacting nothing made a store")
	}
}
