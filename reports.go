package lifeline

import (
	"context"

	"lifeline/mesh"
	"lifeline/message"
	"lifeline/store"
)

// uplinkEvents bounds the uplink changes waiting to be recorded. Changes
// come at most one per probe, so this only fills if the store is stuck.
const uplinkEvents = 64

// recordUplink turns every change of the uplink into a signed report
// (message.KindReport) stored as the node's own message: it travels like
// any message, so the record of a shutdown reaches the hubs when the
// connection returns.
func (n *Node) recordUplink(ctx context.Context, st *store.Store, id *message.Identity, events <-chan mesh.UplinkEvent) {
	for {
		var ev mesh.UplinkEvent
		select {
		case <-ctx.Done():
			return
		case ev = <-events:
		}
		r := message.Report{At: ev.At.UnixMilli(), Peers: ev.Peers, Radio: "none"}
		if !ev.LastUp.IsZero() {
			r.LastUp = ev.LastUp.UnixMilli()
		}
		if ev.Up {
			r.Event, r.Hub = message.EventUplinkRegained, ev.Hub.String()
			if !ev.Since.IsZero() {
				r.Since = ev.Since.UnixMilli()
			}
		} else {
			r.Event = message.EventUplinkLost
		}
		// Signed now, so the envelope's created time is the record's time
		// on this node's clock, like At.
		e, err := id.NewReport(r, n.clock.Stamp())
		if err == nil {
			_, err = st.PutOwn(ctx, e.Raw())
		}
		if err != nil {
			n.log.Warn("uplink change not recorded", "event", r.Event, "err", err)
			continue
		}
		n.log.Info("recorded uplink change", "event", r.Event, "id", e.ID())
	}
}
