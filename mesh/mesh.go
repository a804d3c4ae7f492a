package mesh

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"lifeline/clock"
	"lifeline/message"
)

const (
	// ReconcileProtocol is the libp2p protocol id of the reconcile stream.
	ReconcileProtocol = protocol.ID("/lifeline/reconcile/1.0.0")
	// Topic is the GossipSub topic that carries new envelopes.
	Topic = "lifeline/envelopes/1"
	// gossipQueue sizes GossipSub's per-peer and validation queues.
	gossipQueue = 256
	// mdnsService is the DNS-SD service name nodes advertise on the LAN.
	mdnsService = "lifeline"
)

// Config configures a Mesh. Zero values take the defaults noted.
type Config struct {
	Identity *message.Identity // required: the node's key is its peer id
	// Listen multiaddrs; default TCP and QUIC on every interface, random ports.
	Listen []string
	// Peers are static peers (multiaddrs ending in /p2p/ID), kept connected
	// with exponential backoff.
	Peers []string
	// MDNS turns on discovery on the local network.
	MDNS bool
	// MeshKey, when set, makes a private mesh: only nodes with the same
	// 32-byte key can connect (libp2p pnet). It forces TCP: pnet cannot
	// protect QUIC.
	MeshKey []byte
	// ReconcileInterval is how often each connected peer is reconciled
	// with, besides on every new connection; default 60 s.
	ReconcileInterval time.Duration
	// PushRate and PushBurst bound the envelopes per second one peer can
	// make this node verify and store; defaults 500/s and 5,000.
	PushRate  float64
	PushBurst int
	// PushRatePerIP and PushBurstPerIP bound the same for all strangers
	// (peers that are not static peers, hubs or private mesh members)
	// connecting from one address (an IPv4 address, an IPv6 /64), so
	// that fresh keys do not multiply it; defaults 500/s and 5,000.
	PushRatePerIP  float64
	PushBurstPerIP int
	// StrangerPushRate and StrangerPushBurst bound the same for all
	// strangers together; defaults 200/s and 2,000 (what a Raspberry Pi
	// verifies without starving the rest), ten times that on a hub.
	StrangerPushRate  float64
	StrangerPushBurst int
	// StrangerWorkRate is the reconciliation work (reconcile.Engine
	// units, about 0.7 µs of CPU each here) that strangers' sessions may
	// cost this node a second, all together, after a burst of two
	// sessions' worth (maxSessionWork each). Default 1 Mi a second, under
	// half a core; a hub, which every field node reconciles with, 8 Mi.
	StrangerWorkRate float64
	// StrangerSlotsPerIP is how many reconciliation sessions strangers
	// from one address may run against this node at once; default 1.
	StrangerSlotsPerIP int
	// BlockFor is how long a misbehaving peer stays disconnected; default 10 min.
	BlockFor time.Duration
	// BlockIPAfter: once this many peer ids from one address (IPv4, IPv6
	// /64) have misbehaved within BlockFor, strangers from that address
	// are refused for BlockFor; default 3, negative never. Members are
	// never refused by address. Loopback is not exempt: tests on
	// 127.0.0.1 that make several peers misbehave raise it.
	BlockIPAfter int
	// Hubs are internet hubs (multiaddrs ending in /p2p/ID). The uplink
	// monitor keeps one connected when it can, probing every
	// ProbeInterval (default 30 s) and, while none answers, after 1 s
	// doubling up to ProbeInterval. Hubs are also this node's relays: a
	// node behind NAT is reachable through them (circuit relay v2), and
	// two such nodes then try to connect directly (hole punching).
	Hubs          []string
	ProbeInterval time.Duration
	// OnUplink, if set, is called with every change of the uplink, from
	// the monitor's goroutine: it should return quickly.
	OnUplink func(UplinkEvent)
	// HubWindow limits reconciliations with hubs to the messages created
	// within it (0: all): a hub may hold far more than a field node can.
	HubWindow time.Duration
	// Horizon, if set, limits every reconciliation to the messages created
	// within it: the store's retention, beyond which it refuses messages,
	// so there is no point in comparing them.
	Horizon time.Duration
	// Hub makes this node a hub: a relay (circuit relay v2) for others,
	// and it leaves reconciliation with field nodes to them (see
	// initiates).
	Hub    bool
	Logger *slog.Logger
	// Clock is the node's clock: it answers peers' time queries, takes
	// the answers to this node's (timesync.go), and dates the hub window.
	// Default: a clock that follows the system clock.
	Clock *clock.Clock

	// strangerWorkBurst is the most work strangers' sessions may spend at
	// once; default twice maxSessionWork. Tests lower it.
	strangerWorkBurst int
	// respondGrace is how long a peer may keep a responder session
	// waiting before progress extends it (see session.lease); default
	// 30 s. Tests shorten it.
	respondGrace time.Duration
}

func (c *Config) defaults() error {
	if c.Identity == nil {
		return errors.New("mesh: no identity")
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	}
	if c.MeshKey != nil && len(c.MeshKey) != 32 {
		return fmt.Errorf("mesh: mesh key is %d bytes, want 32", len(c.MeshKey))
	}
	if c.Clock == nil {
		c.Clock = clock.New(clock.Options{})
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = time.Minute
	}
	if c.PushRate <= 0 {
		c.PushRate = 500
	}
	if c.PushBurst <= 0 {
		c.PushBurst = 5000
	}
	if c.PushRatePerIP <= 0 {
		c.PushRatePerIP = 500
	}
	if c.PushBurstPerIP <= 0 {
		c.PushBurstPerIP = 5000
	}
	if c.StrangerPushRate <= 0 {
		c.StrangerPushRate = 200
		if c.Hub {
			c.StrangerPushRate = 2000 // a server, meeting every field node
		}
	}
	if c.StrangerWorkRate <= 0 {
		c.StrangerWorkRate = 1 << 20
		if c.Hub {
			c.StrangerWorkRate = 8 << 20
		}
	}
	if c.strangerWorkBurst <= 0 {
		c.strangerWorkBurst = 2 * maxSessionWork
	}
	if c.StrangerPushBurst <= 0 {
		c.StrangerPushBurst = int(10 * c.StrangerPushRate)
	}
	if c.StrangerSlotsPerIP <= 0 {
		c.StrangerSlotsPerIP = 1
	}
	if c.BlockFor <= 0 {
		c.BlockFor = 10 * time.Minute
	}
	if c.BlockIPAfter == 0 {
		c.BlockIPAfter = 3
	}
	if c.respondGrace <= 0 {
		c.respondGrace = respondGrace
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Mesh is the IP link: a libp2p host that pushes new envelopes by gossip and
// repairs whatever gossip missed by reconciliation.
type Mesh struct {
	cfg   Config
	st    Store
	host  host.Host
	gater *gater
	log   *slog.Logger
	peers []peer.AddrInfo // static
	hubs  []peer.AddrInfo

	hubLost chan struct{} // a hub disconnected: probe the uplink now

	kick chan struct{} // wakes the reconcile loop for pending peers
	// responders are the slots for sessions other peers run against us.
	responders *slots
	budgets    *budgets
	timeBudget *rate.Limiter // strangers' time queries, all together
	// owed is set when live push may have missed someone: a new envelope
	// found a peer connected but not yet subscribed (that takes a moment
	// after connecting), or GossipSub dropped traffic on a full queue. The
	// reconcile loop then syncs with every peer within a second, at most
	// once per owedInterval, so no peer can cause a storm.
	owed   atomic.Bool
	owedAt time.Time // the last catch-up round; only the reconcile loop uses it
	tracer *gossipTracer

	mu      sync.Mutex
	state   map[peer.ID]*peerState
	pending map[peer.ID]bool // peers to reconcile with soon
	misbeh  int64
	// reconciled and reconcileFailed count sessions (Status).
	reconciled, reconcileFailed int64
	topic                       *pubsub.Topic   // set once Run has joined
	runCtx                      context.Context // Run's context: responder sessions end with it
	uplink                      *uplinkState
}

type peerState struct {
	limiter       *rate.Limiter
	lastReconcile time.Time
	lastStats     SessionStats
	lastErr       string
	received      int // totals over all reconciliation sessions
	sent          int
	misbehaved    int
	failures      int       // initiator sessions failed in a row
	backoffUntil  time.Time // no periodic session before this, after repeated failures
	syncing       bool
}

// New creates the libp2p host and starts listening. Run does the rest.
func New(cfg Config, st Store) (*Mesh, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	responders := maxResponders
	if cfg.Hub {
		responders = hubResponders
	}
	m := &Mesh{cfg: cfg, st: st, log: cfg.Logger, kick: make(chan struct{}, 1),
		responders: newSlots(responders, cfg.StrangerSlotsPerIP), budgets: newBudgets(&cfg), timeBudget: newTimeBudget(),
		state: map[peer.ID]*peerState{}, pending: map[peer.ID]bool{}, hubLost: make(chan struct{}, 1),
		uplink: newUplinkState(cfg.ProbeInterval)}
	m.tracer = newGossipTracer(func() { m.owed.Store(true) }, m.kickPeer)
	var err error
	if m.peers, err = parsePeers("static peer", cfg.Peers); err != nil {
		return nil, err
	}
	if m.hubs, err = parsePeers("hub", cfg.Hubs); err != nil {
		return nil, err
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(cfg.Identity.PrivateKey())
	if err != nil {
		return nil, fmt.Errorf("mesh: identity: %w", err)
	}
	m.gater = newGater(cfg.BlockIPAfter, m.member, m.memberSource)
	listen := cfg.Listen
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(m.gater),
		libp2p.Transport(tcp.NewTCPTransport),
	}
	if cfg.MeshKey != nil {
		opts = append(opts, libp2p.PrivateNetwork(cfg.MeshKey))
		listen = tcpOnly(listen)
		if len(listen) == 0 {
			return nil, errors.New("mesh: a mesh key needs at least one TCP listen address (private meshes cannot use QUIC)")
		}
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	if cfg.Hub {
		// A hub is a public server by definition; libp2p would otherwise
		// wait for AutoNAT to say so before relaying.
		opts = append(opts, libp2p.EnableRelayService(), libp2p.ForceReachabilityPublic())
	}
	if len(m.hubs) > 0 && !cfg.Hub { // a hub is public: it relays, it needs no relay
		// A field node is behind NAT as a rule (a phone tether, a
		// satellite terminal, carrier-grade NAT), and AutoNAT would need
		// a hub to dial back to find out: assume it, and hold a
		// reservation at the hubs from the start. Direct listeners still
		// work for whoever can reach them.
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(m.hubs), libp2p.EnableHolePunching(),
			libp2p.ForceReachabilityPrivate())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("mesh: start libp2p host: %w", err)
	}
	m.host = h
	h.SetStreamHandler(ReconcileProtocol, m.handleReconcile)
	h.SetStreamHandler(TimeProtocol, m.handleTime)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: m.connected, DisconnectedF: m.disconnected})
	return m, nil
}

// parsePeers parses multiaddrs ending in /p2p/<peer id>; what names them in
// errors.
func parsePeers(what string, addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("mesh: %s %q: %w (want a multiaddr ending in /p2p/<peer id>)", what, s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

func tcpOnly(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			out = append(out, a) // let libp2p report it
			continue
		}
		if _, err := m.ValueForProtocol(ma.P_TCP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Host returns the libp2p host.
func (m *Mesh) Host() host.Host { return m.host }

// Addrs returns the node's full multiaddrs, /p2p/ included.
func (m *Mesh) Addrs() []string {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: m.host.ID(), Addrs: m.host.Addrs()})
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// Run runs gossip, discovery, dialling and reconciliation until ctx ends,
// then closes the host.
func (m *Mesh) Run(ctx context.Context) error {
	defer m.host.Close()
	ps, err := pubsub.NewGossipSub(ctx, m.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(msg *pb.Message) string {
			h := sha256.Sum256(msg.Data) // the envelope id: duplicates collapse
			return string(h[:])
		}),
		pubsub.WithMaxMessageSize(message.MaxEnvelope+1024),
		// Bursts (a phone coming back online, a reconciliation) overflow
		// the default queues of 32 and are dropped silently; 256 envelopes
		// is about 1 MiB per peer at most.
		pubsub.WithPeerOutboundQueueSize(gossipQueue),
		pubsub.WithValidateQueueSize(gossipQueue),
		pubsub.WithRawTracer(m.tracer),
	)
	if err != nil {
		return fmt.Errorf("mesh: gossipsub: %w", err)
	}
	if err := ps.RegisterTopicValidator(Topic, m.validate); err != nil {
		return fmt.Errorf("mesh: gossip validator: %w", err)
	}
	topic, err := ps.Join(Topic)
	if err != nil {
		return fmt.Errorf("mesh: join topic: %w", err)
	}
	m.mu.Lock()
	m.topic, m.runCtx = topic, ctx
	m.mu.Unlock()
	sub, err := topic.Subscribe()
	if err != nil {
		return fmt.Errorf("mesh: subscribe: %w", err)
	}
	defer sub.Cancel()

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) {
		// Messages arrive through the validator, which stores them; the
		// subscription only has to be drained.
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	})
	run(func(ctx context.Context) { m.publishLoop(ctx, topic) })
	run(m.reconcileLoop)
	for _, p := range m.peers {
		run(func(ctx context.Context) { m.keepConnected(ctx, p) })
	}
	if len(m.hubs) > 0 {
		run(m.uplinkLoop)
	}
	if m.cfg.MDNS {
		if err := m.startMDNS(ctx, run); err != nil {
			m.log.Warn("mdns discovery unavailable", "err", err)
		}
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// maxPeerStates bounds the per-peer records. Records of disconnected peers
// are kept (a peer must not get a fresh push allowance by reconnecting)
// until there are this many, then dropped.
const maxPeerStates = 1024

func (m *Mesh) peerState(p peer.ID) *peerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.state[p]
	if ps == nil && len(m.state) >= maxPeerStates {
		// Make room by dropping one disconnected peer's record, not all of
		// them: many throwaway peer ids must not reset everyone's allowance.
		for q, st := range m.state {
			if !st.syncing && m.host.Network().Connectedness(q) != network.Connected {
				delete(m.state, q)
				break
			}
		}
	}
	if ps == nil {
		ps = &peerState{limiter: rate.NewLimiter(rate.Limit(m.cfg.PushRate), m.cfg.PushBurst)}
		m.state[p] = ps
	}
	return ps
}

// topicPeers returns how many peers share the gossip topic.
func (m *Mesh) topicPeers() int {
	m.mu.Lock()
	t := m.topic
	m.mu.Unlock()
	if t == nil {
		return 0
	}
	return len(t.ListPeers())
}

// PeerStatus describes one connected peer.
type PeerStatus struct {
	ID            string       `json:"id"`
	Addrs         []string     `json:"addrs"`
	LastReconcile time.Time    `json:"last_reconcile,omitzero"`
	LastSession   SessionStats `json:"last_session"`
	LastError     string       `json:"last_error,omitempty"`
	Received      int          `json:"received"` // by reconciliation, all sessions
	Sent          int          `json:"sent"`
	Misbehaved    int          `json:"misbehaved,omitempty"`
}

// Status is the mesh part of the node status.
type Status struct {
	PeerID      string       `json:"peer_id"`
	Addrs       []string     `json:"addrs"`
	Peers       int          `json:"peers"`
	GossipPeers int          `json:"gossip_peers"`
	PeerList    []PeerStatus `json:"peer_list"`
	Misbehaving int64        `json:"misbehaving"`
	Blocked     int          `json:"blocked"`
	// Reconciliations and ReconcileFailures count the sessions, as
	// initiator and responder, that ended well and that failed, since the
	// node started.
	Reconciliations   int64        `json:"reconciliations"`
	ReconcileFailures int64        `json:"reconcile_failures"`
	Private           bool         `json:"private"`
	Relay             bool         `json:"relay"` // a hub: relays for others
	Uplink            UplinkStatus `json:"uplink"`
}

// Status reports connected peers and their last reconciliation.
func (m *Mesh) Status() Status {
	conns := m.host.Network().Peers()
	s := Status{PeerID: m.host.ID().String(), Addrs: m.Addrs(), Peers: len(conns), GossipPeers: m.tracer.meshPeers(),
		PeerList: []PeerStatus{}, Private: m.cfg.MeshKey != nil, Blocked: m.gater.count(), Relay: m.cfg.Hub,
		Uplink: m.Uplink()}
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Misbehaving = m.misbeh
	s.Reconciliations, s.ReconcileFailures = m.reconciled, m.reconcileFailed
	for _, p := range conns {
		ps := PeerStatus{ID: p.String(), Addrs: []string{}}
		for _, c := range m.host.Network().ConnsToPeer(p) {
			ps.Addrs = append(ps.Addrs, c.RemoteMultiaddr().String())
		}
		if st := m.state[p]; st != nil {
			ps.LastReconcile, ps.LastSession, ps.LastError, ps.Misbehaved = st.lastReconcile, st.lastStats, st.lastErr, st.misbehaved
			ps.Received, ps.Sent = st.received, st.sent
		}
		s.PeerList = append(s.PeerList, ps)
	}
	return s
}
