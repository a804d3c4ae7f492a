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
	Left      bool  // a link handed it to another node (see MarkLeft)
	// Member: signed by a member when stored (Options.Members, or
	// Options.Own): in the members' eviction tier.
	Member bool
	// Seq is this store's arrival sequence number: 1 for the first message
	// ever stored in the file, then one more for each newly stored message,
	// in commit order. It is never reused, even once a message has been
	// evicted or expired, and means nothing outside this file.
	Seq uint64
}

// Get returns the message with the given ID, or an error wrapping
// ErrNotFound.
//
// A message acknowledged but not in the database (logged and held while
// the disk is full, see space.go) is returned too: Get looks in the
// database, then among the pending, then in the database again, since one
// applied after the first look's snapshot is no longer pending. (The held
// messages alone were not enough: while a retry committed them they were
// neither held nor stored, and Get called them missing.)
func (s *Store) Get(id message.ID) (*Record, error) {
	s.settle()
	rec, err := s.getStored(id)
	if errors.Is(err, ErrNotFound) {
		if held := s.pendingRecord(id); held != nil {
			return held, nil
		}
		rec, err = s.getStored(id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", viewErr(err))
	}
	return rec, nil
}

// getStored reads the message with the given ID from the database.
func (s *Store) getStored(id message.ID) (*Record, error) {
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMsg).Get(id[:])
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		var err error
		rec, _, err = decodeRecord(s.seal, v)
		return err
	})
	return rec, err
}

// Has reports whether the message with the given ID is stored.
func (s *Store) Has(id message.ID) (bool, error) {
	if s.isPending(id) {
		return true, nil
	}
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
	// Before, when > 0, pages back: the newest matches whose (created, id)
	// sorts before (Before, BeforeID), for a client that shows the newest
	// messages first and scrolls back to the first one. Pass the oldest
	// message of the last page; a zero BeforeID excludes all of Before's
	// millisecond. It excludes Since and After.
	Before   int64
	BeforeID message.ID
	// After, when > 0, selects arrival order: messages with Seq > After,
	// oldest arrival first (see ListAfter). It excludes Since.
	After uint64
	Limit int // default DefaultLimit, at most MaxLimit
}

// Limits of Query.Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrQuery: a Query that cannot match anything as asked.
var ErrQuery = errors.New("invalid query")

// List returns matching messages, oldest first (by created, then ID). With
// Since == 0 it returns the newest Limit matches (before Before, if set);
// with Since > 0 the oldest Limit matches created after Since. Channel and
// Recipient are exclusive.
//
// Created is the author's clock, and store and forward delivers messages
// long after they were created: paging by Since misses a message that
// arrives late with an older created time, and several messages created in
// the same millisecond as the last one of a page. A client that polls for
// what is new must page by arrival instead: After > 0 makes List return
// ListAfter(q).Records.
//
// List walks one index from one end: its cost grows with Limit, not with
// the store.
func (s *Store) List(q Query) ([]*Record, error) {
	s.settle()
	if q.After > 0 {
		p, err := s.ListAfter(q)
		return p.Records, err
	}
	if q.Channel != nil && q.Recipient != nil {
		return nil, fmt.Errorf("store: list: %w: Channel and Recipient are exclusive", ErrQuery)
	}
	if q.Before > 0 && q.Since > 0 {
		return nil, fmt.Errorf("store: list: %w: Before and Since are exclusive", ErrQuery)
	}
	limit := queryLimit(q.Limit)
	index, prefix := createdIndex(q.Channel, q.Recipient)
	var out []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(index).Cursor()
		var keys [][]byte
		if q.Since > 0 {
			for k, _ := c.Seek(be64(bytes.Clone(prefix), q.Since+1)); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < limit; k, _ = c.Next() {
				keys = append(keys, k)
			}
		} else {
			// Seek past the last key with this prefix (or to the bound
			// Before gives), then step back.
			var k []byte
			if q.Before > 0 {
				bound := append(be64(bytes.Clone(prefix), q.Before), q.BeforeID[:]...)
				if k, _ = c.Seek(bound); k == nil {
					k, _ = c.Last()
				} else {
					k, _ = c.Prev()
				}
			} else if upper := prefixEnd(prefix); upper == nil {
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
			rec, _, err := decodeRecord(s.seal, v)
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

// createdIndex is the index that orders by created time the messages of
// a channel, or to a recipient, or all of them (both nil), and the prefix
// of their keys in it.
func createdIndex(channel *message.ChannelID, recipient *message.PublicKey) (index, prefix []byte) {
	switch {
	case channel != nil:
		return bucketDest, append([]byte{destChannel}, channel[:]...)
	case recipient != nil:
		return bucketDest, append([]byte{destRecipient}, recipient[:]...)
	}
	return bucketTime, nil
}

func queryLimit(l int) int {
	if l <= 0 {
		return DefaultLimit
	}
	return min(l, MaxLimit)
}

// ScanCap bounds the seq index entries one ListAfter examines, matching or
// not, so that a filter on a sparse channel costs a bounded read however
// large the store.
const ScanCap = 10 * MaxLimit

// Page is one answer of ListAfter.
type Page struct {
	// Records match the query, in arrival order (ascending Seq).
	Records []*Record
	// Next is the After that continues the query: the seq of the last
	// index entry examined, or the query's After if none was. Every
	// matching message with After < Seq <= Next is in Records. It can be
	// greater than the last record's Seq (entries of other destinations
	// were skipped); pass Next, not that Seq, to skip them for good.
	Next uint64
	// More reports that the walk stopped at Limit or at ScanCap with
	// entries left to examine: ask again at once with After = Next.
	// Otherwise every message stored when the read began was examined;
	// what arrives later has Seq > Next.
	More bool
	// Last is the greatest seq this store had assigned when the read
	// began. An After above it did not come from this file (the file was
	// replaced): seqs are per file.
	Last uint64
}

// ListAfter returns the messages that match q's Channel or Recipient and
// arrived after q.After (Seq > After; 0 means from the first), oldest
// arrival first, at most Limit of them. Since must be 0.
//
// Arrival order is what a client that polls, or resumes a stream, must
// page by: a message gets its Seq when this store commits it, in commit
// order, and a reader never sees a larger Seq without every smaller one
// that is still stored. So nothing that arrives late, whatever its created
// time, falls behind a client's position.
//
// It walks the seq index from After, reading only the index for entries
// of other destinations (the index holds each message's destination), and
// stops at Limit matches or after ScanCap entries; see Page.
func (s *Store) ListAfter(q Query) (Page, error) {
	s.settle()
	p := Page{Next: q.After}
	if q.Channel != nil && q.Recipient != nil {
		return p, fmt.Errorf("store: list: %w: Channel and Recipient are exclusive", ErrQuery)
	}
	if q.Since != 0 {
		return p, fmt.Errorf("store: list: %w: Since and After are exclusive", ErrQuery)
	}
	limit := queryLimit(q.Limit)
	var prefix []byte
	switch {
	case q.Channel != nil:
		prefix = append([]byte{destChannel}, q.Channel[:]...)
	case q.Recipient != nil:
		prefix = append([]byte{destRecipient}, q.Recipient[:]...)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		last := tx.Bucket(bucketMeta).Get(metaSeq)
		if len(last) != 8 {
			return errCorrupt("meta seq")
		}
		p.Last = binary.BigEndian.Uint64(last)
		if q.After >= p.Last {
			return nil
		}
		msgs := tx.Bucket(bucketMsg)
		c := tx.Bucket(bucketSeq).Cursor()
		scanned := 0
		for k, v := c.Seek(seqKey(q.After + 1)); k != nil; k, v = c.Next() {
			if len(p.Records) == limit || scanned == s.scanCap {
				p.More = true
				break
			}
			if len(k) != 8 || len(v) < 32+1 {
				return errCorrupt("seq index entry")
			}
			scanned++
			p.Next = binary.BigEndian.Uint64(k)
			if !bytes.Equal(v[32:], prefix) && prefix != nil {
				continue
			}
			rv := msgs.Get(v[:32])
			if rv == nil {
				return errCorrupt(fmt.Sprintf("seq index entry for missing message %x", v[:32]))
			}
			rec, _, err := decodeRecord(s.seal, rv)
			if err != nil {
				return err
			}
			if rec.Seq != p.Next {
				return errCorrupt(fmt.Sprintf("seq index says %d, record %x says %d", p.Next, v[:32], rec.Seq))
			}
			p.Records = append(p.Records, rec)
		}
		return nil
	})
	if err != nil {
		return Page{Next: q.After}, fmt.Errorf("store: list: %w", viewErr(err))
	}
	return p, nil
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
// transactions keep the applier free to grow the file while a long walk
// (a reconciliation) is under way, and let fn call back into the store.
const itemsChunk = 512

// Items walks the (created, id) view in ascending order, starting at the
// first item >= (fromCreated, fromID), until fn returns false or the items
// end. fn runs outside any transaction; items committed during the walk
// after the walk's position are seen.
func (s *Store) Items(fromCreated int64, fromID message.ID, fn func(created int64, id message.ID) bool) error {
	s.settle()
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
