package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/api"
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
	// d restarted 20 times in one outage: the outage lists its first
	// reports and the one that ended it, and counts the others.
	d, _ := message.NewIdentity(rand.Reader)
	for i := range 20 {
		recs = append(recs, rec(d, message.Report{Event: message.EventUplinkLost, At: at(20*time.Hour + time.Duration(i)*time.Minute)}))
	}
	dEnd := rec(d, message.Report{Event: message.EventUplinkRegained, At: at(22 * time.Hour), Since: at(20 * time.Hour), Hub: strings.Repeat("x", 129)})
	// e's report claims a time encoding/json cannot write (year 33658):
	// skipped, or no answer could be written at all.
	e, _ := message.NewIdentity(rand.Reader)
	future, err := e.NewReport(message.Report{Event: message.EventUplinkLost, At: 1e15}, t0)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, dEnd, &store.Record{Envelope: future})

	got := api.Outages(recs)
	if _, err := json.Marshal(got); err != nil {
		t.Fatalf("the outages do not encode: %v", err)
	}
	if len(got) != 6 {
		t.Fatalf("%d outages: %+v", len(got), got)
	}
	if c1, c2 := got[3], got[4]; c1.Node != c.Public().String() || !c1.EndLatest || !c1.End.Equal(t0.Add(13*time.Hour)) ||
		c2.EndLatest || !c2.Start.Equal(t0.Add(14*time.Hour)) || !c2.End.Equal(t0.Add(15*time.Hour)) {
		t.Errorf("c's outages: %+v / %+v", c1, c2)
	}
	if o := got[5]; o.Node != d.Public().String() || len(o.Reports) != 16 || o.ReportsOmitted != 5 ||
		o.Reports[15] != dEnd.Envelope.ID().String() || o.Hub != "" || o.Duration != 2*3600 {
		t.Errorf("d's outage: %d reports, %d omitted, last %s, hub %q: %+v", len(o.Reports), o.ReportsOmitted, o.Reports[len(o.Reports)-1], o.Hub, o)
	}
	got = got[:3]
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

// maxOutageJSON is the documented bound of one outage in JSON (docs/API.md).
const maxOutageJSON = 2560

// heapStore is a store that counts the records each List and ListAfter
// returns and, when sampling, takes the live heap after each: the moment
// a request holds a fresh page of records on top of what it kept.
type heapStore struct {
	*store.Store
	mu       sync.Mutex
	sampling bool
	records  int // returned by List since the last reset
	maxPage  int
	peak     uint64 // live heap, bytes
}

func (s *heapStore) List(q store.Query) ([]*store.Record, error) {
	recs, err := s.Store.List(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records += len(recs)
	s.maxPage = max(s.maxPage, len(recs))
	if s.sampling {
		s.peak = max(s.peak, liveHeap())
	}
	return recs, err
}

func (s *heapStore) ListAfter(q store.Query) (store.Page, error) {
	p, err := s.Store.ListAfter(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records += len(p.Records)
	s.maxPage = max(s.maxPage, len(p.Records))
	if s.sampling {
		s.peak = max(s.peak, liveHeap())
	}
	return p, err
}

func (s *heapStore) reset(sampling bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sampling, s.records, s.maxPage, s.peak = sampling, 0, 0, 0
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// storeReports signs and stores the reports n identities make, in
// parallel: signing dominates.
func storeReports(t *testing.T, st *store.Store, n int, sign func(i int) *message.Envelope) {
	t.Helper()
	work := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if _, err := st.Put(context.Background(), sign(i).Raw()); err != nil {
					errs <- fmt.Errorf("report %d: %w", i, err)
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case work <- i:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// outagePages asks for every page of outages with the given limit over
// HTTP, checking each answer's size, and returns them in order.
func outagePages(t *testing.T, n *node, hs *heapStore, limit int, each func(page int, body []byte)) []api.Outage {
	t.Helper()
	var all []api.Outage
	after := ""
	for page := 0; ; page++ {
		if page > 10_000 {
			t.Fatal("paging does not end")
		}
		u := fmt.Sprintf("%s/api/v1/outages?limit=%d", n.http.URL, limit)
		if after != "" {
			u += "&after=" + after
		}
		resp, err := n.http.Client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: %d %s %v", page, resp.StatusCode, body, err)
		}
		if len(body) > limit*maxOutageJSON+2 {
			t.Fatalf("page %d is %d bytes, over %d outages of %d", page, len(body), limit, maxOutageJSON)
		}
		if each != nil {
			each(page, body)
		}
		var list []api.Outage
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list) > limit {
			t.Fatalf("page %d holds %d outages, limit %d", page, len(list), limit)
		}
		for _, o := range list {
			if b, _ := json.Marshal(o); len(b) > maxOutageJSON {
				t.Fatalf("an outage is %d bytes of JSON: %s", len(b), b)
			}
		}
		all = append(all, list...)
		if resp.Header.Get(api.HeaderPartial) != "false" {
			t.Fatalf("page %d: %s is %q", page, api.HeaderPartial, resp.Header.Get(api.HeaderPartial))
		}
		if resp.Header.Get(api.HeaderMore) != "true" {
			return all
		}
		next := resp.Header.Get(api.HeaderNextAfter)
		if next == "" || next == after {
			t.Fatalf("page %d: more, after %q, next %q", page, after, next)
		}
		after = next
	}
}

// outageKey names an outage: no two of one node share their first report.
func outageKey(o api.Outage) string { return o.Node + "/" + o.Reports[0] }

// sameOutages checks that got lists want's outages, each exactly once.
func sameOutages(t *testing.T, got, want []api.Outage) {
	t.Helper()
	seen := map[string]int{}
	for _, o := range got {
		seen[outageKey(o)]++
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("outage %s listed %d times", k, c)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d outages listed, %d recorded", len(got), len(want))
	}
	for _, o := range want {
		if seen[outageKey(o)] != 1 {
			t.Fatalf("outage %+v not listed", o)
		}
	}
}

// everything is what the reports record, all of them read at once: the
// reference the pages must add up to.
func everything(t *testing.T, st *store.Store) []api.Outage {
	t.Helper()
	c, err := message.Channel(message.ReportsChannel)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*store.Record
	q := store.Query{Channel: &c, Limit: store.MaxLimit}
	for {
		p, err := st.ListAfter(q)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, p.Records...)
		if !p.More {
			return api.Outages(recs)
		}
		q.After = p.Next
	}
}

// TestOutagesPaged: strangers flood a node with reports from fresh keys,
// each with a hub name of 3,900 bytes (the attack of issue 11, where one
// answer was 185 MB). Every answer stays within limit outages of bounded
// size, the live heap of a request stays bounded whatever the reports
// stored, and the pages list every outage exactly once.
func TestOutagesPaged(t *testing.T) {
	const strangers = 4000
	n, hs := heapNode(t)
	now := time.Now()
	hub := strings.Repeat("h", 3900)
	storeReports(t, hs.Store, strangers, func(i int) *message.Envelope {
		id, err := message.NewIdentity(rand.Reader)
		if err != nil {
			t.Error(err)
		}
		r := message.Report{Event: message.EventUplinkRegained, At: now.UnixMilli() - int64(i), Since: now.Add(-time.Hour).UnixMilli(), Hub: hub}
		if i%10 == 0 {
			r.Since = 0 // a first uplink: a node with no outage
		}
		e, err := id.NewReport(r, now)
		if err != nil {
			t.Error(err)
		}
		return e
	})
	// A node of the area with outages of its own, among them.
	area, _ := message.NewIdentity(rand.Reader)
	storeReports(t, hs.Store, 40, func(i int) *message.Envelope {
		at := now.Add(time.Duration(i-40) * time.Minute)
		r := message.Report{Event: message.EventUplinkLost, At: at.UnixMilli()}
		if i%2 == 1 {
			r = message.Report{Event: message.EventUplinkRegained, At: at.UnixMilli(), Since: at.Add(-time.Minute).UnixMilli(), Hub: "12D3KooW"}
		}
		e, err := area.NewReport(r, at)
		if err != nil {
			t.Error(err)
		}
		return e
	})
	want := everything(t, hs.Store)
	if len(want) != strangers*9/10+20 {
		t.Fatalf("the reference lists %d outages", len(want))
	}

	// The first page, watched: the live heap after each page of records
	// the request read, against the heap before it.
	runtime.GC()
	base := liveHeap()
	hs.reset(true)
	first, err := n.client.OutagesPage(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	hs.mu.Lock()
	growth, read, maxPage := int64(hs.peak)-int64(base), hs.records, hs.maxPage
	hs.mu.Unlock()
	hs.reset(false)
	// A page of records (store.MaxLimit of 4 KB) and the outages kept:
	// a few MB. Holding every report, as before, took over 20 MB here.
	const heapBound = 12 << 20
	t.Logf("first page: %d outages, %d records read (pages of %d), live heap +%.1f MB", len(first.Outages), read, maxPage, float64(growth)/(1<<20))
	if growth > heapBound {
		t.Errorf("the live heap grew by %d bytes during one request, over %d", growth, heapBound)
	}
	if read > strangers+40 || maxPage > store.MaxLimit {
		t.Errorf("one request read %d records, %d at once; %d are stored", read, maxPage, strangers+40)
	}
	if len(first.Outages) != api.DefaultLimit || !first.More || first.Partial {
		t.Errorf("first page: %d outages, more %v, partial %v", len(first.Outages), first.More, first.Partial)
	}

	sizes := map[int]int{}
	got := outagePages(t, n, hs, api.MaxLimit, func(page int, body []byte) { sizes[page] = len(body) })
	t.Logf("pages of %d: %v bytes", api.MaxLimit, sizes)
	sameOutages(t, got, want)
}

// TestOutagesPagedWithinNode: pages smaller than one node's outages go on
// inside the node, and a cursor the node did not write is refused.
func TestOutagesPagedWithinNode(t *testing.T) {
	n, hs := heapNode(t)
	now := time.Now()
	for range 3 {
		node, _ := message.NewIdentity(rand.Reader)
		storeReports(t, hs.Store, 23, func(i int) *message.Envelope {
			// Two outages start in the same millisecond (a lost report, and
			// a return whose lost report is missing): the cursor tells them
			// apart by their first report.
			at := now.Add(time.Duration(i-30) * time.Minute)
			r := message.Report{Event: message.EventUplinkLost, At: at.UnixMilli()}
			if i%2 == 1 {
				r = message.Report{Event: message.EventUplinkRegained, At: at.UnixMilli(), Since: at.Add(-30 * time.Second).UnixMilli()}
			}
			if i == 22 {
				r = message.Report{Event: message.EventUplinkRegained, At: now.Add(-time.Minute).UnixMilli(), Since: now.Add(-30 * time.Minute).UnixMilli()}
			}
			e, err := node.NewReport(r, at)
			if err != nil {
				t.Error(err)
			}
			return e
		})
	}
	want := everything(t, hs.Store)
	for _, limit := range []int{1, 3, 7} {
		sameOutages(t, outagePages(t, n, hs, limit, nil), want)
	}
	// The client pages through the same, oldest start first.
	all, err := n.client.Outages(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sameOutages(t, all, want)
	for i := 1; i < len(all); i++ {
		if all[i].Start.Before(all[i-1].Start) {
			t.Fatalf("client's outages out of order at %d: %v after %v", i, all[i].Start, all[i-1].Start)
		}
	}
	for _, q := range []string{"after=zz", "after=" + strings.Repeat("a", 64) + ".1", "after=" + strings.Repeat("a", 64) + ".-1." + strings.Repeat("b", 64),
		"limit=0", "limit=1001", "limit=5&limit=6", "page=2", "after=x;y"} {
		resp, err := n.http.Client().Get(n.http.URL + "/api/v1/outages?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}
}

// heapNode is a node whose store has no quota (many reports) and counts
// what a request reads.
func heapNode(t *testing.T) (*node, *heapStore) {
	t.Helper()
	hs := &heapStore{}
	n := newNode(t, func(o *api.Options) {
		st, err := store.Open(filepath.Join(t.TempDir(), "reports.db"), store.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		hs.Store = st
		o.Store = hs
	})
	return n, hs
}
