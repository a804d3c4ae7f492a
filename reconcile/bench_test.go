package reconcile

import (
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// BenchmarkReconcile measures what a session costs on the wire: bytes each
// way and round trips, for sets of N items differing in d items (split
// between the sides), next to the naive baseline of sending every id and
// getting back the missing ones. The frame limit is the one the mesh uses.
//
//	go test -run '^$' -bench Reconcile -benchtime 1x ./reconcile/
func BenchmarkReconcile(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, d := range []int{1, 100, 10_000} {
			b.Run(fmt.Sprintf("N=%d/d=%d", n, d), func(b *testing.B) {
				r := mrand.New(mrand.NewPCG(uint64(n), uint64(d)))
				onlyA := d / 2
				a, bb, _, _ := sets(r, n-d+onlyA, onlyA, d-onlyA, 1<<40)
				va, vb := NewVector(a), NewVector(bb)
				b.ResetTimer()
				var st stats
				for b.Loop() {
					var have, need [][IDSize]byte
					have, need, st = run(b, va, vb, 500_000)
					if len(have)+len(need) != d {
						b.Fatalf("found %d differences, want %d", len(have)+len(need), d)
					}
				}
				b.ReportMetric(float64(st.up), "B-up")
				b.ReportMetric(float64(st.down), "B-down")
				b.ReportMetric(float64(st.rounds), "round-trips")
				b.ReportMetric(float64(st.work)/float64(n), "work/item")
				b.ReportMetric(float64(st.maxRanges), "max-ranges")
				b.ReportMetric(float64(32*va.Len()+32*(d-onlyA)), "naive-B")
			})
		}
	}
}
