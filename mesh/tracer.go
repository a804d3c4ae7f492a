package mesh

import (
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// gossipTracer watches GossipSub for the two things the mesh acts on: which
// peers are in our gossip mesh (live push reaches only those), and any
// envelope the push path dropped, which a prompt reconciliation repairs.
type gossipTracer struct {
	lost    func()        // live push dropped something
	grafted func(peer.ID) // the peer joined our gossip mesh

	mu   sync.Mutex
	mesh map[peer.ID]bool
}

// Tracer callbacks run inside GossipSub's event loop: they must not block.
func newGossipTracer(lost func(), grafted func(peer.ID)) *gossipTracer {
	return &gossipTracer{lost: lost, grafted: grafted, mesh: map[peer.ID]bool{}}
}

func (g *gossipTracer) meshPeers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.mesh)
}

// Graft: from now on p gets what we forward. Whatever was stored between
// the connection and this moment reached p only if it was lucky, so the
// mesh reconciles with p once more.
func (g *gossipTracer) Graft(p peer.ID, topic string) {
	if topic == Topic {
		g.mu.Lock()
		g.mesh[p] = true
		g.mu.Unlock()
		g.grafted(p)
	}
}

func (g *gossipTracer) Prune(p peer.ID, topic string) {
	if topic == Topic {
		g.mu.Lock()
		delete(g.mesh, p)
		g.mu.Unlock()
	}
}

func (g *gossipTracer) RemovePeer(p peer.ID) {
	g.mu.Lock()
	delete(g.mesh, p)
	g.mu.Unlock()
}

func (g *gossipTracer) DropRPC(*pubsub.RPC, peer.ID) { g.lost() }
func (g *gossipTracer) RejectMessage(_ *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		g.lost()
	}
}

// UndeliverableMessage concerns our own subscription, after the validator
// has stored the envelope: nothing is lost.
func (g *gossipTracer) UndeliverableMessage(*pubsub.Message) {}

var _ pubsub.RawTracer = (*gossipTracer)(nil)

func (g *gossipTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (g *gossipTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (g *gossipTracer) OnClosedOutboundStream(peer.ID)                       {}
func (g *gossipTracer) Join(string)                                          {}
func (g *gossipTracer) Leave(string)                                         {}
func (g *gossipTracer) ValidateMessage(*pubsub.Message)                      {}
func (g *gossipTracer) DeliverMessage(*pubsub.Message)                       {}
func (g *gossipTracer) DuplicateMessage(*pubsub.Message)                     {}
func (g *gossipTracer) ThrottlePeer(peer.ID)                                 {}
func (g *gossipTracer) RecvRPC(*pubsub.RPC)                                  {}
func (g *gossipTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (g *gossipTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
