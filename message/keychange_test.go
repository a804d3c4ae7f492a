package message

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestKeyChange: both forms round-trip through the wire and parse to the
// same keys; each rule that keeps someone from redirecting another
// person's conversations is enforced.
func TestKeyChange(t *testing.T) {
	old, nw, op := newID(t, 1), newID(t, 2), newID(t, 3)
	keys := mustChannel(t, KeysChannel)

	e, err := nw.NewKeyChange(old, fixedNow, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(e.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindKeyChange || got.Channel != keys || got.Priority != PriorityNormal || got.Author != nw.Public() || len(got.Body) != 129 {
		t.Fatalf("decoded %+v", got)
	}
	kc, err := ParseKeyChange(got)
	if err != nil || kc != (KeyChange{Old: old.Public(), New: nw.Public()}) {
		t.Fatalf("signed by both: %+v, %v", kc, err)
	}

	v, err := op.VouchKeyChange(old.Public(), nw.Public(), fixedNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(v.Raw(), fixedNow.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	kc, err = ParseKeyChange(v)
	if err != nil || kc != (KeyChange{Old: old.Public(), New: nw.Public(), Vouched: true, Voucher: op.Public()}) || len(v.Body) != 65 {
		t.Fatalf("vouched: %+v, %v", kc, err)
	}

	// A key cannot vouch for its own change, in either direction.
	for _, who := range []*Identity{old, nw} {
		if _, err := who.VouchKeyChange(old.Public(), nw.Public(), fixedNow, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("vouching for oneself: %v, want ErrMalformed", err)
		}
		self, err := who.Sign(Draft{Kind: KindKeyChange, Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Channel: keys, Body: v.Body})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKeyChange(self); !errors.Is(err, ErrMalformed) {
			t.Errorf("a vouched change signed by a key it names: %v, want ErrMalformed", err)
		}
	}
	// Signed by both, but the envelope is not the new key's: a third
	// party replaying someone's old signature under its own name.
	replay, err := op.Sign(Draft{Kind: KindKeyChange, Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Channel: keys, Body: e.Body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyChange(replay); !errors.Is(err, ErrMalformed) {
		t.Errorf("signed-by-both body authored by a third key: %v, want ErrMalformed", err)
	}
	// A forged old signature: the node stores it (Verify passes, the
	// envelope is the new key's), and ParseKeyChange refuses it.
	forged := bytes.Clone(e.Body)
	forged[100] ^= 1
	f, err := nw.Sign(Draft{Kind: KindKeyChange, Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Channel: keys, Body: forged})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(f.Raw(), fixedNow.UnixMilli()); err != nil {
		t.Fatalf("a forged statement in a well-signed envelope is refused by Verify: %v", err)
	}
	if _, err := ParseKeyChange(f); !errors.Is(err, ErrSignature) {
		t.Errorf("forged old signature: %v, want ErrSignature", err)
	}
	// The old key's signature is over this exact statement: another new
	// key cannot reuse it.
	other := newID(t, 4)
	moved := bytes.Clone(e.Body)
	pub := other.Public()
	copy(moved[33:65], pub[:])
	m, err := other.Sign(Draft{Kind: KindKeyChange, Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Channel: keys, Body: moved})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyChange(m); !errors.Is(err, ErrSignature) {
		t.Errorf("old signature moved to another new key: %v, want ErrSignature", err)
	}

	// Structure, refused by Decode (so by every node).
	for name, c := range map[string]struct {
		p    Priority
		body []byte
	}{
		"low priority":  {PriorityLow, v.Body},
		"short":         {PriorityNormal, v.Body[:64]},
		"between forms": {PriorityNormal, append(bytes.Clone(v.Body), 1)},
		"long":          {PriorityNormal, append(bytes.Clone(e.Body), 1)},
		"version 2":     {PriorityNormal, append([]byte{2}, v.Body[1:]...)},
		"to itself":     {PriorityNormal, append(append([]byte{1}, v.Body[1:33]...), v.Body[1:33]...)},
	} {
		if _, err := op.Sign(Draft{Kind: KindKeyChange, Priority: c.p, Created: fixedNow.UnixMilli(), Channel: keys, Body: c.body}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A new key nobody can write to is refused: the change would send the
	// person's messages nowhere.
	if _, err := op.VouchKeyChange(old.Public(), PublicKey{}, fixedNow, 0); !errors.Is(err, ErrBadKey) {
		t.Errorf("vouching for a small-order key: %v, want ErrBadKey", err)
	}
	if _, err := ParseKeyChange(got); err != nil {
		t.Fatal(err)
	}
	text, _ := old.NewText("general", "x", fixedNow, 0)
	if _, err := ParseKeyChange(text); !errors.Is(err, ErrMalformed) {
		t.Errorf("a text parsed as a key change: %v", err)
	}
}
