package message

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// A key change says that a person's old key is replaced by a new one, so
// that someone who reflashed or lost a phone keeps their conversations. It
// is a KindKeyChange envelope to KeysChannel whose body is
//
//	version (1, = 1) || old key (32) || new key (32) [|| old signature (64)]
//
// In either of two forms:
//
//   - signed by both: the envelope is signed by the new key, and the body
//     carries the old key's Ed25519 signature over KeyChangeLabel || old ||
//     new. Whoever holds both keys made it: clients follow it at once.
//   - vouched: no old signature, and the envelope is signed by a third key
//     (an operator's node, another member), never by the old or the new
//     key. Clients show who vouched and follow it only when their person
//     accepts.
//
// Decode checks the structure (version, length, distinct keys, priority);
// the rules that need the author and the old key's signature are
// ParseKeyChange's. Nodes store and carry key changes they cannot parse,
// like sealed bodies they cannot open: anyone can mint two keys and a
// valid change between them, so refusing forgeries would protect no
// resource, and every reader must check anyway, since a node may lie.
// The statement carries no time: it is true once and forever, so a replay
// says nothing new, and there is no revoking it.

// KeysChannel is the channel every key change goes to.
const KeysChannel = "lifeline/keys"

// KeyChangeLabel is signed before old || new by the old key: it keeps these
// signatures apart from envelopes and anything else the key signs.
const KeyChangeLabel = "lifeline/key-change/v1\x00"

// KeyChangeVersion is the first byte of the body this package writes.
const KeyChangeVersion = 1

const (
	keyChangeVouched = 1 + 32 + 32
	keyChangeSigned  = keyChangeVouched + SignatureSize
)

// KeyChange is a parsed key change.
type KeyChange struct {
	Old, New PublicKey
	// Vouched is true for the vouched form; Voucher is then the
	// envelope's author, who vouches. For a change signed by both,
	// Voucher is the zero key.
	Vouched bool
	Voucher PublicKey
}

// KeyChangeStatement returns the bytes the old key signs.
func KeyChangeStatement(old, new PublicKey) []byte {
	b := make([]byte, 0, len(KeyChangeLabel)+64)
	return append(append(append(b, KeyChangeLabel...), old[:]...), new[:]...)
}

// checkKeyChangeBody is the structure Decode and Sign enforce.
func checkKeyChangeBody(p Priority, body []byte) error {
	if p != PriorityNormal {
		return fmt.Errorf("%w: key change with priority %s (normal)", ErrMalformed, p)
	}
	if len(body) != keyChangeVouched && len(body) != keyChangeSigned {
		return fmt.Errorf("%w: key change body is %d bytes, want %d or %d", ErrMalformed, len(body), keyChangeVouched, keyChangeSigned)
	}
	if body[0] != KeyChangeVersion {
		// A later version is a later kind of statement: a reader that
		// does not know it must not take it for this one.
		return fmt.Errorf("%w: key change version %d", ErrMalformed, body[0])
	}
	if string(body[1:33]) == string(body[33:65]) {
		return fmt.Errorf("%w: key change from a key to itself", ErrMalformed)
	}
	return nil
}

// NewKeyChange signs, as the new key (id), that it replaces old, whose
// identity signs the statement: the form clients follow without asking.
func (id *Identity) NewKeyChange(old *Identity, now time.Time, ttl time.Duration) (*Envelope, error) {
	o, n := old.Public(), id.Public()
	body := make([]byte, 0, keyChangeSigned)
	body = append(append(append(body, KeyChangeVersion), o[:]...), n[:]...)
	body = append(body, ed25519.Sign(old.priv, KeyChangeStatement(o, n))...)
	return id.signKeyChange(body, now, ttl)
}

// VouchKeyChange signs, as a third party (an operator's node, another
// member), that new replaces old. It refuses to vouch for its own key: a
// key cannot vouch for itself.
func (id *Identity) VouchKeyChange(old, new PublicKey, now time.Time, ttl time.Duration) (*Envelope, error) {
	if me := id.Public(); me == old || me == new {
		return nil, fmt.Errorf("%w: a key cannot vouch for its own change", ErrMalformed)
	}
	if _, err := montgomery(new); err != nil {
		return nil, err
	}
	body := make([]byte, 0, keyChangeVouched)
	body = append(append(append(body, KeyChangeVersion), old[:]...), new[:]...)
	return id.signKeyChange(body, now, ttl)
}

func (id *Identity) signKeyChange(body []byte, now time.Time, ttl time.Duration) (*Envelope, error) {
	c, err := Channel(KeysChannel)
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindKeyChange, Priority: PriorityNormal, Created: now.UnixMilli(), TTL: ttl, Channel: c, Body: body})
}

// ParseKeyChange reads a key change envelope and checks what Decode does
// not: a change signed by both is authored by the new key and carries the
// old key's valid signature (else ErrSignature); a vouched one is authored
// by neither key (else ErrMalformed); the new key can be written to (else
// ErrBadKey). It does not check the envelope's own signature: Verify does.
func ParseKeyChange(e *Envelope) (KeyChange, error) {
	var kc KeyChange
	if e.Kind != KindKeyChange {
		return kc, fmt.Errorf("%w: %s is not a key change", ErrMalformed, e.Kind)
	}
	if err := checkKeyChangeBody(e.Priority, e.Body); err != nil {
		return kc, err
	}
	copy(kc.Old[:], e.Body[1:33])
	copy(kc.New[:], e.Body[33:65])
	if _, err := montgomery(kc.New); err != nil {
		return kc, err
	}
	if len(e.Body) == keyChangeVouched {
		if e.Author == kc.Old || e.Author == kc.New {
			return kc, fmt.Errorf("%w: a vouched key change signed by the key it is about", ErrMalformed)
		}
		kc.Vouched, kc.Voucher = true, e.Author
		return kc, nil
	}
	if e.Author != kc.New {
		return kc, fmt.Errorf("%w: a key change signed by both must be authored by the new key", ErrMalformed)
	}
	if !ed25519.Verify(kc.Old[:], KeyChangeStatement(kc.Old, kc.New), e.Body[65:]) {
		return kc, fmt.Errorf("%w: the old key %s did not sign this key change", ErrSignature, kc.Old)
	}
	return kc, nil
}
