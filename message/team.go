package message

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
)

// A team channel is a private channel: everything about it derives from a
// 32-byte secret its members share (by an invite link or QR code), and
// relays carry its messages without being able to read them.
//
//	id  = HKDF-SHA256(ikm = secret, salt = "", info = "lifeline/team/v1/id")[:8]
//	key = HKDF-SHA256(ikm = secret, salt = "", info = "lifeline/team/v1/key")[:32]
//
// A KindTeam envelope's destination is the id and its body is
//
//	nonce (24, random) || XChaCha20-Poly1305(key, nonce, text,
//	                       aad = "lifeline/team/v1" || id || author)
//
// The nonce is random, and 24 bytes make a collision negligible for any
// number of messages one team will ever write. The author is in the
// associated data so a member cannot re-sign another member's ciphertext
// under their own name unnoticed; the id, so a ciphertext cannot be moved
// to another team that happens to share a key.

// TeamSecretSize is the length of a team's shared secret.
const TeamSecretSize = 32

// teamOverhead is what sealing adds to the text: nonce and tag.
const teamOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

const teamLabel = "lifeline/team/v1"

// Team is a team channel's id and key, derived from its secret.
type Team struct {
	id  ChannelID
	key []byte
}

// NewTeam derives a team channel from its shared secret.
func NewTeam(secret []byte) (*Team, error) {
	if len(secret) != TeamSecretSize {
		return nil, fmt.Errorf("%w: team secret is %d bytes, want %d", ErrBadKey, len(secret), TeamSecretSize)
	}
	id, err := hkdf.Key(sha256.New, secret, nil, teamLabel+"/id", len(ChannelID{}))
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, secret, nil, teamLabel+"/key", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	t := &Team{key: key}
	copy(t.id[:], id)
	return t, nil
}

// ID returns the team channel's id: the destination of its envelopes.
func (t *Team) ID() ChannelID { return t.id }

func teamAAD(id ChannelID, author PublicKey) []byte {
	aad := make([]byte, 0, len(teamLabel)+len(id)+len(author))
	return append(append(append(aad, teamLabel...), id[:]...), author[:]...)
}

// Seal encrypts text as written by author, returning the body of a
// KindTeam envelope.
func (t *Team) Seal(rand io.Reader, author PublicKey, text []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(t.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, teamOverhead+len(text))
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("team nonce: %w", err)
	}
	return aead.Seal(out, out, text, teamAAD(t.id, author)), nil
}

// Open decrypts a KindTeam envelope of this team.
func (t *Team) Open(e *Envelope) ([]byte, error) {
	if e.Kind != KindTeam {
		return nil, fmt.Errorf("%w: %s is not a team message", ErrMalformed, e.Kind)
	}
	if e.Channel != t.id {
		return nil, fmt.Errorf("%w: team channel %s, not %s", ErrNotForMe, e.Channel, t.id)
	}
	aead, err := chacha20poly1305.NewX(t.key)
	if err != nil {
		return nil, err
	}
	n := chacha20poly1305.NonceSizeX
	pt, err := aead.Open(nil, e.Body[:n], e.Body[n:], teamAAD(t.id, e.Author))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	if !utf8.Valid(pt) || len(pt) == 0 {
		return nil, fmt.Errorf("%w: team message text is not UTF-8", ErrMalformed)
	}
	return pt, nil
}

// NewTeamText signs a message to a team channel, sealed with its key.
// Priority is PriorityNormal, or PriorityAlert for an alert to the team.
func (id *Identity) NewTeamText(rand io.Reader, t *Team, text string, p Priority, now time.Time, ttl time.Duration) (*Envelope, error) {
	if text == "" || !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: team message text must be non-empty UTF-8", ErrMalformed)
	}
	if len(text)+teamOverhead > MaxBody {
		return nil, fmt.Errorf("%w: text is %d bytes, the limit is %d", ErrTooLarge, len(text), MaxBody-teamOverhead)
	}
	body, err := t.Seal(rand, id.pub, []byte(text))
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindTeam, Priority: p, Created: now.UnixMilli(), TTL: ttl, Channel: t.id, Body: body})
}
