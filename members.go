package lifeline

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/message"
)

// members are the keys whose messages the store keeps in the members'
// tier (store.Options.Members): keys the operator vouched for (Config
// Members) and the nodes the operator named as static peers and hubs (a
// node's key is its peer id). Fixed when the node starts, so it needs no
// lock.
type members map[message.PublicKey]bool

func newMembers(cfg Config) (members, error) {
	m := members{}
	for _, k := range cfg.Members {
		pk, err := message.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		m[pk] = true
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
		m[pk] = true
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

func (m members) has(k message.PublicKey) bool { return m[k] }
