package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"lifeline/message"
	"lifeline/store"
)

// MaxStreamsPerClient bounds the event streams one remote address (an
// IPv6 /64) that is not the operator may hold open at once. A phone needs
// one; a few allow for a second tab and a reconnection racing the old
// stream's end.
const MaxStreamsPerClient = 4

// streamCounts counts open event streams by client key.
type streamCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *streamCounts) take(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= MaxStreamsPerClient {
		return false
	}
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	return true
}

func (c *streamCounts) give(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key) // the map holds open streams only: bounded by MaxEventStreams
	}
}

// eventWriteTimeout bounds each write to an event stream, so a client that
// stops reading (a phone that left the Wi-Fi) cannot pin a goroutine and a
// subscription forever.
const eventWriteTimeout = 30 * time.Second

// events streams messages as server-sent events:
//
//	event: message
//	id: <the message's seq>
//	data: <the Message JSON>
//
// with a comment line every Heartbeat.
//
// A client that gives a position, the Last-Event-ID header (which
// EventSource sends by itself when it reconnects) or else ?after=SEQ,
// first gets every stored matching message with a greater seq, then live
// ones. Without a position the stream starts at the store's newest seq,
// which it sends as a bare "id: SEQ" line, so that even a client that has
// seen no message yet resumes from there. Either way there is no gap and
// no duplicate: the stream subscribes first, then reads the backlog from
// the store page by page, then passes on only live records with a seq
// above the position the backlog reached (see resume).
//
// When the stream falls further behind the store than EventBuffer messages
// it sends "event: lagged" and ends: the client reconnects with its last
// event id and misses nothing. It ends quietly when the client leaves or
// the server shuts down.
//
// At most MaxEventStreams streams are open at once: each holds a goroutine
// and a store subscription, and any client on the node's Wi-Fi may ask.
// Beyond that the answer is 503 with Retry-After.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q, err := s.parseRequestQuery(r, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	// Last-Event-ID wins over ?after=: EventSource keeps the URL it was
	// opened with and adds the header on every reconnection. A header
	// that is not a seq (an id from before seqs existed, when ids were
	// message ids) is ignored rather than refused: the browser, not the
	// page, sends it, and would retry in vain.
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if seq, err := parseSeq(strings.TrimSpace(id)); err == nil {
			q.After, q.arrival = seq, true
		}
	}
	// One address (one phone, or one attacker) holds at most a few of
	// the node's streams, so it cannot take them all from the others.
	if !s.trusted(r) {
		key := clientKey(r)
		if !s.perClient.take(key) {
			w.Header().Set("Retry-After", eventsRetryAfter)
			writeError(w, http.StatusTooManyRequests,
				"%s already has %d event streams open here, the most one address may: close one", remoteIP(r), MaxStreamsPerClient)
			return
		}
		defer s.perClient.give(key)
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
	// Subscribe before reading the backlog and before answering, so that
	// everything stored after the backlog's read reaches the stream.
	sub := s.opts.Store.Subscribe(s.opts.EventBuffer)
	defer sub.Close()
	if !q.arrival {
		// From now. LastSeq may trail a commit that just happened, never
		// lead one: at worst the backlog holds a message or two stored a
		// moment before the stream opened.
		q.After = s.opts.Store.Stats().LastSeq
	}

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
	// sent is the client's last event id, if it has one (sentAny).
	sent, sentAny := q.After, q.arrival
	// event sends one message with its seq as the event id.
	event := func(rec *store.Record) bool {
		sent, sentAny = rec.Seq, true
		b, err := json.Marshal(s.message(rec, q.named, s.trusted(r), q.raw))
		if err != nil {
			s.opts.Logger.Error("api: encode event", "err", err)
			return false
		}
		return send("event: message\nid: " + strconv.FormatUint(rec.Seq, 10) + "\ndata: " + string(b) + "\n\n")
	}
	pos, ok := s.resume(r, q, event)
	if !ok {
		return
	}
	if !sentAny || pos != sent {
		// A bare id moves the client's last event id to where the stream
		// is, past messages of other destinations: a reconnection then
		// starts there. It dispatches no event.
		if !send("id: " + strconv.FormatUint(pos, 10) + "\n\n") {
			return
		}
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
					b, _ := json.Marshal(ErrorBody{Error: "this stream fell behind; reconnect with the last event id (Last-Event-ID) to get what was missed"})
					send("event: lagged\ndata: " + string(b) + "\n\n")
				}
				return
			}
			if rec.Seq <= pos {
				continue // in the backlog already
			}
			pos = rec.Seq
			if !matches(q.Query, rec.Envelope) {
				continue
			}
			if !event(rec) {
				return
			}
		}
	}
}

// resume sends the backlog of an event stream: every stored message that
// matches q with a seq above q.After, in arrival order, a page at a time.
// It returns the position reached: every message with a seq up to it has
// been sent or did not match, and the live records the stream passes on
// are those above it. ok is false if the stream must end.
//
// A position above the store's newest seq came from another store file
// (the node's store was replaced): the stream then starts at the newest
// seq, and its bare id line tells the client so.
func (s *Server) resume(r *http.Request, q query, event func(*store.Record) bool) (pos uint64, ok bool) {
	pos = q.After
	sq := q.Query
	sq.Limit = store.MaxLimit
	for {
		sq.After = pos
		p, err := s.opts.Store.ListAfter(sq)
		if err != nil {
			s.opts.Logger.Error("api: event stream backlog", "err", err)
			return pos, false
		}
		if pos > p.Last {
			return p.Last, true
		}
		for _, rec := range p.Records {
			if !event(rec) {
				return pos, false
			}
		}
		pos = p.Next
		if !p.More {
			return pos, true
		}
		select {
		case <-r.Context().Done():
			return pos, false
		case <-s.closing:
			return pos, false
		default:
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
