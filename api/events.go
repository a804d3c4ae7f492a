package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"lifeline/message"
	"lifeline/store"
)

// eventWriteTimeout bounds each write to an event stream, so a client that
// stops reading (a phone that left the Wi-Fi) cannot pin a goroutine and a
// subscription forever.
const eventWriteTimeout = 30 * time.Second

// events streams new messages as server-sent events:
//
//	event: message
//	id: <message id>
//	data: <the Message JSON>
//
// with a comment line every Heartbeat. When the stream falls further behind
// the store than EventBuffer messages it sends "event: lagged" and ends: the
// client reconnects and fills the gap from GET /api/v1/messages. It ends
// quietly when the client leaves or the server shuts down.
//
// At most MaxEventStreams streams are open at once: each holds a goroutine
// and a store subscription, and any client on the node's Wi-Fi may ask.
// Beyond that the answer is 503 with Retry-After.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q, err := s.parseQuery(r.URL.Query(), false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		w.Header().Set("Retry-After", eventsRetryAfter)
		writeError(w, http.StatusServiceUnavailable,
			"this node already serves %d event streams, its limit; close one or try again later", cap(s.streams))
		return
	}
	// Subscribe before answering, so a client that has seen the 200 has
	// not missed anything stored after it.
	sub := s.opts.Store.Subscribe(s.opts.EventBuffer)
	defer sub.Close()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	// send writes one event and flushes it within eventWriteTimeout.
	send := func(chunk string) bool {
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder does not); then the write is simply unbounded.
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := fmt.Fprint(w, chunk); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// retry tells EventSource how soon to reconnect after the stream ends.
	if !send("retry: 2000\n: lifeline events\n\n") {
		return
	}
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-heartbeat.C:
			if !send(": ping\n\n") {
				return
			}
		case rec, ok := <-sub.C:
			if !ok {
				if err := sub.Err(); errors.Is(err, store.ErrLagged) {
					b, _ := json.Marshal(ErrorBody{Error: "this stream fell behind; reconnect and read what was missed from /api/v1/messages"})
					send("event: lagged\ndata: " + string(b) + "\n\n")
				}
				return
			}
			if !matches(q.Query, rec.Envelope) {
				continue
			}
			b, err := json.Marshal(s.message(rec, q.named))
			if err != nil {
				s.opts.Logger.Error("api: encode event", "err", err)
				return
			}
			if !send("event: message\nid: " + rec.Envelope.ID().String() + "\ndata: " + string(b) + "\n\n") {
				return
			}
		}
	}
}

// matches reports whether e passes an event stream's filter.
func matches(q store.Query, e *message.Envelope) bool {
	if q.Channel != nil && (!e.Kind.ToChannel() || e.Channel != *q.Channel) {
		return false
	}
	if q.Recipient != nil && (!e.Kind.ToRecipient() || e.Recipient != *q.Recipient) {
		return false
	}
	return true
}
