package mesh

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	ma "github.com/multiformats/go-multiaddr"
)

// maxBlocked bounds the gater's records, of peer ids and of addresses
// each: a peer id costs nothing to make, and the block list must not grow
// with them. When full, expired records go first, then the one that would
// expire soonest.
const maxBlocked = 4096

// gater refuses connections to and from peers that misbehaved, until their
// block expires, and from strangers at an address that several
// misbehaving peer ids came from (fresh keys do not buy a fresh start).
type gater struct {
	after        int                   // misbehaving ids from one address that block it; <= 0 never
	member       func(peer.ID) bool    // never blocked by address
	memberSource func(src string) bool // an address a member may come from

	mu      sync.Mutex
	blocked map[peer.ID]time.Time
	// offenders are, per address, the misbehaving peer ids seen there and
	// when each record expires; sources the addresses blocked.
	offenders map[string]map[peer.ID]time.Time
	sources   map[string]time.Time
}

func newGater(after int, member func(peer.ID) bool, memberSource func(string) bool) *gater {
	return &gater{after: after, member: member, memberSource: memberSource,
		blocked: map[peer.ID]time.Time{}, offenders: map[string]map[peer.ID]time.Time{}, sources: map[string]time.Time{}}
}

// makeRoom drops records from m until it can take one more: expired ones,
// then the one expiring soonest.
func makeRoom[K comparable, V any](m map[K]V, expiry func(V) time.Time, now time.Time) {
	if len(m) < maxBlocked {
		return
	}
	var soonest K
	var first time.Time
	for k, v := range m {
		if t := expiry(v); !t.After(now) {
			delete(m, k)
		} else if first.IsZero() || t.Before(first) {
			soonest, first = k, t
		}
	}
	if len(m) >= maxBlocked {
		delete(m, soonest)
	}
}

func sameTime(t time.Time) time.Time { return t }

// latest is when the last of an address's offence records expires.
func latest(ids map[peer.ID]time.Time) time.Time {
	var t time.Time
	for _, u := range ids {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// block refuses p until until. src is the address p misbehaved from;
// enough misbehaving ids there block it too, unless p is a member.
func (g *gater) block(p peer.ID, src string, until time.Time, member bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.blocked[p]; !ok {
		makeRoom(g.blocked, sameTime, now)
	}
	g.blocked[p] = until
	if member || src == "" || g.after <= 0 {
		return
	}
	ids := g.offenders[src]
	if ids == nil {
		makeRoom(g.offenders, latest, now)
		ids = map[peer.ID]time.Time{}
		g.offenders[src] = ids
	}
	for q, u := range ids {
		if !u.After(now) {
			delete(ids, q)
		}
	}
	if _, ok := ids[p]; ok || len(ids) < g.after {
		ids[p] = until // past the threshold, one more id adds nothing
	}
	if len(ids) >= g.after {
		// Each further offence from a blocked address extends its block.
		if _, ok := g.sources[src]; !ok {
			makeRoom(g.sources, sameTime, now)
		}
		g.sources[src] = until
	}
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

// sourceBlocked reports whether strangers from src are refused.
func (g *gater) sourceBlocked(src string) bool {
	if src == "" {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.sources[src]
	if ok && time.Now().After(until) {
		delete(g.sources, src)
		delete(g.offenders, src)
		return false
	}
	return ok
}

func (g *gater) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.blocked)
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }

// InterceptAccept refuses a blocked address before any handshake, unless
// a member may come from it: the peer id is not known yet.
func (g *gater) InterceptAccept(c network.ConnMultiaddrs) bool {
	src := sourceKey(c.RemoteMultiaddr())
	return !g.sourceBlocked(src) || g.memberSource(src)
}

func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.allowed(p) && (g.member(p) || !g.sourceBlocked(sourceKey(c.RemoteMultiaddr())))
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
	src := m.sourceOf(p) // before the connections close
	m.log.Warn("peer misbehaved: disconnecting", "peer", p, "source", src, "err", why, "blocked_for", m.cfg.BlockFor)
	m.gater.block(p, src, time.Now().Add(m.cfg.BlockFor), m.member(p))
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
	var relayedSince time.Time
	for {
		if m.relayedOnly(p.ID) {
			// A connection through a relay carries nothing of ours (it is
			// limited): it is there for hole punching, which runs when it
			// opens and may fail then (the other side not ready yet, a
			// NAT mapping not learnt yet). Close it every probe period
			// and dial again, so hole punching gets another chance.
			if relayedSince.IsZero() {
				relayedSince = time.Now()
			} else if time.Since(relayedSince) >= m.cfg.ProbeInterval {
				m.log.Debug("static peer still reachable only through a relay: retrying hole punching", "peer", p.ID)
				m.host.Network().ClosePeer(p.ID)
				relayedSince, wait = time.Time{}, minWait
			}
		} else {
			relayedSince = time.Time{}
		}
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

// relayedOnly reports whether every connection to p goes through a relay.
func (m *Mesh) relayedOnly(p peer.ID) bool {
	conns := m.host.Network().ConnsToPeer(p)
	for _, c := range conns {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err != nil {
			return false
		}
	}
	return len(conns) > 0
}

// mdnsFound is a peer mDNS announced, and how many dials it has had.
type mdnsFound struct {
	ai      peer.AddrInfo
	attempt int
}

type mdnsNotifee struct {
	m     *Mesh
	found chan mdnsFound
}

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.m.host.ID() {
		return
	}
	n.push(mdnsFound{ai: ai}, 0)
}

// push queues f after delay without ever blocking: the next announcement
// covers anything dropped.
func (n mdnsNotifee) push(f mdnsFound, delay time.Duration) {
	send := func() {
		select {
		case n.found <- f:
		default:
		}
	}
	if delay == 0 {
		send()
		return
	}
	time.AfterFunc(delay, send)
}

// mdnsServiceName is the DNS-SD service a node announces: one per private
// mesh, so members only find members, and "lifeline" for the open mesh.
// DNS-SD service names are at most 15 characters; 24 bits of the key's hash
// tell apart the meshes that share a LAN.
func mdnsServiceName(meshKey []byte) string {
	if meshKey == nil {
		return mdnsService
	}
	h := sha256.Sum256(append([]byte("lifeline/mdns/v1\x00"), meshKey...))
	return fmt.Sprintf("%s-%x", mdnsService, h[:3])
}

// mdnsDialRetries is how often a discovered peer is dialled before waiting
// for its next announcement.
const mdnsDialRetries = 3

func (m *Mesh) startMDNS(ctx context.Context, run func(func(context.Context))) error {
	n := mdnsNotifee{m: m, found: make(chan mdnsFound, 16)}
	svc := mdns.NewMdnsService(m.host, mdnsServiceName(m.cfg.MeshKey), n)
	if err := svc.Start(); err != nil {
		return err
	}
	run(func(ctx context.Context) {
		defer svc.Close()
		for {
			var f mdnsFound
			select {
			case <-ctx.Done():
				return
			case f = <-n.found:
			}
			if m.host.Network().Connectedness(f.ai.ID) == network.Connected {
				continue
			}
			// Two nodes usually hear each other at the same moment; if both
			// dial, the crossing handshakes can both fail. The lower id
			// dials first, the other only if still unconnected 2 s later.
			if f.attempt == 0 && m.host.ID() > f.ai.ID {
				f.attempt = 1
				n.push(f, 2*time.Second)
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := m.host.Connect(dctx, f.ai)
			cancel()
			switch {
			case err == nil:
				m.log.Info("found peer on the local network", "peer", f.ai.ID)
			case f.attempt < mdnsDialRetries:
				m.log.Debug("mdns peer unreachable, retrying", "peer", f.ai.ID, "err", err)
				f.attempt++
				n.push(f, time.Duration(f.attempt)*time.Second)
			default:
				m.log.Debug("mdns peer unreachable", "peer", f.ai.ID, "err", err)
			}
		}
	})
	return nil
}
