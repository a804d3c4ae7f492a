package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"lifeline/message"
)

// t0 is the tests' epoch: any fixed time works, the clock is injected.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for Options.Now.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(t0.UnixMilli())
	return c
}

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func identity(seed byte) *message.Identity {
	var s [32]byte
	s[0] = seed
	return message.IdentityFromKey(ed25519.NewKeyFromSeed(s[:]))
}

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func text(t testing.TB, id *message.Identity, channel, body string, at time.Time) *message.Envelope {
	t.Helper()
	e, err := id.NewText(channel, body, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sign(t testing.TB, id *message.Identity, d message.Draft) *message.Envelope {
	t.Helper()
	e, err := id.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func direct(t testing.TB, from *message.Identity, to message.PublicKey, body string, at time.Time) *message.Envelope {
	t.Helper()
	e, err := from.NewDirect(rand.Reader, to, body, message.PriorityNormal, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustPut(t testing.TB, s *Store, e *message.Envelope) Result {
	t.Helper()
	r, err := s.Put(t.Context(), e.Raw())
	if err != nil {
		t.Fatalf("put %s: %v", e.ID(), err)
	}
	return r
}

// checkConsistent verifies bbolt's own invariants, that every index has one
// entry per message pointing at it, and that the counters match the data.
// It scans everything: tests only.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	// A write transaction, rolled back: bbolt's Check reads the freelist,
	// which a concurrent commit may be changing.
	s.settle()
	errRollback := errors.New("rollback")
	err := s.db.Update(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		var n, bytes int64
		lastSeq := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaSeq))
		seen := make(map[uint64]bool)
		err := tx.Bucket(bucketMsg).ForEach(func(k, v []byte) error {
			rec, flags, err := decodeRecord(s.seal, v)
			if err != nil {
				return err
			}
			id := rec.Envelope.ID()
			if string(k) != string(id[:]) {
				return fmt.Errorf("msg key %x holds %s", k, id)
			}
			env := rec.Envelope
			ekey := recordEvictKey(env, flags)
			for _, kv := range [][2][]byte{
				{bucketTime, timeKey(env.Created, id)},
				{bucketDest, destKey(env)},
				{bucketExp, expKey(env)},
				{bucketEvict, ekey},
			} {
				if tx.Bucket(kv[0]).Get(kv[1]) == nil {
					return fmt.Errorf("%s has no entry for %s", kv[0], id)
				}
			}
			if rec.Seq == 0 || rec.Seq > lastSeq || seen[rec.Seq] {
				return fmt.Errorf("%s has seq %d (last assigned %d, duplicate %v)", id, rec.Seq, lastSeq, seen[rec.Seq])
			}
			seen[rec.Seq] = true
			if sv := tx.Bucket(bucketSeq).Get(seqKey(rec.Seq)); string(sv) != string(seqValue(env)) {
				return fmt.Errorf("seq entry %d is %x, want %x", rec.Seq, sv, seqValue(env))
			}
			if sz := tx.Bucket(bucketEvict).Get(ekey); int64(binary.BigEndian.Uint32(sz)) != logicalSize(env) {
				return fmt.Errorf("evict size for %s", id)
			}
			n++
			bytes += logicalSize(env)
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketTime, bucketDest, bucketExp, bucketEvict, bucketSeq} {
			if got := int64(tx.Bucket(name).Stats().KeyN); got != n {
				return fmt.Errorf("%s has %d entries, msg has %d", name, got, n)
			}
		}
		c, _ := decodeCounters(tx.Bucket(bucketMeta).Get(metaCounters))
		if c.Messages != n || c.Bytes != bytes {
			return fmt.Errorf("counters say %d messages %d bytes, data has %d, %d", c.Messages, c.Bytes, n, bytes)
		}
		return errRollback
	})
	if err != nil && !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	st := s.Stats()
	if q := st.Quota; q > 0 && st.Bytes > q {
		t.Fatalf("quota exceeded: %d > %d", st.Bytes, q)
	}
}

// recv waits for one record or fails after a deadline.
func recv(t testing.TB, sub *Subscription) (*Record, bool) {
	t.Helper()
	select {
	case r, ok := <-sub.C:
		return r, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return nil, false
	}
}

// reopenHolding reopens the store at path and fails unless it holds every
// id in acked, consistently; t.Cleanup closes it.
func reopenHolding(t *testing.T, path string, opts Options, acked []message.ID) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, id := range acked {
		if ok, err := s.Has(id); err != nil || !ok {
			t.Fatalf("acknowledged %s lost (err %v)", id, err)
		}
	}
	checkConsistent(t, s)
	return s
}

// writeLog writes recs to the log of the store at path, as a crash leaves
// records the applier had not committed.
func writeLog(t *testing.T, path string, recs []walRecord) {
	t.Helper()
	w, err := openWALFile(walPath(path), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.write(recs); err != nil {
		t.Fatal(err)
	}
	w.close()
}
