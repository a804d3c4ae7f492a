package store

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"lifeline/message"
)

// The write path: Put -> queue -> the logger -> the applier.
//
// A Put from a peer that is new and surely fits is written to the log
// (wal.go) and answered once the log is durable; the applier copies it into
// bbolt later, in large transactions. Everything else (PutOwn, Expire, a Put
// that may need eviction) passes through the logger unlogged, in order, and
// is answered by the applier after its commit, because its result depends
// on the database.

// logState is the log's position. Guarded by Store.walMu.
type logState struct {
	file    *walFile
	lsn     uint64 // the last LSN assigned
	logged  uint64 // the last LSN durable in the file
	applied uint64 // the last LSN committed to bbolt (meta/wal)
}

// walPath is where the log of the database at path lives.
func walPath(path string) string { return path + "-wal" }

// decodeApplied reads meta/wal, absent in a file that never logged.
func decodeApplied(v []byte) (uint64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, errCorrupt("meta wal")
}

// openLog opens the log, applies the records the database does not hold
// yet (a crash came between a Put's return and its bbolt commit), then
// empties the log. applied is meta/wal.
func (s *Store) openLog(applied uint64) error {
	w, err := openWALFile(walPath(s.path), s.opts.NoSync)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	s.log = logState{file: w, lsn: applied, logged: applied, applied: applied}
	recs, err := readWAL(bufio.NewReaderSize(w.f, 1<<16))
	if err != nil {
		return fmt.Errorf("read log %s: %w", w.path, err)
	}
	var ops []*op
	seen := make(map[message.ID]bool)
	for _, r := range recs {
		if r.lsn <= applied {
			continue
		}
		s.log.lsn = r.lsn
		raw, err := s.seal.open(r.env)
		if err != nil {
			raw = r.env // logged in clear, before sealing
		}
		env, err := message.Decode(raw)
		if err == nil {
			err = env.VerifySignature()
		}
		if err != nil {
			// The checksum was good, so this is not a torn write: someone
			// else wrote the file. The record is not applied, the rest is.
			s.refused++
			continue
		}
		if seen[env.ID()] {
			continue // the logger never logs a message twice; a copied file might
		}
		seen[env.ID()] = true
		ops = append(ops, &op{kind: opPut, env: env, received: r.received, lsn: r.lsn, done: make(chan opResult, 1)})
	}
	s.replayed = int64(len(ops))
	for len(ops) > 0 {
		n := min(len(ops), maxApply)
		for _, o := range ops[:n] {
			s.pending[o.env.ID()] = o
			s.pendingBytes += logicalSize(o.env)
		}
		s.commit(ops[:n])
		if err := s.brokenErr(); err != nil {
			return fmt.Errorf("replay log %s: %w", w.path, err)
		}
		ops = ops[n:]
	}
	if s.isStalled() {
		// The disk is full: the store opens to serve reads and keeps the
		// log as it is until the held records are stored (see space.go).
		// New records go after the ones read, never over them: a crash
		// before the held ones are stored must find them here. What is
		// durable and waits for the applier ends with the last held
		// record (records skipped after it will never be applied).
		var end int64
		for _, r := range recs {
			end += walHeader + int64(len(r.env))
		}
		w.off = end
		s.walMu.Lock()
		for _, o := range s.held {
			s.log.logged = max(s.log.logged, o.lsn)
		}
		s.walMu.Unlock()
		return nil
	}
	// Records skipped above count as applied too: nothing is left to
	// wait for (and the log is emptied next).
	s.log.logged, s.log.applied = s.log.lsn, s.log.lsn
	if err := w.reset(); err != nil {
		return err
	}
	w.prealloc()
	return nil
}

// logLoop is the logger. It takes requests from the queue in batches of up
// to maxBatch, logs what it can, and hands every request on to the
// applier.
//
// It does not linger for more requests: while one batch is being synced,
// the writers of the next one are verifying on the other cores, so batches
// form by themselves and verification overlaps the fsync.
func (s *Store) logLoop() {
	defer func() {
		s.walMu.Lock()
		s.logDone = true
		s.walMu.Unlock()
		s.kickApplier()
	}()
	batch := make([]*op, 0, maxBatch)
	for {
		select {
		case o := <-s.queue:
			batch = append(batch[:0], o)
		case <-s.stop:
			// Close waited for every admitted request, so the queue is
			// empty unless a caller stopped waiting; finish those too.
			for {
				batch = s.drain(batch[:0])
				if len(batch) == 0 {
					return
				}
				s.logBatch(batch)
				clear(batch)
			}
		}
		batch = s.drain(batch)
		s.logBatch(batch)
		clear(batch)
	}
}

// drain appends whatever is queued, up to maxBatch.
func (s *Store) drain(batch []*op) []*op {
	for len(batch) < maxBatch {
		select {
		case o := <-s.queue:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// logBatch logs what batch can log, answers it, and hands the batch on to
// the applier.
func (s *Store) logBatch(batch []*op) {
	s.taken.Add(int64(len(batch)))
	if err := s.brokenErr(); err != nil {
		for _, o := range batch {
			o.done <- opResult{err: err}
		}
		return
	}
	if err := s.spaceErr(batch); err != nil {
		// Refused before anything is logged; Expire and MarkLeft go on.
		rest := batch[:0:0]
		for _, o := range batch {
			if o.kind == opPut {
				o.done <- opResult{err: err}
			} else {
				rest = append(rest, o)
			}
		}
		if len(rest) > 0 {
			s.handOver(rest)
		}
		return
	}
	// Before looking in the database, note which messages are logged and
	// not yet applied, and which wait for the applier unlogged (a PutOwn,
	// say): the applier may commit them, and forget them, before the
	// look, which then sees them stored. A Put of a message waiting
	// unlogged is not logged either: only the applier knows which of the
	// two is new.
	s.walMu.Lock()
	var waiting, wasPending map[message.ID]bool
	for _, o := range batch {
		if o.kind != opPut || o.own {
			continue
		}
		id := o.env.ID()
		if s.unlogged[id] > 0 {
			waiting = setAdd(waiting, id)
		}
		if _, ok := s.pending[id]; ok {
			wasPending = setAdd(wasPending, id)
		}
	}
	s.walMu.Unlock()
	stored := s.storedIDs(batch)

	fwd := make([]*op, 0, len(batch))
	var logged []*op
	// Later Puts of a message logged in this batch: answered with it,
	// once the write has succeeded or failed.
	var dups map[message.ID][]*op
	s.walMu.Lock()
	first := s.log.lsn
	for _, o := range batch {
		if o.kind != opPut {
			fwd = append(fwd, o)
			continue
		}
		id := o.env.ID()
		if !o.own {
			if _, ok := s.pending[id]; ok || wasPending[id] || stored[id] {
				o.done <- opResult{res: Result{ID: id}}
				continue
			}
			if _, ok := dups[id]; ok {
				dups[id] = append(dups[id], o)
				continue
			}
			if size := logicalSize(o.env); !waiting[id] && s.unlogged[id] == 0 && s.roomFor(size) {
				s.log.lsn++
				o.lsn = s.log.lsn
				s.pendingBytes += size
				logged = append(logged, o)
				if dups == nil {
					dups = make(map[message.ID][]*op)
				}
				dups[id] = nil
				continue // handed over after the write
			}
		}
		if o.lsn == 0 {
			s.unlogged[id]++
		}
		fwd = append(fwd, o)
	}
	s.walMu.Unlock()

	if len(logged) > 0 {
		err := s.writeLog(logged, first)
		s.walMu.Lock()
		if err != nil {
			// Nothing of this batch counts as logged: the next write
			// reuses its LSNs and overwrites it, terminator included.
			s.log.lsn = first
			for _, o := range logged {
				s.pendingBytes -= logicalSize(o.env)
			}
		} else {
			// Durable: from now on reads wait for these, and Puts of the
			// same messages are duplicates.
			for _, o := range logged {
				s.pending[o.env.ID()] = o
			}
			s.log.logged = logged[len(logged)-1].lsn
		}
		s.walMu.Unlock()
		for _, o := range logged {
			r := opResult{res: Result{ID: o.env.ID(), New: true}, err: err}
			if err != nil {
				r.res = Result{}
			}
			o.done <- r
			for _, d := range dups[o.env.ID()] {
				d.done <- opResult{res: Result{ID: o.env.ID()}, err: err}
			}
		}
		if err == nil {
			fwd = append(fwd, logged...)
		}
	}
	if len(fwd) > 0 {
		s.handOver(fwd)
	}
}

func setAdd(m map[message.ID]bool, id message.ID) map[message.ID]bool {
	if m == nil {
		m = make(map[message.ID]bool)
	}
	m[id] = true
	return m
}

// storedIDs reports which Puts of batch are in the database, in one read
// transaction.
func (s *Store) storedIDs(batch []*op) map[message.ID]bool {
	var stored map[message.ID]bool
	s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsg)
		for _, o := range batch {
			if o.kind == opPut && !o.own {
				if id := o.env.ID(); b.Get(id[:]) != nil {
					if stored == nil {
						stored = make(map[message.ID]bool)
					}
					stored[id] = true
				}
			}
		}
		return nil
	})
	return stored
}

// roomFor reports whether a message of size logical bytes surely fits, with
// everything logged before it, without evicting anything and without
// reaching MaxDBSize. Called with walMu held.
func (s *Store) roomFor(size int64) bool {
	if q := s.opts.Quota; q > 0 {
		s.statMu.Lock()
		used := s.count.Bytes
		s.statMu.Unlock()
		if used+s.pendingBytes+size > q {
			return false
		}
	}
	if m := s.opts.MaxDBSize; m > 0 {
		// bbolt grows the file 16 MiB at a time; a record takes about
		// twice its logical size in the file (docs/STORE.md).
		if s.fileSize.Load()+2*(s.pendingBytes+size)+32<<20 > m {
			return false
		}
	}
	return true
}

// writeLog writes logged (LSNs first+1 ...) to the log. If the log has
// passed its capacity it first waits for the applier to apply everything logged
// so far, then rewinds it.
func (s *Store) writeLog(logged []*op, first uint64) error {
	w := s.log.file
	if w.off > w.capacity {
		if err := s.waitApplied(first); err != nil {
			return err
		}
		w.rewind()
	}
	recs := make([]walRecord, len(logged))
	for i, o := range logged {
		recs[i] = walRecord{lsn: o.lsn, received: o.received, env: s.seal.seal(nil, o.env.Raw())}
	}
	return w.write(recs)
}

// handOver appends ops to what the applier has to do. It waits while that
// holds maxPending requests or more: the log cannot run away from the
// database.
func (s *Store) handOver(ops []*op) {
	s.walMu.Lock()
	for len(s.toApply) >= maxPending && s.broken == nil {
		s.urgent++
		s.kickApplier()
		s.walCond.Wait()
		s.urgent--
	}
	s.toApply = append(s.toApply, ops...)
	if !s.hurry {
		// A request that is not logged has a caller waiting for the commit.
		s.hurry = slices.ContainsFunc(ops, func(o *op) bool { return o.lsn == 0 })
	}
	s.walMu.Unlock()
	s.kickApplier()
}

// kickApplier wakes the applier to look at its work again.
func (s *Store) kickApplier() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// applied records, after a commit, that batch's logged messages are no
// longer pending (stored, or refused for room) and wakes whoever waits for
// them.
func (s *Store) applied(batch []*op, results []opResult) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	for i, o := range batch {
		if o.kind == opPut && o.lsn == 0 {
			id := o.env.ID()
			if s.unlogged[id]--; s.unlogged[id] <= 0 {
				delete(s.unlogged, id)
			}
		}
		if o.lsn == 0 {
			continue
		}
		if results[i].err != nil {
			s.refused++
		}
		if _, ok := s.pending[o.env.ID()]; ok {
			delete(s.pending, o.env.ID())
			s.pendingBytes -= logicalSize(o.env)
		}
		s.log.applied = max(s.log.applied, o.lsn)
	}
	s.walCond.Broadcast()
}

// appliedAfter is the value of meta/wal once batch is committed, and
// whether batch changes it. Only the applier calls it: log.applied changes
// only there.
func (s *Store) appliedAfter(batch []*op) ([]byte, bool) {
	lsn := s.log.applied
	for _, o := range batch {
		lsn = max(lsn, o.lsn)
	}
	return binary.BigEndian.AppendUint64(nil, lsn), lsn != s.log.applied
}

// brokenErr is the error that broke the store, or nil. A store breaks when
// a logged message cannot be applied for another reason than room (an I/O
// error): from then on every write fails with that error, and reads see
// what the database holds. Reopening retries the log.
func (s *Store) brokenErr() error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return s.broken
}

func (s *Store) fail(err error) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.broken == nil {
		s.broken = fmt.Errorf("%w (what was acknowledged is kept in the log and applied when the store is reopened)", err)
		close(s.brokenCh)
	}
	s.walCond.Broadcast()
}

// waitApplied waits until the LSNs up to lsn are applied, the applier
// stops, or the store breaks.
func (s *Store) waitApplied(lsn uint64) error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	for s.log.applied < lsn && s.broken == nil && s.stalled == nil && !s.applierDone {
		s.urgent++
		s.kickApplier()
		s.walCond.Wait()
		s.urgent--
	}
	if s.broken != nil {
		return s.broken
	}
	return s.stalled
}

// settle makes a read see every Put that returned before it: it waits
// until the applier has committed everything durable in the log now
// (under load, one commit: a few milliseconds).
func (s *Store) settle() {
	s.walMu.Lock()
	lsn := s.log.logged
	s.walMu.Unlock()
	s.waitApplied(lsn)
}

// isPending reports whether id is logged and not yet applied.
func (s *Store) isPending(id message.ID) bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	_, ok := s.pending[id]
	return ok
}
