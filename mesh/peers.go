package mesh

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
)

// gater refuses connections to and from peers that misbehaved, until their
// block expires.
type gater struct {
	mu      sync.Mutex
	blocked map[peer.ID]time.Time
}

func newGater() *gater { return &gater{blocked: map[peer.ID]time.Time{}} }

func (g *gater) block(p peer.ID, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = until
}

func (g *gater) allowed(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.blocked[p]
	if ok && time.Now().After(until) {
		delete(g.blocked, p)
		return true
	}
	return !ok
}

func (g *gater) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.blocked)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// misbehaved disconnects and blocks a peer that sent invalid data.
func (m *Mesh) misbehaved(p peer.ID, why error) {
	m.mu.Lock()
	m.misbeh++
	if st := m.state[p]; st != nil {
		st.misbehaved++
	}
	m.mu.Unlock()
	m.log.Warn("peer misbehaved: disconnecting", "peer", p, "err", why, "blocked_for", m.cfg.BlockFor)
	m.gater.block(p, time.Now().Add(m.cfg.BlockFor))
	m.host.Network().ClosePeer(p)
}

// connected starts a reconciliation on every new outbound connection; the
// dialling side initiates so that a pair does not run two sessions at once.
func (m *Mesh) connected(_ network.Network, c network.Conn) {
	if c.Stat().Direction == network.DirOutbound {
		m.kickPeer(c.RemotePeer())
	}
}

// kickPeer asks the reconcile loop to sync with p soon. It never blocks,
// and asking twice before the loop gets to it costs one session.
func (m *Mesh) kickPeer(p peer.ID) {
	m.mu.Lock()
	m.pending[p] = true
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default: // already signalled
	}
}

// keepConnected dials a static peer and redials it with exponential
// backoff (1 s doubling to 2 min, with jitter) whenever it is not connected.
func (m *Mesh) keepConnected(ctx context.Context, p peer.AddrInfo) {
	const minWait, maxWait = time.Second, 2 * time.Minute
	wait := minWait
	for {
		if m.host.Network().Connectedness(p.ID) != network.Connected {
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := m.host.Connect(dctx, p)
			cancel()
			if err != nil {
				m.log.Debug("static peer unreachable", "peer", p.ID, "err", err, "retry_in", wait)
			} else {
				wait = minWait
			}
		}
		jitter := time.Duration(rand.Int64N(int64(wait) / 4))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait + jitter):
		}
		if m.host.Network().Connectedness(p.ID) != network.Connected {
			wait = min(2*wait, maxWait)
		}
	}
}

type mdnsNotifee struct {
	m     *Mesh
	found chan peer.AddrInfo
}

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.m.host.ID() {
		return
	}
	select {
	case n.found <- ai:
	default: // the next announcement will do
	}
}

func (m *Mesh) startMDNS(ctx context.Context, run func(func(context.Context))) error {
	n := mdnsNotifee{m: m, found: make(chan peer.AddrInfo, 16)}
	svc := mdns.NewMdnsService(m.host, mdnsService, n)
	if err := svc.Start(); err != nil {
		return err
	}
	run(func(ctx context.Context) {
		defer svc.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ai := <-n.found:
				if m.host.Network().Connectedness(ai.ID) == network.Connected {
					continue
				}
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if err := m.host.Connect(dctx, ai); err != nil {
					m.log.Debug("mdns peer unreachable", "peer", ai.ID, "err", err)
				} else {
					m.log.Info("found peer on the local network", "peer", ai.ID)
				}
				cancel()
			}
		}
	})
	return nil
}
