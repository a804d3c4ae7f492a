package message

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func TestReportRoundTrip(t *testing.T) {
	id, err := NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	want := Report{Event: EventUplinkRegained, At: now.UnixMilli(), Since: now.UnixMilli() - 60_000, Hub: "12D3KooW", Peers: 3, Radio: "none"}
	e, err := id.NewReport(want, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(e.Raw(), now.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Channel(ReportsChannel)
	if got.Kind != KindReport || got.Channel != c || got.Kind.String() != "report" {
		t.Fatalf("report envelope: kind %s channel %s", got.Kind, got.Channel)
	}
	r, err := ParseReport(got)
	if err != nil || r != want {
		t.Fatalf("parsed %+v, %v; want %+v", r, err, want)
	}
}

func TestReportBodyMustBeJSONObject(t *testing.T) {
	id, _ := NewIdentity(rand.Reader)
	c, _ := Channel(ReportsChannel)
	for _, body := range []string{"", "uplink lost", "[1,2]", `{"event":`} {
		_, err := id.Sign(Draft{Kind: KindReport, Priority: PriorityNormal, Created: 1, Channel: c, Body: []byte(body)})
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("body %q: %v, want ErrMalformed", body, err)
		}
	}
}
