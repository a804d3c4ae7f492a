package message

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fixedNow is the clock every test signs and verifies with.
var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// seeded returns a deterministic reader, so identities and ciphertexts are
// the same on every run and golden bytes can be pinned.
func seeded(seed uint64) *mrand.ChaCha8 {
	var s [32]byte
	s[0] = byte(seed)
	return mrand.NewChaCha8(s)
}

func newID(t testing.TB, seed uint64) *Identity {
	t.Helper()
	id, err := NewIdentity(seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTextRoundTrip(t *testing.T) {
	alice := newID(t, 1)
	e, err := alice.NewText("#General ", "water at the school", fixedNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(e.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want, _ := Channel("general")
	if got.Kind != KindText || got.Priority != PriorityNormal || got.Channel != want ||
		got.Author != alice.Public() || got.Text() != "water at the school" ||
		got.Created != fixedNow.UnixMilli() || got.TTL != DefaultTTL || got.HasTTL {
		t.Fatalf("decoded %+v", got)
	}
	if got.ID() != e.ID() {
		t.Fatalf("ID changed across decode")
	}
}

func TestOverheadBudget(t *testing.T) {
	e, err := newID(t, 1).NewText("general", "x", fixedNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if overhead := len(e.Raw()) - 1; overhead != 112 {
		t.Fatalf("overhead of a channel text message = %d bytes, want 112", overhead)
	}
	// A 100-character message has to leave room for a radio header in 255.
	e, _ = newID(t, 1).NewText("general", strings.Repeat("a", 100), fixedNow, time.Hour)
	if len(e.Raw()) > 255-16 {
		t.Fatalf("100-char message with TTL is %d bytes", len(e.Raw()))
	}
}

// TestGoldenV1 pins the exact bytes of version 1, so an accidental format
// change fails here rather than in the field.
func TestGoldenV1(t *testing.T) {
	alice := newID(t, 1)
	c, _ := Channel("general")
	e, err := alice.Sign(Draft{Kind: KindText, Priority: PriorityNormal, Created: 1_700_000_000_000, TTL: time.Hour, Channel: c, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" + // version
		"51" + // flags: text | normal<<4 | has-TTL
		"018bcfe56800" + // created, uint48 unix ms
		"23" // TTL code for one hour; channel, author, body and signature follow
	got := hex.EncodeToString(e.Raw())
	if !strings.HasPrefix(got, want) {
		t.Fatalf("header = %s, want prefix %s", got[:20], want)
	}
	if got[18:34] != c.String() || got[34:98] != alice.Public().String() || got[98:102] != "6869" {
		t.Fatalf("layout changed: %s", got)
	}
	if TTLFromCode(0x23) != time.Hour {
		t.Fatalf("code 0x23 = %s", TTLFromCode(0x23))
	}
	// Channel ids are part of the format too.
	if c.String() != channelGeneral {
		t.Fatalf("channel id of general = %s, want %s", c, channelGeneral)
	}
}

const channelGeneral = "319adfe84d71e84e" // printf 'lifeline/channel/v1\0general' | sha256sum

func TestDecodeErrors(t *testing.T) {
	alice := newID(t, 1)
	e, _ := alice.NewText("general", "hello", fixedNow, 0)
	good := e.Raw()
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	big, _ := alice.Sign(Draft{Kind: KindText, Created: fixedNow.UnixMilli(), Body: bytes.Repeat([]byte("a"), MaxBody)})
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version", mut(func(b []byte) []byte { b[0] = 2; return b }), ErrVersion},
		{"short header", good[:5], ErrTruncated},
		{"reserved bit", mut(func(b []byte) []byte { b[1] |= 0x80; return b }), ErrMalformed},
		{"unknown kind", mut(func(b []byte) []byte { b[1] = b[1]&0xf0 | 9; return b }), ErrMalformed},
		{"truncated body", good[:len(good)-70], ErrTruncated},
		{"ttl flag without byte", good[:8:8], ErrTruncated},
		{"oversize", append(append([]byte(nil), big.Raw()...), make([]byte, 200)...), ErrTooLarge},
		{"bad utf8", mut(func(b []byte) []byte { b[48] = 0xff; return b }), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode error = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	alice := newID(t, 1)
	now := fixedNow.UnixMilli()
	e, _ := alice.NewText("general", "hello", fixedNow, 0)
	flip := func(i int) []byte {
		b := append([]byte(nil), e.Raw()...)
		b[i] ^= 1
		return b
	}
	if _, err := Verify(flip(len(e.Raw())-1), now); !errors.Is(err, ErrSignature) {
		t.Fatalf("flipped signature: %v", err)
	}
	if _, err := Verify(flip(len(e.Raw())-70), now); !errors.Is(err, ErrSignature) {
		t.Fatalf("flipped body: %v", err)
	}
	if _, err := Verify(flip(20), now); !errors.Is(err, ErrSignature) {
		t.Fatalf("flipped author: %v", err)
	}
	future, _ := alice.NewText("general", "hello", fixedNow.Add(MaxClockSkew+time.Second), 0)
	if _, err := Verify(future.Raw(), now); !errors.Is(err, ErrFuture) {
		t.Fatalf("future: %v", err)
	}
	nearFuture, _ := alice.NewText("general", "hello", fixedNow.Add(MaxClockSkew-time.Second), 0)
	if _, err := Verify(nearFuture.Raw(), now); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	short, _ := alice.NewText("general", "hello", fixedNow, time.Minute)
	if _, err := Verify(short.Raw(), now+59_999); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if _, err := Verify(short.Raw(), now+60_000); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	// A signature made without the domain prefix must not verify: it
	// could have been produced by another protocol using the same key.
	raw := append([]byte(nil), e.Raw()[:len(e.Raw())-SignatureSize]...)
	raw = append(raw, ed25519Sign(alice, raw)...)
	if _, err := Verify(raw, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("undomained signature accepted: %v", err)
	}
}

func TestSignRejects(t *testing.T) {
	alice := newID(t, 1)
	c, _ := Channel("general")
	cases := []struct {
		name string
		d    Draft
		want error
	}{
		{"empty text", Draft{Kind: KindText, Channel: c}, ErrMalformed},
		{"oversize", Draft{Kind: KindText, Channel: c, Body: make([]byte, MaxBody+1)}, ErrTooLarge},
		{"kind", Draft{Kind: 9, Body: []byte("x")}, ErrMalformed},
		{"alert priority", Draft{Kind: KindAlert, Priority: PriorityNormal, Channel: c, Body: []byte("x")}, ErrMalformed},
		{"priority", Draft{Kind: KindText, Priority: 4, Channel: c, Body: []byte("x")}, ErrMalformed},
		{"created", Draft{Kind: KindText, Created: -1, Channel: c, Body: []byte("x")}, ErrMalformed},
		{"ttl", Draft{Kind: KindText, TTL: MaxTTL + time.Hour, Channel: c, Body: []byte("x")}, ErrMalformed},
		{"receipt empty", Draft{Kind: KindReceipt}, ErrMalformed},
		{"receipt ragged", Draft{Kind: KindReceipt, Body: make([]byte, 33)}, ErrMalformed},
		{"direct short", Draft{Kind: KindDirect, Body: make([]byte, 10)}, ErrMalformed},
	}
	for _, tc := range cases {
		if _, err := alice.Sign(tc.d); !errors.Is(err, tc.want) {
			t.Errorf("%s: Sign error = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Channel(" # "); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty channel name: %v", err)
	}
	if _, err := Channel(strings.Repeat("x", MaxChannelName+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("long channel name: %v", err)
	}
	if _, err := Channel("a\nb"); !errors.Is(err, ErrMalformed) {
		t.Errorf("control char in channel name: %v", err)
	}
}

func TestDirectOnlyRecipientReads(t *testing.T) {
	alice, bob, eve := newID(t, 1), newID(t, 2), newID(t, 3)
	e, err := alice.NewDirect(rand.Reader, bob.Public(), "meet at the clinic", PriorityNormal, fixedNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(e.Raw(), []byte("clinic")) {
		t.Fatal("plaintext visible in the envelope")
	}
	got, err := Verify(e.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := bob.OpenDirect(got)
	if err != nil || string(pt) != "meet at the clinic" {
		t.Fatalf("bob: %q, %v", pt, err)
	}
	if _, err := eve.OpenDirect(got); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("eve: %v", err)
	}
	// Eve re-addresses the ciphertext to herself: still unreadable.
	forged, _ := eve.Sign(Draft{Kind: KindDirect, Created: got.Created, Recipient: eve.Public(), Body: got.Body})
	if _, err := eve.OpenDirect(forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("eve re-addressed: %v", err)
	}
	// Eve re-signs bob's ciphertext as her own: bob must not read it as
	// coming from eve.
	resigned, _ := eve.Sign(Draft{Kind: KindDirect, Created: got.Created, Recipient: bob.Public(), Body: got.Body})
	if _, err := bob.OpenDirect(resigned); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("re-signed by eve: %v", err)
	}
	// A tampered ciphertext fails authentication.
	b := append([]byte(nil), got.Body...)
	b[len(b)-1] ^= 1
	tampered, _ := alice.Sign(Draft{Kind: KindDirect, Created: got.Created, Recipient: bob.Public(), Body: b})
	if _, err := bob.OpenDirect(tampered); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestDirectBadRecipient(t *testing.T) {
	alice := newID(t, 1)
	var notAPoint PublicKey // y = 2 has no x on the curve
	notAPoint[0] = 2
	if _, err := alice.NewDirect(rand.Reader, notAPoint, "x", PriorityNormal, fixedNow, 0); !errors.Is(err, ErrBadKey) {
		t.Fatalf("non-point: %v", err)
	}
	var identity PublicKey // y = 1: the identity, small order
	identity[0] = 1
	if _, err := alice.NewDirect(rand.Reader, identity, "x", PriorityNormal, fixedNow, 0); !errors.Is(err, ErrBadKey) {
		t.Fatalf("identity point: %v", err)
	}
}

func TestReceipt(t *testing.T) {
	alice, bob := newID(t, 1), newID(t, 2)
	m1, _ := alice.NewDirect(rand.Reader, bob.Public(), "one", PriorityNormal, fixedNow, 0)
	m2, _ := alice.NewDirect(rand.Reader, bob.Public(), "two", PriorityNormal, fixedNow, 0)
	r, err := bob.NewReceipt(alice.Public(), []ID{m1.ID(), m2.ID()}, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(r.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	ids := got.ReceiptIDs()
	if got.Recipient != alice.Public() || len(ids) != 2 || ids[0] != m1.ID() || ids[1] != m2.ID() {
		t.Fatalf("receipt %+v ids %v", got, ids)
	}
}

func TestTTLCodes(t *testing.T) {
	prev := time.Duration(-1)
	for c := 0; c <= 0xFF; c++ {
		d := TTLFromCode(uint8(c))
		if d <= prev {
			t.Fatalf("code %d: %s not above %s", c, d, prev)
		}
		prev = d
		back, ok := TTLCode(d)
		if !ok || back != uint8(c) {
			t.Fatalf("TTLCode(%s) = %d, want %d", d, back, c)
		}
	}
	// Rounding up never shortens a lifetime, and costs at most 1/16.
	for _, d := range []time.Duration{time.Minute, 90 * time.Second, time.Hour, 25 * time.Hour, 7 * 24 * time.Hour, 365 * 24 * time.Hour} {
		c, ok := TTLCode(d)
		got := TTLFromCode(c)
		if !ok || got < d || float64(got-d) > math.Max(float64(time.Minute), float64(d)/16) {
			t.Fatalf("TTLCode(%s) -> %s", d, got)
		}
	}
	if _, ok := TTLCode(MaxTTL + time.Minute); ok {
		t.Fatal("TTL above MaxTTL accepted")
	}
}

func TestPEMRoundTrip(t *testing.T) {
	alice := newID(t, 1)
	p, err := alice.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePEM(p)
	if err != nil || back.Public() != alice.Public() {
		t.Fatalf("ParsePEM: %v", err)
	}
	if _, err := ParsePEM([]byte("not pem")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestParsers(t *testing.T) {
	k := newID(t, 1).Public()
	if back, err := ParsePublicKey(k.String()); err != nil || back != k {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("g", 64), k.String()[:62]} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	if _, err := ParseID(strings.Repeat("0", 63)); err == nil {
		t.Error("short id accepted")
	}
	if p, err := ParsePriority("alert"); err != nil || p != PriorityAlert {
		t.Errorf("ParsePriority: %v %v", p, err)
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error("unknown priority accepted")
	}
}
