package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"lifeline/message"
)

var chans = 16

// presign signs n distinct text messages over 64 authors and 16 channels,
// on every core.
func presign(tb testing.TB, n int, base time.Time) []*message.Envelope {
	es := make([]*message.Envelope, n)
	var authors [64]*message.Identity
	for i := range authors {
		authors[i] = identity(byte(i + 1))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				e, err := authors[i%64].NewText(fmt.Sprint("channel-", i%chans),
					fmt.Sprintf("message %d: a hundred characters of ordinary text, about what a person types on a phone..", i),
					base.Add(time.Duration(i)*time.Millisecond), 0)
				if err != nil {
					panic(err)
				}
				es[i] = e
			}
		})
	}
	wg.Wait()
	return es
}

// BenchmarkPutDurable64 is durable ingest (fsync on) from 64 concurrent
// writers, verification included.
func BenchmarkPutDurable64(b *testing.B) {
	benchIngest(b, func(s *Store, e *message.Envelope) error {
		_, err := s.Put(context.Background(), e.Raw())
		return err
	})
}

// BenchmarkPutDurable64Preverified is BenchmarkPutDurable64 without the
// signature check (the envelopes are decoded, not verified): the storage
// path alone, to tell its cost from verification's.
func BenchmarkPutDurable64Preverified(b *testing.B) {
	benchIngest(b, func(s *Store, e *message.Envelope) error {
		d, err := message.Decode(e.Raw())
		if err == nil {
			_, err = s.putVerified(context.Background(), d, false, time.Now())
		}
		return err
	})
}

// benchIngest stores b.N presigned messages through put from 64 writers
// and reports messages a second, CPU per message and CPU use: to tell a
// disk-bound run from a CPU-bound one (verification alone is about 53 µs
// of CPU a message).
func benchIngest(b *testing.B, put func(*Store, *message.Envelope) error) {
	es := presign(b, b.N, time.Now())
	s := openTemp(b, Options{})
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := put(s, es[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
	if got := s.Stats().Messages; got != int64(b.N) {
		b.Fatalf("stored %d of %d", got, b.N)
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchN(tb testing.TB) int {
	n := 100_000
	if v := os.Getenv("LIFELINE_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			tb.Fatalf("LIFELINE_BENCH_N=%q", v)
		}
	}
	return n
}

// benchStore returns the path of a store holding n messages, building it
// once and caching it under os.TempDir(): signing a million messages takes
// a while.
func benchStore(tb testing.TB, n int) string {
	// The schema version is in the name: a file of another version is refused.
	path := filepath.Join(os.TempDir(), fmt.Sprintf("lifeline-bench-store-v%d-%d.db", schemaVersion, n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".building"
	os.Remove(tmp)
	os.Remove(keyPath(tmp))
	start := time.Now()
	s, err := Open(tmp, Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	const chunk = 50_000
	base := time.Now().Add(-time.Duration(n) * time.Millisecond)
	for off := 0; off < n; off += chunk {
		es := presign(tb, min(chunk, n-off), base.Add(time.Duration(off)*time.Millisecond))
		// The envelopes were just signed here: skip Verify and the queue,
		// and commit in large batches.
		for i := 0; i < len(es); i += maxBatch {
			batch := make([]*op, 0, maxBatch)
			for _, e := range es[i:min(i+maxBatch, len(es))] {
				batch = append(batch, &op{kind: opPut, env: e, received: e.Created, done: make(chan opResult, 1)})
			}
			s.commit(batch)
			for _, o := range batch {
				if r := <-o.done; r.err != nil {
					tb.Fatal(r.err)
				}
			}
		}
	}
	if got := s.Stats().Messages; got != int64(n) {
		tb.Fatalf("built %d of %d", got, n)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	// The key first: a store found without its key is refused.
	if err := os.Rename(keyPath(tmp), keyPath(path)); err != nil {
		tb.Fatal(err)
	}
	os.Remove(walPath(tmp))
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	info, _ := os.Stat(path)
	tb.Logf("built %s: %d messages, %d MiB, in %s", path, n, info.Size()>>20, time.Since(start).Round(time.Second))
	return path
}

// BenchmarkListNewest100 lists the newest 100 messages of a store of
// LIFELINE_BENCH_N messages, overall and on one of 16 channels.
func BenchmarkListNewest100(b *testing.B) {
	path := benchStore(b, benchN(b))
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ch, _ := message.Channel("channel-3")
	for _, c := range []struct {
		name string
		q    Query
	}{
		{"all", Query{Limit: 100}},
		{"channel", Query{Channel: &ch, Limit: 100}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				recs, err := s.List(c.q)
				if err != nil || len(recs) != 100 {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}

// BenchmarkIdleRSS reports the resident memory of a process that opened the
// LIFELINE_BENCH_N store and listed once, as an idle node would be. It
// starts one child whatever b.N is (so -benchtime=2000x stays cheap), so
// ns/op would mean nothing and is suppressed.
func BenchmarkIdleRSS(b *testing.B) {
	path := benchStore(b, benchN(b))
	{
		cmd := child(nil, "TestHelperRSS", "rss", path)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		var kb int64
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			}
		}
		if kb == 0 {
			b.Fatalf("no VmRSS in %q", out)
		}
		b.ReportMetric(float64(kb)/1024, "MiB-RSS")
	}
	b.ReportMetric(0, "ns/op") // one child whatever b.N is: ns/op means nothing
}

func TestHelperRSS(t *testing.T) {
	if os.Getenv(helperEnv) != "rss" {
		t.Skip("helper process")
	}
	s, err := Open(os.Getenv("LIFELINE_STORE_PATH"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.List(Query{}); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	runtime.GC()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			fmt.Println(line)
		}
	}
	fmt.Printf("messages: %d\n", st.Messages)
}

// BenchmarkSeal is what sealing at rest costs a record: sealing its
// envelope when stored, opening it when read.
func BenchmarkSeal(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	e := text(b, identity(1), "general", strings.Repeat("water at the school ", 10), time.Now())
	b.SetBytes(int64(len(e.Raw())))
	for b.Loop() {
		v := encodeRecord(s.seal, e, 1, 0, 1)
		if _, _, err := decodeRecord(s.seal, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnsealed is BenchmarkSeal's anchor: the same record in clear,
// as stores wrote it before sealing.
func BenchmarkUnsealed(b *testing.B) {
	s := openTemp(b, Options{NoSync: true})
	e := text(b, identity(1), "general", strings.Repeat("water at the school ", 10), time.Now())
	b.SetBytes(int64(len(e.Raw())))
	v := append([]byte{hdrVersion, 0}, make([]byte, 16)...)
	v = append(v, e.Raw()...)
	for b.Loop() {
		if _, _, err := decodeRecord(s.seal, v); err != nil {
			b.Fatal(err)
		}
	}
}
