package radio

import (
	"errors"
	"fmt"
	"time"

	"lifeline/message"
)

// Over-the-air frames, version 1. Every byte is airtime, so the header is
// two bytes for a message that fits one frame, eight for a fragment:
//
//	0  1  version (high 4 bits, 1) | type (low 4 bits)
//	1  1  reserved (high 4 bits, 0) | hops left (low 4 bits)
//	whole (type 0):    2  n  the envelope
//	fragment (type 1): 2  4  key: the first 4 bytes of the envelope's ID
//	                   6  1  index, from 0
//	                   7  1  count, 2 .. MaxFragments
//	                   8  n  the index-th FragmentSize bytes of the envelope
//
// Every fragment but the last carries exactly FragmentSize bytes.
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
)

// FrameType says what a frame carries.
type FrameType uint8

const (
	FrameWhole    FrameType = 0
	FrameFragment FrameType = 1
)

// ErrFrame: bytes that are not a version 1 frame.
var ErrFrame = errors.New("malformed radio frame")

// Frame is one over-the-air frame.
type Frame struct {
	Type    FrameType
	Hops    uint8         // hops left: a relay decrements, and does not relay at 0
	Key     [keySize]byte // fragments
	Index   uint8         // fragments
	Count   uint8         // fragments
	Payload []byte
}

// Append appends the frame's bytes to dst.
func (f Frame) Append(dst []byte) ([]byte, error) {
	if f.Hops > MaxHops {
		return dst, fmt.Errorf("%w: %d hops, at most %d", ErrFrame, f.Hops, MaxHops)
	}
	dst = append(dst, frameVersion<<4|byte(f.Type), f.Hops)
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
	default:
		return dst, fmt.Errorf("%w: type %d", ErrFrame, f.Type)
	}
	return append(dst, f.Payload...), nil
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
	if b[1]>>4 != 0 {
		return f, fmt.Errorf("%w: reserved bits set", ErrFrame)
	}
	f.Type, f.Hops = FrameType(b[0]&0x0f), b[1]
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
