package radio

import (
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
const (
	MaxFrame     = 255 // a LoRa payload
	frameVersion = 1
	wholeHeader  = 2
	fragHeader   = 8
	FragmentSize = MaxFrame - fragHeader                                   // 247
	MaxWhole     = MaxFrame - wholeHeader                                  // 253
	MaxFragments = (message.MaxEnvelope + FragmentSize - 1) / FragmentSize // 18
	MaxHops      = 15
	keySize      = 4
	repairFlag   = 0x10
	digestHeader = 14
	wantHeader   = 4
	moreSize     = 15
	// MaxSymbols is how many repair symbols fit one digest.
	MaxSymbols = (MaxFrame - digestHeader) / reconcile.SymbolSize // 17
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

// Append appends the frame's bytes to dst.
func (f Frame) Append(dst []byte) ([]byte, error) {
	if err := f.checkHeader(); err != nil {
		return dst, err
	}
	b1 := f.Hops
	if f.Repair {
		b1 |= repairFlag
	}
	dst = append(dst, frameVersion<<4|byte(f.Type), b1)
	switch f.Type {
	case FrameWhole:
		if len(f.Payload) == 0 || len(f.Payload) > MaxWhole {
			return dst, fmt.Errorf("%w: whole envelope of %d bytes", ErrFrame, len(f.Payload))
		}
	case FrameFragment:
		if err := f.checkFragment(); err != nil {
			return dst, err
		}
		dst = append(append(dst, f.Key[:]...), f.Index, f.Count)
	case FrameDigest:
		if err := f.checkDigest(); err != nil {
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
		if err := f.checkMore(); err != nil {
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

func (f Frame) checkDigest() error {
	if n := len(f.Payload); n == 0 || n%reconcile.SymbolSize != 0 || n/reconcile.SymbolSize > MaxSymbols {
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

func (f Frame) checkMore() error {
	if f.Count == 0 || int(f.Count) > MaxSymbols {
		return fmt.Errorf("%w: more of %d symbols", ErrFrame, f.Count)
	}
	return f.checkWindow()
}

func (f Frame) checkFragment() error {
	switch {
	case f.Count < 2 || f.Count > MaxFragments:
		return fmt.Errorf("%w: %d fragments", ErrFrame, f.Count)
	case f.Index >= f.Count:
		return fmt.Errorf("%w: fragment %d of %d", ErrFrame, f.Index, f.Count)
	case len(f.Payload) == 0 || len(f.Payload) > FragmentSize:
		return fmt.Errorf("%w: fragment of %d bytes", ErrFrame, len(f.Payload))
	case f.Index < f.Count-1 && len(f.Payload) != FragmentSize:
		return fmt.Errorf("%w: fragment %d of %d holds %d bytes, not %d", ErrFrame, f.Index, f.Count, len(f.Payload), FragmentSize)
	}
	return nil
}

// DecodeFrame parses a received frame. Payload aliases b.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	if len(b) < wholeHeader || len(b) > MaxFrame {
		return f, fmt.Errorf("%w: %d bytes", ErrFrame, len(b))
	}
	if v := b[0] >> 4; v != frameVersion {
		return f, fmt.Errorf("%w: version %d", ErrFrame, v)
	}
	if b[1]&^(repairFlag|0x0f) != 0 {
		return f, fmt.Errorf("%w: reserved bits set", ErrFrame)
	}
	f.Type, f.Hops, f.Repair = FrameType(b[0]&0x0f), b[1]&0x0f, b[1]&repairFlag != 0
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
		if err := f.checkFragment(); err != nil {
			return f, err
		}
	case FrameDigest:
		if len(b) <= digestHeader {
			return f, fmt.Errorf("%w: digest of %d bytes", ErrFrame, len(b))
		}
		f.Node, f.From, f.To = binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
		f.Start, f.Payload = binary.BigEndian.Uint16(b[12:]), b[digestHeader:]
		if err := f.checkDigest(); err != nil {
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
		if err := f.checkMore(); err != nil {
			return f, err
		}
	default:
		return f, fmt.Errorf("%w: type %d", ErrFrame, f.Type)
	}
	return f, nil
}

// Fragment cuts an envelope into the frames that carry it: one if it fits,
// else fragments of FragmentSize bytes.
func Fragment(env []byte, hops uint8) ([]Frame, error) {
	if len(env) == 0 || len(env) > message.MaxEnvelope {
		return nil, fmt.Errorf("%w: envelope of %d bytes", ErrFrame, len(env))
	}
	if len(env) <= MaxWhole {
		return []Frame{{Type: FrameWhole, Hops: hops, Payload: env}}, nil
	}
	id := message.IDOf(env)
	count := (len(env) + FragmentSize - 1) / FragmentSize
	frames := make([]Frame, count)
	for i := range frames {
		f := Frame{Type: FrameFragment, Hops: hops, Index: uint8(i), Count: uint8(count),
			Payload: env[i*FragmentSize : min((i+1)*FragmentSize, len(env))]}
		copy(f.Key[:], id[:keySize])
		frames[i] = f
	}
	return frames, nil
}

// Reassembler collects fragments into envelopes. Fragments may come in any
// order, twice, or never: a message whose fragments stop coming is dropped
// after MaxAge, and at most MaxPartial messages are collected at once (the
// oldest gives way), so memory stays under MaxPartial × 4.3 KB whatever
// arrives. It is a pure state machine: the caller passes the time.
type Reassembler struct {
	MaxPartial int
	MaxAge     time.Duration
	partials   map[partialKey]*partial

	// Dropped counts messages given up: timed out, pushed out, or whose
	// joined bytes did not match their key.
	Dropped int
}

type partialKey struct {
	key   [keySize]byte
	count uint8
}

type partial struct {
	first time.Time
	parts [][]byte
	have  int
}

// NewReassembler returns a Reassembler with the given bounds.
func NewReassembler(maxPartial int, maxAge time.Duration) *Reassembler {
	return &Reassembler{MaxPartial: maxPartial, MaxAge: maxAge, partials: map[partialKey]*partial{}}
}

// Add takes one fragment frame received at now. When it completes an
// envelope whose bytes match the key, Add returns them.
func (r *Reassembler) Add(now time.Time, f Frame) ([]byte, error) {
	if f.Type != FrameFragment {
		return nil, fmt.Errorf("%w: not a fragment", ErrFrame)
	}
	if err := f.checkFragment(); err != nil {
		return nil, err
	}
	r.expire(now)
	k := partialKey{f.Key, f.Count}
	p := r.partials[k]
	if p == nil {
		if len(r.partials) >= r.MaxPartial {
			r.dropOldest()
		}
		p = &partial{first: now, parts: make([][]byte, f.Count)}
		r.partials[k] = p
	}
	if p.parts[f.Index] != nil {
		return nil, nil // a duplicate
	}
	p.parts[f.Index] = append([]byte(nil), f.Payload...)
	if p.have++; p.have < int(f.Count) {
		return nil, nil
	}
	delete(r.partials, k)
	var env []byte
	for _, part := range p.parts {
		env = append(env, part...)
	}
	if id := message.IDOf(env); [keySize]byte(id[:keySize]) != f.Key {
		r.Dropped++
		return nil, fmt.Errorf("%w: reassembled %d bytes do not match their key %x", ErrFrame, len(env), f.Key)
	}
	return env, nil
}

// Missing returns the mask of the fragments still missing of a message
// being collected whose key is key (bit i: fragment i), or AllFragments
// if none is.
func (r *Reassembler) Missing(key [keySize]byte) uint32 {
	for k, p := range r.partials {
		if k.key != key {
			continue
		}
		var mask uint32
		for i, part := range p.parts {
			if part == nil {
				mask |= 1 << i
			}
		}
		return mask
	}
	return AllFragments
}

// Pending is how many messages are partly collected.
func (r *Reassembler) Pending() int { return len(r.partials) }

func (r *Reassembler) expire(now time.Time) {
	for k, p := range r.partials {
		if now.Sub(p.first) > r.MaxAge {
			delete(r.partials, k)
			r.Dropped++
		}
	}
}

func (r *Reassembler) dropOldest() {
	var oldest partialKey
	var at time.Time
	for k, p := range r.partials {
		if at.IsZero() || p.first.Before(at) {
			oldest, at = k, p.first
		}
	}
	delete(r.partials, oldest)
	r.Dropped++
}
