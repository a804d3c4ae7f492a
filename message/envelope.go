package message

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Version1 is the first byte of every envelope this package writes.
const Version1 = 0x01

// SignaturePrefix is signed before the envelope bytes. It separates envelope
// signatures from anything else the same key signs (the node key is also its
// libp2p identity).
const SignaturePrefix = "lifeline/envelope/v1\x00"

// Size limits. MaxBody bounds what a peer can make us store or carry per
// message; MaxEnvelope follows from it and is the most any decoder accepts.
const (
	MaxBody       = 4096
	MaxEnvelope   = headerMax + 32 + 32 + MaxBody + SignatureSize
	SignatureSize = ed25519.SignatureSize
	// MaxReceiptIDs is the most message IDs one receipt acknowledges.
	MaxReceiptIDs = 16
	// MaxClockSkew is how far ahead of the verifier's clock created may be.
	// Field nodes often boot without a real-time clock, so it is generous.
	MaxClockSkew = time.Hour
)

const (
	headerMin = 8 // version, flags, created
	headerMax = 9 // with TTL code

	kindMask    = 0x0f
	prioShift   = 4
	prioMask    = 0x30
	flagTTL     = 0x40
	flagReserve = 0x80

	maxCreated = 1<<48 - 1
)

// Envelope is a decoded envelope. Its fields are read-only views of the
// bytes it was decoded from or signed as; Raw returns those bytes.
type Envelope struct {
	Kind     Kind
	Priority Priority
	// Created is the author's clock at signing, unix milliseconds.
	Created int64
	// TTL is the lifetime after Created; HasTTL reports whether it was on
	// the wire or is DefaultTTL.
	TTL    time.Duration
	HasTTL bool
	// Channel is set for channel kinds, Recipient for the others.
	Channel   ChannelID
	Recipient PublicKey
	Author    PublicKey
	// Body aliases Raw: do not modify.
	Body []byte

	raw []byte
	id  ID
}

// Raw returns the envelope's bytes, signature included. The slice is shared:
// do not modify it.
func (e *Envelope) Raw() []byte { return e.raw }

// ID returns the SHA-256 of the envelope's bytes.
func (e *Envelope) ID() ID { return e.id }

// Expires returns when the envelope expires, unix milliseconds.
func (e *Envelope) Expires() int64 { return e.Created + e.TTL.Milliseconds() }

// Text returns the body of a text or alert envelope as a string.
func (e *Envelope) Text() string { return string(e.Body) }

// ReceiptIDs returns the IDs a receipt acknowledges.
func (e *Envelope) ReceiptIDs() []ID {
	if e.Kind != KindReceipt {
		return nil
	}
	ids := make([]ID, len(e.Body)/32)
	for i := range ids {
		copy(ids[i][:], e.Body[32*i:])
	}
	return ids
}

// Draft is an envelope before signing.
type Draft struct {
	Kind     Kind
	Priority Priority
	// Created is unix milliseconds; callers pass their clock.
	Created int64
	// TTL zero means DefaultTTL, carried without a TTL byte.
	TTL       time.Duration
	Channel   ChannelID
	Recipient PublicKey
	Body      []byte
}

// Decode parses envelope bytes and checks their structure: version, sizes,
// flags, kind, and the body rules of the kind. It does not check the
// signature or the time; Verify does both. Decode copies b.
func Decode(b []byte) (*Envelope, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrTruncated)
	}
	if b[0] != Version1 {
		return nil, fmt.Errorf("%w: 0x%02x", ErrVersion, b[0])
	}
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(b), MaxEnvelope)
	}
	if len(b) < headerMin {
		return nil, fmt.Errorf("%w: %d bytes, the header needs %d", ErrTruncated, len(b), headerMin)
	}
	flags := b[1]
	if flags&flagReserve != 0 {
		return nil, fmt.Errorf("%w: reserved flag bit set", ErrMalformed)
	}
	e := &Envelope{
		Kind:     Kind(flags & kindMask),
		Priority: Priority((flags & prioMask) >> prioShift),
		Created:  int64(uint64(b[2])<<40 | uint64(binary.BigEndian.Uint32(b[3:7]))<<8 | uint64(b[7])),
		TTL:      DefaultTTL,
	}
	if !e.Kind.known() {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, uint8(e.Kind))
	}
	off := headerMin
	if flags&flagTTL != 0 {
		if len(b) < off+1 {
			return nil, fmt.Errorf("%w: missing TTL byte", ErrTruncated)
		}
		e.TTL, e.HasTTL = TTLFromCode(b[off]), true
		off++
	}
	destLen := 32
	if e.Kind.ToChannel() {
		destLen = 8
	}
	if len(b) < off+destLen+32+SignatureSize {
		return nil, fmt.Errorf("%w: %d bytes, a %s envelope needs at least %d", ErrTruncated, len(b), e.Kind, off+destLen+32+SignatureSize)
	}
	if e.Kind.ToChannel() {
		copy(e.Channel[:], b[off:])
	} else {
		copy(e.Recipient[:], b[off:])
	}
	off += destLen
	copy(e.Author[:], b[off:])
	off += 32
	raw := append([]byte(nil), b...)
	e.raw = raw
	e.Body = raw[off : len(raw)-SignatureSize : len(raw)-SignatureSize]
	if err := checkBody(e.Kind, e.Priority, e.Body); err != nil {
		return nil, err
	}
	e.id = IDOf(raw)
	return e, nil
}

// PeekPriority reads an envelope's priority from its first two bytes,
// without decoding it: for a relay that holds only a message's first
// fragment. It reports false for bytes that are not a version 1 envelope.
func PeekPriority(b []byte) (Priority, bool) {
	if len(b) < 2 || b[0] != Version1 || b[1]&flagReserve != 0 {
		return 0, false
	}
	return Priority((b[1] & prioMask) >> prioShift), true
}

// IDOf is the ID of the envelope whose bytes are raw: their SHA-256. It
// does not check that raw is an envelope.
func IDOf(raw []byte) ID { return sha256.Sum256(raw) }

// checkBody enforces the per-kind rules shared by Decode and Sign.
func checkBody(k Kind, p Priority, body []byte) error {
	if len(body) > MaxBody {
		return fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrTooLarge, len(body), MaxBody)
	}
	switch k {
	case KindText, KindAlert:
		if len(body) == 0 {
			return fmt.Errorf("%w: empty text", ErrMalformed)
		}
		if !utf8.Valid(body) {
			return fmt.Errorf("%w: text is not UTF-8", ErrMalformed)
		}
		if k == KindAlert && p != PriorityAlert {
			return fmt.Errorf("%w: alert with priority %s", ErrMalformed, p)
		}
	case KindDirect:
		if len(body) < sealOverhead {
			return fmt.Errorf("%w: sealed body is %d bytes, at least %d expected", ErrMalformed, len(body), sealOverhead)
		}
	case KindTeam:
		if len(body) < teamOverhead+1 {
			return fmt.Errorf("%w: sealed team body is %d bytes, at least %d expected", ErrMalformed, len(body), teamOverhead+1)
		}
		if p != PriorityNormal && p != PriorityAlert {
			return fmt.Errorf("%w: team message with priority %s (normal or alert)", ErrMalformed, p)
		}
	case KindProfile:
		if p != PriorityLow {
			return fmt.Errorf("%w: profile with priority %s (low)", ErrMalformed, p)
		}
		if _, err := parseProfileBody(body); err != nil {
			return err
		}
	case KindKeyChange:
		if err := checkKeyChangeBody(p, body); err != nil {
			return err
		}
	case KindReport:
		if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
			return fmt.Errorf("%w: report body is not a JSON object", ErrMalformed)
		}
	case KindReceipt:
		if len(body) == 0 || len(body)%32 != 0 || len(body)/32 > MaxReceiptIDs {
			return fmt.Errorf("%w: receipt body must hold 1 to %d IDs, has %d bytes", ErrMalformed, MaxReceiptIDs, len(body))
		}
	}
	return nil
}

// Verify decodes b, checks the author's signature, and checks the time
// against now (unix milliseconds): not created more than MaxClockSkew ahead,
// not expired. This is what every link runs before anything is stored.
func Verify(b []byte, now int64) (*Envelope, error) {
	e, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if err := e.VerifySignature(); err != nil {
		return nil, err
	}
	if err := e.CheckTime(now); err != nil {
		return nil, err
	}
	return e, nil
}

// VerifySignature checks the signature against the author key.
func (e *Envelope) VerifySignature() error {
	n := len(e.raw) - SignatureSize
	signed := make([]byte, 0, len(SignaturePrefix)+n)
	signed = append(append(signed, SignaturePrefix...), e.raw[:n]...)
	if !ed25519.Verify(e.Author[:], signed, e.raw[n:]) {
		return fmt.Errorf("%w: author %s", ErrSignature, e.Author)
	}
	return nil
}

// CheckTime reports ErrFuture or ErrExpired against now, unix milliseconds.
func (e *Envelope) CheckTime(now int64) error {
	if e.Created > now+MaxClockSkew.Milliseconds() {
		return fmt.Errorf("%w: created %s, %s ahead of this clock", ErrFuture,
			time.UnixMilli(e.Created).UTC().Format(time.RFC3339), time.Duration(e.Created-now)*time.Millisecond)
	}
	if exp := e.Expires(); exp <= now {
		return fmt.Errorf("%w: at %s", ErrExpired, time.UnixMilli(exp).UTC().Format(time.RFC3339))
	}
	return nil
}

// Sign encodes and signs d as this identity. The returned envelope's Raw is
// what goes on the wire.
func (id *Identity) Sign(d Draft) (*Envelope, error) {
	if !d.Kind.known() {
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, uint8(d.Kind))
	}
	if d.Priority > PriorityAlert {
		return nil, fmt.Errorf("%w: priority %d", ErrMalformed, d.Priority)
	}
	if d.Created < 0 || d.Created > maxCreated {
		return nil, fmt.Errorf("%w: created %d out of range", ErrMalformed, d.Created)
	}
	if err := checkBody(d.Kind, d.Priority, d.Body); err != nil {
		return nil, err
	}
	flags := uint8(d.Kind) | uint8(d.Priority)<<prioShift
	var ttl uint8
	if d.TTL != 0 {
		c, ok := TTLCode(d.TTL)
		if !ok || d.TTL < 0 {
			return nil, fmt.Errorf("%w: TTL %s outside 1m..%s", ErrMalformed, d.TTL, MaxTTL)
		}
		flags |= flagTTL
		ttl = c
	}
	b := make([]byte, 0, headerMax+32+32+len(d.Body)+SignatureSize)
	c := uint64(d.Created)
	b = append(b, Version1, flags, byte(c>>40), byte(c>>32), byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
	if flags&flagTTL != 0 {
		b = append(b, ttl)
	}
	if d.Kind.ToChannel() {
		b = append(b, d.Channel[:]...)
	} else {
		b = append(b, d.Recipient[:]...)
	}
	pub := id.Public()
	b = append(b, pub[:]...)
	b = append(b, d.Body...)
	signed := append([]byte(SignaturePrefix), b...)
	b = append(b, ed25519.Sign(id.priv, signed)...)
	return Decode(b)
}
