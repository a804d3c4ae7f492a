package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/message"
	"lifeline/store"
)

type testNode struct {
	t      testing.TB
	dir    string
	id     *message.Identity
	st     *store.Store
	mesh   *Mesh
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
}

func testLogger() *slog.Logger {
	if os.Getenv("LIFELINE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNode runs a mesh node on 127.0.0.1 with a store in dir.
func startNode(t testing.TB, dir string, id *message.Identity, cfg Config) *testNode {
	t.Helper()
	n := &testNode{t: t, dir: dir, id: id, cfg: cfg}
	n.cfg.Identity = id
	if len(n.cfg.Listen) == 0 {
		n.cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	if n.cfg.ReconcileInterval == 0 {
		n.cfg.ReconcileInterval = time.Hour // tests trigger what they test
	}
	n.cfg.Logger = testLogger()
	var now func() time.Time
	if n.cfg.Clock != nil {
		now = n.cfg.Clock.Now
	}
	st, err := store.Open(dir+"/lifeline.db", store.Options{NoSync: true, Own: id.Public(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	n.st = st
	m, err := New(n.cfg, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	n.mesh = m
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() { defer close(n.done); m.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	<-n.done
	n.st.Close()
	n.cancel = nil
}

func (n *testNode) addr() string { return n.mesh.Addrs()[0] }

func (n *testNode) send(text string) message.ID {
	n.t.Helper()
	e, err := n.id.NewText("general", text, time.Now(), 0)
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.st.PutOwn(context.Background(), e.Raw()); err != nil {
		n.t.Fatal(err)
	}
	return e.ID()
}

func connected(a, b *testNode) bool {
	return a.mesh.Host().Network().Connectedness(b.mesh.Host().ID()) == network.Connected
}

// TestLineOfFive: each node knows only its neighbour; a message sent at one
// end is readable at the other, carried by gossip alone (reconciliation only
// runs on connect, before the message exists).
func TestLineOfFive(t *testing.T) {
	var nodes []*testNode
	for i := range 5 {
		var cfg Config
		if i > 0 {
			cfg.Peers = []string{nodes[i-1].addr()}
		}
		nodes = append(nodes, startNode(t, t.TempDir(), newIdentity(t), cfg))
	}
	for i := 1; i < 5; i++ {
		eventually(t, 10*time.Second, "line connected", func() bool { return connected(nodes[i], nodes[i-1]) })
	}
	// The gossip mesh forms a heartbeat or so after connecting: every node
	// grafts each of its neighbours.
	eventually(t, 10*time.Second, "gossip mesh formed", func() bool {
		for i, n := range nodes {
			want := 2
			if i == 0 || i == len(nodes)-1 {
				want = 1
			}
			if n.mesh.Status().GossipPeers != want {
				return false
			}
		}
		return true
	})
	first := nodes[0].send("from the west end")
	last := nodes[4].send("from the east end")
	eventually(t, 15*time.Second, "message crossed the line", func() bool {
		return hasAll(nodes[4].st, []message.ID{first}) && hasAll(nodes[0].st, []message.ID{last})
	})
	for _, n := range nodes {
		if n.st.Stats().Messages != 2 {
			t.Errorf("node holds %d messages, want 2", n.st.Stats().Messages)
		}
	}
	// Each end's own message left it: a neighbour took it.
	eventually(t, 10*time.Second, "own messages marked left", func() bool {
		a, errA := nodes[0].st.Get(first)
		b, errB := nodes[4].st.Get(last)
		return errA == nil && errB == nil && a.Left && b.Left
	})
}

// TestIslandsConverge: two islands collect messages apart, then one link
// joins them and both hold the identical set.
func TestIslandsConverge(t *testing.T) {
	a1 := startNode(t, t.TempDir(), newIdentity(t), Config{})
	a2 := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{a1.addr()}})
	b1 := startNode(t, t.TempDir(), newIdentity(t), Config{})
	b2 := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{b1.addr()}})
	var wantA, wantB []message.ID
	wantA = append(wantA, fill(t, a1.st, a1.id, 120, "a1")...)
	wantA = append(wantA, fill(t, a2.st, a2.id, 80, "a2")...)
	wantB = append(wantB, fill(t, b1.st, b1.id, 150, "b1")...)
	wantB = append(wantB, fill(t, b2.st, b2.id, 3, "b2")...)
	eventually(t, 10*time.Second, "islands formed", func() bool {
		return hasAll(a1.st, wantA) && hasAll(a2.st, wantA) && hasAll(b1.st, wantB) && hasAll(b2.st, wantB)
	})
	if ok, _ := a1.st.Has(wantB[0]); ok {
		t.Fatal("islands leaked before they were joined")
	}
	// One link: a2 dials b2.
	ai, _ := peer.AddrInfoFromString(b2.addr())
	if err := a2.mesh.Host().Connect(context.Background(), *ai); err != nil {
		t.Fatal(err)
	}
	all := append(append([]message.ID{}, wantA...), wantB...)
	eventually(t, 20*time.Second, "all four nodes hold both islands' messages", func() bool {
		return hasAll(a1.st, all) && hasAll(a2.st, all) && hasAll(b1.st, all) && hasAll(b2.st, all)
	})
	for _, n := range []*testNode{a1, a2, b1, b2} {
		if got := n.st.Stats().Messages; got != int64(len(all)) {
			t.Errorf("node holds %d messages, want exactly %d", got, len(all))
		}
	}
}

// TestRestartCatchesUp: a node that was down while others talked gets
// everything on reconnect.
func TestRestartCatchesUp(t *testing.T) {
	hub := startNode(t, t.TempDir(), newIdentity(t), Config{})
	dir, id := t.TempDir(), newIdentity(t)
	late := startNode(t, dir, id, Config{Peers: []string{hub.addr()}})
	before := late.send("before the outage")
	eventually(t, 10*time.Second, "first message reached the hub", func() bool { return hasAll(hub.st, []message.ID{before}) })
	late.stop()
	missed := fill(t, hub.st, hub.id, 500, "while you were away")
	late = startNode(t, dir, id, Config{Peers: []string{hub.addr()}})
	eventually(t, 20*time.Second, "restarted node caught up", func() bool { return hasAll(late.st, missed) })
	if got := late.st.Stats().Messages; got != 501 {
		t.Fatalf("restarted node holds %d, want 501", got)
	}
	// Reconciliation ran on reconnect. Which link carried which message is
	// a race (the hub may still be gossiping its backlog), so only the
	// totals are pinned.
	eventually(t, 10*time.Second, "catch-up session in the status", func() bool {
		st := late.mesh.Status()
		return st.Peers == 1 && !st.PeerList[0].LastReconcile.IsZero()
	})
}

// TestPrivateMesh: only nodes holding the mesh key can connect.
func TestPrivateMesh(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	a := startNode(t, t.TempDir(), newIdentity(t), Config{MeshKey: key, Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if st := a.mesh.Status(); !st.Private || len(st.Addrs) != 1 {
		t.Fatalf("private node should listen on TCP only: %+v", st.Addrs)
	}
	b := startNode(t, t.TempDir(), newIdentity(t), Config{MeshKey: key, Peers: []string{a.addr()}})
	outsider := startNode(t, t.TempDir(), newIdentity(t), Config{})
	other := make([]byte, 32)
	rand.Read(other)
	wrongKey := startNode(t, t.TempDir(), newIdentity(t), Config{MeshKey: other})
	eventually(t, 10*time.Second, "key holders connected", func() bool { return connected(a, b) })
	ai, _ := peer.AddrInfoFromString(a.addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := outsider.mesh.Host().Connect(ctx, *ai); err == nil {
		t.Fatal("a node without the key connected")
	}
	if err := wrongKey.mesh.Host().Connect(ctx, *ai); err == nil {
		t.Fatal("a node with another key connected")
	}
	id := a.send("members only")
	eventually(t, 10*time.Second, "message reached the other member", func() bool { return hasAll(b.st, []message.ID{id}) })
}

// TestMisbehavingPeerDisconnected: a peer that gossips a forged envelope is
// cut off and counted, and nothing it sent is stored.
func TestMisbehavingPeerDisconnected(t *testing.T) {
	honest := startNode(t, t.TempDir(), newIdentity(t), Config{})
	// The attacker is a bare gossip host, so it can publish anything.
	bad := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{honest.addr()}})
	eventually(t, 10*time.Second, "connected", func() bool { return connected(bad, honest) })
	eventually(t, 10*time.Second, "gossip mesh formed", func() bool { return bad.mesh.topicPeers() > 0 })
	bad.mesh.mu.Lock()
	topic := bad.mesh.topic
	bad.mesh.mu.Unlock()
	// GossipSub may drop a message while the honest side has not yet
	// grafted the attacker into its mesh: forge a new one until one lands.
	i := 0
	eventually(t, 10*time.Second, "misbehaving peer counted and disconnected", func() bool {
		st := honest.mesh.Status()
		if st.Misbehaving == 0 {
			i++
			e, _ := bad.id.NewText("general", fmt.Sprint("totally legit ", i), time.Now(), 0)
			forged := append([]byte(nil), e.Raw()...)
			forged[len(forged)-1] ^= 1
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			topic.Publish(ctx, forged, pubsub.WithReadiness(pubsub.MinTopicSize(1)))
			cancel()
		}
		return st.Misbehaving >= 1 && st.Peers == 0 && st.Blocked == 1
	})
	if honest.st.Stats().Messages != 0 {
		t.Fatal("forged envelope stored")
	}
}

// TestNoDuplicates: many paths, many repeats, one copy each.
func TestNoDuplicates(t *testing.T) {
	a := startNode(t, t.TempDir(), newIdentity(t), Config{})
	b := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{a.addr()}})
	c := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{a.addr(), b.addr()}})
	eventually(t, 10*time.Second, "triangle", func() bool { return connected(c, a) && connected(c, b) && connected(b, a) })
	ids := fill(t, a.st, a.id, 50, "x")
	var wg sync.WaitGroup
	for range 3 {
		for _, n := range []*testNode{a, b, c} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, p := range n.mesh.Host().Network().Peers() {
					n.mesh.ReconcileWith(context.Background(), p)
				}
			}()
		}
	}
	wg.Wait()
	eventually(t, 10*time.Second, "all hold everything", func() bool { return hasAll(b.st, ids) && hasAll(c.st, ids) })
	for _, n := range []*testNode{a, b, c} {
		if got := n.st.Stats().Messages; got != 50 {
			t.Fatalf("node holds %d, want 50", got)
		}
	}
}
