package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bytes to the decoder and the verifier. Neither
// may panic; whatever decodes must re-encode to the same bytes, stay within
// the size limits, and fail Verify with a known error unless it is genuinely
// signed. Seeds are in testdata/fuzz/FuzzDecode and added below.
func FuzzDecode(f *testing.F) {
	alice, bob := newID(f, 1), newID(f, 2)
	text, _ := alice.NewText("general", "hello", fixedNow, 0)
	ttl, _ := alice.NewText("general", "hello", fixedNow, time.Hour)
	alert, _ := alice.NewAlert("sos", "injured at the bridge", fixedNow, 0)
	dm, _ := alice.NewDirect(rand.Reader, bob.Public(), "hi bob", PriorityHigh, fixedNow, 0)
	rcpt, _ := bob.NewReceipt(alice.Public(), []ID{dm.ID()}, fixedNow)
	team, _ := NewTeam(make([]byte, TeamSecretSize))
	tm, _ := alice.NewTeamText(rand.Reader, team, "team only", PriorityNormal, fixedNow, 0)
	prof, _ := alice.NewProfile(Profile{Name: "Amal", Status: "at the school"}, fixedNow, 0)
	kc, _ := bob.NewKeyChange(alice, fixedNow, 0)
	for _, e := range []*Envelope{text, ttl, alert, dm, rcpt, tm, prof, kc} {
		f.Add(e.Raw())
	}
	f.Add([]byte{})
	f.Add([]byte{Version1})
	f.Add([]byte{Version1, 0x51, 0, 0, 0, 0, 0, 0})
	known := []error{ErrVersion, ErrTruncated, ErrTooLarge, ErrMalformed, ErrSignature, ErrFuture, ErrExpired}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if !isOneOf(err, known) {
				t.Fatalf("Decode returned an unclassified error: %v", err)
			}
			return
		}
		if !bytes.Equal(e.Raw(), b) {
			t.Fatal("decoded envelope does not keep its bytes")
		}
		if len(e.Body) > MaxBody || len(b) > MaxEnvelope {
			t.Fatalf("accepted %d bytes, body %d", len(b), len(e.Body))
		}
		// Re-encoding the decoded fields gives the same signed prefix.
		d := Draft{Kind: e.Kind, Priority: e.Priority, Created: e.Created, Channel: e.Channel, Recipient: e.Recipient, Body: e.Body}
		if e.HasTTL {
			d.TTL = e.TTL
			if e.TTL == 0 {
				return // code 0 is valid on the wire but means "expires at once"; Draft cannot say it
			}
		}
		re, err := IdentityFromKey(alice.priv).Sign(d)
		if err != nil {
			t.Fatalf("decoded fields do not re-sign: %v", err)
		}
		n := len(b) - SignatureSize - 32 - len(e.Body)
		if !bytes.Equal(re.Raw()[:n], b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", re.Raw()[:n], b[:n])
		}
		if _, err := Verify(b, fixedNow.UnixMilli()); err != nil && !isOneOf(err, known) {
			t.Fatalf("Verify returned an unclassified error: %v", err)
		}
	})
}

func isOneOf(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// FuzzBodies feeds any body to the readers of each kind's body: reports
// and profiles (JSON from strangers), direct and team messages (sealed
// bytes), key changes (keys and a signature). They must never panic, and refuse with the package's errors.
func FuzzBodies(f *testing.F) {
	alice, bob := newID(f, 1), newID(f, 2)
	team, _ := NewTeam(make([]byte, TeamSecretSize))
	dm, _ := alice.NewDirect(rand.Reader, bob.Public(), "hi bob", PriorityHigh, fixedNow, 0)
	tm, _ := alice.NewTeamText(rand.Reader, team, "team only", PriorityNormal, fixedNow, 0)
	prof, _ := alice.NewProfile(Profile{Name: "Amal", Status: "at the school"}, fixedNow, 0)
	rep, _ := alice.NewReport(Report{Event: EventUplinkLost, At: fixedNow.UnixMilli()}, fixedNow)
	kc, _ := alice.NewKeyChange(bob, fixedNow, 0)
	vouched, _ := newID(f, 3).VouchKeyChange(bob.Public(), alice.Public(), fixedNow, 0)
	for _, e := range []*Envelope{dm, tm, prof, rep, kc, vouched} {
		f.Add(byte(e.Kind), e.Body)
	}
	f.Add(byte(KindProfile), []byte(`{"name":"\u0000","status":1}`))
	f.Add(byte(KindReport), []byte(`{"event":"uplink_lost","at":-1}`))
	known := []error{ErrMalformed, ErrNotForMe, ErrDecrypt, ErrBadKey, ErrSignature}
	reports, _ := Channel(ReportsChannel)
	profiles, _ := Channel(ProfilesChannel)
	keys, _ := Channel(KeysChannel)
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		d := Draft{Kind: Kind(kind), Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Body: body}
		switch d.Kind {
		case KindDirect:
			d.Recipient = bob.Public()
		case KindTeam:
			d.Channel = team.ID()
		case KindReport:
			d.Channel = reports
		case KindProfile:
			d.Channel, d.Priority = profiles, PriorityLow // profiles are low priority, or Sign refuses them
		case KindKeyChange:
			// Alice signs: a body naming her as the new key is the
			// signed-by-both form, any other the vouched form.
			d.Channel = keys
		default:
			return
		}
		e, err := alice.Sign(d)
		if err != nil {
			return // not a valid envelope: Decode's fuzz covers those
		}
		var perr error
		switch e.Kind {
		case KindDirect:
			_, perr = bob.OpenDirect(e)
		case KindTeam:
			_, perr = team.Open(e)
		case KindReport:
			_, perr = ParseReport(e)
		case KindProfile:
			_, perr = ParseProfile(e)
		case KindKeyChange:
			var kc KeyChange
			kc, perr = ParseKeyChange(e)
			// Whatever parses names the keys the body holds, and a
			// change signed by both is the author's.
			if perr == nil && (!bytes.Equal(kc.Old[:], body[1:33]) || !bytes.Equal(kc.New[:], body[33:65]) ||
				(!kc.Vouched && kc.New != alice.Public()) || (kc.Vouched && kc.Voucher != alice.Public())) {
				t.Fatalf("key change parsed to %+v from %x", kc, body)
			}
		}
		if perr != nil && !isOneOf(perr, known) {
			t.Fatalf("%s body refused with an unclassified error: %v", e.Kind, perr)
		}
	})
}
