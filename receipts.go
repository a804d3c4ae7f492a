package lifeline

import (
	"context"
	"errors"

	"lifeline/message"
	"lifeline/store"
)

const (
	// receiptBuffer is how far the receipt loop may fall behind the store.
	receiptBuffer = 256
	// catchUpDMs and catchUpAuthors bound the scan for unacknowledged
	// direct messages, so it costs a few bounded List calls, not a walk of
	// the store.
	catchUpDMs     = store.MaxLimit
	catchUpAuthors = 64
	// maxAcked bounds the memory of messages already acknowledged.
	maxAcked = 4096
	// maxKnown bounds the memory of correspondents found (see related).
	// Forgetting them costs a store lookup each, not a receipt.
	maxKnown = 4096
	// relationScan bounds the messages addressed to an author that one
	// lookup reads for a direct message of this node's (see related).
	relationScan = 256
	// relationLookups bounds the store lookups of one batch: a batch
	// from many fresh keys costs this many bounded reads, not one per key.
	// An author not looked up gets no receipt for that batch.
	relationLookups = 32
)

// receipts acknowledges the direct messages stored here that are addressed
// to this node, from its correspondents. The receipt is a signed message
// like any other: it travels back through store-and-forward, and the
// sender's store marks its message delivered when the receipt arrives. So
// "delivered" means this node really has it.
//
// A receipt tells its recipient that the node is alive, and its created
// time is the node's clock: signed for anyone, it would be an oracle for an
// adversary who sends direct messages from throwaway keys to learn when a
// node is reachable. So the node acknowledges only
// authors it has a relationship with (related): keys it has itself written
// a direct message to, and keys the operator vouched for. A stranger's
// message is still stored, shown and carried; its author sees it leave
// their node, not delivered, until the operator writes back.
//
// Messages that arrive together are acknowledged together, one receipt per
// author for up to MaxReceiptIDs messages, to save airtime on slow links.
//
// Live messages come from a store subscription. At start (Run calls
// catchUp before the node is ready) and whenever the subscription lags, a
// catch-up scan finds recent direct messages with no
// receipt from this node yet (the node may have stopped between storing one
// and acknowledging it, or the subscription dropped some).
type receipts struct {
	n   *Node
	st  *store.Store
	id  *message.Identity
	me  message.PublicKey
	sub *store.Subscription
	// acked remembers what was acknowledged lately, so a message seen by
	// both the catch-up scan and the subscription gets one receipt.
	acked map[message.ID]bool
	// vouched, when not nil, reports the keys the operator vouched for
	// (members): they get receipts without a message from this node
	// first. Nil vouches for nobody.
	vouched func(message.PublicKey) bool
	// known remembers correspondents found, by a store lookup or by an
	// own direct message going past, so the lookup is not repeated for
	// every message. Allocated on first use; at most maxKnown keys.
	known map[message.PublicKey]bool
}

func (r *receipts) run(ctx context.Context) {
	defer func() { r.sub.Close() }()
	for {
		var batch []*store.Record
		select {
		case <-ctx.Done():
			return
		case rec, ok := <-r.sub.C:
			if !ok {
				if err := r.sub.Err(); errors.Is(err, store.ErrLagged) && ctx.Err() == nil {
					r.n.log.Warn("receipts fell behind the store; catching up", "err", err)
					r.sub = r.st.Subscribe(receiptBuffer)
					r.catchUp(ctx)
					continue
				}
				return // the store is closing
			}
			batch = append(batch, rec)
		}
		// Take what else is already waiting, without blocking.
	drain:
		for len(batch) < receiptBuffer {
			select {
			case rec, ok := <-r.sub.C:
				if !ok {
					break drain // handled on the next round
				}
				batch = append(batch, rec)
			default:
				break drain
			}
		}
		envs := make([]*message.Envelope, len(batch))
		for i, rec := range batch {
			envs[i] = rec.Envelope
		}
		r.acknowledge(ctx, envs)
	}
}

// acknowledge sends receipts for the direct messages among envs that are
// addressed to this node and not yet acknowledged.
func (r *receipts) acknowledge(ctx context.Context, envs []*message.Envelope) {
	byAuthor := make(map[message.PublicKey][]message.ID)
	var authors []message.PublicKey // in arrival order, for determinism
	for _, e := range envs {
		if e.Kind == message.KindDirect && e.Author == r.me {
			// This node wrote to them: a reply gets its receipt without a
			// lookup, even in the same batch.
			r.learn(e.Recipient)
		}
	}
	for _, e := range envs {
		if e.Kind != message.KindDirect || e.Recipient != r.me || e.Author == r.me || r.acked[e.ID()] {
			continue
		}
		if _, ok := byAuthor[e.Author]; !ok {
			authors = append(authors, e.Author)
		}
		byAuthor[e.Author] = append(byAuthor[e.Author], e.ID())
	}
	lookups := relationLookups
	for _, a := range authors {
		if !r.related(a, &lookups) {
			r.n.log.Debug("no receipt: the author is not a correspondent of this node", "author", a, "messages", len(byAuthor[a]))
			continue
		}
		ids := byAuthor[a]
		for len(ids) > 0 {
			k := min(len(ids), message.MaxReceiptIDs)
			if r.send(ctx, a, ids[:k]) {
				if len(r.acked)+k > maxAcked {
					clear(r.acked) // forgetting only risks a duplicate receipt
				}
				for _, id := range ids[:k] {
					r.acked[id] = true
				}
			}
			ids = ids[k:]
		}
	}
}

// catchUp acknowledges the newest direct messages to this node that no
// receipt of this node's covers yet.
func (r *receipts) catchUp(ctx context.Context) {
	me := r.me
	dms, err := r.st.List(store.Query{Recipient: &me, Limit: catchUpDMs})
	if err != nil {
		r.n.log.Warn("receipt catch-up: listing direct messages failed", "err", err)
		return
	}
	var pending []*message.Envelope
	checked := make(map[message.PublicKey]map[message.ID]bool) // author → what we acknowledged
	for i := len(dms) - 1; i >= 0; i-- {                       // newest first: they matter most
		e := dms[i].Envelope
		if e.Kind != message.KindDirect || e.Author == me || r.acked[e.ID()] {
			continue
		}
		done, ok := checked[e.Author]
		if !ok {
			if len(checked) >= catchUpAuthors {
				continue
			}
			var wrote bool
			done, wrote = r.receiptsTo(e.Author)
			if !wrote && (r.vouched == nil || !r.vouched(e.Author)) {
				done = nil // a stranger: nothing to acknowledge
			}
			checked[e.Author] = done
		}
		if done != nil && !done[e.ID()] {
			pending = append(pending, e)
		}
	}
	if len(pending) > 0 {
		r.n.log.Info("acknowledging direct messages that had no receipt", "count", len(pending))
		r.acknowledge(ctx, pending)
	}
}

// receiptsTo returns the ids this node's stored receipts to author
// acknowledge, among the newest catchUpDMs messages addressed to author,
// and whether a direct message of this node's to author is among them
// (then author is remembered as a correspondent).
func (r *receipts) receiptsTo(author message.PublicKey) (map[message.ID]bool, bool) {
	done := make(map[message.ID]bool)
	recs, err := r.st.List(store.Query{Recipient: &author, Limit: catchUpDMs})
	if err != nil {
		r.n.log.Warn("receipt catch-up: listing receipts failed", "err", err)
		return done, false
	}
	wrote := false
	for _, rec := range recs {
		e := rec.Envelope
		if e.Author != r.me {
			continue
		}
		switch e.Kind {
		case message.KindReceipt:
			for _, id := range e.ReceiptIDs() {
				done[id] = true
			}
		case message.KindDirect:
			wrote = true
		}
	}
	if wrote {
		r.learn(author)
	}
	return done, wrote
}

// related reports whether author may have receipts from this node: the
// operator vouched for them, or this node has written them a direct
// message (remembered, or found among the newest relationScan messages
// addressed to them, which costs one of *lookups). Others are strangers.
//
// The lookup reads what is stored for author, and anyone can store direct
// messages addressed to anyone here: relationScan of them can hide an old
// message of this node's, once the node has forgotten (a restart, or
// maxKnown others since), until it writes to them again. That costs the correspondent a receipt, never a stranger a
// receipt they should not have.
func (r *receipts) related(author message.PublicKey, lookups *int) bool {
	if r.vouched != nil && r.vouched(author) || r.known[author] {
		return true
	}
	if *lookups <= 0 {
		return false
	}
	*lookups--
	recs, err := r.st.List(store.Query{Recipient: &author, Limit: relationScan})
	if err != nil {
		r.n.log.Warn("receipts: looking for messages to the author failed", "author", author, "err", err)
		return false
	}
	for _, rec := range recs {
		if e := rec.Envelope; e.Kind == message.KindDirect && e.Author == r.me {
			r.learn(author)
			return true
		}
	}
	return false
}

// learn remembers k as a correspondent.
func (r *receipts) learn(k message.PublicKey) {
	if r.known == nil || len(r.known) >= maxKnown && !r.known[k] {
		r.known = make(map[message.PublicKey]bool) // forgetting costs only lookups
	}
	r.known[k] = true
}

// send signs and stores one receipt; it reports success.
func (r *receipts) send(ctx context.Context, author message.PublicKey, ids []message.ID) bool {
	rc, err := r.id.NewReceipt(author, ids, r.n.clock.Stamp())
	if err != nil {
		r.n.log.Error("signing a receipt failed", "to", author, "err", err)
		return false
	}
	// Put, not PutOwn: a receipt is not a message a person wrote, and must
	// stay evictable (the store keeps receipts in the lowest eviction class
	// anyway); otherwise strangers' direct messages could make this node
	// fill its quota with receipts nothing can evict.
	if _, err := r.st.Put(ctx, rc.Raw()); err != nil {
		if ctx.Err() == nil {
			r.n.log.Error("storing a receipt failed", "to", author, "err", err)
		}
		return false
	}
	r.n.log.Debug("receipt sent", "to", author, "messages", len(ids), "id", rc.ID())
	return true
}
