package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"lifeline/message"
)

// Errors. Each is returned wrapped with detail; test with errors.Is.
var (
	// ErrNotFound: no message with that ID is stored.
	ErrNotFound = errors.New("message not found")
	// ErrLocked: another process has the database file open.
	ErrLocked = errors.New("database is locked by another process")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrQuota: the message does not fit in the quota without evicting
	// something more important than itself, or the file reached MaxDBSize.
	ErrQuota = errors.New("storage quota exceeded")
	// ErrNoSpace: the disk holding the store is too full to take the
	// message. Nothing was written; what was stored before stays readable,
	// and writes work again once there is room (no reopening needed).
	ErrNoSpace = errors.New("no space left on the store's disk")
	// ErrCorrupt: the file holds something this code did not write.
	ErrCorrupt = errors.New("store corrupt")
)

func errCorrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

// Options configure Open.
type Options struct {
	// Quota is the most logical bytes the stored messages may take: the sum
	// over messages of len(envelope) + RecordOverhead. Zero means no limit.
	Quota int64
	// Own is this node's identity. Messages it signed count as own (as if
	// stored with PutOwn) and are evicted last: a direct message until its
	// recipient's receipt marks it delivered, a channel message until it
	// expires. Receipts are never protected, own or not. The zero key means
	// none.
	Own message.PublicKey
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NoSync turns fsync off. Tests and benchmarks only: a Put that
	// returned may then be lost on power failure.
	NoSync bool
	// MaxAge, if positive, makes Expire also remove messages created more
	// than MaxAge before its now, though they have not expired: how long
	// this node keeps anything (a retention setting). They count as
	// expired.
	MaxAge time.Duration
	// MaxDBSize caps the database file in bytes (32-bit ARM cannot map much
	// more than 1 GB). Zero means no cap. Keep Quota well below it: the file
	// takes roughly twice the logical bytes (see docs/STORE.md).
	MaxDBSize int64
	// MinFree is the free space, in bytes, the store leaves on its disk:
	// below it Puts are refused with ErrNoSpace before anything is
	// acknowledged (see space.go). Zero means DefaultMinFree; negative
	// turns the check off (tests of a disk filling under the database).
	MinFree int64
	// Members, if set, says whose messages belong to the members' tier
	// (see evictClass): keys the operator vouched for, nodes of the same
	// private mesh. It is asked when a message is stored; the answer stays
	// with the message. Messages signed by Own are members' too.
	Members func(message.PublicKey) bool
}

const (
	// queueLen bounds the requests waiting for the logger. A Put that
	// finds it full waits, and gives up when its context ends.
	queueLen = 1024
	// maxBatch bounds one log write.
	maxBatch = 2048
	// maxApply bounds one bbolt transaction of the applier, so one slow
	// commit does not hold PutOwn callers for long.
	maxApply = 8192
	// maxPending bounds the requests handed to the applier and not yet
	// committed (and so the memory they hold, about 1 KiB each).
	maxPending = 4 * maxApply
	// applyLinger is how long the applier lets logged Puts gather when
	// nobody waits for them.
	applyLinger = 100 * time.Millisecond
	// lockTimeout is how long Open waits for another process's lock.
	lockTimeout = time.Second
)

// Store is a message store. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	now  func() time.Time

	seal *sealer // the store key (seal.go)

	queue chan *op
	// scanCap is ScanCap; tests lower it.
	scanCap int

	// closeMu orders Close against requests entering the queue: Close
	// waits for every request that got in to finish.
	closeMu  sync.RWMutex
	closed   bool
	closing  chan struct{}
	inflight sync.WaitGroup
	stop     chan struct{}
	stopped  chan struct{}

	statMu sync.Mutex
	count  counters // as of the last commit; written by the applier only
	seq    uint64   // the last seq assigned, as of the last commit; likewise

	log      logState      // guarded by walMu
	kick     chan struct{} // wakes the applier; buffered 1
	fileSize atomic.Int64  // of the database file, after the last commit
	taken    atomic.Int64  // requests the logger has taken from the queue

	// walMu guards the state shared by the logger, the applier and
	// readers waiting for the applier (walCond).
	walMu        sync.Mutex
	walCond      *sync.Cond
	pending      map[message.ID]*op // logged (so acknowledged), not yet applied: see pendingRecord
	unlogged     map[message.ID]int // Puts handed to the applier unlogged, not yet applied
	pendingBytes int64              // logical bytes of pending
	refused      int64              // logged messages refused for room when applied
	replayed     int64              // log records applied by Open
	broken       error              // see brokenErr
	brokenCh     chan struct{}      // closed when broken is set
	stalled      error              // see space.go; nil when not stalled
	held         []*op              // logged, committing them failed for lack of space, in log order
	toApply      []*op              // handed from the logger to the applier, in order
	hurry        bool               // toApply holds a request whose caller waits for the commit
	urgent       int                // goroutines waiting for the applier (settle, the logger)
	logDone      bool               // the logger has stopped: toApply only shrinks now
	applierDone  bool

	subMu sync.Mutex
	subs  map[*Subscription]struct{}
}

// Open opens or creates the store at path (mode 0600). If another process
// holds the file, it returns an error wrapping ErrLocked after about a
// second. Open reads only the meta bucket, never every message, so it is
// fast and small on any size of store.
func Open(path string, opts Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		NoSync:       opts.NoSync,
		MaxSize:      maxSize(opts.MaxDBSize),
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w (waited %s)", path, ErrLocked, lockTimeout)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		opts:    opts,
		now:     opts.Now,
		queue:   make(chan *op, queueLen),
		scanCap: ScanCap,
		closing: make(chan struct{}),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		subs:    make(map[*Subscription]struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.walCond = sync.NewCond(&s.walMu)
	s.pending = make(map[message.ID]*op)
	s.unlogged = make(map[message.ID]int)
	s.kick = make(chan struct{}, 1)
	s.brokenCh = make(chan struct{})
	// An existing store is only read here, so that it opens on a full
	// disk; only a new one is written.
	var applied uint64
	fresh, sealed := false, false
	err = db.View(func(tx *bolt.Tx) (err error) {
		if tx.Bucket(bucketMeta) == nil {
			fresh = true
			return nil
		}
		sealed = tx.Bucket(bucketMeta).Get(metaSealed) != nil
		applied, err = s.initSchema(tx)
		return err
	})
	var key []byte
	if err == nil {
		// A store that seals needs its key; a new one, or one from
		// before sealing, gets one.
		key, _, err = loadKey(path, !sealed)
	}
	if err == nil {
		s.seal, err = newSealer(key)
	}
	if err == nil && fresh {
		err = db.Update(func(tx *bolt.Tx) (err error) {
			if applied, err = s.initSchema(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(metaSealed, []byte{1})
		})
	} else if err == nil && !sealed {
		// From before sealing: it seals from now on. If the disk is too
		// full to note it, the next Open tries again (the key exists).
		db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaSealed, []byte{1}) })
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if info, err := os.Stat(path); err == nil {
		s.fileSize.Store(info.Size()) // for roomFor, until the first commit
	}
	if err := s.openLog(applied); err != nil {
		if s.log.file != nil {
			s.log.file.close()
		}
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	go s.logLoop()
	go s.applyLoop()
	return s, nil
}

// maxSize converts Options.MaxDBSize to bbolt's int. On 32-bit platforms a
// cap above math.MaxInt (2 GiB) would overflow int, possibly to a negative
// number, which bbolt reads as "no limit", or to a small one; it is clamped
// instead. That changes nothing in effect: such a file could not be mapped
// there anyway.
func maxSize(n int64) int {
	if n > math.MaxInt {
		return math.MaxInt
	}
	return int(n)
}

// initSchema creates or checks the schema, loads the counters, and returns
// meta/wal.
func (s *Store) initSchema(tx *bolt.Tx) (uint64, error) {
	var applied uint64
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		for _, name := range [][]byte{bucketMeta, bucketMsg, bucketTime, bucketDest, bucketExp, bucketEvict, bucketSeq} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return applied, fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta = tx.Bucket(bucketMeta)
		if err := meta.Put(metaVersion, []byte{schemaVersion}); err != nil {
			return applied, err
		}
		if err := meta.Put(metaSeq, seqKey(0)); err != nil {
			return applied, err
		}
		return applied, meta.Put(metaCounters, counters{}.encode())
	}
	if v := meta.Get(metaVersion); len(v) == 1 && v[0] == 1 {
		return applied, fmt.Errorf("%w: schema version 1, from before arrival sequence numbers; this code reads only %d "+
			"and does not convert: move the file aside and let the node start a new one (peers will resend what they hold)",
			ErrCorrupt, schemaVersion)
	} else if len(v) != 1 || v[0] != schemaVersion {
		return applied, fmt.Errorf("%w: schema version %x, this code reads %d", ErrCorrupt, v, schemaVersion)
	}
	for _, name := range [][]byte{bucketMsg, bucketTime, bucketDest, bucketExp, bucketEvict, bucketSeq} {
		if tx.Bucket(name) == nil {
			return applied, errCorrupt("missing bucket " + string(name))
		}
	}
	c, ok := decodeCounters(meta.Get(metaCounters))
	if !ok {
		return applied, errCorrupt("meta counters")
	}
	seq := meta.Get(metaSeq)
	if len(seq) != 8 {
		return applied, errCorrupt("meta seq")
	}
	s.count, s.seq = c, binary.BigEndian.Uint64(seq)
	return decodeApplied(meta.Get(metaWAL))
}

// Close stops accepting writes, waits for the writes already accepted to
// commit, closes every subscription (Err() == ErrClosed) and closes the
// file. Calls after the first return nil.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.closeMu.Unlock()

	s.inflight.Wait()
	close(s.stop)
	<-s.stopped
	var werr error
	if s.brokenErr() == nil && !s.isStalled() {
		// Everything logged is applied: the log is empty. (Held messages
		// stay in it, for the next Open.)
		werr = s.log.file.reset()
	}
	werr = errors.Join(werr, s.log.file.close())

	s.subMu.Lock()
	for sub := range s.subs {
		sub.end(ErrClosed)
		delete(s.subs, sub)
	}
	s.subMu.Unlock()

	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	if werr != nil {
		return fmt.Errorf("store: close: %w", werr)
	}
	return nil
}

// Stats are the store's counters, as of the last commit.
type Stats struct {
	Messages int64 // stored now
	Bytes    int64 // logical bytes stored now (see Options.Quota)
	Quota    int64 // Options.Quota
	Evicted  int64 // removed to respect the quota, since the file was created
	Expired  int64 // removed by Expire, since the file was created
	// Refused counts, since Open, messages whose Put had returned (from
	// the log) but that were not stored when applied: the file reached
	// MaxDBSize, or the quota filled with more important messages in the
	// meantime. Each is as if stored and evicted at once. A log record
	// that does not verify at Open counts here too.
	Refused int64
	// Replayed is how many messages Open recovered from the log: Puts
	// that had returned before a crash and had not reached the database.
	Replayed int64
	// LastSeq is the arrival sequence number of the newest message stored
	// (0: none yet). It is read from memory after each commit, so it may
	// trail a transaction that has just committed, never lead it: every
	// message with a greater seq is stored after Stats returned, or at
	// most a moment before.
	LastSeq uint64
	// Problem says why the store cannot take writes now, "" when it can:
	// it broke (see Failed), it waits for disk space (see ErrNoSpace), or
	// its disk has less free than Options.MinFree.
	Problem string
}

// Stats returns the counters. It reads memory only, after waiting like
// every read for the Puts that have returned.
func (s *Store) Stats() Stats {
	s.settle()
	s.statMu.Lock()
	c, seq := s.count, s.seq
	s.statMu.Unlock()
	s.walMu.Lock()
	refused, replayed := s.refused, s.replayed
	s.walMu.Unlock()
	st := Stats{Messages: c.Messages, Bytes: c.Bytes, Quota: s.opts.Quota, Evicted: c.Evicted, Expired: c.Expired,
		Refused: refused, Replayed: replayed, LastSeq: seq}
	if err := s.brokenErr(); err != nil {
		st.Problem = err.Error()
	} else if err := s.roomOnDisk(message.MaxEnvelope + RecordOverhead); err != nil { // room for the largest message?
		st.Problem = err.Error()
	}
	return st
}

// enter admits a request to the queue unless the store is closing. The
// caller must call s.inflight.Done when its request is finished.
func (s *Store) enter() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// submit queues o and waits for its result. If ctx ends first, the request
// may still be committed later: the caller only stops waiting.
func (s *Store) submit(ctx context.Context, o *op) (opResult, error) {
	if err := s.enter(); err != nil {
		return opResult{}, err
	}
	defer s.inflight.Done()
	select {
	case s.queue <- o:
	case <-s.closing:
		return opResult{}, ErrClosed
	case <-ctx.Done():
		return opResult{}, ctx.Err()
	}
	select {
	case r := <-o.done:
		return r, r.err
	case <-ctx.Done():
		return opResult{}, ctx.Err()
	}
}

// viewErr maps bbolt's closed-database error to ErrClosed.
func viewErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Failed is closed when the store breaks: a commit failed for another
// reason than room (an I/O error), and every write fails from then on with
// Err. The store cannot leave that state by itself; its owner should end
// the process with Err, so that a supervisor starts it again (reopening
// applies what the log holds). A full disk is not a failure: the store
// waits for room by itself (see ErrNoSpace).
func (s *Store) Failed() <-chan struct{} { return s.brokenCh }

// Err is the error that broke the store (see Failed), or nil.
func (s *Store) Err() error { return s.brokenErr() }
