package radio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"lifeline/message"
	"lifeline/reconcile"
)

// Over-the-air frames, version 1. Every byte is airtime, so the header is
// two bytes for a message that fits one frame, eight for a fragment:
//
//	0  1  version (high 4 bits, 1) | type (low 4 bits)
//	1  1  flags (high 4 bits: 0x1 repair, the rest 0) | hops left (low 4 bits)
//	whole (type 0):    2  n  the envelope
//	fragment (type 1): 2  4  key: the first 4 bytes of the envelope's ID
//	                   6  1  index, from 0
//	                   7  1  count, 2 .. MaxFragments
//	                   8  n  the index-th FragmentSize bytes of the envelope
//	digest (type 2):   2  2  origin: the sender's radio tag
//	                   4  4  window start, unix seconds (messages created at or after)
//	                   8  4  window end, unix seconds (created before)
//	                  12  2  index of the first symbol
//	                  14  n  repair symbols, 14 bytes each, 1 .. MaxSymbols
//	want (type 3):     2  2  target: the tag of the node asked
//	                   4  n  1 .. MaxWants entries of WantEntry bytes: a short
//	                         ID (the first 8 bytes of a message ID) and a
//	                         3-byte mask of the fragments wanted (bit i,
//	                         counting from the last byte's low bit, is
//	                         fragment i; all ones: the whole message)
//	more (type 4):     2  2  target
//	                   4  4  window start
//	                   8  4  window end
//	                  12  2  index of the first symbol wanted
//	                  14  1  how many symbols, 1 .. MaxSymbols
//
// Every fragment but the last carries exactly FragmentSize bytes. Whole
// frames and fragments sent in answer to a want carry the repair flag and
// no hops: they are not relayed as they are (the node that was missing the
// message floods it on, see Router). Digests, wants and mores have no
// hops and no flags: they are between neighbours.
//
// On a keyed mesh (see airKey) every frame also sets flag 0x2 (keyed) and
// ends in a TagSize-byte tag, so it takes at most MaxFrame − TagSize bytes
// before the tag: fragments carry KeyedFragmentSize bytes, a whole
// envelope at most KeyedMaxWhole, a digest at most KeyedMaxSymbols. A
// node without the key refuses the flag as a reserved bit, so it drops a
// keyed mesh's frames at once instead of relaying them.
const (
	MaxFrame = 255 // a LoRa payload
	// MinFrame is the smallest frame a link may carry (RouterConfig.
	// MaxFrame): what a Meshtastic packet holds (radio/meshtastic).
	// Through an RNode a frame is 254 bytes (the board takes one for its
	// header).
	MinFrame     = 231
	frameVersion = 1
	wholeHeader  = 2
	fragHeader   = 8
	FragmentSize = MaxFrame - fragHeader  // 247
	MaxWhole     = MaxFrame - wholeHeader // 253
	// MaxFragments is the most fragments of one envelope, open or keyed,
	// on the smallest frames.
	MaxFragments = (message.MaxEnvelope + MinFrame - TagSize - fragHeader - 1) / (MinFrame - TagSize - fragHeader) // 20
	MaxHops      = 15
	keySize      = 4
	repairFlag   = 0x10
	keyedFlag    = 0x20
	// TagSize is the authentication tag at the end of every frame of a
	// keyed mesh: the on-air cost of authentication, per frame.
	TagSize = 4
	// KeyedFragmentSize and KeyedMaxWhole are FragmentSize and MaxWhole
	// on a keyed mesh, which gives TagSize bytes of each frame to the tag.
	KeyedFragmentSize = FragmentSize - TagSize // 243
	KeyedMaxWhole     = MaxWhole - TagSize     // 249
	digestHeader      = 14
	wantHeader        = 4
	moreSize          = 15
	// MaxSymbols is how many repair symbols fit one digest.
	MaxSymbols = (MaxFrame - digestHeader) / reconcile.SymbolSize // 17
	// KeyedMaxSymbols is MaxSymbols on a keyed mesh.
	KeyedMaxSymbols = (MaxFrame - TagSize - digestHeader) / reconcile.SymbolSize // 16
	// ShortID is the size of a short message ID in a want.
	ShortID = 8
	// WantEntry is the size of one entry of a want: a short ID and the
	// mask of the fragments wanted.
	WantEntry = ShortID + 3
	// AllFragments is the mask that wants a whole message.
	AllFragments = 1<<24 - 1
	// MaxWants is how many entries fit one want.
	MaxWants = (MaxFrame - wantHeader) / WantEntry // 22
)

// FrameType says what a frame carries.
type FrameType uint8

const (
	FrameWhole    FrameType = 0
	FrameFragment FrameType = 1
	FrameDigest   FrameType = 2
	FrameWant     FrameType = 3
	FrameMore     FrameType = 4
)

// layout is the room a frame has before any tag: the link's frame size
// (MaxFrame unless the link carries less) on an open mesh, TagSize less on
// a keyed one. The sizes of fragments, whole envelopes and digests follow
// from it, and on a keyed mesh the keyed flag is set. Every node of a
// channel uses the same link, so the same layout.
type layout struct {
	room  int
	keyed bool
}

var (
	openAir  = newLayout(MaxFrame, false)
	keyedAir = newLayout(MaxFrame, true)
)

// newLayout is the layout of frames of at most frame bytes.
func newLayout(frame int, keyed bool) layout {
	if keyed {
		return layout{room: frame - TagSize, keyed: true}
	}
	return layout{room: frame}
}

func (l layout) fragmentSize() int { return l.room - fragHeader }
func (l layout) maxWhole() int     { return l.room - wholeHeader }
func (l layout) maxSymbols() int   { return (l.room - digestHeader) / reconcile.SymbolSize }

// ErrFrame: bytes that are not a version 1 frame.
var ErrFrame = errors.New("malformed radio frame")

// Frame is one over-the-air frame.
type Frame struct {
	Type FrameType
	Hops uint8 // hops left: a relay decrements, and does not relay at 0
	// Repair: a whole frame or fragment sent in answer to a want.
	Repair bool
	Key    [keySize]byte // fragments
	Index  uint8         // fragments
	Count  uint8         // fragments; for a more, the symbols wanted
	// Node is the sender's tag in a digest, the target's in a want or
	// more.
	Node uint16
	// From and To bound a repair window (digest, more): messages created
	// in [From, To), unix seconds.
	From, To uint32
	// Start is the index of the first symbol (digest) or the first wanted
	// (more).
	Start uint16
	// Payload: the envelope or its part (whole, fragment), the symbols
	// (digest), the short IDs (want).
	Payload []byte
}

// Append appends the frame's bytes, as an open mesh sends them, to dst.
func (f Frame) Append(dst []byte) ([]byte, error) { return f.append(dst, openAir) }

// append appends the frame's bytes in layout l (before any tag) to dst.
func (f Frame) append(dst []byte, l layout) ([]byte, error) {
	if err := f.checkHeader(); err != nil {
		return dst, err
	}
	b1 := f.Hops
	if f.Repair {
		b1 |= repairFlag
	}
	if l.keyed {
		b1 |= keyedFlag
	}
	dst = append(dst, frameVersion<<4|byte(f.Type), b1)
	switch f.Type {
	case FrameWhole:
		if len(f.Payload) == 0 || len(f.Payload) > l.maxWhole() {
			return dst, fmt.Errorf("%w: whole envelope of %d bytes", ErrFrame, len(f.Payload))
		}
	case FrameFragment:
		if err := f.checkFragment(l); err != nil {
			return dst, err
		}
		dst = append(append(dst, f.Key[:]...), f.Index, f.Count)
	case FrameDigest:
		if err := f.checkDigest(l); err != nil {
			return dst, err
		}
		dst = binary.BigEndian.AppendUint16(dst, f.Node)
		dst = binary.BigEndian.AppendUint32(dst, f.From)
		dst = binary.BigEndian.AppendUint32(dst, f.To)
		dst = binary.BigEndian.AppendUint16(dst, f.Start)
	case FrameWant:
		if err := f.checkWant(); err != nil {
			return dst, err
		}
		dst = binary.BigEndian.AppendUint16(dst, f.Node)
	case FrameMore:
		if err := f.checkMore(l); err != nil {
			return dst, err
		}
		dst = binary.BigEndian.AppendUint16(dst, f.Node)
		dst = binary.BigEndian.AppendUint32(dst, f.From)
		dst = binary.BigEndian.AppendUint32(dst, f.To)
		dst = binary.BigEndian.AppendUint16(dst, f.Start)
		return append(dst, f.Count), nil
	default:
		return dst, fmt.Errorf("%w: type %d", ErrFrame, f.Type)
	}
	return append(dst, f.Payload...), nil
}

// checkHeader: hops and the repair flag belong to envelopes only.
func (f Frame) checkHeader() error {
	switch {
	case f.Hops > MaxHops:
		return fmt.Errorf("%w: %d hops, at most %d", ErrFrame, f.Hops, MaxHops)
	case f.Type > FrameFragment && (f.Hops != 0 || f.Repair):
		return fmt.Errorf("%w: a type %d frame with hops or flags", ErrFrame, f.Type)
	case f.Repair && f.Hops != 0:
		return fmt.Errorf("%w: a repair frame with hops", ErrFrame)
	}
	return nil
}

func (f Frame) checkDigest(l layout) error {
	if n := len(f.Payload); n == 0 || n%reconcile.SymbolSize != 0 || n/reconcile.SymbolSize > l.maxSymbols() {
		return fmt.Errorf("%w: digest of %d symbol bytes", ErrFrame, n)
	}
	return f.checkWindow()
}

func (f Frame) checkWindow() error {
	if f.To <= f.From {
		return fmt.Errorf("%w: window [%d, %d)", ErrFrame, f.From, f.To)
	}
	return nil
}

func (f Frame) checkWant() error {
	if n := len(f.Payload); n == 0 || n%WantEntry != 0 || n/WantEntry > MaxWants {
		return fmt.Errorf("%w: want of %d bytes", ErrFrame, n)
	}
	return nil
}

func (f Frame) checkMore(l layout) error {
	if f.Count == 0 || int(f.Count) > l.maxSymbols() {
		return fmt.Errorf("%w: more of %d symbols", ErrFrame, f.Count)
	}
	return f.checkWindow()
}

func (f Frame) checkFragment(l layout) error {
	size := l.fragmentSize()
	switch {
	case f.Count < 2 || f.Count > MaxFragments:
		return fmt.Errorf("%w: %d fragments", ErrFrame, f.Count)
	case f.Index >= f.Count:
		return fmt.Errorf("%w: fragment %d of %d", ErrFrame, f.Index, f.Count)
	case len(f.Payload) == 0 || len(f.Payload) > size:
		return fmt.Errorf("%w: fragment of %d bytes", ErrFrame, len(f.Payload))
	case f.Index < f.Count-1 && len(f.Payload) != size:
		return fmt.Errorf("%w: fragment %d of %d holds %d bytes, not %d", ErrFrame, f.Index, f.Count, len(f.Payload), size)
	}
	return nil
}

// DecodeFrame parses a frame received on an open mesh. Payload aliases b.
func DecodeFrame(b []byte) (Frame, error) { return decodeFrame(b, openAir) }

// decodeFrame parses a frame in layout l, its tag (if any) already checked
// and cut off. Payload aliases b.
func decodeFrame(b []byte, l layout) (Frame, error) {
	var f Frame
	if len(b) < wholeHeader || len(b) > l.room {
		return f, fmt.Errorf("%w: %d bytes", ErrFrame, len(b))
	}
	if v := b[0] >> 4; v != frameVersion {
		return f, fmt.Errorf("%w: version %d", ErrFrame, v)
	}
	flags := b[1]
	if l.keyed {
		if flags&keyedFlag == 0 {
			return f, fmt.Errorf("%w: not keyed", ErrFrame)
		}
		flags &^= keyedFlag
	}
	if flags&^(repairFlag|0x0f) != 0 {
		return f, fmt.Errorf("%w: reserved bits set", ErrFrame)
	}
	f.Type, f.Hops, f.Repair = FrameType(b[0]&0x0f), flags&0x0f, flags&repairFlag != 0
	if err := f.checkHeader(); err != nil {
		return f, err
	}
	switch f.Type {
	case FrameWhole:
		f.Payload = b[wholeHeader:]
		if len(f.Payload) == 0 {
			return f, fmt.Errorf("%w: empty", ErrFrame)
		}
	case FrameFragment:
		if len(b) <= fragHeader {
			return f, fmt.Errorf("%w: fragment of %d bytes", ErrFrame, len(b))
		}
		copy(f.Key[:], b[2:6])
		f.Index, f.Count, f.Payload = b[6], b[7], b[fragHeader:]
		if err := f.checkFragment(l); err != nil {
			return f, err
		}
	case FrameDigest:
		if len(b) <= digestHeader {
			return f, fmt.Errorf("%w: digest of %d bytes", ErrFrame, len(b))
		}
		f.Node, f.From, f.To = binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
		f.Start, f.Payload = binary.BigEndian.Uint16(b[12:]), b[digestHeader:]
		if err := f.checkDigest(l); err != nil {
			return f, err
		}
	case FrameWant:
		if len(b) <= wantHeader {
			return f, fmt.Errorf("%w: want of %d bytes", ErrFrame, len(b))
		}
		f.Node, f.Payload = binary.BigEndian.Uint16(b[2:]), b[wantHeader:]
		if err := f.checkWant(); err != nil {
			return f, err
		}
	case FrameMore:
		if len(b) != moreSize {
			return f, fmt.Errorf("%w: more of %d bytes", ErrFrame, len(b))
		}
		f.Node, f.From, f.To = binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
		f.Start, f.Count = binary.BigEndian.Uint16(b[12:]), b[14]
		if err := f.checkMore(l); err != nil {
			return f, err
		}
	default:
		return f, fmt.Errorf("%w: type %d", ErrFrame, f.Type)
	}
	return f, nil
}

// Fragment cuts an envelope into the frames that carry it on an open mesh:
// one if it fits, else fragments of FragmentSize bytes.
func Fragment(env []byte, hops uint8) ([]Frame, error) { return fragment(env, hops, openAir) }

// fragment is Fragment in layout l.
func fragment(env []byte, hops uint8, l layout) ([]Frame, error) {
	if len(env) == 0 || len(env) > message.MaxEnvelope {
		return nil, fmt.Errorf("%w: envelope of %d bytes", ErrFrame, len(env))
	}
	if len(env) <= l.maxWhole() {
		return []Frame{{Type: FrameWhole, Hops: hops, Payload: env}}, nil
	}
	id := message.IDOf(env)
	size := l.fragmentSize()
	count := (len(env) + size - 1) / size
	frames := make([]Frame, count)
	for i := range frames {
		f := Frame{Type: FrameFragment, Hops: hops, Index: uint8(i), Count: uint8(count),
			Payload: env[i*size : min((i+1)*size, len(env))]}
		copy(f.Key[:], id[:keySize])
		frames[i] = f
	}
	return frames, nil
}

// Reassembler collects fragments into envelopes. Fragments may come in any
// order, twice, or never: a message whose fragments stop coming is dropped
// MaxAge after the last one kept, and at most MaxPartial messages are
// collected at once (the one idle longest gives way). It is a pure state
// machine: the caller passes the time.
//
// The age counts from the last fragment, not the first: repair within a
// small duty cycle may bring a long message's fragments over several
// rounds, minutes apart, and each must add to what came before.
//
// Fragments are bound to their message only by the key (4 bytes of its
// ID), checked when they are joined, so anyone can send a fragment with a
// genuine key and index and other bytes. Such a forgery must not take the
// place of the genuine fragment: the reassembler keeps up to
// MaxCandidates different fragments for each index, and when every index
// has one, it joins them a few ways (at most 2 + 2k joins for k indices
// with two candidates, fewest substitutions first) and hands on the first
// join whose ID starts with the key and whose signature verifies. One
// forgery per index, heard before or after the genuine fragment, costs
// nothing; a third different fragment for one index starts the message
// again from that fragment (repair fetches what was lost). Memory stays
// under MaxPartial × MaxCandidates × 4.3 KB whatever arrives.
type Reassembler struct {
	MaxPartial int
	MaxAge     time.Duration
	partials   map[partialKey]*partial
	lay        layout

	// Dropped counts messages given up: timed out, pushed out, crowded
	// by a third candidate, or whose candidates all failed.
	Dropped int
	// Substituted counts messages completed by a fragment that was not
	// the first heard for its index: a forgery, or a fragment damaged in a
	// way the radio's CRC missed, was set aside.
	Substituted int
}

// MaxCandidates is how many different fragments are kept for one index of
// one message.
const MaxCandidates = 2

type partialKey struct {
	key   [keySize]byte
	count uint8
}

type partial struct {
	last  time.Time  // when a fragment was last kept
	parts [][][]byte // by index, the different fragments in the order heard
	have  int        // indices with at least one
	full  int        // indices with MaxCandidates
}

// NewReassembler returns a Reassembler for an open mesh with the given
// bounds.
func NewReassembler(maxPartial int, maxAge time.Duration) *Reassembler {
	return &Reassembler{MaxPartial: maxPartial, MaxAge: maxAge, partials: map[partialKey]*partial{}, lay: openAir}
}

// Add takes one fragment frame received at now. When it completes an
// envelope whose ID starts with the key and whose signature verifies, Add
// returns it.
func (r *Reassembler) Add(now time.Time, f Frame) ([]byte, error) {
	if f.Type != FrameFragment {
		return nil, fmt.Errorf("%w: not a fragment", ErrFrame)
	}
	if err := f.checkFragment(r.lay); err != nil {
		return nil, err
	}
	r.expire(now)
	k := partialKey{f.Key, f.Count}
	p := r.partials[k]
	if p != nil {
		cands := p.parts[f.Index]
		for _, c := range cands {
			if bytes.Equal(c, f.Payload) {
				return nil, nil // a duplicate
			}
		}
		if len(cands) == MaxCandidates {
			// A third fragment for one index: at least two are forged or
			// damaged, and which cannot be told. Start again from this one.
			delete(r.partials, k)
			r.Dropped++
			p = nil
		}
	}
	if p == nil {
		if len(r.partials) >= r.MaxPartial {
			r.dropOldest()
		}
		p = &partial{parts: make([][][]byte, f.Count)}
		r.partials[k] = p
	}
	p.last = now
	i := f.Index
	p.parts[i] = append(p.parts[i], append([]byte(nil), f.Payload...))
	switch len(p.parts[i]) {
	case 1:
		p.have++
	case MaxCandidates:
		p.full++
	}
	if p.have < int(f.Count) {
		return nil, nil
	}
	env, substituted := p.join(f.Key, int(i), len(p.parts[i])-1)
	if env == nil {
		if p.full == int(f.Count) {
			// No fragment can be added: every join has failed.
			delete(r.partials, k)
			r.Dropped++
		}
		return nil, fmt.Errorf("%w: fragments of %x do not join to a signed envelope", ErrFrame, f.Key)
	}
	delete(r.partials, k)
	if substituted {
		r.Substituted++
	}
	return env, nil
}

// join tries ways of choosing one candidate for each index, each with
// candidate c at index fixed (the fragment just added: the ways without
// it were tried before), and returns the first envelope that checks out,
// and whether it took a candidate other than the first heard. With k other
// indices holding two candidates, the ways are: all first, all second,
// each one second, each one first, at most 2 + 2k joins. They cover one
// forgery at each index when the forgeries all came before the genuine
// fragments or all after, and any one forgery when it is alone.
func (p *partial) join(key [keySize]byte, fixed, c int) ([]byte, bool) {
	var twos []int
	for i, cands := range p.parts {
		if i != fixed && len(cands) > 1 {
			twos = append(twos, i)
		}
	}
	all := uint32(1)<<len(twos) - 1
	masks := []uint32{0, all}
	for j := range twos {
		masks = append(masks, 1<<j, all&^(1<<j))
	}
	tried := make(map[uint32]bool, len(masks))
	for _, m := range masks {
		if tried[m] {
			continue
		}
		tried[m] = true
		choice := make([]int, len(p.parts))
		choice[fixed] = c
		for j, i := range twos {
			if m&(1<<j) != 0 {
				choice[i] = 1
			}
		}
		var env []byte
		substituted := false
		for i, cands := range p.parts {
			env = append(env, cands[choice[i]]...)
			substituted = substituted || choice[i] != 0
		}
		if genuine(env, key) {
			return env, substituted
		}
	}
	return nil, false
}

// genuine reports whether joined bytes are the envelope their key names:
// the ID starts with the key (cheap, and four bytes rule out chance), and
// the author's signature verifies (a forger can find bytes whose hash
// starts with four given ones; not a signature). The time is the store's
// to judge.
func genuine(env []byte, key [keySize]byte) bool {
	if id := message.IDOf(env); [keySize]byte(id[:keySize]) != key {
		return false
	}
	e, err := message.Decode(env)
	return err == nil && e.VerifySignature() == nil
}

// Missing returns the mask of the fragments still missing of a message
// being collected whose key is key (bit i: fragment i), or AllFragments
// if none is, or if it has a fragment at every index and they do not join
// (one is forged: the neighbour's whole message replaces them).
func (r *Reassembler) Missing(key [keySize]byte) uint32 {
	for k, p := range r.partials {
		if k.key != key {
			continue
		}
		var mask uint32
		for i, cands := range p.parts {
			if len(cands) == 0 {
				mask |= 1 << i
			}
		}
		if mask == 0 {
			return AllFragments
		}
		return mask
	}
	return AllFragments
}

// Pending is how many messages are partly collected.
func (r *Reassembler) Pending() int { return len(r.partials) }

func (r *Reassembler) expire(now time.Time) {
	for k, p := range r.partials {
		if now.Sub(p.last) > r.MaxAge {
			delete(r.partials, k)
			r.Dropped++
		}
	}
}

func (r *Reassembler) dropOldest() {
	var oldest partialKey
	var at time.Time
	for k, p := range r.partials {
		if at.IsZero() || p.last.Before(at) {
			oldest, at = k, p.last
		}
	}
	delete(r.partials, oldest)
	r.Dropped++
}
