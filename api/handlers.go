package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"lifeline/mesh"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/store"
)

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Store.Stats()
	now := s.now()
	var ms *mesh.Status
	if s.opts.Mesh != nil && s.trusted(r) {
		// Strangers on a public hub do not learn who is connected from
		// where: in a shutdown that is who is online, and their address.
		m := s.opts.Mesh()
		ms = &m
	}
	var radios []radio.StationStatus
	if s.opts.Radio != nil && s.trusted(r) {
		radios = s.opts.Radio()
	}
	var kit *KitStatus
	if s.opts.Kit != nil {
		k := s.opts.Kit()
		kit = &k
	}
	var fromPage []string
	if s.opts.Settings != nil && s.trusted(r) {
		fromPage = s.opts.Settings.Settings().FromPage
	}
	writeJSON(w, http.StatusOK, Status{
		Name:           s.opts.Name,
		Settings:       fromPage,
		Kit:            kit,
		Status:         ms,
		Radio:          radios,
		LastSeq:        st.LastSeq,
		DefaultChannel: s.opts.DefaultChannel,
		Operator:       s.trusted(r),
		Summary:        s.summary(),
		ID:             s.opts.Identity.Public().String(),
		Version:        s.opts.Version,
		Messages:       st.Messages,
		Bytes:          st.Bytes,
		Quota:          st.Quota,
		Evicted:        st.Evicted,
		Expired:        st.Expired,
		UptimeS:        int64(s.opts.Now().Sub(s.start) / time.Second),
		Time:           now.UnixMilli(),
		Clock:          newClockStatus(s.opts.Clock.Status()),
	})
}

// summary is the node's links in a few words, for everyone.
func (s *Server) summary() Summary {
	sum := Summary{Uplink: "none", Radios: []string{}}
	if s.opts.Mesh != nil {
		m := s.opts.Mesh()
		sum.Peers = m.Peers
		if u := m.Uplink; u.Hubs > 0 {
			sum.Uplink = u.State
			if !u.Since.IsZero() {
				sum.UplinkSince = u.Since.UnixMilli()
			}
			if !u.LastUp.IsZero() {
				sum.LastUp = u.LastUp.UnixMilli()
			}
		}
	}
	if s.opts.Radio != nil {
		for _, r := range s.opts.Radio() {
			sum.Radios = append(sum.Radios, r.State)
		}
	}
	return sum
}

// postMessage signs a message as the node and stores it.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	var req SendRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	env, name, status, err := s.sign(req)
	if err != nil {
		writeError(w, status, "%v", err)
		return
	}
	res, err := s.opts.Store.PutOwn(r.Context(), env.Raw())
	if err != nil {
		s.putError(w, r, err)
		return
	}
	// Only now, and only here, is a name remembered: the node signed and
	// stored a message on the channel. See channelNames.
	if name != "" {
		s.names.add(env.Channel, name)
	}
	w.Header().Set("Location", "/api/v1/messages/"+res.ID.String())
	writeJSON(w, http.StatusCreated, SendResponse{ID: res.ID.String()})
}

// sign turns a send request into a signed envelope, with the normalised
// channel name for channel messages, or says why it cannot, with the status
// to answer. Nothing is stored or remembered here.
func (s *Server) sign(req SendRequest) (_ *message.Envelope, channel string, status int, _ error) {
	bad := http.StatusBadRequest
	switch {
	case req.Channel != "" && req.To != "":
		return nil, "", bad, errors.New("give either channel or to, not both")
	case req.Channel == "" && req.To == "":
		return nil, "", bad, errors.New("give a channel (\"channel\") or a recipient key (\"to\")")
	case req.Text == "":
		return nil, "", bad, errors.New("text is empty")
	}
	prio := message.PriorityNormal
	if req.Priority != "" {
		p, err := message.ParsePriority(req.Priority)
		if err != nil {
			return nil, "", bad, fmt.Errorf("priority: %w", err)
		}
		prio = p
	}
	var ttl time.Duration
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 60 || req.TTLSeconds > int64(message.MaxTTL/time.Second) {
			return nil, "", bad, fmt.Errorf("ttl_s is %d: it must be 0 (the default, %s) or from 60 to %d seconds",
				req.TTLSeconds, message.DefaultTTL, int64(message.MaxTTL/time.Second))
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	now := s.stamp()
	var (
		env  *message.Envelope
		name string
		err  error
	)
	if req.Channel != "" {
		var nerr error
		name, nerr = message.NormaliseChannelName(req.Channel)
		if nerr != nil {
			return nil, "", bad, fmt.Errorf("channel: %w", nerr)
		}
		if len(req.Text) > message.MaxBody {
			return nil, "", bad, fmt.Errorf("text is %d bytes, the limit is %d", len(req.Text), message.MaxBody)
		}
		switch prio {
		case message.PriorityNormal:
			env, err = s.opts.Identity.NewText(name, req.Text, now, ttl)
		case message.PriorityAlert:
			env, err = s.opts.Identity.NewAlert(name, req.Text, now, ttl)
		default:
			return nil, "", bad, fmt.Errorf("priority %q: channel messages are \"normal\" or \"alert\"", req.Priority)
		}
	} else {
		to, kerr := message.ParsePublicKey(req.To)
		if kerr != nil {
			return nil, "", bad, fmt.Errorf("to: %w", kerr)
		}
		env, err = s.opts.Identity.NewDirect(s.opts.Rand, to, req.Text, prio, now, ttl)
	}
	if err != nil {
		if messageError(err) {
			return nil, "", bad, err
		}
		return nil, "", http.StatusInternalServerError, fmt.Errorf("signing failed: %w", err)
	}
	return env, name, 0, nil
}

// postEnvelope stores a pre-signed envelope, from a browser that signs for
// itself or from a tool that carries envelopes between nodes.
func (s *Server) postEnvelope(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r, "application/octet-stream", message.MaxEnvelope)
	if !ok {
		return
	}
	if !s.allowStrangers(r, raw) {
		s.busy(w)
		return
	}
	res, err := s.opts.Store.Put(r.Context(), raw)
	if err != nil {
		s.putError(w, r, err)
		return
	}
	status := http.StatusOK
	if res.New {
		status = http.StatusCreated
	}
	writeJSON(w, status, EnvelopeResponse{ID: res.ID.String(), New: res.New})
}

// putError answers a failed store write: 422 with the verifier's words when
// the envelope was at fault, 507 when it does not fit in the quota or on
// the disk, 503
// while the node shuts down, 500 otherwise.
func (s *Server) putError(w http.ResponseWriter, r *http.Request, err error) {
	if messageError(err) {
		writeError(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	if r.Context().Err() != nil {
		// The client left; nobody is listening for an answer.
		return
	}
	switch {
	case errors.Is(err, store.ErrQuota), errors.Is(err, store.ErrNoSpace):
		writeError(w, http.StatusInsufficientStorage, "%v", err)
	case errors.Is(err, store.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "the node is shutting down")
	default:
		s.internalError(w, r, "storing the message", err)
	}
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.record(w, r)
	if !ok {
		return
	}
	v, err := queryValues(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	raw, err := rawParam(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, s.message(rec, nil, s.trusted(r), raw))
}

// getEnvelope returns the exact signed bytes of a message, so they can be
// carried to another node and verified there.
func (s *Server) getEnvelope(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.record(w, r)
	if !ok {
		return
	}
	raw := rec.Envelope.Raw()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

func (s *Server) record(w http.ResponseWriter, r *http.Request) (*store.Record, bool) {
	id, err := message.ParseID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return nil, false
	}
	rec, err := s.opts.Store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no message %s on this node", id)
		return nil, false
	}
	if err != nil {
		s.internalError(w, r, "reading the message", err)
		return nil, false
	}
	return rec, true
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	q, err := s.parseRequestQuery(r, true)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var recs []*store.Record
	if q.arrival {
		p, err := s.opts.Store.ListAfter(q.Query)
		if err != nil {
			s.internalError(w, r, "listing messages", err)
			return
		}
		if q.After > p.Last {
			// Seqs are per store file: this position came from another
			// one (the node's store was replaced). Saying so beats an
			// empty answer until the new file catches up.
			writeError(w, http.StatusConflict,
				"after is %d, but this node's newest message is %d: its store was replaced since; start again with after=0", q.After, p.Last)
			return
		}
		w.Header().Set(HeaderNextAfter, strconv.FormatUint(p.Next, 10))
		w.Header().Set(HeaderMore, strconv.FormatBool(p.More))
		recs = p.Records
	} else {
		recs, err = s.opts.Store.List(q.Query)
		if err != nil {
			s.internalError(w, r, "listing messages", err)
			return
		}
	}
	out := make([]Message, 0, len(recs))
	for _, rec := range recs {
		out = append(out, s.message(rec, q.named, s.trusted(r), q.raw))
	}
	writeJSON(w, http.StatusOK, out)
}

// Headers of a listing in arrival order (GET /api/v1/messages?after=).
const (
	// HeaderNextAfter is the after to ask for next: store.Page.Next. It can
	// be past the last message of the answer, when the node skipped
	// messages of other destinations.
	HeaderNextAfter = "Lifeline-Next-After"
	// HeaderMore is "true" when more messages may be waiting right now
	// (the answer stopped at limit or at the node's scan bound), else
	// "false": ask again later, with HeaderNextAfter.
	HeaderMore = "Lifeline-More"
)

// query is a parsed filter: the store's query, and the channel name the
// caller gave, if it filtered by name.
type query struct {
	store.Query
	// arrival: the request gave after, so it pages in arrival order,
	// from Query.After (which may be 0: from the first message).
	arrival bool
	// named is the caller's channel name for q.Channel, or nil. It names
	// that channel in this request's answer only: it is not remembered,
	// since anyone may ask about any name (see channelNames).
	named *channelName
	// raw: the answer carries each message's envelope (Message.Envelope).
	raw bool
}

// rawParam reads raw=1 (or raw=0).
func rawParam(v url.Values) (bool, error) {
	switch v.Get("raw") {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("raw is %q: want 1 (with envelopes) or 0", v.Get("raw"))
}

// parseQuery reads the filter of GET /api/v1/messages and /api/v1/events:
// at most one of channel, channel_id and to; after; raw; and for listings
// since or before (with before_id), and limit. Unknown parameters are
// refused, so a typo is not silently ignored.
func (s *Server) parseQuery(v url.Values, listing bool) (query, error) {
	var q query
	known := map[string]bool{"channel": true, "channel_id": true, "to": true, "after": true, "raw": true}
	if listing {
		known["since"], known["limit"], known["before"], known["before_id"] = true, true, true, true
	}
	for k, vs := range v {
		if !known[k] {
			return q, fmt.Errorf("unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return q, fmt.Errorf("query parameter %q given %d times", k, len(vs))
		}
	}
	n := 0
	if name := v.Get("channel"); v.Has("channel") {
		norm, err := message.NormaliseChannelName(name)
		if err != nil {
			return q, fmt.Errorf("channel: %w", err)
		}
		c, err := message.Channel(norm)
		if err != nil {
			return q, fmt.Errorf("channel: %w", err)
		}
		q.named = &channelName{id: c, name: norm}
		q.Channel = &c
		n++
	}
	if v.Has("channel_id") {
		c, err := message.ParseChannelID(v.Get("channel_id"))
		if err != nil {
			return q, err
		}
		q.Channel = &c
		n++
	}
	if v.Has("to") {
		k, err := message.ParsePublicKey(v.Get("to"))
		if err != nil {
			return q, fmt.Errorf("to: %w", err)
		}
		q.Recipient = &k
		n++
	}
	if n > 1 {
		return q, errors.New("give at most one of channel, channel_id and to")
	}
	raw, err := rawParam(v)
	if err != nil {
		return q, err
	}
	q.raw = raw
	if v.Has("after") {
		after, err := parseSeq(v.Get("after"))
		if err != nil {
			return q, fmt.Errorf("after is %q: want a message's seq, 0 or more", v.Get("after"))
		}
		q.After, q.arrival = after, true
	}
	if !listing {
		return q, nil
	}
	if v.Has("since") && q.arrival {
		return q, errors.New("give since (created order) or after (arrival order), not both")
	}
	if v.Has("since") {
		since, err := strconv.ParseInt(v.Get("since"), 10, 64)
		if err != nil || since < 0 {
			return q, fmt.Errorf("since is %q: want unix milliseconds, 0 or more", v.Get("since"))
		}
		q.Since = since
	}
	if v.Has("before_id") && !v.Has("before") {
		return q, errors.New("before_id goes with before")
	}
	if v.Has("before") {
		if v.Has("since") || q.arrival {
			return q, errors.New("give one of since, before and after")
		}
		before, err := strconv.ParseInt(v.Get("before"), 10, 64)
		if err != nil || before < 1 {
			return q, fmt.Errorf("before is %q: want unix milliseconds, 1 or more", v.Get("before"))
		}
		q.Before = before
		if v.Has("before_id") {
			id, err := message.ParseID(v.Get("before_id"))
			if err != nil {
				return q, fmt.Errorf("before_id: %w", err)
			}
			q.BeforeID = id
		}
	}
	q.Limit, err = parseLimit(v, DefaultLimit)
	return q, err
}

// parseLimit reads a listing's limit: 1 to MaxLimit, def if absent.
func parseLimit(v url.Values, def int) (int, error) {
	if !v.Has("limit") {
		return def, nil
	}
	l, err := strconv.Atoi(v.Get("limit"))
	if err != nil || l < 1 || l > MaxLimit {
		return def, fmt.Errorf("limit is %q: want 1 to %d", v.Get("limit"), MaxLimit)
	}
	return l, nil
}

// queryValues parses the request's query strictly. url.URL.Query drops a
// pair it cannot parse ("channel=x;y": a semicolon) without a word, and a
// listing would then answer for every channel instead of the one asked.
func queryValues(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query string: %v", err)
	}
	return v, nil
}

// parseRequestQuery is parseQuery of the request's own query.
func (s *Server) parseRequestQuery(r *http.Request, listing bool) (query, error) {
	v, err := queryValues(r)
	if err != nil {
		return query{}, err
	}
	return s.parseQuery(v, listing)
}

// parseSeq reads a decimal seq: digits only (no sign, no spaces).
func parseSeq(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a decimal number")
	}
	return strconv.ParseUint(s, 10, 64)
}

// decodeJSON reads one JSON object of at most maxJSONBody bytes into v,
// refusing unknown fields and trailing data. On failure it has answered
// and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r, "application/json", maxJSONBody)
	if !ok {
		return false
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD, and the node
	// would sign text the sender never wrote.
	if !utf8.Valid(body) {
		writeError(w, http.StatusBadRequest, "request body is not valid UTF-8")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	if errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "request body is empty: send a JSON object")
		return false
	}
	writeError(w, http.StatusBadRequest, "invalid JSON: %v", err)
	return false
}

// readBody reads a request body of the given media type and at most max
// bytes. On failure it has answered: 415 for another type, 413 for a body
// over the limit, 408 for one that came too slowly (the server's read
// timeout), 400 for one cut short. The answer never carries the socket
// error's text: it names addresses, which are not the client's business.
func readBody(w http.ResponseWriter, r *http.Request, mediaType string, max int64) ([]byte, bool) {
	if !contentType(w, r, mediaType) {
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err == nil {
		return b, true
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes", max)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		writeError(w, http.StatusRequestTimeout, "the request body came too slowly: the node stopped waiting for it")
	default:
		writeError(w, http.StatusBadRequest, "the request body was cut short")
	}
	return nil, false
}

// contentType insists on the given media type. Besides telling clients what
// to send, it stops cross-site request forgery: the API has no login (it is
// the node of whoever holds the phone), and a web page the phone visits can
// make the browser POST here, but only with a form or "simple" type
// (text/plain, form encodings, or none), never application/json or
// application/octet-stream without a CORS preflight, which this API does
// not answer.
func contentType(w http.ResponseWriter, r *http.Request, want string) bool {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == want {
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, "Content-Type is %q: send %s", ct, want)
	return false
}
