package mesh

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/message"
	"lifeline/store"
)

// BenchmarkConverge100k measures two nodes holding 100,000 messages each,
// 1,000 of them different (500 on each side), converging over loopback
// from the moment they connect: wall time and bytes on the reconcile
// stream.
//
//	go test -run '^$' -bench Converge -benchtime 1x ./mesh/
func BenchmarkConverge100k(b *testing.B) {
	const common, onlyEach = 99_500, 500
	for range b.N {
		b.StopTimer() // setup: signing and filling two stores
		author := newIdentity(b)
		envs := signMany(b, author, common+2*onlyEach)
		a := startNode(b, b.TempDir(), newIdentity(b), Config{ReconcileInterval: time.Hour})
		c := startNode(b, b.TempDir(), newIdentity(b), Config{ReconcileInterval: time.Hour})
		putMany(b, a.st, envs[:common+onlyEach])
		putMany(b, c.st, append(envs[:common:common], envs[common+onlyEach:]...))
		want := int64(common + 2*onlyEach)
		ai, _ := peer.AddrInfoFromString(a.addr())
		b.StartTimer()
		start := time.Now()
		if err := c.mesh.Host().Connect(context.Background(), *ai); err != nil {
			b.Fatal(err)
		}
		eventually(b, 5*time.Minute, "converged", func() bool { return count(a.st) == want && count(c.st) == want })
		elapsed := time.Since(start)
		b.StopTimer()
		var in, out int64
		for _, p := range c.mesh.Status().PeerList {
			in, out = int64(p.LastSession.BytesIn), int64(p.LastSession.BytesOut)
		}
		b.ReportMetric(elapsed.Seconds(), "s-to-converge")
		b.ReportMetric(float64(in), "session-B-in")
		b.ReportMetric(float64(out), "session-B-out")
		a.stop()
		c.stop()
	}
}

// signMany signs n distinct channel messages by author, on all cores.
func signMany(tb testing.TB, author *message.Identity, n int) [][]byte {
	out := make([][]byte, n)
	now := time.Now()
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				e, err := author.NewText("general", fmt.Sprintf("message %d", i), now.Add(-time.Duration(i)*time.Millisecond), 0)
				if err != nil {
					panic(err)
				}
				out[i] = e.Raw()
			}
		})
	}
	wg.Wait()
	return out
}

// putMany stores envelopes from several goroutines, so the store's group
// commit batches them.
func putMany(tb testing.TB, st *store.Store, envs [][]byte) {
	var wg sync.WaitGroup
	const workers = 32
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(envs); i += workers {
				if _, err := st.Put(context.Background(), envs[i]); err != nil {
					panic(err)
				}
			}
		})
	}
	wg.Wait()
}

// hubBench is the hub store BenchmarkHubFirstSync starts from: n messages
// by 64 authors, message i created at base - i*10 s with a year to live,
// built once and cached under os.TempDir() (signing and verifying a
// million messages takes a minute or two).
func hubBench(b *testing.B, n int) (path string, base time.Time) {
	b.Helper()
	const step = 10 * time.Second
	path = filepath.Join(os.TempDir(), fmt.Sprintf("lifeline-bench-hub-%d.db", n))
	stamp := path + ".base"
	if raw, err := os.ReadFile(stamp); err == nil {
		if ms, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64); err == nil {
			if _, err := os.Stat(path); err == nil {
				return path, time.UnixMilli(ms)
			}
		}
	}
	base = time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	os.Remove(path)
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	var authors [64]*message.Identity
	for i := range authors {
		authors[i] = newIdentity(b)
	}
	const chunk = 50_000
	for off := 0; off < n; off += chunk {
		envs := make([][]byte, min(chunk, n-off))
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < len(envs); i += 4 {
					k := off + i
					e, err := authors[k%64].NewText(fmt.Sprint("channel-", k%16), fmt.Sprintf("archive message %d, about as long as a short text", k),
						base.Add(-time.Duration(k)*step), 365*24*time.Hour)
					if err != nil {
						panic(err)
					}
					envs[i] = e.Raw()
				}
			})
		}
		wg.Wait()
		putMany(b, st, envs)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(stamp, []byte(strconv.FormatInt(base.UnixMilli(), 10)), 0o600); err != nil {
		b.Fatal(err)
	}
	return path, base
}

// BenchmarkHubFirstSync: a field node holding 100,000 messages, 1,000 of
// them new, reconnects to a hub holding 1,000,000 (the field node's other
// 99,000 among them; the rest older than the field node's hub window).
// Measured from the field node's start until the hub holds the 1,000:
// wall time, and bytes on the reconcile stream each way.
//
//	go test -run '^$' -bench HubFirstSync -benchtime 1x ./mesh/
func BenchmarkHubFirstSync(b *testing.B) {
	const hubN, shared, fresh = 1_000_000, 99_000, 1_000
	src, base := hubBench(b, hubN)
	for range b.N {
		b.StopTimer()
		hubDir, fieldDir := b.TempDir(), b.TempDir()
		if err := copyFile(src, hubDir+"/lifeline.db"); err != nil {
			b.Fatal(err)
		}
		hub := startNode(b, hubDir, newIdentity(b), Config{Hub: true})
		// The field node's store: the hub's newest 99,000, and 1,000 of
		// its own that the hub has not seen.
		fst := openStore(b, fieldDir)
		oldest := base.Add(-time.Duration(shared-1) * 10 * time.Second)
		var envs [][]byte
		err := hub.st.Items(oldest.UnixMilli(), message.ID{}, func(_ int64, id message.ID) bool {
			rec, err := hub.st.Get(id)
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, rec.Envelope.Raw())
			return true
		})
		if err != nil || len(envs) != shared {
			b.Fatalf("took %d of the hub's messages (%v)", len(envs), err)
		}
		putMany(b, fst, envs)
		author := newIdentity(b)
		var newIDs []message.ID
		now := time.Now()
		for i := range fresh {
			e, err := author.NewText("field", fmt.Sprint("news from the area ", i), now.Add(-time.Duration(i)*time.Millisecond), 0)
			if err != nil {
				b.Fatal(err)
			}
			fst.Put(context.Background(), e.Raw())
			newIDs = append(newIDs, e.ID())
		}
		fst.Close()
		window := time.Since(oldest) // from the oldest shared message on, at the latest

		b.StartTimer()
		start := time.Now()
		field := startNode(b, fieldDir, newIdentity(b), Config{Hubs: []string{hub.addr()}, HubWindow: window, ProbeInterval: time.Second})
		eventually(b, 10*time.Minute, "the hub holds the field node's news", func() bool { return hasAll(hub.st, newIDs) })
		elapsed := time.Since(start)
		b.StopTimer()
		var stats SessionStats
		eventually(b, time.Minute, "session recorded", func() bool {
			for _, p := range field.mesh.Status().PeerList {
				if p.ID == hub.mesh.Host().ID().String() && !p.LastReconcile.IsZero() {
					stats = p.LastSession
					return true
				}
			}
			return false
		})
		if got := count(field.st); got != shared+fresh {
			b.Fatalf("field node holds %d, want %d: the window let older messages in", got, shared+fresh)
		}
		b.ReportMetric(elapsed.Seconds(), "s-to-sync")
		b.ReportMetric(float64(stats.BytesOut), "bytes-up")
		b.ReportMetric(float64(stats.BytesIn), "bytes-down")
		b.ReportMetric(float64(stats.Rounds), "rounds")
		field.stop()
		hub.stop()
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
