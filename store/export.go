package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"lifeline/message"
)

// An export walks every message a store holds, or a channel's or a
// recipient's, in created order, by the same indexes List uses. It reads
// exportChunk records per read transaction and hands them on outside it,
// so a walk of gigabytes holds one chunk in memory, and a slow consumer (a
// USB stick, the Wi-Fi) never holds a read transaction open: a long one
// would keep the applier from growing the file.

// ExportQuery selects what Export walks. Channel and Recipient are
// exclusive.
type ExportQuery struct {
	Channel   *message.ChannelID // nil = any; text and alerts on this channel
	Recipient *message.PublicKey // nil = any; direct messages and receipts to this key
	// Since and Until bound the created time, unix ms: Since <= created <
	// Until, so consecutive ranges neither overlap nor leave a gap. Zero
	// means no bound.
	Since, Until int64
}

// exportChunk is how many records Export reads per read transaction: at
// most about 1.1 MiB of envelopes.
const exportChunk = 256

// Export calls fn for every message that matches q, oldest created first,
// until fn returns an error (returned as is) or ctx ends. It sees every Put
// that returned before it was called; messages stored during the walk are
// seen if they sort after its position. fn runs outside any transaction and
// may call the store.
func (s *Store) Export(ctx context.Context, q ExportQuery, fn func(*Record) error) error {
	s.settle()
	return exportWalk(ctx, s.db, s.seal, q, fn)
}

// exportWalk is Export on a database and its sealer: for an open Store and
// for a stopped one opened read-only. The errors of fn and ctx are
// returned as they are.
func exportWalk(ctx context.Context, db *bolt.DB, sl *sealer, q ExportQuery, fn func(*Record) error) error {
	if q.Channel != nil && q.Recipient != nil {
		return fmt.Errorf("store: export: %w: Channel and Recipient are exclusive", ErrQuery)
	}
	index, prefix := createdIndex(q.Channel, q.Recipient)
	start := be64(bytes.Clone(prefix), max(q.Since, 0))
	buf := make([]*Record, 0, exportChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = buf[:0]
		var last []byte
		err := db.View(func(tx *bolt.Tx) error {
			msgs := tx.Bucket(bucketMsg)
			c := tx.Bucket(index).Cursor()
			for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && len(buf) < exportChunk; k, _ = c.Next() {
				if len(k) != len(prefix)+40 {
					return errCorrupt("index key length")
				}
				if created := int64(binary.BigEndian.Uint64(k[len(prefix):])); q.Until > 0 && created >= q.Until {
					break
				}
				v := msgs.Get(k[len(prefix)+8:])
				if v == nil {
					return errCorrupt(fmt.Sprintf("index entry for missing message %x", k[len(prefix)+8:]))
				}
				rec, _, err := decodeRecord(sl, v)
				if err != nil {
					return err
				}
				buf = append(buf, rec)
				last = k
			}
			last = bytes.Clone(last) // k lives in the memory map
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: export: %w", viewErr(err))
		}
		for _, rec := range buf {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(buf) < exportChunk {
			return nil
		}
		start = append(last, 0) // the next key after the last one read
	}
}

// ReadOnly is the store of a stopped node, opened for reading only: a
// technician's copy of a broken kit's SD card, or a node that must not be
// started. Nothing is written, not even to the log, so a card mounted
// read-only works. It reads the messages of the database and those of the
// write-ahead log that had not reached it (the node stopped uncleanly).
type ReadOnly struct {
	db   *bolt.DB
	seal *sealer
	// logged are the log's records the database does not hold yet.
	logged []walRecord
}

// OpenReadOnly opens the store at path for reading. While a node has it
// open, it fails with an error wrapping ErrLocked after about a second.
func OpenReadOnly(path string) (*ReadOnly, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w (waited %s)", path, ErrLocked, lockTimeout)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	r := &ReadOnly{db: db}
	if err := r.open(path); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return r, nil
}

func (r *ReadOnly) open(path string) error {
	var applied uint64
	sealed := false
	err := r.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errCorrupt("no meta bucket: not a store")
		}
		if v := meta.Get(metaVersion); len(v) != 1 || v[0] != schemaVersion {
			return fmt.Errorf("%w: schema version %x, this code reads %d", ErrCorrupt, v, schemaVersion)
		}
		for _, name := range [][]byte{bucketMsg, bucketTime, bucketDest} {
			if tx.Bucket(name) == nil {
				return errCorrupt("missing bucket " + string(name))
			}
		}
		sealed = meta.Get(metaSealed) != nil
		var err error
		applied, err = decodeApplied(meta.Get(metaWAL))
		return err
	})
	if err != nil {
		return err
	}
	key, _, err := loadKey(path, false)
	if err != nil && !sealed {
		// From before sealing and never opened since: nothing is sealed,
		// and a key that opens nothing does no harm.
		key, err = make([]byte, keySize), nil
		rand.Read(key)
	}
	if err != nil {
		return err
	}
	if r.seal, err = newSealer(key); err != nil {
		return err
	}
	f, err := os.Open(walPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	// The log is bounded (walCap and one batch): it is read whole, as Open
	// does.
	recs, err := readWAL(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	for _, rec := range recs {
		if rec.lsn > applied {
			r.logged = append(r.logged, rec)
		}
	}
	return nil
}

// Close closes the file.
func (r *ReadOnly) Close() error { return r.db.Close() }

// Export is Store.Export, followed by the messages of the log that the
// database does not hold (in log order, so not sorted by created time
// with the others), each verified: a record of the log was never checked
// by anyone but the node that wrote it.
func (r *ReadOnly) Export(ctx context.Context, q ExportQuery, fn func(*Record) error) error {
	if err := exportWalk(ctx, r.db, r.seal, q, fn); err != nil {
		return err
	}
	seen := make(map[message.ID]bool)
	for _, rec := range r.logged {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := r.seal.open(rec.env)
		if err != nil {
			raw = rec.env // logged in clear, before sealing
		}
		env, err := message.Decode(raw)
		if err != nil || env.VerifySignature() != nil || seen[env.ID()] || !q.matches(env) {
			continue
		}
		seen[env.ID()] = true
		var stored bool
		id := env.ID()
		err = r.db.View(func(tx *bolt.Tx) error {
			stored = tx.Bucket(bucketMsg).Get(id[:]) != nil
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: export: %w", err)
		}
		if stored {
			continue
		}
		if err := fn(&Record{Envelope: env, Received: rec.received}); err != nil {
			return err
		}
	}
	return nil
}

// matches reports whether env is one q selects.
func (q ExportQuery) matches(env *message.Envelope) bool {
	switch {
	case q.Channel != nil && (!env.Kind.ToChannel() || env.Channel != *q.Channel):
		return false
	case q.Recipient != nil && (env.Kind.ToChannel() || env.Recipient != *q.Recipient):
		return false
	case q.Since > 0 && env.Created < q.Since:
		return false
	case q.Until > 0 && env.Created >= q.Until:
		return false
	}
	return true
}
