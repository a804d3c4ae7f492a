package store

import (
	"bufio"
	"context"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/bundle"
)

// BenchmarkExport exports the whole LIFELINE_BENCH_N store (100,000
// messages unless told) as a bundle, as GET /api/v1/export does, to
// io.Discard. Besides time it reports the peak of the heap in use during
// the walk above what it was before (sampled every millisecond, garbage
// not yet collected included): what an export of the whole store costs a
// node's memory, against the megabytes of envelopes it writes.
func BenchmarkExport(b *testing.B) {
	n := benchN(b)
	s, err := Open(benchStore(b, n), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var written int64
	var peak atomic.Uint64
	runtime.GC()
	base := heapInUse()
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInUse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	for b.Loop() {
		cw := &countWriter{}
		bw := bufio.NewWriterSize(cw, 64<<10)
		out, err := bundle.NewWriter(bw, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		err = s.Export(context.Background(), ExportQuery{}, func(r *Record) error { return out.Add(r.Envelope.Raw()) })
		if err == nil {
			err = out.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil || out.Count() != int64(n) {
			b.Fatalf("exported %d of %d: %v", out.Count(), n, err)
		}
		written = cw.n
	}
	close(stop)
	<-sampled
	b.SetBytes(written)
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(written)/(1<<20), "MiB-bundle")
	b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "MiB-peak-heap")
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countWriter)(nil)

// heapInUse is the bytes of heap objects, live or garbage not yet swept.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
