package message

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTeamRoundTrip(t *testing.T) {
	alice, bob := newID(t, 1), newID(t, 2)
	secret := bytes.Repeat([]byte{7}, TeamSecretSize)
	team, err := NewTeam(secret)
	if err != nil {
		t.Fatal(err)
	}
	e, err := alice.NewTeamText(seeded(3), team, "meet at the well", PriorityNormal, fixedNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A relay sees an ordinary channel envelope it can verify but not read.
	got, err := Verify(e.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatalf("relay cannot verify a team envelope: %v", err)
	}
	if got.Kind != KindTeam || got.Channel != team.ID() || !got.Kind.ToChannel() {
		t.Fatalf("decoded %+v", got)
	}
	if bytes.Contains(e.Raw(), []byte("well")) {
		t.Fatal("team text is on the wire in clear")
	}
	// Any member (same secret) opens it; bob joined with the secret.
	member, _ := NewTeam(append([]byte(nil), secret...))
	pt, err := member.Open(got)
	if err != nil || string(pt) != "meet at the well" {
		t.Fatalf("member opens %q, %v", pt, err)
	}
	// Another team's key does not.
	other, _ := NewTeam(bytes.Repeat([]byte{8}, TeamSecretSize))
	if _, err := other.Open(got); !errors.Is(err, ErrNotForMe) {
		t.Fatalf("other team: %v, want ErrNotForMe", err)
	}
	// A member who re-signs another's ciphertext under their own name is
	// caught: the author is in the associated data.
	forged, err := bob.Sign(Draft{Kind: KindTeam, Priority: PriorityNormal, Created: e.Created, Channel: e.Channel, Body: e.Body})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := team.Open(forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("re-signed ciphertext: %v, want ErrDecrypt", err)
	}
	// Alerts to a team are allowed; other priorities are not.
	if _, err := alice.NewTeamText(rand.Reader, team, "sos", PriorityAlert, fixedNow, 0); err != nil {
		t.Fatalf("team alert: %v", err)
	}
	if _, err := alice.NewTeamText(rand.Reader, team, "x", PriorityHigh, fixedNow, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("team at high priority: %v, want ErrMalformed", err)
	}
}

func TestTeamRefusals(t *testing.T) {
	alice := newID(t, 1)
	if _, err := NewTeam(make([]byte, 16)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short secret: %v", err)
	}
	team, _ := NewTeam(make([]byte, TeamSecretSize))
	if _, err := alice.NewTeamText(rand.Reader, team, "", PriorityNormal, fixedNow, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty text: %v", err)
	}
	if _, err := alice.NewTeamText(rand.Reader, team, strings.Repeat("a", MaxBody), PriorityNormal, fixedNow, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long text: %v", err)
	}
	// A body too short to hold nonce, tag and one byte is refused by Decode.
	if _, err := alice.Sign(Draft{Kind: KindTeam, Priority: PriorityNormal, Created: fixedNow.UnixMilli(), Channel: team.ID(), Body: make([]byte, teamOverhead)}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short team body: %v", err)
	}
}

func TestProfile(t *testing.T) {
	alice := newID(t, 1)
	e, err := alice.NewProfile(Profile{Name: "Amal", Status: "at the school"}, fixedNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(e.Raw(), fixedNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Channel(ProfilesChannel)
	if got.Kind != KindProfile || got.Channel != c || got.Priority != PriorityLow {
		t.Fatalf("decoded %+v", got)
	}
	p, err := ParseProfile(got)
	if err != nil || p != (Profile{Name: "Amal", Status: "at the school"}) {
		t.Fatalf("parsed %+v, %v", p, err)
	}
	// Unknown fields are ignored: later versions add fields.
	later, err := alice.Sign(Draft{Kind: KindProfile, Created: fixedNow.UnixMilli(), Channel: c, Body: []byte(`{"name":"Amal","avatar":"x"}`)})
	if err != nil {
		t.Fatalf("profile with an unknown field: %v", err)
	}
	if p, _ := ParseProfile(later); p.Name != "Amal" {
		t.Fatalf("parsed %+v", p)
	}
	// The latest wins; equal times go to the greater id.
	newer, _ := alice.NewProfile(Profile{Name: "Amal B."}, fixedNow.Add(time.Second), 0)
	if !Newer(newer, e) || Newer(e, newer) {
		t.Fatal("later profile does not win")
	}
	if Newer(e, later) == Newer(later, e) {
		t.Fatal("equal times: exactly one must win")
	}
	for _, body := range []string{
		``, `[]`, `{}`, `{"name":""}`, `{"name":" Amal"}`, `{"name":"a\u0007b"}`,
		`{"name":"` + strings.Repeat("n", MaxProfileName+1) + `"}`,
		`{"name":"Amal","status":"` + strings.Repeat("s", MaxProfileStatus+1) + `"}`,
		`{"name":"Amal","status":"line\nbreak"}`, `{"name":1}`, "{\"name\":\"\xff\"}",
	} {
		if _, err := alice.Sign(Draft{Kind: KindProfile, Created: fixedNow.UnixMilli(), Channel: c, Body: []byte(body)}); !errors.Is(err, ErrMalformed) {
			t.Errorf("profile body %q: %v, want ErrMalformed", body, err)
		}
	}
}
