package mesh

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"lifeline/message"
)

func TestUplinkState(t *testing.T) {
	u := newUplinkState(30 * time.Second)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	hub := peer.ID("hub")

	// Offline at start: one "down" event with no last-up time, then the
	// retry wait doubles from 1 s up to the period, without new events.
	ev, next := u.probed(t0, "", 2)
	if ev == nil || ev.Up || !ev.LastUp.IsZero() || ev.Peers != 2 || next != t0.Add(time.Second) {
		t.Fatalf("first probe offline: %+v, next %v", ev, next.Sub(t0))
	}
	now := t0
	var waits []time.Duration
	for range 7 {
		ev, next = u.probed(now, "", 2)
		if ev != nil {
			t.Fatalf("repeated down: event %+v", ev)
		}
		waits = append(waits, next.Sub(now))
		now = next
	}
	want := []time.Duration{2, 4, 8, 16, 30, 30, 30}
	for i, w := range waits {
		if w != want[i]*time.Second {
			t.Fatalf("waits %v, want %v s", waits, want)
		}
	}
	if s := u.status(1); s.State != "down" || s.Failures != 8 || !s.Since.Equal(t0) {
		t.Fatalf("status while down: %+v", s)
	}

	// Up: the gain says since when it was down; probes every period.
	ev, next = u.probed(now, hub, 1)
	if ev == nil || !ev.Up || ev.Hub != hub || !ev.Since.Equal(t0) || next != now.Add(30*time.Second) {
		t.Fatalf("gain: %+v, next %v", ev, next.Sub(now))
	}
	upAt := now
	now = next
	if ev, _ = u.probed(now, hub, 1); ev != nil {
		t.Fatalf("still up: event %+v", ev)
	}
	lastUp := now
	now = now.Add(5 * time.Second)
	ev, next = u.probed(now, "", 0)
	if ev == nil || ev.Up || !ev.LastUp.Equal(lastUp) || next != now.Add(time.Second) {
		t.Fatalf("loss: %+v, next %v", ev, next.Sub(now))
	}
	if s := u.status(1); s.State != "down" || !s.LastUp.Equal(lastUp) || s.Hub != "" {
		t.Fatalf("status after loss: %+v (up at %v)", s, upAt)
	}
}

// watchConns records every peer n ever connects to.
func watchConns(n *testNode) func() map[peer.ID]bool {
	var mu sync.Mutex
	seen := map[peer.ID]bool{}
	n.mesh.Host().Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		mu.Lock()
		seen[c.RemotePeer()] = true
		mu.Unlock()
	}})
	return func() map[peer.ID]bool {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[peer.ID]bool, len(seen))
		for p := range seen {
			out[p] = true
		}
		return out
	}
}

// cutUplink makes hub refuse node until restore is called.
func cutUplink(hub, node *testNode) (restore func()) {
	p := node.mesh.Host().ID()
	hub.mesh.gater.block(p, "", time.Now().Add(time.Hour), false)
	hub.mesh.Host().Network().ClosePeer(p)
	return func() {
		hub.mesh.gater.mu.Lock()
		delete(hub.mesh.gater.blocked, p)
		hub.mesh.gater.mu.Unlock()
	}
}

// TestIslandsThroughHub: islands A and B never link to each other; each
// reaches the hub at a different time, and each ends up with the other's
// messages.
func TestIslandsThroughHub(t *testing.T) {
	const probe = 200 * time.Millisecond
	hub := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true})
	field := func(hubs []string, peers ...*testNode) *testNode {
		cfg := Config{Hubs: hubs, ProbeInterval: probe}
		for _, p := range peers {
			cfg.Peers = append(cfg.Peers, p.addr())
		}
		return startNode(t, t.TempDir(), newIdentity(t), cfg)
	}
	a1 := field([]string{hub.addr()})
	a2 := field(nil, a1)
	seenA1, seenA2 := watchConns(a1), watchConns(a2)
	aIDs := fill(t, a2.st, a2.id, 30, "island A")

	eventually(t, 15*time.Second, "A's messages reached the hub", func() bool { return hasAll(hub.st, aIDs) })
	if s := a1.mesh.Status().Uplink; s.State != "up" || s.Hub != hub.mesh.Host().ID().String() {
		t.Fatalf("A1 uplink: %+v", s)
	}
	restoreA := cutUplink(hub, a1)
	eventually(t, 10*time.Second, "A1 saw its uplink go down", func() bool { return a1.mesh.Uplink().State == "down" })

	// B comes online later, while A is cut off.
	b1 := field([]string{hub.addr()})
	b2 := field(nil, b1)
	bIDs := fill(t, b2.st, b2.id, 20, "island B")
	eventually(t, 15*time.Second, "B received A's messages through the hub", func() bool {
		return hasAll(b2.st, aIDs) && hasAll(hub.st, bIDs)
	})
	if hasAll(a2.st, bIDs[:1]) {
		t.Fatal("A has B's messages while cut off")
	}

	// A's next uplink brings B's messages.
	restoreA()
	eventually(t, 15*time.Second, "A received B's messages on its next uplink", func() bool {
		return hasAll(a2.st, bIDs) && hasAll(a1.st, bIDs)
	})
	for _, seen := range []map[peer.ID]bool{seenA1(), seenA2()} {
		for _, b := range []*testNode{b1, b2} {
			if seen[b.mesh.Host().ID()] {
				t.Fatal("an A node connected to a B node")
			}
		}
	}
	for _, n := range []*testNode{hub, a1, a2, b1, b2} {
		if got := n.st.Stats().Messages; got != 50 {
			t.Errorf("a node holds %d messages, want 50", got)
		}
	}
}

// TestTwoHubs: hubs peered with each other carry a message that entered
// one of them to a field node that only knows the other.
func TestTwoHubs(t *testing.T) {
	h1 := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true})
	h2 := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true, Peers: []string{h1.addr()}})
	eventually(t, 10*time.Second, "hubs peered", func() bool { return connected(h1, h2) })
	f := startNode(t, t.TempDir(), newIdentity(t), Config{Hubs: []string{h2.addr()}, ProbeInterval: 200 * time.Millisecond})
	eventually(t, 10*time.Second, "field node's uplink up", func() bool { return f.mesh.Uplink().State == "up" })

	author := newIdentity(t)
	e, err := author.NewText("news", "entered at hub 1", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h1.st.Put(t.Context(), e.Raw()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "message on hub 2", func() bool { return hasAll(h2.st, []message.ID{e.ID()}) })
	eventually(t, 15*time.Second, "message on the field node", func() bool { return hasAll(f.st, []message.ID{e.ID()}) })
	if connected(f, h1) {
		t.Fatal("the field node connected to hub 1, which it was not given")
	}
}

// TestRelayThroughHub: two field nodes that cannot dial each other (as
// behind NAT) hold reservations at their hub, and one reaches the other
// through the hub (circuit relay v2). On a real network hole punching
// then tries to make the connection direct; that needs public addresses,
// which a loopback test has not.
func TestRelayThroughHub(t *testing.T) {
	hub := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true})
	field := func() *testNode {
		return startNode(t, t.TempDir(), newIdentity(t), Config{Hubs: []string{hub.addr()}, ProbeInterval: 200 * time.Millisecond})
	}
	a, b := field(), field()
	// The address through the hub; libp2p does not advertise it on
	// loopback (it drops relay addresses that are not routable), but the
	// reservation is the same.
	bID := b.mesh.Host().ID()
	circuit, err := ma.NewMultiaddr(hub.addr() + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	// A knows B only by its relay address: no direct address at all.
	eventually(t, 20*time.Second, "A reaches B through the hub", func() bool {
		a.mesh.Host().Peerstore().ClearAddrs(bID)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return a.mesh.Host().Connect(ctx, peer.AddrInfo{ID: bID, Addrs: []ma.Multiaddr{circuit}}) == nil
	})
	relayed := false
	for _, c := range a.mesh.Host().Network().ConnsToPeer(bID) {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil {
			relayed = true
		}
	}
	if !relayed {
		t.Fatal("A's connection to B is not through the relay")
	}
	if st := hub.mesh.Status(); !st.Relay {
		t.Fatal("hub does not report relaying")
	}
}

// TestHubWithHubsRelays: a hub given another hub as an uplink is still a
// public relay (it must not take the field nodes' NAT assumption).
func TestHubWithHubsRelays(t *testing.T) {
	const hop = "/libp2p/circuit/relay/0.2.0/hop"
	other := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true})
	hub := startNode(t, t.TempDir(), newIdentity(t), Config{Hub: true, Hubs: []string{other.addr()}, ProbeInterval: 200 * time.Millisecond})
	eventually(t, 10*time.Second, "the hub serves the relay protocol", func() bool {
		return slices.Contains(hub.mesh.Host().Mux().Protocols(), hop)
	})
}
