package reconcile

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
)

// sets makes two sets sharing `common` items, with onlyA and onlyB items
// each side alone holds. Timestamps are drawn from a small range so equal
// timestamps (and so id-prefix bounds) are common.
func sets(r *mrand.Rand, common, onlyA, onlyB int, tsRange uint64) (a, b []Item, wantHave, wantNeed map[[IDSize]byte]bool) {
	item := func() Item {
		var it Item
		it.Timestamp = 1_700_000_000_000 + r.Uint64N(tsRange)
		for i := range it.ID {
			it.ID[i] = byte(r.Uint32())
		}
		return it
	}
	wantHave, wantNeed = map[[IDSize]byte]bool{}, map[[IDSize]byte]bool{}
	for range common {
		it := item()
		a, b = append(a, it), append(b, it)
	}
	for range onlyA {
		it := item()
		a = append(a, it)
		wantHave[it.ID] = true
	}
	for range onlyB {
		it := item()
		b = append(b, it)
		wantNeed[it.ID] = true
	}
	return a, b, wantHave, wantNeed
}

type stats struct {
	rounds, up, down int
	work             int64 // the responder's (Engine.Work)
	maxRanges        int   // the most ranges in one message either way
}

// run reconciles a (initiator) with b (responder) through byte messages.
func run(t testing.TB, a, b Storage, limit int) (have, need [][IDSize]byte, st stats) {
	t.Helper()
	return runRanges(t, a, b, limit, MaxRanges)
}

// runRanges is run with both engines held to maxRanges ranges a message.
func runRanges(t testing.TB, a, b Storage, limit, maxRanges int) (have, need [][IDSize]byte, st stats) {
	t.Helper()
	ia, err := New(a, limit)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := New(b, limit)
	ia.maxRanges, rb.maxRanges = maxRanges, maxRanges
	msg, err := ia.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	for msg != nil {
		if st.rounds++; st.rounds > 100 {
			t.Fatal("no convergence after 100 rounds")
		}
		if limit != 0 && len(msg) > limit {
			t.Fatalf("initiator message of %d bytes over the limit %d", len(msg), limit)
		}
		st.up += len(msg)
		st.maxRanges = max(st.maxRanges, countRanges(t, msg))
		reply, err := rb.Respond(msg)
		if err != nil {
			t.Fatalf("respond: %v", err)
		}
		if limit != 0 && len(reply) > limit {
			t.Fatalf("responder message of %d bytes over the limit %d", len(reply), limit)
		}
		st.down += len(reply)
		st.maxRanges = max(st.maxRanges, countRanges(t, reply))
		if limit != 0 && st.maxRanges > maxRanges {
			t.Fatalf("a message of %d ranges, over the limit %d", st.maxRanges, maxRanges)
		}
		if msg, have, need, err = ia.Reconcile(reply, have, need); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
	}
	st.work = rb.Work()
	return have, need, st
}

// countRanges counts the ranges of a well-formed message.
func countRanges(t testing.TB, msg []byte) int {
	t.Helper()
	r := reader{b: msg[1:]}
	n := 0
	for ; !r.empty(); n++ {
		r.varint()
		pl, _ := r.varint()
		r.bytes(int(pl))
		switch mode, _ := r.varint(); mode {
		case modeFingerprint:
			r.bytes(FingerprintSize)
		case modeIDList:
			k, _ := r.varint()
			r.bytes(int(k) * IDSize)
		}
	}
	return n
}

func checkDiff(t *testing.T, got [][IDSize]byte, want map[[IDSize]byte]bool, what string) {
	t.Helper()
	seen := map[[IDSize]byte]bool{}
	for _, id := range got {
		if !want[id] {
			t.Fatalf("%s: %x is not in the true difference", what, id[:4])
		}
		if seen[id] {
			t.Fatalf("%s: %x reported twice", what, id[:4])
		}
		seen[id] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: found %d of %d", what, len(seen), len(want))
	}
}

// TestAgainstNaiveDifference checks the engine against the plain set
// difference over many random cases, with and without frame limits.
func TestAgainstNaiveDifference(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	shapes := []struct{ common, onlyA, onlyB int }{
		{0, 0, 0}, {0, 5, 0}, {0, 0, 5}, {1, 0, 0}, {31, 1, 0}, {32, 0, 1}, {100, 3, 4},
		{1000, 0, 0}, {1000, 1, 0}, {1000, 50, 50}, {5000, 500, 0}, {0, 3000, 3000}, {20000, 7, 9},
	}
	for _, sh := range shapes {
		for _, limit := range []int{0, MinFrameSizeLimit, 60_000} {
			for _, tsRange := range []uint64{1, 50, 1 << 40} {
				name := fmt.Sprintf("c%d_a%d_b%d_limit%d_ts%d", sh.common, sh.onlyA, sh.onlyB, limit, tsRange)
				t.Run(name, func(t *testing.T) {
					a, b, wantHave, wantNeed := sets(r, sh.common, sh.onlyA, sh.onlyB, tsRange)
					have, need, _ := run(t, NewVector(a), NewVector(b), limit)
					checkDiff(t, have, wantHave, "have")
					checkDiff(t, need, wantNeed, "need")
				})
			}
		}
	}
}

// TestQuick runs many small random cases, where edge cases in bucket
// splitting and bounds are densest.
func TestQuick(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := range n {
		a, b, wantHave, wantNeed := sets(r, r.IntN(200), r.IntN(40), r.IntN(40), 1+r.Uint64N(100))
		have, need, _ := run(t, NewVector(a), NewVector(b), 0)
		if len(have) != len(wantHave) || len(need) != len(wantNeed) {
			t.Fatalf("case %d: have %d/%d need %d/%d", i, len(have), len(wantHave), len(need), len(wantNeed))
		}
		checkDiff(t, have, wantHave, "have")
		checkDiff(t, need, wantNeed, "need")
	}
}

func TestVarint(t *testing.T) {
	for _, n := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		b := appendVarint(nil, n)
		r := reader{b: b}
		got, err := r.varint()
		if err != nil || got != n || !r.empty() {
			t.Fatalf("varint %d: % x -> %d, %v", n, b, got, err)
		}
	}
	// Most significant group first, as the reference encodes.
	if got := appendVarint(nil, 300); !slices.Equal(got, []byte{0x82, 0x2c}) {
		t.Fatalf("300 encodes as % x", got)
	}
	for _, bad := range [][]byte{{0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, {0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}} {
		r := reader{b: bad}
		if _, err := r.varint(); !errors.Is(err, ErrMalformed) {
			t.Errorf("varint % x: %v", bad, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	v := NewVector(nil)
	cases := map[string][]byte{
		"empty":            {},
		"bad version":      {0x10},
		"truncated bound":  {Version, 0x81},
		"long prefix":      {Version, 0x00, 33},
		"unknown mode":     {Version, 0x00, 0x00, 0x07},
		"short fp":         {Version, 0x00, 0x00, modeFingerprint, 1, 2, 3},
		"id list too long": {Version, 0x00, 0x00, modeIDList, 0x05, 1, 2},
		"backwards":        {Version, 0x0a, 0x01, 0x05, modeSkip, 0x01, 0x01, 0x03, modeSkip},
		// Empty ranges: a bound equal to the one before (here the lowest).
		"empty first range": {Version, 0x01, 0x00, modeSkip},
		"repeated bound":    {Version, 0x05, 0x00, modeSkip, 0x01, 0x00, modeFingerprint, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"same prefix":       {Version, 0x05, 0x01, 0x07, modeSkip, 0x01, 0x02, 0x07, 0x00, modeIDList, 0x00},
	}
	for name, msg := range cases {
		e, _ := New(v, 0)
		if _, err := e.Respond(msg); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another 0x6X version: the responder answers with its own version.
	e, _ := New(v, 0)
	if out, err := e.Respond([]byte{0x62, 0xff}); err != nil || !slices.Equal(out, []byte{Version}) {
		t.Errorf("version negotiation: % x %v", out, err)
	}
	i, _ := New(v, 0)
	i.Initiate()
	if _, _, _, err := i.Reconcile([]byte{0x62}, nil, nil); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("initiator on a newer peer: %v", err)
	}
	if _, err := New(v, 100); err == nil {
		t.Error("frame limit under the minimum accepted")
	}
}

// growing is a live Storage: every walk is followed by a new item, as when
// messages arrive during a session.
type growing struct {
	v   *Vector
	r   *mrand.Rand
	max uint64
}

func (g *growing) Iterate(from, to Item, fn func(Item) bool) error {
	err := g.v.Iterate(from, to, fn)
	var it Item
	it.Timestamp = g.r.Uint64N(g.max)
	for i := range it.ID {
		it.ID[i] = byte(g.r.Uint32())
	}
	g.v = NewVector(append(slices.Clone(g.v.items), it))
	return err
}

// TestLiveStorage: items arriving between the engine's walks of one round
// never make it write a malformed message, in either role.
func TestLiveStorage(t *testing.T) {
	for seed := range uint64(20) {
		r := mrand.New(mrand.NewPCG(seed, 1))
		a, b, _, _ := sets(r, 40, 15, 15, 1000)
		live := &growing{v: NewVector(a), r: r, max: 1000}
		// run fails the test on any decoding error.
		run(t, live, NewVector(slices.Clone(b)), 0)
		run(t, NewVector(b), &growing{v: NewVector(a), r: r, max: 1000}, 0)
	}
}

// TestInitiateFrom: a session started from a timestamp finds exactly the
// differences among the items at or after it.
func TestInitiateFrom(t *testing.T) {
	for seed := range uint64(30) {
		r := mrand.New(mrand.NewPCG(seed, 2))
		a, b, _, _ := sets(r, 300, 40, 40, 1000)
		from := r.Uint64N(1000)
		wantHave, wantNeed := map[[IDSize]byte]bool{}, map[[IDSize]byte]bool{}
		inB := map[Item]bool{}
		for _, it := range b {
			inB[it] = true
		}
		inA := map[Item]bool{}
		for _, it := range a {
			inA[it] = true
			if it.Timestamp >= from && !inB[it] {
				wantHave[it.ID] = true
			}
		}
		for _, it := range b {
			if it.Timestamp >= from && !inA[it] {
				wantNeed[it.ID] = true
			}
		}
		ia, _ := New(NewVector(slices.Clone(a)), 0)
		rb, _ := New(NewVector(slices.Clone(b)), 0)
		msg, err := ia.InitiateFrom(from)
		if err != nil {
			t.Fatal(err)
		}
		var have, need [][IDSize]byte
		for rounds := 0; msg != nil; rounds++ {
			if rounds > 50 {
				t.Fatal("no convergence")
			}
			reply, err := rb.Respond(msg)
			if err != nil {
				t.Fatalf("respond: %v", err)
			}
			if msg, have, need, err = ia.Reconcile(reply, have, need); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		checkDiff(t, have, wantHave, "have")
		checkDiff(t, need, wantNeed, "need")
	}
}

// TestRangeLimit: engines held to a few ranges a message still find the
// exact difference, and never write more ranges than the limit (runRanges
// checks every message).
func TestRangeLimit(t *testing.T) {
	r := mrand.New(mrand.NewPCG(7, 8))
	for _, maxRanges := range []int{24, 40, 200} {
		for _, sh := range []struct{ common, onlyA, onlyB int }{{2000, 60, 60}, {5000, 0, 300}, {0, 700, 0}} {
			t.Run(fmt.Sprintf("ranges%d_c%d_a%d_b%d", maxRanges, sh.common, sh.onlyA, sh.onlyB), func(t *testing.T) {
				a, b, wantHave, wantNeed := sets(r, sh.common, sh.onlyA, sh.onlyB, 1<<30)
				have, need, st := runRanges(t, NewVector(a), NewVector(b), MinFrameSizeLimit, maxRanges)
				checkDiff(t, have, wantHave, "have")
				checkDiff(t, need, wantNeed, "need")
				if st.maxRanges > maxRanges {
					t.Fatalf("%d ranges in a message", st.maxRanges)
				}
			})
		}
	}
	// A message with more ranges than the limit is refused, in both roles;
	// without a frame limit (a trusted link) it is not.
	msg := []byte{Version}
	for range MaxRanges + 1 {
		msg = append(msg, 0x02, 0x00, modeSkip) // each bound 1 ms after the last
	}
	v := NewVector(nil)
	resp, _ := New(v, 500_000)
	if _, err := resp.Respond(msg); !errors.Is(err, ErrMalformed) {
		t.Errorf("responder took %d ranges: %v", MaxRanges+1, err)
	}
	init, _ := New(v, 500_000)
	init.Initiate()
	if _, _, _, err := init.Reconcile(msg, nil, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("initiator took %d ranges: %v", MaxRanges+1, err)
	}
	free, _ := New(v, 0)
	if _, err := free.Respond(msg); err != nil {
		t.Errorf("without a frame limit: %v", err)
	}
}

// TestWorkLimit: a session converges within a limit above what it takes,
// fails with ErrWorkLimit (a kind of ErrMalformed) under it, and keeps
// failing once it has.
func TestWorkLimit(t *testing.T) {
	r := mrand.New(mrand.NewPCG(9, 10))
	a, b, _, _ := sets(r, 20_000, 50, 50, 1<<30)
	va, vb := NewVector(a), NewVector(b)
	_, _, st := run(t, va, vb, MinFrameSizeLimit)
	// A session costs a few walks of the set per level of splitting.
	if n := int64(vb.Len()); st.work < n || st.work > 30*n {
		t.Fatalf("the responder did %d work for %d items", st.work, n)
	}
	for _, tc := range []struct {
		limit int64
		ok    bool
	}{{st.work, true}, {st.work / 2, false}, {1, false}} {
		ia, _ := New(va, MinFrameSizeLimit)
		rb, _ := New(vb, MinFrameSizeLimit)
		rb.SetWorkLimit(tc.limit)
		msg, _ := ia.Initiate()
		var err error
		for rounds := 0; msg != nil && err == nil; rounds++ {
			var reply []byte
			if reply, err = rb.Respond(msg); err == nil {
				msg, _, _, err = ia.Reconcile(reply, nil, nil)
			}
		}
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, ErrWorkLimit) || !errors.Is(err, ErrMalformed))) {
			t.Fatalf("limit %d of the %d needed: %v", tc.limit, st.work, err)
		}
		if err != nil {
			if _, err := rb.Respond([]byte{Version}); !errors.Is(err, ErrWorkLimit) {
				t.Fatalf("a message after the limit: %v", err)
			}
			if rb.Work() > tc.limit+seekWork {
				t.Fatalf("worked %d past the limit %d", rb.Work(), tc.limit)
			}
		}
	}
}

// TestRespondSpans: every id the initiator learns it lacks lies in a span
// the responder reported, and every span holds only the responder's items,
// with or without frame limits.
func TestRespondSpans(t *testing.T) {
	r := mrand.New(mrand.NewPCG(11, 12))
	for _, limit := range []int{0, MinFrameSizeLimit} {
		for i := range 20 {
			a, b, _, wantNeed := sets(r, r.IntN(3000), r.IntN(100), 1+r.IntN(300), 1+r.Uint64N(1<<20))
			va, vb := NewVector(a), NewVector(b)
			ia, _ := New(va, limit)
			rb, _ := New(vb, limit)
			msg, _ := ia.Initiate()
			var spans []Span
			var need [][IDSize]byte
			for msg != nil {
				reply, spans2, err := rb.RespondSpans(msg, spans)
				if err != nil {
					t.Fatal(err)
				}
				spans = spans2
				if msg, _, need, err = ia.Reconcile(reply, nil, need); err != nil {
					t.Fatal(err)
				}
			}
			offered := map[[IDSize]byte]bool{}
			for _, sp := range spans {
				if sp.From.Compare(sp.To) >= 0 {
					t.Fatalf("case %d: empty span %v", i, sp)
				}
				vb.Iterate(sp.From, sp.To, func(it Item) bool { offered[it.ID] = true; return true })
			}
			for _, id := range need {
				if !offered[id] {
					t.Fatalf("case %d limit %d: needed id %x in no span", i, limit, id[:4])
				}
			}
			if len(need) != len(wantNeed) {
				t.Fatalf("case %d: need %d of %d", i, len(need), len(wantNeed))
			}
			// The spans are not the whole set: matching ranges are not listed.
			if len(offered) == vb.Len() && len(wantNeed) < vb.Len()/4 && vb.Len() > 1000 {
				t.Fatalf("case %d: every item of %d offered for %d differences", i, vb.Len(), len(wantNeed))
			}
		}
	}
}
