package lifeline

import (
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/message"
)

// members are the keys whose messages the store keeps in the members'
// tier (store.Options.Members), whose envelopes the API does not count
// against strangers, and whose direct messages get receipts: keys the
// operator vouched for (Config Members), the nodes the operator named as
// static peers and hubs (a node's key is its peer id), and, on a private
// mesh, every node that connected (it holds the mesh key to have
// connected at all).
type members struct {
	fixed map[message.PublicKey]bool // from the config; never changes

	mu   sync.Mutex
	seen map[message.PublicKey]bool // private-mesh nodes met since start, bounded
}

// maxSeenMembers bounds the private-mesh nodes remembered. Past it the
// node forgets them all and learns again from the connections it makes:
// a node of the mesh is one reconnection away from being known.
const maxSeenMembers = 4096

func newMembers(cfg Config) (*members, error) {
	m := &members{fixed: map[message.PublicKey]bool{}, seen: map[message.PublicKey]bool{}}
	for _, k := range cfg.Members {
		pk, err := message.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		m.fixed[pk] = true
	}
	for _, a := range append(append([]string(nil), cfg.Peers...), cfg.Hubs...) {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %w", a, err)
		}
		pk, err := nodeKey(ai.ID)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %w", a, err)
		}
		m.fixed[pk] = true
	}
	return m, nil
}

// nodeKey is the Lifeline public key of a node's peer id.
func nodeKey(id peer.ID) (message.PublicKey, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return message.PublicKey{}, fmt.Errorf("peer id %s carries no public key: %w", id, err)
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != len(message.PublicKey{}) {
		return message.PublicKey{}, fmt.Errorf("peer id %s is not an Ed25519 key", id)
	}
	return message.PublicKey(raw), nil
}

func (m *members) has(k message.PublicKey) bool {
	if m.fixed[k] {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[k]
}

// learnFrom makes every node that connects on nw a member: for a private
// mesh's host only, where connecting takes the mesh key.
func (m *members) learnFrom(nw network.Network) {
	nw.Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		k, err := nodeKey(c.RemotePeer())
		if err != nil {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.seen) >= maxSeenMembers {
			clear(m.seen)
		}
		m.seen[k] = true
	}})
}
