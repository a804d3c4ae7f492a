package message

import (
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// The constructors below cover what people send. Each takes the time from
// the caller and returns a signed envelope.

// NewText signs a text message to the named public channel.
func (id *Identity) NewText(channel, text string, now time.Time, ttl time.Duration) (*Envelope, error) {
	c, err := Channel(channel)
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindText, Priority: PriorityNormal, Created: now.UnixMilli(), TTL: ttl, Channel: c, Body: []byte(text)})
}

// NewAlert signs an alert to the named channel, at alert priority.
func (id *Identity) NewAlert(channel, text string, now time.Time, ttl time.Duration) (*Envelope, error) {
	c, err := Channel(channel)
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindAlert, Priority: PriorityAlert, Created: now.UnixMilli(), TTL: ttl, Channel: c, Body: []byte(text)})
}

// NewDirect signs a direct message whose text only the recipient can read.
func (id *Identity) NewDirect(rand io.Reader, to PublicKey, text string, p Priority, now time.Time, ttl time.Duration) (*Envelope, error) {
	if text == "" || !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: direct message text must be non-empty UTF-8", ErrMalformed)
	}
	if len(text)+sealOverhead > MaxBody {
		return nil, fmt.Errorf("%w: text is %d bytes, the limit is %d", ErrTooLarge, len(text), MaxBody-sealOverhead)
	}
	body, err := id.SealDirect(rand, to, []byte(text))
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindDirect, Priority: p, Created: now.UnixMilli(), TTL: ttl, Recipient: to, Body: body})
}

// NewReceipt signs a receipt telling author that the given messages arrived.
func (id *Identity) NewReceipt(author PublicKey, ids []ID, now time.Time) (*Envelope, error) {
	body := make([]byte, 0, 32*len(ids))
	for _, m := range ids {
		body = append(body, m[:]...)
	}
	return id.Sign(Draft{Kind: KindReceipt, Priority: PriorityLow, Created: now.UnixMilli(), Recipient: author, Body: body})
}
