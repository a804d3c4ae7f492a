package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"lifeline/message"
	"lifeline/reconcile"
	"lifeline/store"
)

// Store is what the mesh needs from the message store.
type Store interface {
	Put(ctx context.Context, raw []byte) (store.Result, error)
	Get(id message.ID) (*store.Record, error)
	Subscribe(buf int) *store.Subscription
	Items(fromCreated int64, fromID message.ID, fn func(created int64, id message.ID) bool) error
	// MarkLeft records that the peer took these messages.
	MarkLeft(ctx context.Context, ids []message.ID) error
}

// itemView presents the store's (created, id) index to the reconciliation
// engine. Every Iterate call reads its own consistent snapshot.
type itemView struct{ st Store }

func (v itemView) Iterate(from, to reconcile.Item, fn func(reconcile.Item) bool) error {
	if from.Timestamp > math.MaxInt64 {
		return nil // nothing is stored at infinity
	}
	return v.st.Items(int64(from.Timestamp), message.ID(from.ID), func(created int64, id message.ID) bool {
		it := reconcile.Item{Timestamp: uint64(created), ID: id}
		return it.Compare(to) < 0 && fn(it)
	})
}

// SessionStats describes one reconciliation.
type SessionStats struct {
	Rounds   int   // Negentropy round trips
	BytesOut int64 // everything written on the stream
	BytesIn  int64 // everything read from it
	Sent     int   // envelopes sent to the peer
	Received int   // envelopes from the peer that were new here
	// Work is the reconciliation engine's work (reconcile.Engine.Work):
	// what the session cost this node's CPU, in the engine's units.
	Work int64
}

// deliverFunc verifies and stores an envelope the peer sent, reporting
// whether it was new. An error wrapping errMisbehaved ends the session.
type deliverFunc func(ctx context.Context, raw []byte) (bool, error)

type session struct {
	st      Store
	deliver deliverFunc
	r       *bufio.Reader
	w       io.Writer
	stats   SessionStats
	// dl, when the stream has deadlines, bounds each wait for a frame: a
	// peer that goes quiet frees its session slot after frameIdle, not at
	// the end of the whole session's timeout.
	dl interface {
		SetReadDeadline(time.Time) error
		SetWriteDeadline(time.Time) error
	}
	idle time.Duration
	// grace, on a responder, is the lease: how long in all the peer may
	// keep us waiting for its frames or for it to read ours, extended by
	// progress (see allowance). Without it a peer sending an empty frame
	// every few seconds would hold a responder slot for sessionTimeout.
	// 0 (the initiator) is none.
	grace  time.Duration
	waited time.Duration
	// sent are the envelopes written to the peer; once the session ends
	// well, the peer has read them all, and they count as left this node.
	sent []message.ID
	// offered (responder) are the ranges this session's Negentropy
	// replies listed id by id: the only envelopes an honest initiator can
	// want from us. given are the ids it has wanted, each at most once.
	offered []reconcile.Span
	given   map[message.ID]struct{}
}

// Progress that extends a responder's lease. A round of Negentropy is
// bounded (maxRounds) and an initiator on a slow machine may take a
// while over a big set; an envelope moved is what a session is for, and
// a stranger cannot move many without paying for them (push budgets, the
// offered ids once each). A legitimate transfer moves an envelope every
// few milliseconds (push rate 500/s) and earns time far faster than it
// spends it; a peer trickling envelopes to keep a slot must send ten a
// second.
const (
	respondGrace = 30 * time.Second
	perRound     = time.Second
	perEnvelope  = 100 * time.Millisecond
)

// allowance is how long the peer may have kept this session waiting so
// far: the grace and what progress earned.
func (s *session) allowance() time.Duration {
	return s.grace + time.Duration(s.stats.Rounds)*perRound + time.Duration(s.stats.Received+s.stats.Sent)*perEnvelope
}

// left is how much longer the peer may keep us waiting now, capped at c.
func (s *session) left(c time.Duration) time.Duration {
	if s.grace == 0 {
		return c
	}
	return max(min(c, s.allowance()-s.waited), 0)
}

// finish marks what the session sent as left, if it ended well: a session
// cut short may have lost its last frames on the way.
func (s *session) finish(ctx context.Context, err error) error {
	if err != nil || len(s.sent) == 0 {
		return err
	}
	if merr := s.st.MarkLeft(ctx, s.sent); merr != nil {
		return fmt.Errorf("recording what was sent: %w", merr)
	}
	return nil
}

// frameIdle is how long a session waits for the peer's next frame.
// Computing a reply takes well under a second even on a million items, and
// storing a batch of envelopes at the push rate limit about a quarter.
const frameIdle = 15 * time.Second

// armRead starts the wait for the next frame.
func (s *session) armRead() {
	if s.dl != nil {
		s.dl.SetReadDeadline(time.Now().Add(s.left(s.idle)))
	}
}

// next reads the next frame, counting the wait against the lease.
func (s *session) next() (frame, error) {
	s.armRead()
	start := time.Now()
	f, err := readFrame(s.r)
	s.waited += time.Since(start)
	return f, err
}

// write writes one frame. On a responder a peer that stops reading keeps
// us waiting, on its lease like a peer that stops writing.
func (s *session) write(typ byte, payload []byte) error {
	if s.grace == 0 || s.dl == nil {
		return writeFrame(s.w, typ, payload)
	}
	start := time.Now()
	s.dl.SetWriteDeadline(start.Add(s.left(sessionTimeout)))
	err := writeFrame(s.w, typ, payload)
	s.waited += time.Since(start)
	return err
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

func newSession(rw io.ReadWriter, st Store, deliver deliverFunc) *session {
	s := &session{st: st, deliver: deliver, idle: frameIdle}
	s.dl, _ = rw.(interface {
		SetReadDeadline(time.Time) error
		SetWriteDeadline(time.Time) error
	})
	s.r = bufio.NewReader(countingReader{rw, &s.stats.BytesIn})
	s.w = countingWriter{rw, &s.stats.BytesOut}
	return s
}

// hello exchanges version bytes: the initiator writes first, the responder
// answers after reading, so even an unbuffered pipe never has both sides
// writing at once.
func (s *session) hello(initiator bool) error {
	if initiator {
		if _, err := s.w.Write([]byte{streamVersion}); err != nil {
			return err
		}
	}
	s.armRead()
	v, err := s.r.ReadByte()
	if err != nil {
		return err
	}
	if v != streamVersion {
		return fmt.Errorf("%w: peer speaks stream version %d, we speak %d", ErrVersion, v, streamVersion)
	}
	if !initiator {
		_, err = s.w.Write([]byte{streamVersion})
	}
	return err
}

func (s *session) expect(typ byte) ([]byte, error) {
	f, err := s.next()
	if err != nil {
		return nil, err
	}
	if f.typ != typ {
		return nil, fmt.Errorf("%w: frame type %d where %d was due", ErrProtocol, f.typ, typ)
	}
	return f.payload, nil
}

// Initiate runs the initiator side on rw: reconcile the sets, then push what
// the peer lacks and fetch what we lack, in lockstep batches.
func Initiate(ctx context.Context, rw io.ReadWriter, st Store, deliver deliverFunc) (SessionStats, error) {
	return InitiateFrom(ctx, rw, st, deliver, 0)
}

// InitiateFrom is Initiate for the messages created at or after from (unix
// ms) only: older ones are neither compared nor sent, either way.
func InitiateFrom(ctx context.Context, rw io.ReadWriter, st Store, deliver deliverFunc, from int64) (SessionStats, error) {
	s := newSession(rw, st, deliver)
	err := s.initiate(ctx, uint64(max(from, 0)))
	return s.stats, s.finish(ctx, err)
}

func (s *session) initiate(ctx context.Context, from uint64) error {
	if err := s.hello(true); err != nil {
		return err
	}
	eng, err := reconcile.New(itemView{s.st}, negFrameLimit)
	if err != nil {
		return err
	}
	eng.SetWorkLimit(maxSessionWork)
	defer func() { s.stats.Work = eng.Work() }()
	msg, err := eng.InitiateFrom(from)
	if err != nil {
		return err
	}
	var have, need [][reconcile.IDSize]byte
	for msg != nil {
		if s.stats.Rounds++; s.stats.Rounds > maxRounds {
			return fmt.Errorf("%w: no agreement after %d negentropy rounds", ErrProtocol, maxRounds)
		}
		if err := s.write(frameNeg, msg); err != nil {
			return err
		}
		reply, err := s.expect(frameNeg)
		if err != nil {
			return err
		}
		if len(reply) > negFrameLimit {
			return fmt.Errorf("%w: negentropy reply of %d bytes, the limit is %d", ErrProtocol, len(reply), negFrameLimit)
		}
		if msg, have, need, err = eng.Reconcile(reply, have, need); err != nil {
			return negError(err)
		}
		// A peer inventing ids would otherwise grow these without end.
		if len(need) > maxTransfer {
			return fmt.Errorf("%w: peer claims more than %d envelopes we lack", ErrProtocol, maxTransfer)
		}
	}
	for len(have) > 0 || len(need) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		push := have[:min(batch, len(have))]
		want := need[:min(batch, len(need))]
		have, need = have[len(push):], need[len(want):]
		if err := s.sendEnvelopes(toIDs(push)); err != nil {
			return err
		}
		if err := s.write(frameWant, encodeIDs(toIDs(want))); err != nil {
			return err
		}
		p, err := s.expect(frameEnvelopes)
		if err != nil {
			return err
		}
		if err := s.receive(ctx, p); err != nil {
			return err
		}
	}
	if err := s.write(frameDone, nil); err != nil {
		return err
	}
	_, err = s.expect(frameDone)
	return err
}

// Respond runs the responder side on rw until the initiator is done, or
// until the initiator has kept it waiting longer than its progress allows
// (see allowance).
func Respond(ctx context.Context, rw io.ReadWriter, st Store, deliver deliverFunc) (SessionStats, error) {
	return respondWithin(respondGrace, maxSessionWork)(ctx, rw, st, deliver)
}

// respondWithin is Respond with another grace and work limit.
func respondWithin(grace time.Duration, work int64) sessionFunc {
	return func(ctx context.Context, rw io.ReadWriter, st Store, deliver deliverFunc) (SessionStats, error) {
		s := newSession(rw, st, deliver)
		s.grace = grace
		err := s.respond(ctx, work)
		return s.stats, s.finish(ctx, err)
	}
}

func (s *session) respond(ctx context.Context, work int64) error {
	if err := s.hello(false); err != nil {
		return err
	}
	eng, err := reconcile.New(itemView{s.st}, negFrameLimit)
	if err != nil {
		return err
	}
	eng.SetWorkLimit(work)
	defer func() { s.stats.Work = eng.Work() }()
	transfer, wanted := false, 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := s.next()
		if err != nil {
			return err
		}
		if (f.typ == frameEnvelopes || f.typ == frameWant) && !transfer {
			// The transfer follows a reconciliation: before one, a want
			// could only be a guess (or, with ids learnt by gossip, a way
			// to make us send 130 bytes for every one it sends).
			if s.stats.Rounds == 0 {
				return fmt.Errorf("%w: frame type %d before any negentropy round", ErrProtocol, f.typ)
			}
			transfer = true
			s.offered = mergeSpans(s.offered)
			s.given = map[message.ID]struct{}{}
		}
		switch f.typ {
		case frameNeg:
			// Negentropy comes first and is bounded: each round costs us
			// scans of the store, a few bytes each for the peer.
			if transfer {
				return fmt.Errorf("%w: negentropy message after the transfer began", ErrProtocol)
			}
			if len(f.payload) > negFrameLimit {
				return fmt.Errorf("%w: negentropy message of %d bytes, the limit is %d", ErrProtocol, len(f.payload), negFrameLimit)
			}
			if s.stats.Rounds++; s.stats.Rounds > maxRounds {
				return fmt.Errorf("%w: more than %d negentropy rounds", ErrProtocol, maxRounds)
			}
			reply, offered, err := eng.RespondSpans(f.payload, s.offered)
			if len(offered) > maxOffered/2 {
				offered = mergeSpans(offered)
			}
			if len(offered) > maxOffered {
				// 80 bytes each: a peer could otherwise make a session
				// hold tens of megabytes of ranges.
				return fmt.Errorf("%w: more than %d ranges listed in one session", ErrProtocol, maxOffered)
			}
			if errors.Is(err, reconcile.ErrWorkLimit) && work < maxSessionWork {
				// The strangers' shared budget ran out, not the session's
				// own bound: nobody misbehaved; the peer tries later.
				return ErrBusy
			}
			if err != nil {
				return negError(err)
			}
			s.offered = offered
			if err := s.write(frameNeg, reply); err != nil {
				return err
			}
		case frameEnvelopes:
			if err := s.receive(ctx, f.payload); err != nil {
				return err
			}
		case frameWant:
			ids, err := decodeIDs(f.payload)
			if err != nil {
				return err
			}
			// What a peer may want is bounded by what it could lack.
			if wanted += len(ids); wanted > maxTransfer {
				return fmt.Errorf("%w: more than %d envelopes wanted", ErrProtocol, maxTransfer)
			}
			if err := s.sendWanted(ids); err != nil {
				return err
			}
		case frameDone:
			return s.write(frameDone, nil)
		default:
			return fmt.Errorf("%w: unknown frame type %d", ErrProtocol, f.typ)
		}
	}
}

// Per-session bounds. Converging a million items takes under 20 rounds
// even at a 1 % difference (docs/BENCHMARKS.md); a session carries at most
// maxTransfer envelopes each way, and the next session carries the rest.
const (
	maxRounds   = 64
	maxTransfer = 200_000
	// maxSessionWork bounds the engine's work in one session, either
	// role (reconcile.Engine.SetWorkLimit: items visited, plus 32 per
	// walk of the store): a million items 1 % apart take 28 million on
	// the responder, so a hub's sessions fit twice over, and a peer
	// asking for more is treated as misbehaving.
	maxSessionWork = 64 << 20
	// maxOffered bounds the separate ranges a responder session has
	// listed id by id (s.offered), about 80 bytes each once merged.
	// Converging a million items at a 1 % difference lists far fewer.
	maxOffered = 1 << 16
)

// mergeSpans sorts spans and merges those that overlap or touch, so that
// offered can search them.
func mergeSpans(spans []reconcile.Span) []reconcile.Span {
	slices.SortFunc(spans, func(a, b reconcile.Span) int { return a.From.Compare(b.From) })
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && sp.From.Compare(out[n-1].To) <= 0 {
			if sp.To.Compare(out[n-1].To) > 0 {
				out[n-1].To = sp.To
			}
			continue
		}
		out = append(out, sp)
	}
	return out
}

// offeredItem reports whether it lies in a range this session listed id
// by id (s.offered, merged).
func (s *session) offeredItem(it reconcile.Item) bool {
	i, _ := slices.BinarySearchFunc(s.offered, it, func(sp reconcile.Span, it reconcile.Item) int {
		if sp.To.Compare(it) <= 0 {
			return -1
		}
		if sp.From.Compare(it) > 0 {
			return 1
		}
		return 0
	})
	return i < len(s.offered) && s.offered[i].From.Compare(it) <= 0 && it.Compare(s.offered[i].To) < 0
}

// sendWanted answers a want: only ids this session's id lists named, each
// once. An id gone since (expired, evicted) is skipped, as in
// sendEnvelopes; it still counts as asked for.
func (s *session) sendWanted(ids []message.ID) error {
	envs := make([][]byte, 0, len(ids))
	for _, id := range ids {
		if _, dup := s.given[id]; dup {
			return fmt.Errorf("%w: envelope %s wanted twice", ErrProtocol, id)
		}
		s.given[id] = struct{}{}
		rec, err := s.st.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !s.offeredItem(reconcile.Item{Timestamp: uint64(rec.Envelope.Created), ID: id}) {
			return fmt.Errorf("%w: envelope %s wanted but never offered", ErrProtocol, id)
		}
		envs = append(envs, rec.Envelope.Raw())
		s.sent = append(s.sent, id)
	}
	s.stats.Sent += len(envs)
	return s.write(frameEnvelopes, encodeEnvelopes(envs))
}

// negError classifies an engine error: another protocol version is
// incompatibility, anything else a violation.
func negError(err error) error {
	if errors.Is(err, reconcile.ErrUnsupportedVersion) {
		return fmt.Errorf("%w: %v", ErrVersion, err)
	}
	return fmt.Errorf("%w: %v", ErrProtocol, err)
}

// sendEnvelopes writes one envelopes frame with those of ids still stored
// here; an envelope expired or evicted since the reconciliation is skipped.
func (s *session) sendEnvelopes(ids []message.ID) error {
	envs := make([][]byte, 0, len(ids))
	for _, id := range ids {
		rec, err := s.st.Get(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		envs = append(envs, rec.Envelope.Raw())
		s.sent = append(s.sent, id)
	}
	s.stats.Sent += len(envs)
	return s.write(frameEnvelopes, encodeEnvelopes(envs))
}

func toIDs(ids [][reconcile.IDSize]byte) []message.ID {
	out := make([]message.ID, len(ids))
	for i, id := range ids {
		out[i] = message.ID(id)
	}
	return out
}

func (s *session) receive(ctx context.Context, payload []byte) error {
	envs, err := decodeEnvelopes(payload)
	if err != nil {
		return err
	}
	for _, raw := range envs {
		isNew, err := s.deliver(ctx, raw)
		if err != nil {
			return err
		}
		if isNew {
			s.stats.Received++
		}
	}
	return nil
}
