package reconcile

import (
	"errors"
	"fmt"
)

// Version is the protocol version byte this engine speaks.
const Version = 0x61

const (
	modeSkip        = 0
	modeFingerprint = 1
	modeIDList      = 2

	// buckets is how many fingerprints a mismatched range is split into;
	// ranges under 2*buckets items are sent as id lists instead.
	buckets = 16

	// MinFrameSizeLimit is the smallest frame size limit the protocol allows.
	MinFrameSizeLimit = 4096
	// frameSlack keeps room for the closing fingerprint range when a frame
	// is cut short, as the reference does.
	frameSlack = 200

	// MaxRanges bounds the ranges in one message on a link with a frame
	// size limit, both ways: an engine with a limit closes its message
	// early (as when it runs out of bytes) rather than write more, and
	// rejects a message with more. Every range costs a walk of the
	// storage, and a message of 500,000 bytes could otherwise hold 26,000
	// fingerprints (166,000 skips). With 8192 a million items 1 % apart
	// converge in 25 rounds instead of 18 (4096: 44, too close to the
	// mesh's limit of 64; docs/DECISIONS.md).
	MaxRanges = 8192

	// seekWork is what one walk of the storage counts for in an engine's
	// work, besides one per item visited: a database cursor pays a tree
	// descent to start a walk, about as much as stepping over a few dozen
	// items.
	seekWork = 32
)

// ErrWorkLimit is returned once a session has made the engine do more work
// than SetWorkLimit allows. It wraps ErrMalformed: no honest peer needs
// that much of it.
var ErrWorkLimit = fmt.Errorf("%w: session work limit exceeded", ErrMalformed)

// ErrUnsupportedVersion is returned to an initiator whose peer answered
// with a protocol version other than 0x61.
var ErrUnsupportedVersion = errors.New("peer speaks an unsupported negentropy version")

// Engine runs one side of one reconciliation. Make a new Engine per session.
//
// The initiator calls Initiate, sends its output, and feeds every reply to
// Reconcile until Reconcile returns a nil message. The responder feeds every
// message it receives to Respond and sends back what comes out. Every call
// walks the storage afresh, so the storage should present a consistent
// snapshot for the duration of a call.
type Engine struct {
	storage    Storage
	frameLimit int
	initiator  bool

	lastIn, lastOut uint64 // timestamp delta state, reset per message

	// reported holds every id the initiator has put in have or need. With
	// a frame size limit a responder that runs out of room closes its
	// message with one fingerprint from where it stopped, re-opening ranges
	// the initiator had already settled, so the same id can come back.
	reported map[[IDSize]byte]struct{}

	// work counts items visited plus seekWork per walk of the storage,
	// over the whole session; past workLimit (0: none) every call fails.
	work, workLimit int64
	// outRanges counts the ranges written into the message being built.
	outRanges int
	// maxRanges is MaxRanges; tests lower it to reach it with small sets.
	maxRanges int
}

// Span is the items i with From <= i < To.
type Span struct{ From, To Item }

// SetWorkLimit bounds the work one session may make this engine do, in
// items visited plus a fixed cost per walk of the storage, summed over
// every message of the session. A message that would take it past the
// limit fails with ErrWorkLimit (the engine stops walking as soon as it
// is reached), and so does every later one. 0, the default, is no limit.
// Converging two sets of n items takes about 3n per level of splitting,
// in both roles (Work reports what a session took).
func (e *Engine) SetWorkLimit(n int64) { e.workLimit = n }

// Work returns the work done so far in this session (see SetWorkLimit).
func (e *Engine) Work() int64 { return e.work }

// New returns an engine over s. frameSizeLimit bounds every message the
// engine produces (0 for no limit, else at least MinFrameSizeLimit); an
// engine with a limit sends a fingerprint for whatever it could not fit and
// the exchange simply takes more rounds. Links to untrusted peers should set
// a limit, or a peer could ask for the whole id list in one message.
func New(s Storage, frameSizeLimit int) (*Engine, error) {
	if frameSizeLimit != 0 && frameSizeLimit < MinFrameSizeLimit {
		return nil, fmt.Errorf("frame size limit %d is under the minimum %d", frameSizeLimit, MinFrameSizeLimit)
	}
	return &Engine{storage: s, frameLimit: frameSizeLimit, maxRanges: MaxRanges}, nil
}

// Initiate returns the first message of a session and makes this engine
// the initiator.
func (e *Engine) Initiate() ([]byte, error) {
	return e.InitiateFrom(0)
}

// InitiateFrom is Initiate for the items with Timestamp >= from only: the
// first message skips everything before from, so neither side compares,
// reports or sends it. The responder needs nothing special: a skipped range
// is part of the protocol.
func (e *Engine) InitiateFrom(from uint64) ([]byte, error) {
	if e.initiator {
		return nil, errors.New("negentropy: already initiated")
	}
	e.initiator = true
	e.reported = make(map[[IDSize]byte]struct{})
	e.lastOut, e.outRanges = 0, 0
	o := []byte{Version}
	lower := minBound.Item
	if from > 0 {
		lower = Item{Timestamp: from}
		o = appendVarint(e.appendBound(o, Bound{Item: lower}), modeSkip)
	}
	o, _, err := e.splitRange(o, lower, maxBound)
	return o, err
}

// Respond processes a message from the initiator and returns the reply.
// An initiator speaking another 0x6X version gets a bare version byte, which
// tells it which version we speak.
func (e *Engine) Respond(msg []byte) ([]byte, error) {
	out, _, err := e.RespondSpans(msg, nil)
	return out, err
}

// RespondSpans is Respond that also appends to spans the ranges the reply
// lists in full (its IdList ranges): the only ids an honest initiator can
// learn from this responder that it lacks, and so the only ones it can ask
// for. On error spans comes back as it was passed in.
func (e *Engine) RespondSpans(msg []byte, spans []Span) ([]byte, []Span, error) {
	if e.initiator {
		return nil, spans, errors.New("negentropy: Respond called on the initiator")
	}
	out, err := e.reconcile(msg, nil, nil, &spans)
	return out, spans, err
}

// Reconcile processes a reply from the responder. It appends to have the ids
// this side holds and the responder lacks, and to need the ids the responder
// holds and this side lacks. next is the message to send, or nil when the
// sets have been reconciled.
func (e *Engine) Reconcile(msg []byte, have, need [][IDSize]byte) (next []byte, haveOut, needOut [][IDSize]byte, err error) {
	if !e.initiator {
		return nil, have, need, errors.New("negentropy: Reconcile called before Initiate")
	}
	out, err := e.reconcile(msg, &have, &need, nil)
	if err != nil {
		return nil, have, need, err
	}
	if len(out) == 1 {
		out = nil
	}
	return out, have, need, nil
}

// exceeded reports whether a message of n bytes and e.outRanges ranges
// leaves no room for what may still have to follow: a skip, an id list
// (which always goes out, so that every round makes progress) and the
// closing fingerprint.
func (e *Engine) exceeded(n int) bool {
	return e.bytesExceeded(n) || (e.frameLimit != 0 && e.outRanges > e.maxRanges-3)
}

func (e *Engine) bytesExceeded(n int) bool { return e.frameLimit != 0 && n > e.frameLimit-frameSlack }

// iterate walks the storage, counting the work.
func (e *Engine) iterate(from, to Item, fn func(Item) bool) error {
	if e.workLimit != 0 && e.work >= e.workLimit {
		e.work = e.workLimit + 1 // spent: later messages fail too
		return ErrWorkLimit
	}
	if e.work += seekWork; e.workLimit != 0 && e.work > e.workLimit {
		return ErrWorkLimit
	}
	over := false
	err := e.storage.Iterate(from, to, func(it Item) bool {
		if e.work++; e.workLimit != 0 && e.work > e.workLimit {
			over = true
			return false
		}
		return fn(it)
	})
	if err != nil {
		return fmt.Errorf("negentropy: read items: %w", err)
	}
	if over {
		return ErrWorkLimit
	}
	return nil
}

func (e *Engine) reconcile(msg []byte, have, need *[][IDSize]byte, spans *[]Span) ([]byte, error) {
	e.lastIn, e.lastOut, e.outRanges = 0, 0, 0
	if e.workLimit != 0 && e.work > e.workLimit {
		return nil, ErrWorkLimit
	}
	r := reader{b: msg}
	v, err := r.bytes(1)
	if err != nil {
		return nil, err
	}
	if v[0] < 0x60 || v[0] > 0x6f {
		return nil, fmt.Errorf("%w: version byte 0x%02x", ErrMalformed, v[0])
	}
	if v[0] != Version {
		if e.initiator {
			return nil, fmt.Errorf("%w: 0x%02x", ErrUnsupportedVersion, v[0])
		}
		return []byte{Version}, nil
	}

	full := []byte{Version}
	prev := minBound
	skip := false
	for ranges := 1; !r.empty(); ranges++ {
		if e.frameLimit != 0 && ranges > e.maxRanges {
			return nil, fmt.Errorf("%w: more than %d ranges", ErrMalformed, e.maxRanges)
		}
		var o []byte
		var oSpans []Span // the id lists in o, kept only if o is
		// If o has to be dropped for lack of room, the frame is closed from
		// the state before this range: pending skip and delta coding.
		skipBefore, lastOutBefore, rangesBefore := skip, e.lastOut, e.outRanges
		doSkip := func() {
			if skip {
				skip = false
				o = appendVarint(e.appendBound(o, prev), modeSkip)
			}
		}
		curr, err := e.readBound(&r)
		if err != nil {
			return nil, err
		}
		if c := curr.Compare(prev.Item); c < 0 {
			return nil, fmt.Errorf("%w: bounds go backwards", ErrMalformed)
		} else if c == 0 && !e.initiator {
			// An empty range costs a walk of the storage and answers
			// nothing; no initiator (ours, the reference) writes one.
			// The initiator stays lenient: it only meets responders it
			// chose, and the work limit bounds what one can cost it.
			return nil, fmt.Errorf("%w: empty range", ErrMalformed)
		}
		mode, err := r.varint()
		if err != nil {
			return nil, err
		}
		lower, upper := prev.Item, curr.Item
		rest := lower // where the closing fingerprint starts if the frame fills up

		switch mode {
		case modeSkip:
			skip = true

		case modeFingerprint:
			theirs, err := r.bytes(FingerprintSize)
			if err != nil {
				return nil, err
			}
			ours, err := e.fingerprint(lower, upper)
			if err != nil {
				return nil, err
			}
			if string(theirs) == string(ours[:]) {
				skip = true
				break
			}
			doSkip()
			var listed bool
			if o, listed, err = e.splitRange(o, lower, curr); err != nil {
				return nil, err
			}
			if listed {
				oSpans = append(oSpans, Span{lower, curr.Item})
			}

		case modeIDList:
			n, err := r.varint()
			if err != nil {
				return nil, err
			}
			if n > uint64(len(r.b)-r.off)/IDSize {
				return nil, fmt.Errorf("%w: id list of %d does not fit in the message", ErrMalformed, n)
			}
			raw, _ := r.bytes(int(n) * IDSize)
			if e.initiator {
				skip = true
				if err := e.diff(lower, upper, raw, have, need); err != nil {
					return nil, err
				}
				break
			}
			doSkip()
			end := curr
			var ids []byte
			count := 0
			err = e.iterate(lower, upper, func(it Item) bool {
				if e.bytesExceeded(len(full) + len(ids)) {
					end = Bound{Item: it, PrefixLen: IDSize}
					upper = it
					return false
				}
				ids = append(ids, it.ID[:]...)
				count++
				return true
			})
			if err != nil {
				return nil, err
			}
			// The list is kept even when cut short, so every round makes
			// progress; what did not fit is in the closing fingerprint.
			o = appendVarint(appendVarint(e.appendBound(o, end), modeIDList), uint64(count))
			full = append(append(full, o...), ids...)
			o = nil
			if spans != nil {
				*spans = append(*spans, Span{lower, end.Item})
			}
			skipBefore, lastOutBefore, rangesBefore, rest = false, e.lastOut, e.outRanges, end.Item

		default:
			return nil, fmt.Errorf("%w: unknown mode %d", ErrMalformed, mode)
		}

		if e.exceeded(len(full) + len(o)) {
			// Out of room: drop o and close the frame with one fingerprint
			// for everything from rest on, which the peer splits again next
			// round. Unlike the reference, which fingerprints from upper
			// under a range that starts at the last bound written, the
			// closing range here is exactly the unanswered part, so ranges
			// already settled are not reported twice.
			e.lastOut, e.outRanges = lastOutBefore, rangesBefore
			if rest.Compare(maxBound.Item) >= 0 {
				// Nothing is left unanswered (an id list up to infinity
				// filled the frame): a closing range would be empty.
				break
			}
			if skipBefore {
				full = appendVarint(e.appendBound(full, prev), modeSkip)
			}
			fp, err := e.fingerprint(rest, maxBound.Item)
			if err != nil {
				return nil, err
			}
			full = appendVarint(e.appendBound(full, maxBound), modeFingerprint)
			full = append(full, fp[:]...)
			break
		}
		full = append(full, o...)
		if spans != nil {
			*spans = append(*spans, oSpans...)
		}
		prev = curr
	}
	return full, nil
}

// diff compares the peer's id list for [lower, upper) with ours.
func (e *Engine) diff(lower, upper Item, raw []byte, have, need *[][IDSize]byte) error {
	theirs := make(map[[IDSize]byte]bool, len(raw)/IDSize)
	for i := 0; i < len(raw); i += IDSize {
		theirs[[IDSize]byte(raw[i:i+IDSize])] = true
	}
	err := e.iterate(lower, upper, func(it Item) bool {
		if theirs[it.ID] {
			theirs[it.ID] = false // seen on both sides
		} else if _, listed := theirs[it.ID]; !listed {
			e.report(have, it.ID)
		}
		return true
	})
	if err != nil {
		return err
	}
	// Walk the message, not the map, so need comes out in the peer's order.
	for i := 0; i < len(raw); i += IDSize {
		id := [IDSize]byte(raw[i : i+IDSize])
		if theirs[id] {
			e.report(need, id)
			theirs[id] = false
		}
	}
	return nil
}

func (e *Engine) report(list *[][IDSize]byte, id [IDSize]byte) {
	if _, dup := e.reported[id]; !dup {
		e.reported[id] = struct{}{}
		*list = append(*list, id)
	}
}

// splitRange appends either the ids of [lower, upper) or, for larger ranges,
// the fingerprints of buckets equal-sized ranges covering it. listed reports
// the first.
func (e *Engine) splitRange(o []byte, lower Item, upper Bound) (_ []byte, listed bool, _ error) {
	// One walk both counts and keeps the ids a short range sends: the
	// storage is live, and a list whose count came from an earlier walk
	// would not match its ids once a message arrived in between.
	n := 0
	var ids []byte
	err := e.iterate(lower, upper.Item, func(it Item) bool {
		if n++; n < 2*buckets {
			ids = append(ids, it.ID[:]...)
		}
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if n < 2*buckets {
		o = appendVarint(appendVarint(e.appendBound(o, upper), modeIDList), uint64(n))
		return append(o, ids...), true, nil
	}
	per, extra := n/buckets, n%buckets
	size := func(b int) int {
		if b < extra {
			return per + 1
		}
		return per
	}
	var (
		acc    accumulator
		prev   Item
		bucket int
	)
	// Items that arrived since the count only make the buckets uneven: each
	// fingerprint covers exactly the items between its bounds.
	err = e.iterate(lower, upper.Item, func(it Item) bool {
		if bucket < buckets-1 && int(acc.count) == size(bucket) {
			fp := acc.fingerprint()
			o = append(appendVarint(e.appendBound(o, minimalBound(prev, it)), modeFingerprint), fp[:]...)
			acc, bucket = accumulator{}, bucket+1
		}
		acc.add(&it.ID)
		prev = it
		return true
	})
	if err != nil {
		return nil, false, err
	}
	fp := acc.fingerprint()
	return append(appendVarint(e.appendBound(o, upper), modeFingerprint), fp[:]...), false, nil
}

func (e *Engine) fingerprint(lower, upper Item) ([FingerprintSize]byte, error) {
	var acc accumulator
	err := e.iterate(lower, upper, func(it Item) bool {
		acc.add(&it.ID)
		return true
	})
	if err != nil {
		return [FingerprintSize]byte{}, err
	}
	return acc.fingerprint(), nil
}

func (e *Engine) appendBound(o []byte, b Bound) []byte {
	e.outRanges++
	if b.Timestamp == Infinity {
		e.lastOut = Infinity
		o = appendVarint(o, 0)
	} else {
		o = appendVarint(o, b.Timestamp-e.lastOut+1)
		e.lastOut = b.Timestamp
	}
	o = appendVarint(o, uint64(b.PrefixLen))
	return append(o, b.ID[:b.PrefixLen]...)
}

func (e *Engine) readBound(r *reader) (Bound, error) {
	var b Bound
	ts, err := r.varint()
	if err != nil {
		return b, err
	}
	// 0 is infinity; sums saturate at infinity, as in the reference.
	if ts == 0 || e.lastIn+(ts-1) < e.lastIn {
		e.lastIn = Infinity
	} else {
		e.lastIn += ts - 1
	}
	b.Timestamp = e.lastIn
	n, err := r.varint()
	if err != nil {
		return b, err
	}
	if n > IDSize {
		return b, fmt.Errorf("%w: id prefix of %d bytes", ErrMalformed, n)
	}
	p, err := r.bytes(int(n))
	if err != nil {
		return b, err
	}
	b.PrefixLen = copy(b.ID[:], p)
	return b, nil
}
