package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	sessionTimeout = 5 * time.Minute
	// maxResponders bounds concurrent sessions other peers run against us;
	// hubResponders on a hub, which never starts sessions with field
	// nodes and meets many of them at once when a shutdown ends. A
	// quarter of them are kept for members (slots.go).
	maxResponders = 4
	hubResponders = 64
)

// reconcileLoop runs one initiator session at a time: with peers that asked
// for one (kickPeer), with every peer when live push may have missed
// something, and with every peer not reconciled for an interval.
func (m *Mesh) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.ReconcileInterval / 4)
	defer tick.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-retry.C:
			m.payOwed()
		case <-tick.C:
			for _, p := range m.host.Network().Peers() {
				st := m.peerState(p)
				m.mu.Lock()
				due := time.Since(st.lastReconcile) >= m.cfg.ReconcileInterval && time.Now().After(st.backoffUntil)
				m.mu.Unlock()
				if due {
					m.kickPeer(p)
				}
			}
		}
		m.syncPending(ctx)
	}
}

// owedInterval is the least time between two catch-up rounds: live push
// misses come in bursts, and each reconciliation walks the whole store.
const owedInterval = 10 * time.Second

// payOwed reconciles with every connected peer when live push may have
// missed something, at most once per owedInterval. Every peer, not only the
// one a signal names: the signals say that push is losing messages, not
// every place where it did (a drop upstream of a neighbour is invisible
// here), and a reconciliation that finds nothing costs one round.
func (m *Mesh) payOwed() {
	now := time.Now()
	if now.Sub(m.owedAt) < owedInterval || !m.owed.Swap(false) {
		return
	}
	m.owedAt = now
	for _, p := range m.host.Network().Peers() {
		m.kickPeer(p)
	}
}

// maxRetries is how many failed sessions in a row a kicked peer gets retried
// (each on the next second's tick) before it waits for the periodic round.
// Failures are mostly two sides starting a session at the same moment.
const maxRetries = 3

// syncPending reconciles with every pending peer. A failed session leaves
// its peer pending, to be retried on the next tick.
func (m *Mesh) syncPending(ctx context.Context) {
	m.mu.Lock()
	peers := make([]peer.ID, 0, len(m.pending))
	for p := range m.pending {
		peers = append(peers, p)
	}
	clear(m.pending)
	m.mu.Unlock()
	for _, p := range peers {
		if ctx.Err() != nil {
			return
		}
		if m.host.Network().Connectedness(p) != network.Connected || !m.initiates(p) {
			continue
		}
		err := m.syncPeer(ctx, p)
		st := m.peerState(p)
		m.mu.Lock()
		if err == nil {
			st.failures, st.backoffUntil = 0, time.Time{}
		} else if st.failures++; st.failures <= maxRetries {
			m.pending[p] = true
		} else {
			// A peer whose sessions keep failing (or stalling) is left to
			// the periodic round, less and less often: 1, 2, 4 … 30 min.
			st.backoffUntil = time.Now().Add(min(time.Minute<<min(st.failures-maxRetries-1, 5), 30*time.Minute))
		}
		m.mu.Unlock()
	}
}

func (m *Mesh) syncPeer(ctx context.Context, p peer.ID) error {
	// The peer's time first: a node whose clock is days behind refuses
	// what the session would bring as created in the future.
	if err := m.queryTime(ctx, p); err != nil && ctx.Err() == nil {
		m.log.Debug("time query failed", "peer", p, "err", err)
	}
	stats, err := m.ReconcileWith(ctx, p)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Debug("reconciliation failed", "peer", p, "err", err)
		}
		return err
	}
	if stats.Received > 0 || stats.Sent > 0 {
		m.log.Info("reconciled", "peer", p, "received", stats.Received, "sent", stats.Sent, "rounds", stats.Rounds, "bytes_in", stats.BytesIn, "bytes_out", stats.BytesOut)
	}
	return nil
}

// ReconcileWith runs one session with p as the initiator.
func (m *Mesh) ReconcileWith(ctx context.Context, p peer.ID) (SessionStats, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, p, ReconcileProtocol)
	if err != nil {
		return SessionStats{}, fmt.Errorf("open reconcile stream to %s: %w", p, err)
	}
	var from int64
	if m.isHub(p) && m.cfg.HubWindow > 0 {
		// A hub holds the world's messages: take only the recent ones.
		// (Messages older than the window that only this node holds stay
		// here too: see docs/DECISIONS.md.)
		from = m.cfg.Clock.Now().Add(-m.cfg.HubWindow).UnixMilli()
	}
	if m.cfg.Horizon > 0 {
		from = max(from, m.cfg.Clock.Now().Add(-m.cfg.Horizon).UnixMilli())
	}
	return m.runSession(ctx, p, s, func(ctx context.Context, rw io.ReadWriter, st Store, deliver deliverFunc) (SessionStats, error) {
		return InitiateFrom(ctx, rw, st, deliver, from)
	})
}

// initiates reports whether this node starts reconciliations with p. A
// hub leaves them to field nodes, which choose the window and the pace of
// their uplink (a satellite minute is dear), and starts them only with its
// static peers, the other hubs.
func (m *Mesh) initiates(p peer.ID) bool {
	if !m.cfg.Hub {
		return true
	}
	for _, s := range m.peers {
		if s.ID == p {
			return true
		}
	}
	return false
}

func (m *Mesh) handleReconcile(s network.Stream) {
	p := s.Conn().RemotePeer()
	release, ok := m.responders.take(m.member(p), sourceKey(s.Conn().RemoteMultiaddr()))
	if !ok {
		s.Reset() // busy: the peer retries on its next tick
		return
	}
	defer release()
	m.mu.Lock()
	base := m.runCtx
	m.mu.Unlock()
	if base == nil {
		s.Reset() // Run has not started
		return
	}
	// Strangers' sessions together may cost only so much CPU: each gets
	// at most what their shared work budget holds now, and pays for what
	// it used. (A session of 8,192-range messages against a small store
	// costs about 180 ms a round.)
	work := int64(maxSessionWork)
	member := m.member(p)
	if !member {
		if work = m.budgets.work.take(time.Now(), minStrangerWork, maxStrangerSession); work == 0 {
			s.Reset() // strangers have used their share: retry later
			return
		}
	}
	ctx, cancel := context.WithTimeout(base, sessionTimeout)
	defer cancel()
	stats, err := m.runSession(ctx, p, s, respondWithin(m.cfg.respondGrace, work))
	if !member {
		m.budgets.work.give(time.Now(), work-stats.Work)
	}
	if err != nil {
		m.log.Debug("reconciliation as responder failed", "peer", p, "err", err)
	}
}

// Bounds of a stranger's responder session's work, taken from the
// strangers' budget when it starts. minStrangerWork: less could not
// reconcile anything worth the stream. maxStrangerSession: enough for a
// million items at a 1 % difference (28 Mi, docs/BENCHMARKS.md), and half
// the budget's burst, so that sessions running at once share it.
const (
	minStrangerWork    = 1 << 16
	maxStrangerSession = maxSessionWork / 2
)

type sessionFunc func(context.Context, io.ReadWriter, Store, deliverFunc) (SessionStats, error)

func (m *Mesh) runSession(ctx context.Context, p peer.ID, s network.Stream, run sessionFunc) (SessionStats, error) {
	st := m.peerState(p)
	m.mu.Lock()
	if st.syncing {
		m.mu.Unlock()
		s.Reset()
		return SessionStats{}, fmt.Errorf("already reconciling with %s", p)
	}
	st.syncing = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		st.syncing = false
		m.mu.Unlock()
	}()
	// The stream deadline turns a stalled peer into an error, and ctx
	// cancellation (shutdown) into a closed stream.
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	deliver := func(ctx context.Context, raw []byte) (bool, error) { return m.accept(ctx, p, raw, true) }
	stats, err := run(ctx, s, m.st, deliver)
	m.mu.Lock()
	st.received += stats.Received
	st.sent += stats.Sent
	if err == nil {
		st.lastReconcile, st.lastStats, st.lastErr = time.Now(), stats, ""
		m.reconciled++
	} else {
		st.lastErr = err.Error()
		m.reconcileFailed++
	}
	m.mu.Unlock()
	if errors.Is(err, errMisbehaved) || errors.Is(err, ErrProtocol) {
		m.misbehaved(p, err)
	}
	if err != nil {
		s.Reset()
		return stats, err
	}
	s.Close()
	return stats, nil
}
