package api

import (
	"crypto/rand"
	"testing"
	"time"

	"lifeline/message"
	"lifeline/store"
)

func TestOutagesFromReports(t *testing.T) {
	a, _ := message.NewIdentity(rand.Reader)
	b, _ := message.NewIdentity(rand.Reader)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	rec := func(id *message.Identity, r message.Report) *store.Record {
		e, err := id.NewReport(r, time.UnixMilli(r.At))
		if err != nil {
			t.Fatal(err)
		}
		return &store.Record{Envelope: e}
	}
	text, _ := a.NewText(message.ReportsChannel, "not a report", t0, 0)
	recs := []*store.Record{
		// a: lost, lost again after a restart, regained; then lost for good.
		rec(a, message.Report{Event: message.EventUplinkRegained, At: at(0), Hub: "h"}), // first uplink: no outage
		rec(a, message.Report{Event: message.EventUplinkLost, At: at(time.Hour), LastUp: at(time.Hour - time.Second)}),
		rec(a, message.Report{Event: message.EventUplinkLost, At: at(2 * time.Hour)}),
		rec(a, message.Report{Event: message.EventUplinkRegained, At: at(5 * time.Hour), Since: at(2 * time.Hour), Hub: "h"}),
		rec(a, message.Report{Event: message.EventUplinkLost, At: at(6 * time.Hour), LastUp: at(6*time.Hour - time.Second)}),
		// b: only the gain arrived; it says when the loss was detected.
		rec(b, message.Report{Event: message.EventUplinkRegained, At: at(3 * time.Hour), Since: at(90 * time.Minute), Hub: "h2"}),
		{Envelope: text},
	}
	// c: the return after its first loss was never reported, but its
	// second loss says the uplink worked in between.
	c, _ := message.NewIdentity(rand.Reader)
	recs = append(recs,
		rec(c, message.Report{Event: message.EventUplinkLost, At: at(10 * time.Hour)}),
		rec(c, message.Report{Event: message.EventUplinkLost, At: at(14 * time.Hour), LastUp: at(13 * time.Hour)}),
		rec(c, message.Report{Event: message.EventUplinkRegained, At: at(15 * time.Hour), Since: at(14 * time.Hour), LastUp: at(13 * time.Hour)}),
	)
	got := Outages(recs)
	if len(got) != 5 {
		t.Fatalf("%d outages: %+v", len(got), got)
	}
	if c1, c2 := got[3], got[4]; c1.Node != c.Public().String() || !c1.EndLatest || !c1.End.Equal(t0.Add(13*time.Hour)) ||
		c2.EndLatest || !c2.Start.Equal(t0.Add(14*time.Hour)) || !c2.End.Equal(t0.Add(15*time.Hour)) {
		t.Errorf("c's outages: %+v / %+v", c1, c2)
	}
	got = got[:3]
	if len(got) != 3 {
		t.Fatalf("%d outages: %+v", len(got), got)
	}
	first, second, third := got[0], got[1], got[2]
	if first.Node != a.Public().String() || !first.Start.Equal(t0.Add(time.Hour)) || first.End == nil ||
		!first.End.Equal(t0.Add(5*time.Hour)) || first.Duration != 4*3600 || first.Ongoing || len(first.Reports) != 3 ||
		first.LastUp == nil || !first.LastUp.Equal(t0.Add(time.Hour-time.Second)) {
		t.Errorf("a's first outage: %+v", first)
	}
	if second.Node != b.Public().String() || !second.Start.Equal(t0.Add(90*time.Minute)) || second.Hub != "h2" || second.Duration != 5400 {
		t.Errorf("b's outage: %+v", second)
	}
	if third.Node != a.Public().String() || !third.Ongoing || third.End != nil || !third.Start.Equal(t0.Add(6*time.Hour)) {
		t.Errorf("a's ongoing outage: %+v", third)
	}
}
