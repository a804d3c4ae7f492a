package message

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ProfilesChannel is the channel every profile goes to.
const ProfilesChannel = "lifeline/profiles"

// Profile limits, in bytes of UTF-8.
const (
	MaxProfileName   = 64
	MaxProfileStatus = 140
)

// Profile is the body of a KindProfile envelope: how a person (or a node)
// wants to be called. Anyone can claim any name, so clients show a name
// beside a short fingerprint of the key that signed it, never alone. The
// latest profile of a key wins: the greatest Created, and between equal
// times the greater ID, compared byte by byte. Unknown JSON fields are
// ignored: later versions add fields, not meanings.
type Profile struct {
	// Name is 1 to MaxProfileName bytes, without surrounding spaces or
	// control characters.
	Name string `json:"name"`
	// Status is an optional short line ("at the school until Friday"), at
	// most MaxProfileStatus bytes, without control characters.
	Status string `json:"status,omitempty"`
}

// Check reports the first rule the profile breaks.
func (p Profile) Check() error {
	if p.Name == "" || strings.TrimSpace(p.Name) != p.Name {
		return fmt.Errorf("%w: profile name is empty or has surrounding spaces", ErrMalformed)
	}
	if err := checkLine("profile name", p.Name, MaxProfileName); err != nil {
		return err
	}
	return checkLine("profile status", p.Status, MaxProfileStatus)
}

func checkLine(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrMalformed, what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrMalformed, what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s contains a control character", ErrMalformed, what)
		}
	}
	return nil
}

// parseProfileBody decodes and checks a profile body; shared by Decode's
// body rules and ParseProfile, so no invalid profile is ever stored. Keys
// are matched exactly (encoding/json would match "NAME" too), each present
// key must hold a string (not null), and of a repeated key the last wins:
// what JSON.parse does, so the page reads every profile as the node does.
func parseProfileBody(body []byte) (Profile, error) {
	var p Profile
	if len(body) == 0 || body[0] != '{' {
		return p, fmt.Errorf("%w: profile body is not a JSON object", ErrMalformed)
	}
	// json.Unmarshal would quietly turn invalid UTF-8 into U+FFFD, and
	// every reader would then see a different name than the bytes say.
	if !utf8.Valid(body) {
		return p, fmt.Errorf("%w: profile body is not UTF-8", ErrMalformed)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return p, fmt.Errorf("%w: profile body: %v", ErrMalformed, err)
	}
	for key, dst := range map[string]*string{"name": &p.Name, "status": &p.Status} {
		raw, ok := m[key]
		if !ok {
			continue
		}
		if len(raw) == 0 || raw[0] != '"' {
			return p, fmt.Errorf("%w: profile body: %s is not a string", ErrMalformed, key)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return p, fmt.Errorf("%w: profile body: %s: %v", ErrMalformed, key, err)
		}
	}
	return p, p.Check()
}

// NewProfile signs p to ProfilesChannel at low priority.
func (id *Identity) NewProfile(p Profile, now time.Time, ttl time.Duration) (*Envelope, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	c, err := Channel(ProfilesChannel)
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindProfile, Priority: PriorityLow, Created: now.UnixMilli(), TTL: ttl, Channel: c, Body: body})
}

// ParseProfile reads a profile envelope's body.
func ParseProfile(e *Envelope) (Profile, error) {
	if e.Kind != KindProfile {
		return Profile{}, fmt.Errorf("%w: %s is not a profile", ErrMalformed, e.Kind)
	}
	return parseProfileBody(e.Body)
}

// Newer reports whether profile envelope a supersedes b: later created, or
// the same time and a greater id.
func Newer(a, b *Envelope) bool {
	if a.Created != b.Created {
		return a.Created > b.Created
	}
	ai, bi := a.ID(), b.ID()
	return string(ai[:]) > string(bi[:])
}
