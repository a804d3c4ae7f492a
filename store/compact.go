package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// bbolt never gives back to the disk what deleted records freed: the file
// only grows, and the freed pages are reused inside it. After a flood was
// evicted or a hub's old messages expired, a store can be mostly free
// pages. Compact copies a stopped node's store into a fresh file, key by
// key (bbolt's Compact, pages filled), and puts it in place of the old one.

// compactTxSize bounds one transaction of the copy, so a store of
// gigabytes is not copied in one transaction held in memory.
const compactTxSize = 1 << 20

// CompactResult says what Compact did.
type CompactResult struct {
	// Before and After are the database file's sizes, in bytes.
	Before, After int64
	// Messages is how many messages the store holds (the same before and
	// after), Replayed how many of them Compact applied from the log first.
	Messages, Replayed int64
}

// CompactSuffix is appended to the store's path to name the copy while it
// is made. One left by a compaction that was interrupted is removed by the
// next.
const CompactSuffix = ".compact"

// Compact rewrites the store at path into a fresh file holding exactly the
// same buckets, keys and values (messages, indexes, counters, the arrival
// sequence and the log position), so that phones resuming with an after=
// cursor miss nothing. It first opens the store as Open does, which
// applies what the log holds; it refuses, with an error wrapping
// ErrLocked, while another process has the store open. The copy replaces
// the old file only once it is complete and synced, and while both files
// are locked, so a node starting meanwhile waits or finds the store in
// use; until then the old file is untouched. The store's files keep the
// owner of the old one (a node running as its own user, compacted by
// root).
func Compact(path string) (CompactResult, error) {
	var res CompactResult
	info, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	res.Before = info.Size()
	s, err := Open(path, Options{})
	if err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	defer s.Close()
	st := s.Stats()
	res.Messages, res.Replayed = st.Messages, st.Replayed
	if err := s.brokenErr(); err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	if s.isStalled() {
		return res, fmt.Errorf("store: compact: %w: the store's log cannot be applied; free some space first", ErrNoSpace)
	}
	tmp := path + CompactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	if err := s.roomToCompact(); err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	err = bolt.Compact(dst, s.db, compactTxSize)
	if err == nil {
		err = sameContent(s.db, dst)
	}
	if err == nil {
		err = dst.Sync()
	}
	if err == nil {
		err = chownLike(tmp, info)
	}
	if err == nil {
		// Both files are locked: the new one by dst, the old by s.
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		dst.Close()
		os.Remove(tmp)
		return res, fmt.Errorf("store: compact: %w", err)
	}
	// Close empties the log, which the copy holds applied too (meta/wal).
	if err := s.Close(); err != nil {
		dst.Close()
		return res, fmt.Errorf("store: compact: %w", err)
	}
	// Opening the store may have made its log or key: they too must be
	// the node's.
	for _, f := range []string{FilesOf(path).Log, FilesOf(path).Key} {
		if err := chownLike(f, info); err != nil && !errors.Is(err, os.ErrNotExist) {
			dst.Close()
			return res, fmt.Errorf("store: compact: %w", err)
		}
	}
	if info, err := os.Stat(path); err == nil {
		res.After = info.Size()
	}
	if err := dst.Close(); err != nil {
		return res, fmt.Errorf("store: compact: %w", err)
	}
	return res, nil
}

// roomToCompact says why the disk cannot take the copy, or nil: the copy
// takes about what the records use of the old file, and the store's
// MinFree stays free.
func (s *Store) roomToCompact() error {
	free, ok := diskFree(filepath.Dir(s.path))
	if !ok {
		return nil
	}
	var used int64
	err := s.db.View(func(tx *bolt.Tx) error {
		st := s.db.Stats()
		used = tx.Size() - int64(st.FreePageN+st.PendingPageN)*int64(s.db.Info().PageSize)
		return nil
	})
	if err != nil {
		return err
	}
	if need := used + DefaultMinFree; free < need {
		return fmt.Errorf("%w: the copy needs about %d MiB free beside the store, the disk has %d MiB", ErrNoSpace, need>>20, free>>20)
	}
	return nil
}

// sameContent checks that every bucket of dst holds as many keys as src's
// and that meta is identical: a last look before the copy replaces the
// original.
func sameContent(src, dst *bolt.DB) error {
	return src.View(func(stx *bolt.Tx) error {
		return dst.View(func(dtx *bolt.Tx) error {
			return stx.ForEach(func(name []byte, sb *bolt.Bucket) error {
				db := dtx.Bucket(name)
				if db == nil {
					return fmt.Errorf("the copy lacks bucket %s", name)
				}
				if sn, dn := sb.Stats().KeyN, db.Stats().KeyN; sn != dn {
					return fmt.Errorf("the copy's bucket %s holds %d keys, the store's %d", name, dn, sn)
				}
				if string(name) != string(bucketMeta) {
					return nil
				}
				return sb.ForEach(func(k, v []byte) error {
					if string(db.Get(k)) != string(v) {
						return fmt.Errorf("the copy's meta/%s differs", k)
					}
					return nil
				})
			})
		})
	})
}
