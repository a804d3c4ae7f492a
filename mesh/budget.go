package mesh

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"
)

// Budgets that fresh keys cannot multiply (DESIGN.md, "Under attack"): a
// peer id costs nothing to make, so what a stranger may push is bounded
// per peer, per source address, and for all strangers together. Members
// are charged per peer only: they are vouched for, and a hub's static
// peers or a private mesh's members behind one NAT must not starve each
// other.

// sourceKey names the address a connection comes from: an IPv4 address,
// or the /64 of an IPv6 one (one subscriber's prefix: an attacker holding
// a /64 has 2^64 addresses). A relayed connection names its relay, which
// is right for budgets: relayed connections carry nothing of ours. ""
// when the address has no IP (in-memory transports in tests).
func sourceKey(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	if v, err := a.ValueForProtocol(ma.P_IP4); err == nil {
		return v
	}
	if v, err := a.ValueForProtocol(ma.P_IP6); err == nil {
		ip := net.ParseIP(v)
		if ip == nil {
			return v
		}
		if v4 := ip.To4(); v4 != nil {
			return v4.String()
		}
		return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
	}
	return ""
}

// sourceOf is the source of p's first open connection, "" if none.
func (m *Mesh) sourceOf(p peer.ID) string {
	for _, c := range m.host.Network().ConnsToPeer(p) {
		return sourceKey(c.RemoteMultiaddr())
	}
	return ""
}

// member reports whether p is vouched for: a static peer, a hub, or anyone
// in a private mesh (who holds the mesh key to have connected at all).
// Everyone else is a stranger.
func (m *Mesh) member(p peer.ID) bool {
	if m.cfg.MeshKey != nil || m.isHub(p) {
		return true
	}
	for _, s := range m.peers {
		if s.ID == p {
			return true
		}
	}
	return false
}

// memberSource reports whether a member may connect from src: in a
// private mesh anyone, otherwise the addresses static peers and hubs were
// configured with. It keeps address blocks off members before their peer
// id is known (InterceptAccept).
func (m *Mesh) memberSource(src string) bool {
	if m.cfg.MeshKey != nil {
		return true
	}
	for _, ais := range [][]peer.AddrInfo{m.peers, m.hubs} {
		for _, ai := range ais {
			for _, a := range ai.Addrs {
				if sourceKey(a) == src {
					return true
				}
			}
		}
	}
	return false
}

// maxSources bounds the per-source limiters kept. Past it one whose
// bucket is full again (idle) is dropped; failing that, any: the
// strangers' total still holds whatever a dropped source does next.
const maxSources = 1024

// budgets holds the push limits shared across peer ids.
type budgets struct {
	rate      rate.Limit
	burst     int
	strangers *rate.Limiter // all strangers together
	// work is the reconciliation work strangers' responder sessions may
	// cost, all together (reconcile.Engine units).
	work *workBudget

	mu      sync.Mutex
	sources map[string]*rate.Limiter
}

func newBudgets(cfg *Config) *budgets {
	return &budgets{rate: rate.Limit(cfg.PushRatePerIP), burst: cfg.PushBurstPerIP,
		strangers: rate.NewLimiter(rate.Limit(cfg.StrangerPushRate), cfg.StrangerPushBurst),
		work:      newWorkBudget(cfg.StrangerWorkRate, cfg.strangerWorkBurst),
		sources:   map[string]*rate.Limiter{}}
}

func (b *budgets) source(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.sources[key]
	if l != nil {
		return l
	}
	if len(b.sources) >= maxSources {
		victim := ""
		for k, o := range b.sources {
			victim = k
			if o.Tokens() >= float64(b.burst) {
				break
			}
		}
		delete(b.sources, victim)
	}
	l = rate.NewLimiter(b.rate, b.burst)
	b.sources[key] = l
	return l
}

// charge takes one envelope's worth from every limiter. Without wait it
// takes nothing unless all have it now (gossip over a limit is dropped).
// With wait it waits for the slowest, failing at once, taking nothing,
// when that would outlast ctx (as rate.Limiter.Wait does).
func charge(ctx context.Context, wait bool, ls ...*rate.Limiter) (bool, error) {
	now := time.Now()
	rs := make([]*rate.Reservation, 0, len(ls))
	cancel := func() {
		for _, r := range rs {
			r.CancelAt(now)
		}
	}
	var delay time.Duration
	for _, l := range ls {
		r := l.ReserveN(now, 1)
		if !r.OK() {
			cancel()
			return false, nil
		}
		rs = append(rs, r)
		delay = max(delay, r.DelayFrom(now))
	}
	if delay == 0 {
		return true, nil
	}
	if !wait {
		cancel()
		return false, nil
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(delay).After(dl) {
		cancel()
		return false, context.DeadlineExceeded
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		cancel()
		return false, ctx.Err()
	}
}

// workBudget is a token bucket of reconciliation work. A session takes its
// limit from it up front, so sessions running at once cannot together
// spend more than it holds, and gives back what it did not use.
type workBudget struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newWorkBudget(rate float64, burst int) *workBudget {
	return &workBudget{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// refill brings tokens up to now. Called with mu held.
func (b *workBudget) refill(now time.Time) {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// take takes up to most, or nothing (0) if less than least is there.
func (b *workBudget) take(now time.Time, least, most int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	n := min(int64(b.tokens), most)
	if n < least {
		return 0
	}
	b.tokens -= float64(n)
	return n
}

// give returns n unused units.
func (b *workBudget) give(now time.Time, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens = min(b.burst, b.tokens+float64(max(n, 0)))
}

// available is what the budget holds now.
func (b *workBudget) available(now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens
}
