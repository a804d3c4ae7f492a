package reconcile

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// ribltSets makes a shared part and what each side alone holds.
func ribltSets(r *rand.Rand, common, onlyRemote, onlyLocal int) (remote, local, wantRemote, wantLocal []uint64) {
	for range common {
		k := r.Uint64()
		remote, local = append(remote, k), append(local, k)
	}
	for range onlyRemote {
		k := r.Uint64()
		remote, wantRemote = append(remote, k), append(wantRemote, k)
	}
	for range onlyLocal {
		k := r.Uint64()
		local, wantLocal = append(local, k), append(wantLocal, k)
	}
	return
}

// symbolsNeeded decodes with more and more of the remote's symbols, as a
// receiver asking for more would, and returns how many it took.
func symbolsNeeded(t *testing.T, remote, local, wantRemote, wantLocal []uint64) int {
	t.Helper()
	enc := NewEncoder(remote)
	for n := 1; n <= 20*(len(wantRemote)+len(wantLocal))+40; n++ {
		d, ok := Decode(enc.Symbols(n), local)
		if !ok {
			continue
		}
		slices.Sort(d.Remote)
		slices.Sort(d.Local)
		slices.Sort(wantRemote)
		slices.Sort(wantLocal)
		if !slices.Equal(d.Remote, wantRemote) || !slices.Equal(d.Local, wantLocal) {
			t.Fatalf("decoded %d/%d, want %d/%d", len(d.Remote), len(d.Local), len(wantRemote), len(wantLocal))
		}
		return n
	}
	t.Fatalf("no decoding with %d symbols", 20*(len(wantRemote)+len(wantLocal))+40)
	return 0
}

func TestRIBLT(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	// Equal sets decode from one symbol: empty.
	remote, local, _, _ := ribltSets(r, 200, 0, 0)
	if n := symbolsNeeded(t, remote, local, nil, nil); n != 1 {
		t.Fatalf("equal sets took %d symbols", n)
	}
	for _, d := range []int{1, 2, 5, 20, 100} {
		total := 0
		const trials = 40
		for range trials {
			a, b := r.IntN(d+1), 0
			b = d - a
			remote, local, wr, wl := ribltSets(r, 500, a, b)
			total += symbolsNeeded(t, remote, local, wr, wl)
		}
		mean := float64(total) / trials
		t.Logf("difference %d: %.1f symbols on average (%.2f per item, %.0f bytes)", d, mean, mean/float64(d), mean*SymbolSize)
		// The paper's overhead tends to 1.35 per item; small differences
		// cost a few symbols more.
		if limit := 1.7*float64(d) + 3; mean > limit {
			t.Errorf("difference %d: %.1f symbols on average, more than %.1f", d, mean, limit)
		}
	}
}

// TestRIBLTOneMissingUnder100Bytes: the brief's target for repairing one
// missing message over the air, on the receiving side's worst case.
func TestRIBLTOneMissingUnder100Bytes(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	worst := 0
	for range 500 {
		remote, local, wr, wl := ribltSets(r, 100, 1, 0)
		worst = max(worst, symbolsNeeded(t, remote, local, wr, wl))
	}
	if worst*SymbolSize >= 100 {
		t.Fatalf("one missing message took up to %d symbols (%d bytes)", worst, worst*SymbolSize)
	}
	t.Logf("one missing message: at most %d symbols, %d bytes", worst, worst*SymbolSize)
}

func TestSymbolsWire(t *testing.T) {
	syms := NewEncoder([]uint64{1, 2, 3, 1 << 63}).Symbols(9)
	b := AppendSymbols(nil, syms)
	if len(b) != 9*SymbolSize {
		t.Fatalf("%d bytes", len(b))
	}
	got, ok := ParseSymbols(b)
	if !ok || len(got) != 9 {
		t.Fatal("parse")
	}
	for i := range got {
		if got[i].Count != syms[i].Count || got[i].Key != syms[i].Key || got[i].Check != uint64(uint32(syms[i].Check)) {
			t.Fatalf("symbol %d: %+v, want %+v", i, got[i], syms[i])
		}
	}
	if d, ok := Decode(got, []uint64{1, 2, 3}); !ok || len(d.Remote) != 1 || d.Remote[0] != 1<<63 {
		t.Fatalf("decoding parsed symbols: %+v %v", d, ok)
	}
	if _, ok := ParseSymbols(b[:20]); ok {
		t.Fatal("a partial symbol parsed")
	}
}

// FuzzDecodeSymbols: symbols from the air, whatever they hold, decode or
// fail in bounded time; what decodes is consistent with the local set.
func FuzzDecodeSymbols(f *testing.F) {
	f.Add(AppendSymbols(nil, NewEncoder([]uint64{1, 2, 3, 4}).Symbols(6)))
	f.Add(AppendSymbols(nil, NewEncoder([]uint64{7}).Symbols(1)))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0})
	local := []uint64{1, 2, 3}
	f.Fuzz(func(t *testing.T, b []byte) {
		syms, ok := ParseSymbols(b)
		if !ok || len(syms) > 64 {
			return
		}
		d, ok := Decode(syms, local)
		if !ok {
			return
		}
		// Decoded: the remote set is local minus d.Local plus d.Remote,
		// and its symbols are the ones received.
		set := map[uint64]int{}
		for _, k := range local {
			set[k]++
		}
		for _, k := range d.Local {
			set[k]--
		}
		for _, k := range d.Remote {
			set[k]++
		}
		var keys []uint64
		for k, n := range set {
			for range n {
				keys = append(keys, k)
			}
		}
		again := NewEncoder(keys).Symbols(len(syms))
		for i := range again {
			if again[i].Count != syms[i].Count || again[i].Key != syms[i].Key || uint32(again[i].Check) != uint32(syms[i].Check) {
				t.Fatalf("decoded sets do not re-encode to the symbols received (symbol %d)", i)
			}
		}
	})
}
