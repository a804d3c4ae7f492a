package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"lifeline/message"
)

// Record is a stored message with this node's metadata. Records are shared
// between callers: do not modify them.
type Record struct {
	Envelope  *message.Envelope
	Received  int64 // unix ms when this node stored it
	Own       bool  // authored through this node (PutOwn, or signed by Options.Own)
	Delivered bool  // a receipt from the recipient has been stored
}

// Get returns the message with the given ID, or an error wrapping
// ErrNotFound.
func (s *Store) Get(id message.ID) (*Record, error) {
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMsg).Get(id[:])
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		var err error
		rec, _, err = decodeRecord(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", viewErr(err))
	}
	return rec, nil
}

// Has reports whether the message with the given ID is stored.
func (s *Store) Has(id message.ID) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketMsg).Get(id[:]) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: has: %w", viewErr(err))
	}
	return ok, nil
}

// Query selects messages for List.
type Query struct {
	Channel   *message.ChannelID // nil = any; text and alerts on this channel
	Recipient *message.PublicKey // nil = any; direct messages and receipts addressed to this key
	Since     int64              // created unix ms, exclusive lower bound; 0 = none
	Limit     int                // default DefaultLimit, at most MaxLimit
}

// Limits of Query.Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrQuery: a Query that cannot match anything as asked.
var ErrQuery = errors.New("invalid query")

// List returns matching messages, oldest first (by created, then ID). With
// Since == 0 it returns the newest Limit matches; with Since > 0 the oldest
// Limit matches created after Since, so a client pages forward by passing
// the last created it has. Channel and Recipient are exclusive.
//
// List walks one index from one end: its cost grows with Limit, not with
// the store.
func (s *Store) List(q Query) ([]*Record, error) {
	if q.Channel != nil && q.Recipient != nil {
		return nil, fmt.Errorf("store: list: %w: Channel and Recipient are exclusive", ErrQuery)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	index, prefix := bucketTime, []byte(nil)
	switch {
	case q.Channel != nil:
		index, prefix = bucketDest, append([]byte{destChannel}, q.Channel[:]...)
	case q.Recipient != nil:
		index, prefix = bucketDest, append([]byte{destRecipient}, q.Recipient[:]...)
	}
	var out []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(index).Cursor()
		var keys [][]byte
		if q.Since > 0 {
			for k, _ := c.Seek(be64(bytes.Clone(prefix), q.Since+1)); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, _ = c.Next() {
				keys = append(keys, k)
			}
		} else {
			// Seek past the last key with this prefix, then step back.
			var k []byte
			if upper := prefixEnd(prefix); upper == nil {
				k, _ = c.Last()
			} else if k, _ = c.Seek(upper); k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, _ = c.Prev() {
				keys = append(keys, k)
			}
			for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
		msgs := tx.Bucket(bucketMsg)
		out = make([]*Record, 0, len(keys))
		for _, k := range keys {
			if len(k) != len(prefix)+40 {
				return errCorrupt("index key length")
			}
			v := msgs.Get(k[len(prefix)+8:])
			if v == nil {
				return errCorrupt(fmt.Sprintf("index entry for missing message %x", k[len(prefix)+8:]))
			}
			rec, _, err := decodeRecord(v)
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", viewErr(err))
	}
	return out, nil
}

// prefixEnd returns the smallest key greater than every key starting with
// p, or nil if there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// itemsChunk is how many items Items reads per read transaction. Short
// transactions keep the committer free to grow the file while a long walk
// (a reconciliation) is under way, and let fn call back into the store.
const itemsChunk = 512

// Items walks the (created, id) view in ascending order, starting at the
// first item >= (fromCreated, fromID), until fn returns false or the items
// end. fn runs outside any transaction; items committed during the walk
// after the walk's position are seen.
func (s *Store) Items(fromCreated int64, fromID message.ID, fn func(created int64, id message.ID) bool) error {
	start := timeKey(max(fromCreated, 0), fromID)
	type item struct {
		created int64
		id      message.ID
	}
	buf := make([]item, 0, itemsChunk)
	for {
		buf = buf[:0]
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketTime).Cursor()
			for k, _ := c.Seek(start); k != nil && len(buf) < itemsChunk; k, _ = c.Next() {
				if len(k) != 40 {
					return errCorrupt("time index key length")
				}
				var it item
				it.created = int64(binary.BigEndian.Uint64(k))
				copy(it.id[:], k[8:])
				buf = append(buf, it)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: items: %w", viewErr(err))
		}
		for _, it := range buf {
			if !fn(it.created, it.id) {
				return nil
			}
		}
		if len(buf) < itemsChunk {
			return nil
		}
		last := buf[len(buf)-1]
		// The next key after (created, id): id + 1, carrying into created.
		start = append(timeKey(last.created, last.id), 0)
	}
}
