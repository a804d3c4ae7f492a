package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPushRateLimit: a peer can make this node verify and store at most its
// burst at once; gossip beyond it is dropped (reconciliation repairs it),
// a reconciliation push waits instead (backpressure), and other peers are
// not affected.
func TestPushRateLimit(t *testing.T) {
	st := openStore(t, t.TempDir())
	m, err := New(Config{Identity: newIdentity(t), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PushRate: 0.001, PushBurst: 3, Logger: testLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Host().Close()
	author := newIdentity(t)
	envs := signMany(t, author, 6)
	noisy, quiet := peer.ID("noisy"), peer.ID("quiet")
	ctx := context.Background()
	stored := 0
	for _, raw := range envs[:5] {
		isNew, err := m.accept(ctx, noisy, raw, false)
		if err != nil {
			t.Fatal(err)
		}
		if isNew {
			stored++
		}
	}
	if stored != 3 || count(st) != 3 {
		t.Fatalf("gossip from one peer stored %d (store holds %d), want its burst of 3", stored, count(st))
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	// rate.Limiter refuses at once when the wait would outlast the context.
	if _, err := m.accept(wctx, noisy, envs[3], true); err == nil {
		t.Fatal("a push over the rate was stored instead of waiting")
	}
	if isNew, err := m.accept(ctx, quiet, envs[5], false); err != nil || !isNew {
		t.Fatalf("another peer was limited too: %v %v", isNew, err)
	}
}

func TestMDNSServiceName(t *testing.T) {
	a, b := make([]byte, 32), make([]byte, 32)
	b[0] = 1
	if got := mdnsServiceName(nil); got != "lifeline" {
		t.Fatalf("open mesh announces %q", got)
	}
	na, nb := mdnsServiceName(a), mdnsServiceName(b)
	if na == nb || len(na) > 15 || na == "lifeline" || na != mdnsServiceName(append([]byte(nil), a...)) {
		t.Fatalf("service names %q %q: want distinct per key, stable, at most 15 characters", na, nb)
	}
}
