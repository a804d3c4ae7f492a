package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"lifeline/message"
)

// A full disk is a state the store leaves by itself.
//
// Before logging a batch of Puts, the logger checks the free space on the
// store's disk: below Options.MinFree plus three times what waits to be
// applied (a record takes about twice its logical size in bbolt, and a
// commit rewrites the pages it touches elsewhere), the Puts are refused
// with ErrNoSpace and nothing is acknowledged that could not be applied.
//
// If the disk fills anyway under messages already acknowledged (another
// program wrote to it in between), their commit fails: the store stalls
// instead of breaking. The applier holds them, in log order, and retries
// every stallRetry; every write is refused with ErrNoSpace meanwhile, and
// reads answer from the database plus, for Get and Has, the held messages.
// When a retry commits, the store simply goes on. A crash while stalled
// loses nothing: the held messages are still in the log, which is not
// emptied, and Open applies them (or, on a disk still full, stalls the
// same way and serves reads).

// DefaultMinFree is Options.MinFree's default.
const DefaultMinFree = 16 << 20

// minFree is the free space the store leaves on its disk, or -1.
func (s *Store) minFree() int64 {
	switch m := s.opts.MinFree; {
	case m < 0:
		return -1
	case m == 0:
		return DefaultMinFree
	default:
		return m
	}
}

// isNoSpace reports whether err is the system's "disk full" or "quota
// exceeded".
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// spaceErr says why the Puts of batch cannot be logged for lack of disk
// space, or nil. Called by the logger, without walMu.
func (s *Store) spaceErr(batch []*op) error {
	var size int64
	puts := false
	for _, o := range batch {
		if o.kind == opPut {
			size += logicalSize(o.env)
			puts = true
		}
	}
	if !puts {
		return nil
	}
	return s.roomOnDisk(size)
}

// roomOnDisk says why size more logical bytes cannot be taken now for lack
// of disk space (the store stalls, or its disk is below MinFree), or nil.
func (s *Store) roomOnDisk(size int64) error {
	s.walMu.Lock()
	stalled, pending := s.stalled, s.pendingBytes
	s.walMu.Unlock()
	if stalled != nil {
		return stalled
	}
	min := s.minFree()
	if min < 0 {
		return nil
	}
	free, ok := diskFree(filepath.Dir(s.path))
	if !ok {
		return nil
	}
	if need := min + 3*(pending+size); free < need {
		return fmt.Errorf("%w: %s free on the disk of %s, the store keeps %s free",
			ErrNoSpace, mib(free), s.path, mib(need))
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// stall holds o, a logged request whose commit failed for lack of space,
// and every logged request after it, until a retry commits them.
func (s *Store) stall(err error, o *op) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.stalled == nil {
		s.stalled = fmt.Errorf("%w: %w (the messages already acknowledged are kept and stored when there is room)", ErrNoSpace, err)
		s.walCond.Broadcast() // readers waiting for the applier read now
	}
	s.holdLocked(o)
}

func (s *Store) holdLocked(o *op) {
	s.held = append(s.held, o) // still pending: Get finds it there
}

// holdWhileStalled takes from batch, while the store is stalled, what
// cannot be applied now: logged requests join the held ones (their order
// is the log's), and Puts waiting unlogged are refused. It returns what is
// left to apply (Expire and MarkLeft, which need little room and free
// some), or batch itself when the store is not stalled.
func (s *Store) holdWhileStalled(batch []*op) []*op {
	s.walMu.Lock()
	stalled := s.stalled
	if stalled == nil {
		s.walMu.Unlock()
		return batch
	}
	var rest, refused []*op
	for _, o := range batch {
		switch {
		case o.lsn != 0:
			s.holdLocked(o)
		case o.kind == opPut:
			refused = append(refused, o)
		default:
			rest = append(rest, o)
		}
	}
	s.walMu.Unlock()
	if len(refused) > 0 {
		results := make([]opResult, len(refused))
		for i := range results {
			results[i] = opResult{err: stalled}
		}
		s.applied(refused, results)
		for i, o := range refused {
			o.done <- results[i]
		}
	}
	return rest
}

// retryHeld commits the held requests again, if the disk seems to have
// room for them; they are held again if it still has not.
func (s *Store) retryHeld() {
	s.walMu.Lock()
	held := s.held
	var size int64
	for _, o := range held {
		size += logicalSize(o.env)
	}
	if free, ok := diskFree(filepath.Dir(s.path)); ok && free < 2*size {
		s.walMu.Unlock()
		return // surely still full: a failed commit costs writes
	}
	s.held, s.stalled = nil, nil
	s.walMu.Unlock()
	for len(held) > 0 {
		n := min(len(held), maxApply)
		s.commit(held[:n]) // holds them again if the disk is still full
		held = held[n:]
	}
}

// isStalled reports whether the store waits for disk space.
func (s *Store) isStalled() bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return s.stalled != nil
}

// pendingRecord is the message id if it is logged and not yet applied
// (held while the disk is full, or waiting for the applier): acknowledged,
// not yet in the database.
func (s *Store) pendingRecord(id message.ID) *Record {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	o := s.pending[id]
	if o == nil {
		return nil
	}
	return &Record{Envelope: o.env, Received: o.received, Own: o.own}
}
