package lifeline

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline/mesh"
	"lifeline/message"
)

// TestMembersLearnPrivateMesh: on a private mesh every node that connects
// holds the mesh key, so it becomes a member; a key the config vouches
// for, and a static peer's node key, are members from the start; anyone
// else is a stranger.
func TestMembersLearnPrivateMesh(t *testing.T) {
	meshKey := make([]byte, 32)
	rand.Read(meshKey)
	vouched, _ := message.NewIdentity(rand.Reader)
	static, _ := message.NewIdentity(rand.Reader)
	sk := static.Public()
	pub, err := crypto.UnmarshalEd25519PublicKey(sk[:])
	if err != nil {
		t.Fatal(err)
	}
	staticPeer, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := newMembers(Config{Members: []string{vouched.Public().String()},
		Peers: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + staticPeer.String()}})
	if err != nil {
		t.Fatal(err)
	}
	hosts := make([]*mesh.Mesh, 2)
	ids := make([]*message.Identity, 2)
	for i := range hosts {
		ids[i], _ = message.NewIdentity(rand.Reader)
		hosts[i], err = mesh.New(mesh.Config{Identity: ids[i], Listen: []string{"/ip4/127.0.0.1/tcp/0"}, MeshKey: meshKey}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hosts[i].Host().Close() })
	}
	if mem.has(ids[1].Public()) || !mem.has(vouched.Public()) || !mem.has(static.Public()) {
		t.Fatal("members before any connection: wrong")
	}
	mem.learnFrom(hosts[0].Host().Network())
	ai := peer.AddrInfo{ID: hosts[1].Host().ID(), Addrs: hosts[1].Host().Addrs()}
	if err := hosts[0].Host().Connect(t.Context(), ai); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !mem.has(ids[1].Public()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a node of the private mesh that connected is not a member")
		}
	}
	stranger, _ := message.NewIdentity(rand.Reader)
	if mem.has(stranger.Public()) {
		t.Fatal("a stranger is a member")
	}
}
