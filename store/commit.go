package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"lifeline/message"
)

type opKind uint8

const (
	opPut opKind = iota
	opExpire
	opLeft
)

// op is one request to the logger, and then the applier.
type op struct {
	kind     opKind
	env      *message.Envelope // opPut
	own      bool              // opPut: PutOwn
	lsn      uint64            // opPut: its record in the log; 0: not logged
	received int64             // opPut
	now      int64             // opExpire: unix ms
	ids      []message.ID      // opLeft
	done     chan opResult     // buffered 1: the logger and applier never block on it
}

type opResult struct {
	res  Result
	n    int  // opExpire: messages deleted
	more bool // opExpire: the chunk limit was reached
	err  error
}

// expireChunk bounds the deletions of one Expire request so that a mass
// expiry does not hold one huge transaction (and every writer behind it).
const expireChunk = 4096

// Result is the outcome of a successful Put.
type Result struct {
	ID  message.ID
	New bool // false: the message was already stored
}

// Put verifies raw (message.Verify against Options.Now) and stores it. It
// returns once the message is durable on disk: in the write-ahead log, or
// in the database. Every read that starts after Put returned sees the
// message. A message already stored gives Result{New: false} and a nil
// error. An invalid message gives the message package's error (errors.Is
// works) and nothing is stored. If the message cannot fit in the quota the
// error wraps ErrQuota. If ctx ends while Put waits, Put returns ctx.Err()
// and the message may or may not have been stored.
//
// Verification runs in the caller's goroutine: concurrent Puts verify on
// every core while the log and the database are written.
func (s *Store) Put(ctx context.Context, raw []byte) (Result, error) {
	return s.put(ctx, raw, false)
}

// PutOwn is Put for messages authored through this node: they are flagged
// Own, and evicted last: a direct message until its recipient's receipt
// marks it delivered, a channel message until it expires. A receipt gains
// the flag but no protection (receipts are always evicted first), so the
// node stores its own receipts with Put. A duplicate already stored without
// the flag gains it.
func (s *Store) PutOwn(ctx context.Context, raw []byte) (Result, error) {
	return s.put(ctx, raw, true)
}

func (s *Store) put(ctx context.Context, raw []byte, own bool) (Result, error) {
	now := s.now()
	env, err := message.Decode(raw)
	if err != nil {
		return Result{}, fmt.Errorf("store: put: %w", err)
	}
	id := env.ID()
	if !own {
		// Gossip and reconciliation deliver many duplicates. The ID is the
		// hash of every byte, signature included, so a stored ID means
		// these exact bytes were verified when they were stored: answer
		// from a read transaction, without verifying again (a lookup costs
		// a few µs, a verification about 50).
		if ok, err := s.Has(id); err == nil && ok {
			return Result{ID: id}, nil
		}
	}
	if err := env.VerifySignature(); err != nil {
		return Result{}, fmt.Errorf("store: put: %w", err)
	}
	return s.putVerified(ctx, env, own, now)
}

// putVerified stores an envelope whose signature has been checked.
func (s *Store) putVerified(ctx context.Context, env *message.Envelope, own bool, now time.Time) (Result, error) {
	id := env.ID()
	if err := env.CheckTime(now.UnixMilli()); err != nil {
		return Result{}, fmt.Errorf("store: put: %w", err)
	}
	if a := s.opts.MaxAge; a > 0 && env.Created < now.Add(-a).UnixMilli() {
		// Stored now, it would go at the next Expire, and come back from
		// the next peer that keeps messages longer: refuse it as expired.
		return Result{}, fmt.Errorf("store: put: %w: created %s, before this node's retention of %s",
			message.ErrExpired, time.UnixMilli(env.Created).UTC().Format(time.RFC3339), a)
	}
	o := &op{kind: opPut, env: env, own: own, received: now.UnixMilli(), done: make(chan opResult, 1)}
	r, err := s.submit(ctx, o)
	if err != nil {
		return Result{ID: id}, fmt.Errorf("store: put %s: %w", id, err)
	}
	return r.res, nil
}

// Expire deletes every message whose Expires() <= now, walking the expiry
// index, and with Options.MaxAge every message created before now - MaxAge,
// walking the time index; it returns how many it deleted. The owner of the store calls it
// periodically; until then expired messages are still listed.
func (s *Store) Expire(now time.Time) (int, error) {
	total := 0
	for {
		o := &op{kind: opExpire, now: now.UnixMilli(), done: make(chan opResult, 1)}
		r, err := s.submit(context.Background(), o)
		total += r.n
		if err != nil {
			return total, fmt.Errorf("store: expire: %w", err)
		}
		if !r.more {
			return total, nil
		}
	}
}

// applyLoop is the only bbolt writer: it commits what logLoop hands it,
// up to maxApply requests per transaction.
//
// Logged Puts have been answered already, so under load it lets them
// gather: it commits at most once per applyLinger. A few large
// transactions cost the disk far less than many small ones (pages near
// each other are written once), and every fsync of the database delays the
// log's. The first commit after a quiet spell goes at once, and so does a
// commit somebody waits for: a request answered only after it (PutOwn,
// Expire, a Put that may need eviction), a reader (settle), or the logger
// (a full hand-over or a rewind of the log).
func (s *Store) applyLoop() {
	defer close(s.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var last time.Time // when the last commit ended
	retry := time.NewTicker(stallRetry)
	defer retry.Stop()
	for {
		select {
		case <-s.kick:
		case <-retry.C:
			if s.isStalled() {
				s.retryHeld()
			}
			continue
		}
		if wait := applyLinger - time.Since(last); wait > 0 {
			timer.Reset(wait)
		gather:
			for !s.applyDue() {
				select {
				case <-s.kick:
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
		for {
			ops, done := s.takeApply()
			if len(ops) > 0 {
				s.commit(ops)
				last = time.Now()
			}
			if done {
				s.walMu.Lock()
				s.applierDone = true
				s.walCond.Broadcast()
				s.walMu.Unlock()
				return
			}
			if len(ops) == 0 || !s.applyDue() {
				break
			}
		}
	}
}

// stallRetry is how often a stalled store tries again to store what it
// holds (see space.go).
const stallRetry = time.Second

// applyDue reports whether the applier should commit now rather than let
// more requests gather.
func (s *Store) applyDue() bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return len(s.toApply) >= maxApply || s.hurry || s.urgent > 0 || s.logDone
}

// takeApply takes up to maxApply requests to commit, and reports whether
// the logger has stopped and nothing else will come.
func (s *Store) takeApply() ([]*op, bool) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	n := min(len(s.toApply), maxApply)
	ops := slices.Clone(s.toApply[:n])
	clear(s.toApply[:n])
	s.toApply = s.toApply[n:]
	if len(s.toApply) == 0 {
		s.toApply = nil
		s.hurry = false
	} else {
		s.hurry = slices.ContainsFunc(s.toApply, func(o *op) bool { return o.lsn == 0 })
	}
	return ops, s.logDone && len(s.toApply) == 0
}

// buckets holds one write transaction's buckets.
type buckets struct {
	meta, msg, time, dest, exp, evict, seq *bolt.Bucket
}

func openBuckets(tx *bolt.Tx) buckets {
	b := buckets{
		meta:  tx.Bucket(bucketMeta),
		msg:   tx.Bucket(bucketMsg),
		time:  tx.Bucket(bucketTime),
		dest:  tx.Bucket(bucketDest),
		exp:   tx.Bucket(bucketExp),
		evict: tx.Bucket(bucketEvict),
		seq:   tx.Bucket(bucketSeq),
	}
	// Keys in these indexes mostly arrive in increasing order (created
	// times grow); full pages waste less space and split less.
	b.time.FillPercent = 0.9
	b.exp.FillPercent = 0.9
	// Seqs only ever grow: every insert appends.
	b.seq.FillPercent = 1
	return b
}

// batchState is what one transaction changes, applied to memory only after
// it commits.
type batchState struct {
	count   counters
	seq     uint64 // the last seq assigned
	notes   []*Record
	removed map[message.ID]bool // removed in this batch: not notified even if added in it
}

// commit applies batch in one transaction, then answers every request in
// it that was not answered when logged, and notifies subscribers.
//
// If that transaction fails and holds more than one request, each request
// is retried in a transaction of its own, so that one request cannot fail
// the others: typically the file reaching MaxDBSize, where a batch as a
// whole does not fit but most of its messages do. This costs one fsync per
// request, on the failure path only; the happy path stays one transaction.
//
// A logged message that fails for lack of disk space stalls the store (see
// space.go) until a retry stores it. One that fails for another reason
// breaks the store (see brokenErr): it stays in the log, and neither it nor
// any later logged message is applied, so that reopening the store retries
// them all.
func (s *Store) commit(batch []*op) {
	if err := s.brokenErr(); err != nil {
		for _, o := range batch {
			if o.lsn == 0 {
				o.done <- opResult{err: err}
			}
		}
		return
	}
	if batch = s.holdWhileStalled(batch); len(batch) == 0 {
		return
	}
	results, st, err := s.apply(batch)
	if err != nil && len(batch) > 1 {
		for i := range batch {
			s.commit(batch[i : i+1])
		}
		return
	}
	full := err != nil && errors.Is(err, bolterrors.ErrMaxSizeReached)
	if err != nil {
		if o := batch[0]; o.lsn != 0 && isNoSpace(err) {
			s.stall(fmt.Errorf("commit: %w", err), o)
			return
		}
		switch {
		case full:
			err = fmt.Errorf("%w: %w", ErrQuota, err)
		case isNoSpace(err):
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		err = fmt.Errorf("commit: %w", err)
		for i := range results {
			results[i] = opResult{err: err}
		}
		if o := batch[0]; o.lsn != 0 && !full {
			s.fail(err)
			return
		}
	} else {
		s.statMu.Lock()
		s.count, s.seq = st.count, st.seq
		s.statMu.Unlock()
	}
	if info, serr := os.Stat(s.path); serr == nil {
		s.fileSize.Store(info.Size())
	}
	s.applied(batch, results)
	for i, o := range batch {
		if o.lsn == 0 {
			o.done <- results[i]
		}
	}
	if err == nil && len(st.notes) > 0 {
		s.notify(st.notes, st.removed)
	}
}

// apply runs batch in one write transaction. On error nothing was written,
// and results and st are to be discarded.
func (s *Store) apply(batch []*op) ([]opResult, batchState, error) {
	results := make([]opResult, len(batch))
	s.statMu.Lock()
	st := batchState{count: s.count, seq: s.seq}
	s.statMu.Unlock()
	first := st.seq
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := openBuckets(tx)
		for i, o := range batch {
			var err error
			switch o.kind {
			case opPut:
				results[i], err = s.applyPut(b, &st, o)
			case opExpire:
				results[i], err = s.applyExpire(b, &st, o.now)
			case opLeft:
				err = s.applyLeft(b, o.ids)
			}
			if err != nil {
				return err
			}
		}
		if st.seq != first {
			if err := b.meta.Put(metaSeq, seqKey(st.seq)); err != nil {
				return err
			}
		}
		if v, changed := s.appliedAfter(batch); changed {
			// In the same transaction as the messages: a replay starts
			// exactly after what this commit holds.
			if err := b.meta.Put(metaWAL, v); err != nil {
				return err
			}
		}
		return b.meta.Put(metaCounters, st.count.encode())
	})
	return results, st, err
}

// applyPut stores one verified envelope. A quota refusal is the request's
// result; a returned error aborts the whole transaction.
func (s *Store) applyPut(b buckets, st *batchState, o *op) (opResult, error) {
	env := o.env
	id := env.ID()
	res := opResult{res: Result{ID: id}}
	if v := b.msg.Get(id[:]); v != nil {
		if o.own && len(v) >= hdrLen && v[1]&flagOwn == 0 {
			return res, s.setFlags(b, id, v, v[1]|flagOwn)
		}
		return res, nil
	}
	own := o.own || (s.opts.Own != message.PublicKey{} && env.Author == s.opts.Own)
	var flags byte
	if own {
		flags |= flagOwn
	}
	if env.Author == s.opts.Own || (s.opts.Members != nil && s.opts.Members(env.Author)) {
		flags |= flagMember
	}
	size := logicalSize(env)
	ekey := recordEvictKey(env, flags)
	if q := s.opts.Quota; q > 0 && st.count.Bytes+size > q {
		ok, err := s.makeRoom(b, st, ekey, st.count.Bytes+size-q)
		if err != nil {
			return res, err
		}
		if !ok {
			res.err = fmt.Errorf("%w: %s needs %d bytes, %d of %d used by messages that are not evictable before it",
				ErrQuota, id, size, st.count.Bytes, q)
			return res, nil
		}
	}
	// The seq is taken only once the message is sure to be stored; meta/seq
	// is written with the batch (apply), so a failed transaction reuses
	// nothing and a committed one never gives a seq twice.
	st.seq++
	seq := st.seq
	for _, kv := range [][3][]byte{
		{bucketMsg, id[:], encodeRecord(s.seal, env, o.received, flags, seq)},
		{bucketTime, timeKey(env.Created, id), nil},
		{bucketDest, destKey(env), nil},
		{bucketExp, expKey(env), nil},
		{bucketEvict, ekey, sizeValue(size)},
		{bucketSeq, seqKey(seq), seqValue(env)},
	} {
		if err := b.bucket(kv[0]).Put(kv[1], nonNil(kv[2])); err != nil {
			return res, fmt.Errorf("put %s in %s: %w", id, kv[0], err)
		}
	}
	st.count.Messages++
	st.count.Bytes += size
	if env.Kind == message.KindReceipt {
		if err := s.applyReceipt(b, env); err != nil {
			return res, err
		}
	}
	res.res.New = true
	st.notes = append(st.notes, &Record{Envelope: env, Received: o.received, Own: own, Member: flags&flagMember != 0, Seq: seq})
	return res, nil
}

var empty = []byte{}

func nonNil(v []byte) []byte {
	if v == nil {
		return empty
	}
	return v
}

func (b buckets) bucket(name []byte) *bolt.Bucket {
	switch string(name) {
	case string(bucketMsg):
		return b.msg
	case string(bucketTime):
		return b.time
	case string(bucketDest):
		return b.dest
	case string(bucketExp):
		return b.exp
	case string(bucketEvict):
		return b.evict
	case string(bucketSeq):
		return b.seq
	}
	return b.meta
}

// makeRoom evicts, in eviction order, messages that sort before ekey until
// need bytes are free. If that cannot free enough it evicts nothing and
// reports false: the new message is the least important.
func (s *Store) makeRoom(b buckets, st *batchState, ekey []byte, need int64) (bool, error) {
	var victims []message.ID
	var victimKeys [][]byte
	var freed int64
	c := b.evict.Cursor()
	for k, v := c.First(); k != nil && freed < need && bytes.Compare(k, ekey) < 0; k, v = c.Next() {
		if len(k) != 41 || len(v) != 4 {
			return false, errCorrupt("eviction index entry")
		}
		var id message.ID
		copy(id[:], k[9:])
		victims = append(victims, id)
		victimKeys = append(victimKeys, bytes.Clone(k))
		freed += int64(binary.BigEndian.Uint32(v))
	}
	if freed < need {
		return false, nil
	}
	for i, id := range victims {
		found, err := s.remove(b, st, id)
		if err != nil {
			return false, err
		}
		if !found {
			// A dangling entry: drop it so it cannot be chosen again.
			if err := b.evict.Delete(victimKeys[i]); err != nil {
				return false, err
			}
			continue
		}
		st.count.Evicted++
	}
	return true, nil
}

// remove deletes a message and all its index entries, and reports whether
// the message was there.
func (s *Store) remove(b buckets, st *batchState, id message.ID) (bool, error) {
	v := b.msg.Get(id[:])
	if v == nil {
		return false, nil
	}
	rec, flags, err := decodeRecord(s.seal, v)
	if err != nil {
		return false, fmt.Errorf("remove %s: %w", id, err)
	}
	env := rec.Envelope
	for _, kv := range [][2][]byte{
		{bucketMsg, id[:]},
		{bucketTime, timeKey(env.Created, id)},
		{bucketDest, destKey(env)},
		{bucketExp, expKey(env)},
		{bucketEvict, recordEvictKey(env, flags)},
		{bucketSeq, seqKey(rec.Seq)},
	} {
		if err := b.bucket(kv[0]).Delete(kv[1]); err != nil {
			return false, fmt.Errorf("remove %s from %s: %w", id, kv[0], err)
		}
	}
	st.count.Messages--
	st.count.Bytes -= logicalSize(env)
	if st.removed == nil {
		st.removed = make(map[message.ID]bool)
	}
	st.removed[id] = true
	return true, nil
}

// setFlags rewrites a record's flags and moves it in the eviction order if
// its class changed. v is the current value.
func (s *Store) setFlags(b buckets, id message.ID, v []byte, flags byte) error {
	rec, old, err := decodeRecord(s.seal, v)
	if err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	env := rec.Envelope
	oldKey, newKey := recordEvictKey(env, old), recordEvictKey(env, flags)
	if err := b.msg.Put(id[:], encodeRecord(s.seal, env, rec.Received, flags, rec.Seq)); err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	if !bytes.Equal(oldKey, newKey) {
		if err := b.evict.Delete(oldKey); err != nil {
			return fmt.Errorf("update %s: %w", id, err)
		}
		if err := b.evict.Put(newKey, sizeValue(logicalSize(env))); err != nil {
			return fmt.Errorf("update %s: %w", id, err)
		}
	}
	return nil
}

// MarkLeft records that a link handed these messages to another node: a
// mesh peer or hub took them over a stream or by gossip, or the radio put
// them on air. It is what a sender's "left this node" rests on. Messages
// not in the database (not stored, or stored so recently that they are
// still only in the write-ahead log: links take messages from the
// database, so theirs never are), or already marked, are skipped; the
// flag never affects eviction. It returns once the marks are committed;
// a crash before that loses them, which errs on the side of "not left".
func (s *Store) MarkLeft(ctx context.Context, ids []message.ID) error {
	var todo []message.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsg)
		for _, id := range ids {
			if v := b.Get(id[:]); len(v) >= hdrLen && v[1]&flagLeft == 0 {
				todo = append(todo, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: mark left: %w", viewErr(err))
	}
	if len(todo) == 0 {
		return nil
	}
	if _, err := s.submit(ctx, &op{kind: opLeft, ids: todo, done: make(chan opResult, 1)}); err != nil {
		return fmt.Errorf("store: mark left: %w", err)
	}
	return nil
}

func (s *Store) applyLeft(b buckets, ids []message.ID) error {
	for _, id := range ids {
		v := b.msg.Get(id[:])
		if v == nil || len(v) < hdrLen || v[1]&flagLeft != 0 {
			continue
		}
		if err := s.setFlags(b, id, v, v[1]|flagLeft); err != nil {
			return err
		}
	}
	return nil
}

// applyReceipt marks the messages a new receipt acknowledges delivered. A
// receipt counts for a stored message only if that message is a direct
// message, the receipt is signed by its recipient and addressed to its
// author: anyone can sign a receipt, but only the recipient can say a DM
// arrived. Channel messages (text, alerts) are never marked delivered: a
// channel has no single recipient whose receipt could mean "delivered", and
// counting anyone's would let a stranger move this node's posts out of the
// protected eviction class. A receipt for a message not stored here is not
// remembered: own messages are stored here before any receipt for them can
// exist.
func (s *Store) applyReceipt(b buckets, r *message.Envelope) error {
	for _, id := range r.ReceiptIDs() {
		v := b.msg.Get(id[:])
		if v == nil || len(v) < hdrLen || v[1]&flagDelivery != 0 {
			continue
		}
		rec, flags, err := decodeRecord(s.seal, v)
		if err != nil {
			return fmt.Errorf("receipt %s: %w", r.ID(), err)
		}
		m := rec.Envelope
		if m.Kind != message.KindDirect || r.Author != m.Recipient || r.Recipient != m.Author {
			continue
		}
		if err := s.setFlags(b, id, v, flags|flagDelivery); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) applyExpire(b buckets, st *batchState, now int64) (opResult, error) {
	// Expired first, from the expiry index; then, with MaxAge, older than
	// it by created time, from the time index, in what is left of the
	// chunk. Both keys are a unix ms time followed by the id.
	n, err := s.removeBefore(b, st, b.exp, "expiry", now+1, expireChunk)
	if err != nil || n.seen == expireChunk || s.opts.MaxAge <= 0 {
		return opResult{n: n.removed, more: n.seen == expireChunk}, err
	}
	m, err := s.removeBefore(b, st, b.time, "time", now-s.opts.MaxAge.Milliseconds(), expireChunk-n.seen)
	return opResult{n: n.removed + m.removed, more: n.seen+m.seen == expireChunk}, err
}

type removal struct{ seen, removed int }

// removeBefore removes, as expired, the messages of the first entries of
// idx, the index called name (keys: unix ms || id), whose time is before
// t, at most limit of them.
// An entry whose message is gone is dropped, or it would be found forever.
func (s *Store) removeBefore(b buckets, st *batchState, idx *bolt.Bucket, name string, t int64, limit int) (removal, error) {
	var ids []message.ID
	var keys [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
		if len(k) != 40 {
			return removal{}, errCorrupt(name + " index entry")
		}
		if int64(binary.BigEndian.Uint64(k)) >= t {
			break
		}
		var id message.ID
		copy(id[:], k[8:])
		ids = append(ids, id)
		keys = append(keys, bytes.Clone(k))
	}
	r := removal{seen: len(ids)}
	for i, id := range ids {
		found, err := s.remove(b, st, id)
		if err != nil {
			return removal{}, err
		}
		if !found {
			if err := idx.Delete(keys[i]); err != nil {
				return removal{}, err
			}
			continue
		}
		st.count.Expired++
		r.removed++
	}
	return r, nil
}
