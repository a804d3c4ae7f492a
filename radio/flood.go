package radio

import (
	"crypto/sha256"
	"time"

	"lifeline/message"
)

// Flood decides, for every frame heard, whether to deliver it and whether
// and when to relay it: a managed flood. Each frame is relayed at most
// once, with one hop less, after a random delay; a relay still waiting is
// cancelled when a neighbour is heard relaying the same frame (it has
// covered much of the same ground), so dense areas do not echo every
// frame from every node. It is a pure state machine: the caller passes the
// time, and the random delay.
type Flood struct {
	// MaxDelay bounds the random wait before relaying.
	MaxDelay time.Duration
	// Remember is how long a frame is remembered as seen.
	Remember time.Duration
	// MaxSeen bounds the frames remembered; the oldest are forgotten first.
	MaxSeen int

	seen  map[FrameID]*seenFrame
	order []FrameID // by first heard, oldest first

	// Counters since creation.
	Frames, Duplicates, Relayed, Cancelled int
}

// FrameID names one frame by what it carries: the first 8 bytes of its
// envelope's ID for a whole one; for a fragment, its key, index and count
// and the first 8 bytes of the SHA-256 of its bytes. A fragment's key and
// index can be copied by anyone, so they alone would let a forgery heard
// first pass the genuine fragment off as a duplicate at every node it
// reaches (and cancel its relays and repairs): named by its bytes too,
// the genuine fragment is new wherever it comes, and the reassembler
// sorts the two out.
type FrameID [16]byte

type seenFrame struct {
	at      time.Time
	pending bool // a relay is scheduled and not yet cancelled or sent
}

// NewFlood returns a Flood with the given bounds.
func NewFlood(maxDelay, remember time.Duration, maxSeen int) *Flood {
	return &Flood{MaxDelay: maxDelay, Remember: remember, MaxSeen: maxSeen, seen: map[FrameID]*seenFrame{}}
}

// IDOf names a frame.
func IDOf(f Frame) FrameID {
	var id FrameID
	if f.Type == FrameWhole {
		h := message.IDOf(f.Payload)
		copy(id[1:9], h[:8])
		return id
	}
	id[0] = 1
	copy(id[1:5], f.Key[:])
	id[5], id[6] = f.Index, f.Count
	h := sha256.Sum256(f.Payload)
	copy(id[7:15], h[:8])
	return id
}

// Decision is what to do with a frame heard.
type Decision struct {
	// New: first time this frame is heard; hand it on (deliver a whole
	// envelope, or a fragment to the reassembler).
	New bool
	// Relay, when not zero, is when to send it again, with Hops one less.
	Relay time.Time
	// Cancel: a relay of this frame is pending here and a neighbour was
	// just heard relaying it; take it off the queue.
	Cancel bool
}

// Heard takes a frame received at now. rnd in [0, 1) places the relay
// within MaxDelay.
func (fl *Flood) Heard(now time.Time, f Frame, rnd float64) Decision {
	fl.Frames++
	fl.forget(now, 0)
	id := IDOf(f)
	if s := fl.seen[id]; s != nil {
		fl.Duplicates++
		if s.pending {
			s.pending = false
			fl.Cancelled++
			return Decision{Cancel: true}
		}
		return Decision{}
	}
	fl.forget(now, 1)
	s := &seenFrame{at: now}
	fl.seen[id] = s
	fl.order = append(fl.order, id)
	d := Decision{New: true}
	if f.Hops > 0 {
		s.pending = true
		d.Relay = now.Add(time.Duration(rnd * float64(fl.MaxDelay)))
	}
	return d
}

// Seen reports whether the frame is remembered as heard or sent.
func (fl *Flood) Seen(now time.Time, id FrameID) bool {
	fl.forget(now, 0)
	return fl.seen[id] != nil
}

// Sent records that a frame's relay has gone out (or that this node sent
// it first: a node does not relay its own frames back).
func (fl *Flood) Sent(now time.Time, f Frame) { fl.SentID(now, IDOf(f)) }

// SentID is Sent for a frame known by its ID.
func (fl *Flood) SentID(now time.Time, id FrameID) {
	if s := fl.seen[id]; s != nil {
		if s.pending {
			fl.Relayed++
		}
		s.pending = false
		return
	}
	fl.forget(now, 1)
	fl.seen[id] = &seenFrame{at: now}
	fl.order = append(fl.order, id)
}

// forget drops what is older than Remember, and the oldest beyond MaxSeen
// less room (the frames about to be added).
func (fl *Flood) forget(now time.Time, room int) {
	i := 0
	for i < len(fl.order) && (len(fl.order)-i > fl.MaxSeen-room || now.Sub(fl.seen[fl.order[i]].at) > fl.Remember) {
		delete(fl.seen, fl.order[i])
		i++
	}
	if i > 0 {
		fl.order = append(fl.order[:0], fl.order[i:]...)
	}
}
