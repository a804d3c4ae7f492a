package message

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Kind says what an envelope carries, and so how its destination and body
// are read.
type Kind uint8

const (
	// KindText is a public channel message: destination is a ChannelID, the
	// body is UTF-8 text.
	KindText Kind = 1
	// KindTeam is a message to a team channel: destination is the team's
	// ChannelID (see Team), the body is text sealed with the team's key.
	// Priority is normal, or alert for an alert to the team.
	KindTeam Kind = 2
	// KindDirect is a direct message: destination is the recipient's key, the
	// body is sealed to the recipient (see SealDirect).
	KindDirect Kind = 3
	// KindReceipt acknowledges messages: destination is the author of the
	// acknowledged messages, the body is 1 to MaxReceiptIDs IDs.
	KindReceipt Kind = 4
	// KindAlert is an alert or SOS on a channel: destination is a ChannelID,
	// the body is UTF-8 text, priority is always PriorityAlert.
	KindAlert Kind = 5
	// KindReport is a node's signed record of its own links (an uplink
	// lost or regained): destination is a ChannelID (ReportsChannel), the
	// body a JSON object (see Report).
	KindReport Kind = 6
	// KindProfile is a person's display name and status: destination is a
	// ChannelID (ProfilesChannel), the body a JSON object (see Profile).
	KindProfile Kind = 7
	// KindKeyChange says a person's old key is replaced by a new one:
	// destination is a ChannelID (KeysChannel), the body the two keys and,
	// when signed by both, the old key's signature (see KeyChange).
	KindKeyChange Kind = 8
)

// String returns the kind's name as used in the API.
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindDirect:
		return "direct"
	case KindReceipt:
		return "receipt"
	case KindAlert:
		return "alert"
	case KindReport:
		return "report"
	case KindTeam:
		return "team"
	case KindProfile:
		return "profile"
	case KindKeyChange:
		return "keychange"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ToChannel reports whether the kind's destination is a channel.
func (k Kind) ToChannel() bool {
	return k == KindText || k == KindAlert || k == KindReport || k == KindTeam || k == KindProfile || k == KindKeyChange
}

// ToRecipient reports whether the kind's destination is a public key.
func (k Kind) ToRecipient() bool { return k == KindDirect || k == KindReceipt }

func (k Kind) known() bool { return k.ToChannel() || k.ToRecipient() }

// Priority orders messages on constrained links and in eviction: higher goes
// first and is kept longest.
type Priority uint8

const (
	PriorityLow    Priority = 0
	PriorityNormal Priority = 1
	PriorityHigh   Priority = 2
	PriorityAlert  Priority = 3
)

// String returns the priority's name as used in the API.
func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityAlert:
		return "alert"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// ParsePriority is the inverse of Priority.String.
func ParsePriority(s string) (Priority, error) {
	for p := PriorityLow; p <= PriorityAlert; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q (want low, normal, high or alert)", s)
}

// PublicKey is an Ed25519 public key: an author, or a recipient.
type PublicKey [32]byte

// String returns the key as 64 lowercase hex digits.
func (k PublicKey) String() string { return hex.EncodeToString(k[:]) }

// LogValue logs the key as its hex, also in JSON logs (which would
// otherwise print 32 numbers).
func (k PublicKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ParsePublicKey parses 64 hex digits.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := parseHex(k[:], s); err != nil {
		return k, fmt.Errorf("public key: %w", err)
	}
	return k, nil
}

// ID identifies an envelope: the SHA-256 of its complete bytes.
type ID [32]byte

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// LogValue logs the id as its hex, also in JSON logs.
func (id ID) LogValue() slog.Value { return slog.StringValue(id.String()) }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if err := parseHex(id[:], s); err != nil {
		return id, fmt.Errorf("message id: %w", err)
	}
	return id, nil
}

// ChannelID names a channel on the wire: the first 8 bytes of
// SHA-256("lifeline/channel/v1\x00" || normalised name).
type ChannelID [8]byte

// String returns the id as 16 lowercase hex digits.
func (c ChannelID) String() string { return hex.EncodeToString(c[:]) }

// ParseChannelID parses 16 hex digits.
func ParseChannelID(s string) (ChannelID, error) {
	var c ChannelID
	if err := parseHex(c[:], s); err != nil {
		return c, fmt.Errorf("channel id: %w", err)
	}
	return c, nil
}

// MaxChannelName is the longest channel name, in bytes, after normalisation.
const MaxChannelName = 64

// NormaliseChannelName returns the canonical form of a channel name: without
// surrounding space or a leading '#', lower case. Names are 1 to
// MaxChannelName bytes of UTF-8 without control characters.
func NormaliseChannelName(name string) (string, error) {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "#"))
	switch {
	case n == "":
		return "", fmt.Errorf("%w: channel name is empty", ErrMalformed)
	case len(n) > MaxChannelName:
		return "", fmt.Errorf("%w: channel name is %d bytes, the limit is %d", ErrMalformed, len(n), MaxChannelName)
	case !utf8.ValidString(n):
		return "", fmt.Errorf("%w: channel name is not UTF-8", ErrMalformed)
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: channel name contains a control character", ErrMalformed)
		}
	}
	return n, nil
}

// Channel returns the id of the channel with the given name.
func Channel(name string) (ChannelID, error) {
	n, err := NormaliseChannelName(name)
	if err != nil {
		return ChannelID{}, err
	}
	h := sha256.Sum256([]byte("lifeline/channel/v1\x00" + n))
	var c ChannelID
	copy(c[:], h[:])
	return c, nil
}

func parseHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, got %d", 2*len(dst), len(s))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("not hex: %w", err)
	}
	return nil
}
