package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"lifeline/message"
	"lifeline/store"
)

// errMisbehaved marks envelopes no honest peer sends: bad signatures,
// malformed or oversize bytes, a version byte no version will have. Clock
// disagreements (future, expired) and a full store are not the peer's
// fault.
var errMisbehaved = errors.New("peer sent an invalid envelope")

// maxFutureVersion is the highest envelope version byte taken for a
// version of ours yet to come. Versions count up from message.Version1
// one at a time, and a format change is rare (a wire format lives for
// years on kits nobody updates): sixteen is more than this protocol will
// see. A byte past it, or 0x00, is junk, and junk costs the sender its
// connection like any other malformed envelope.
const maxFutureVersion = 0x0f

// accept verifies and stores an envelope from peer p, within p's push rate
// and, for a stranger, its address's and all strangers' (budget.go). It
// reports whether the envelope was new here.
func (m *Mesh) accept(ctx context.Context, p peer.ID, raw []byte, wait bool) (bool, error) {
	limits := []*rate.Limiter{m.peerState(p).limiter}
	if !m.member(p) {
		limits = append(limits, m.budgets.source(m.sourceOf(p)), m.budgets.strangers)
	}
	if ok, err := charge(ctx, wait, limits...); err != nil {
		return false, fmt.Errorf("push budget: %w", err)
	} else if !ok {
		return false, nil // gossip over the rate is dropped; reconciliation repairs
	}
	res, err := m.st.Put(ctx, raw)
	switch {
	case err == nil:
		return res.New, nil
	case errors.Is(err, message.ErrVersion) && len(raw) > 0 && raw[0] > message.Version1 && raw[0] <= maxFutureVersion,
		errors.Is(err, message.ErrFuture), errors.Is(err, message.ErrExpired), errors.Is(err, store.ErrQuota),
		errors.Is(err, store.ErrNoSpace):
		// Envelopes of a newer version (an upgraded peer), clock
		// disagreements, a full store or a full disk are nobody's
		// misbehaviour.
		m.log.Debug("envelope from peer not stored", "peer", p, "err", err)
		return false, nil
	case errors.Is(err, message.ErrSignature), errors.Is(err, message.ErrMalformed),
		errors.Is(err, message.ErrTooLarge), errors.Is(err, message.ErrTruncated), errors.Is(err, message.ErrVersion):
		return false, fmt.Errorf("%w: %v", errMisbehaved, err)
	default:
		return false, err
	}
}

// validate is the GossipSub validator: only envelopes that verify and are
// new here are accepted, and so forwarded. Storing happens here, before the
// message is forwarded: nothing leaves this node that it has not stored.
func (m *Mesh) validate(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == m.host.ID() {
		return pubsub.ValidationAccept // our own publish: stored before it was sent
	}
	isNew, err := m.accept(ctx, from, msg.Data, false)
	switch {
	case errors.Is(err, errMisbehaved):
		m.misbehaved(from, err)
		return pubsub.ValidationReject
	case err != nil || !isNew:
		return pubsub.ValidationIgnore // duplicates are normal: no penalty
	}
	return pubsub.ValidationAccept
}

// publishLoop gossips every envelope newly stored here, whatever link
// brought it. Envelopes that came by gossip are already known to the
// topic's seen-cache (message id = envelope hash) and go no further.
func (m *Mesh) publishLoop(ctx context.Context, topic *pubsub.Topic) {
	for ctx.Err() == nil {
		sub := m.st.Subscribe(1024)
		m.drain(ctx, topic, sub)
		sub.Close()
		if errors.Is(sub.Err(), store.ErrClosed) {
			return // the store is gone: resubscribing would spin
		}
	}
}

// maxLeftBatch bounds the published messages recorded as left at once.
const maxLeftBatch = 256

func (m *Mesh) drain(ctx context.Context, topic *pubsub.Topic, sub *store.Subscription) {
	// Messages published to a subscribed peer have left this node: GossipSub
	// has written them to that peer's stream. They are recorded in batches,
	// when no more messages wait, so a burst costs one commit.
	var left []message.ID
	flush := func() {
		if len(left) == 0 {
			return
		}
		if err := m.st.MarkLeft(ctx, left); err != nil && ctx.Err() == nil {
			m.log.Debug("recording published messages failed", "err", err)
		}
		left = left[:0]
	}
	defer flush()
	for {
		select {
		case <-ctx.Done():
			return
		case rec, ok := <-sub.C:
			if !ok {
				// Lagged: whatever was missed goes by reconciliation.
				m.log.Debug("gossip publisher lagged behind the store", "err", sub.Err())
				return
			}
			if m.publish(ctx, topic, rec) {
				left = append(left, rec.Envelope.ID())
			}
			if len(sub.C) == 0 || len(left) >= maxLeftBatch {
				flush()
			}
		}
	}
}

// publish gossips one stored message, and reports whether a subscribed
// peer took it.
func (m *Mesh) publish(ctx context.Context, topic *pubsub.Topic, rec *store.Record) bool {
	// A connected peer whose subscription we have not seen yet (it just
	// connected) will not get this by gossip: reconciliation carries it
	// there.
	subscribed := len(topic.ListPeers())
	if subscribed < len(m.host.Network().Peers()) {
		m.owed.Store(true)
	}
	if subscribed == 0 {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := topic.Publish(pctx, rec.Envelope.Raw(), pubsub.WithReadiness(pubsub.MinTopicSize(1)))
	cancel()
	if err != nil && ctx.Err() == nil {
		m.log.Debug("gossip publish failed", "id", rec.Envelope.ID(), "err", err)
	}
	return err == nil
}
