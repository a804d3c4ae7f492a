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
	// maxResponders bounds concurrent sessions other peers run against us.
	maxResponders = 4
)

// reconcileLoop runs one initiator session at a time: with peers kicked by
// new connections, and with every peer not reconciled for an interval.
func (m *Mesh) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.ReconcileInterval / 4)
	defer tick.Stop()
	catchUp := time.NewTicker(time.Second)
	defer catchUp.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-m.kick:
			m.syncPeer(ctx, p)
		case <-catchUp.C:
			if m.unsent.Swap(false) {
				for _, p := range m.host.Network().Peers() {
					m.syncPeer(ctx, p)
				}
			}
		case <-tick.C:
			for _, p := range m.host.Network().Peers() {
				st := m.peerState(p)
				m.mu.Lock()
				due := time.Since(st.lastReconcile) >= m.cfg.ReconcileInterval
				m.mu.Unlock()
				if due && ctx.Err() == nil {
					m.syncPeer(ctx, p)
				}
			}
		}
	}
}

func (m *Mesh) syncPeer(ctx context.Context, p peer.ID) {
	stats, err := m.ReconcileWith(ctx, p)
	if err != nil && ctx.Err() == nil {
		m.log.Debug("reconciliation failed", "peer", p, "err", err)
		return
	}
	if stats.Received > 0 || stats.Sent > 0 {
		m.log.Info("reconciled", "peer", p, "received", stats.Received, "sent", stats.Sent, "rounds", stats.Rounds, "bytes_in", stats.BytesIn, "bytes_out", stats.BytesOut)
	}
}

// ReconcileWith runs one session with p as the initiator.
func (m *Mesh) ReconcileWith(ctx context.Context, p peer.ID) (SessionStats, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, p, ReconcileProtocol)
	if err != nil {
		return SessionStats{}, fmt.Errorf("open reconcile stream to %s: %w", p, err)
	}
	return m.runSession(ctx, p, s, Initiate)
}

func (m *Mesh) handleReconcile(s network.Stream) {
	p := s.Conn().RemotePeer()
	m.mu.Lock()
	busy := 0
	for _, st := range m.state {
		if st.syncing {
			busy++
		}
	}
	m.mu.Unlock()
	if busy >= maxResponders {
		s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	if _, err := m.runSession(ctx, p, s, Respond); err != nil {
		m.log.Debug("reconciliation as responder failed", "peer", p, "err", err)
	}
}

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
	} else {
		st.lastErr = err.Error()
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
