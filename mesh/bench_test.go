package mesh

import (
	"context"
	"fmt"
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
