package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// node is one API server over a real store in a temporary directory.
type node struct {
	id     *message.Identity
	st     *store.Store
	srv    *api.Server
	http   *httptest.Server
	client *api.Client
}

func newNode(t *testing.T, tweak ...func(*api.Options)) *node {
	t.Helper()
	return newNodeTB(t, tweak...)
}

func newNodeTB(t testing.TB, tweak ...func(*api.Options)) *node {
	t.Helper()
	return newNodeServer(t, nil, tweak...)
}

// newNodeServer is newNode with a hook that sees the Server before it
// serves anything.
func newNodeServer(t testing.TB, before func(*api.Server), tweak ...func(*api.Options)) *node {
	t.Helper()
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "lifeline.db"), store.Options{Own: id.Public(), NoSync: true, Quota: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{Store: st, Identity: id, Version: "test"}
	for _, f := range tweak {
		f(&opts)
	}
	srv, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(srv)
	}
	hs := httptest.NewServer(srv)
	// Cleanups run last-in first-out: end streams, stop HTTP, close store.
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	t.Cleanup(hs.Close)
	t.Cleanup(srv.Close)
	return &node{id: id, st: st, srv: srv, http: hs, client: &api.Client{BaseURL: hs.URL, HTTP: hs.Client()}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// do sends a raw request and returns status, body and headers.
func (n *node) do(t *testing.T, method, path, contentType string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	var hdr map[string]string
	if contentType != "" {
		hdr = map[string]string{"Content-Type": contentType}
	}
	return n.request(t, method, path, "", hdr, body)
}

func TestStatus(t *testing.T) {
	n := newNode(t)
	st, err := n.client.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != n.id.Public().String() || st.Version != "test" || st.Quota != 1<<20 || st.Messages != 0 {
		t.Fatalf("status = %+v", st)
	}
	// The raw JSON carries the documented names.
	code, body, hdr := n.do(t, "GET", "/api/v1/status", "", nil)
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q", code, hdr.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "messages", "bytes", "quota", "uptime_s", "version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status has no %q: %s", k, body)
		}
	}
}

func TestSendAndListChannel(t *testing.T) {
	n := newNode(t)
	ctx := ctxT(t)
	id1, err := n.client.Send(ctx, api.SendRequest{Channel: "#General", Text: "water at the school"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "road blocked", Priority: "alert", TTLSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "other", Text: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	ms, err := n.client.List(ctx, api.ListQuery{Channel: "GENERAL"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d messages, want 2: %+v", len(ms), ms)
	}
	cid, _ := message.Channel("general")
	// Both may carry the same created millisecond, and then they sort by
	// id: match them by id, not position.
	byID := map[string]api.Message{ms[0].ID: ms[0], ms[1].ID: ms[1]}
	for i, want := range []struct{ id, kind, text, prio string }{
		{id1, "text", "water at the school", "normal"},
		{id2, "alert", "road blocked", "alert"},
	} {
		m := byID[want.id]
		if m.ID != want.id || m.Kind != want.kind || m.Text != want.text || m.Priority != want.prio ||
			m.Channel != "general" || m.ChannelID != cid.String() || m.Author != n.id.Public().String() ||
			!m.Own || m.Status != api.StatusStored || m.To != "" {
			t.Errorf("message %d = %+v", i, m)
		}
	}
	if got := byID[id2].Expires - byID[id2].Created; got != time.Hour.Milliseconds() {
		t.Errorf("alert lives %dms, want an hour", got)
	}
	// since pages forward, exclusive; limit keeps the oldest of those.
	after, err := n.client.List(ctx, api.ListQuery{Channel: "general", Since: ms[0].Created - 1, Limit: 1})
	if err != nil || len(after) != 1 || after[0].ID != ms[0].ID {
		t.Fatalf("since/limit: %+v, %v", after, err)
	}
	// A single message by id.
	code, body, _ := n.do(t, "GET", "/api/v1/messages/"+id1, "", nil)
	if code != 200 || !strings.Contains(string(body), "water at the school") {
		t.Fatalf("get by id: %d %s", code, body)
	}
}

// A channel the node was never asked about by name shows as its id.
func TestUnknownChannelName(t *testing.T) {
	n := newNode(t)
	other, _ := message.NewIdentity(rand.Reader)
	e, err := other.NewText("secret-place", "hello", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.client.PostEnvelope(ctxT(t), e.Raw()); err != nil {
		t.Fatal(err)
	}
	ms, err := n.client.List(ctxT(t), api.ListQuery{ChannelID: e.Channel.String()})
	if err != nil || len(ms) != 1 {
		t.Fatalf("%+v %v", ms, err)
	}
	if ms[0].Channel != e.Channel.String() || ms[0].Own || ms[0].Status != api.StatusReceived {
		t.Fatalf("message = %+v", ms[0])
	}
}

func TestDirectMessages(t *testing.T) {
	n := newNode(t)
	ctx := ctxT(t)
	alice, _ := message.NewIdentity(rand.Reader)
	bob, _ := message.NewIdentity(rand.Reader)

	// Alice writes to this node: the node can read it.
	in, err := alice.NewDirect(rand.Reader, n.id.Public(), "meet at noon", message.PriorityHigh, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	id, isNew, err := n.client.PostEnvelope(ctx, in.Raw())
	if err != nil || !isNew || id != in.ID().String() {
		t.Fatalf("post: %v %v %v", id, isNew, err)
	}
	ms, err := n.client.List(ctx, api.ListQuery{To: n.id.Public().String()})
	if err != nil || len(ms) != 1 {
		t.Fatalf("%+v %v", ms, err)
	}
	if m := ms[0]; m.Text != "meet at noon" || m.Kind != "direct" || m.To != n.id.Public().String() ||
		m.Author != alice.Public().String() || m.Priority != "high" || m.Channel != "" {
		t.Fatalf("incoming DM = %+v", m)
	}

	// Alice writes to Bob through this node as a relay: no text here.
	relayed, _ := alice.NewDirect(rand.Reader, bob.Public(), "not for the relay", message.PriorityNormal, time.Now(), 0)
	if _, _, err := n.client.PostEnvelope(ctx, relayed.Raw()); err != nil {
		t.Fatal(err)
	}
	// The node's user writes to Bob: stored sealed, unreadable here too.
	sent, err := n.client.Send(ctx, api.SendRequest{To: bob.Public().String(), Text: "for bob only", Priority: "alert"})
	if err != nil {
		t.Fatal(err)
	}
	ms, err = n.client.List(ctx, api.ListQuery{To: bob.Public().String()})
	if err != nil || len(ms) != 2 {
		t.Fatalf("%+v %v", ms, err)
	}
	for _, m := range ms {
		if m.Text != "" {
			t.Errorf("DM to someone else shows text: %+v", m)
		}
	}
	raw, err := n.client.Envelope(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}
	e, err := message.Verify(raw, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := bob.OpenDirect(e); err != nil || string(pt) != "for bob only" || e.Priority != message.PriorityAlert {
		t.Fatalf("bob opens %q, %v (priority %s)", pt, err, e.Priority)
	}

	// Bob's receipt comes back: the message is delivered.
	sentID, _ := message.ParseID(sent)
	rc, err := bob.NewReceipt(n.id.Public(), []message.ID{sentID}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.client.PostEnvelope(ctx, rc.Raw()); err != nil {
		t.Fatal(err)
	}
	code, body, _ := n.do(t, "GET", "/api/v1/messages/"+sent, "", nil)
	var m api.Message
	if code != 200 || json.Unmarshal(body, &m) != nil || m.Status != api.StatusDelivered {
		t.Fatalf("after receipt: %d %s", code, body)
	}
	ms, err = n.client.List(ctx, api.ListQuery{To: n.id.Public().String()})
	if err != nil || len(ms) != 2 || ms[1].Kind != "receipt" || len(ms[1].Acks) != 1 || ms[1].Acks[0] != sent {
		t.Fatalf("receipt listing: %+v %v", ms, err)
	}
}

func TestEnvelopes(t *testing.T) {
	n := newNode(t)
	other, _ := message.NewIdentity(rand.Reader)
	e, _ := other.NewText("general", "hi", time.Now(), 0)

	code, body, _ := n.do(t, "POST", "/api/v1/envelopes", "application/octet-stream", e.Raw())
	if code != http.StatusCreated || !strings.Contains(string(body), `"new":true`) {
		t.Fatalf("first post: %d %s", code, body)
	}
	code, body, _ = n.do(t, "POST", "/api/v1/envelopes", "application/octet-stream", e.Raw())
	if code != http.StatusOK || !strings.Contains(string(body), `"new":false`) || !strings.Contains(string(body), e.ID().String()) {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	got, err := n.client.Envelope(ctxT(t), e.ID().String())
	if err != nil || !bytes.Equal(got, e.Raw()) {
		t.Fatalf("envelope round trip: %v", err)
	}

	forged := bytes.Clone(e.Raw())
	forged[len(forged)-SigOffset] ^= 1
	expired, _ := other.NewText("general", "old news", time.Now().Add(-2*time.Hour), time.Minute)
	for _, tc := range []struct {
		name, ct string
		body     []byte
		code     int
		says     string
	}{
		{"bad signature", "application/octet-stream", forged, 422, "bad signature"},
		{"garbage", "application/octet-stream", []byte("hello, node"), 422, "unknown envelope version"},
		{"empty", "application/octet-stream", nil, 422, "truncated"},
		{"truncated", "application/octet-stream", e.Raw()[:40], 422, "truncated"},
		{"expired", "application/octet-stream", expired.Raw(), 422, "expired"},
		{"no type", "", e.Raw(), 415, "application/octet-stream"},
		{"oversize", "application/octet-stream", append([]byte{1}, make([]byte, message.MaxEnvelope)...), 413, "limit"},
		{"wrong type", "application/json", e.Raw(), 415, "application/octet-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := n.do(t, "POST", "/api/v1/envelopes", tc.ct, tc.body)
			expectError(t, code, body, tc.code, tc.says)
		})
	}
	if st := n.st.Stats(); st.Messages != 1 {
		t.Fatalf("store holds %d messages after rejected posts, want 1", st.Messages)
	}
}

// SigOffset counts back from the end of an envelope into its signature.
const SigOffset = 10

func expectError(t *testing.T, code int, body []byte, wantCode int, says string) {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
		t.Fatalf("answer is not a JSON error: %d %s", code, body)
	}
	if code != wantCode || !strings.Contains(eb.Error, says) {
		t.Fatalf("got %d %q, want %d saying %q", code, eb.Error, wantCode, says)
	}
}

func TestSendErrors(t *testing.T) {
	n := newNode(t)
	key := strings.Repeat("ab", 32)
	long := strings.Repeat("x", message.MaxBody+1)
	for _, tc := range []struct {
		name, body string
		code       int
		says       string
	}{
		{"empty text", `{"channel":"general","text":""}`, 400, "text is empty"},
		{"no destination", `{"text":"hi"}`, 400, "channel"},
		{"both", `{"channel":"a","to":"` + key + `","text":"hi"}`, 400, "not both"},
		{"bad key hex", `{"to":"zz","text":"hi"}`, 400, "public key"},
		{"key of small order", `{"to":"` + strings.Repeat("00", 32) + `","text":"hi"}`, 400, "invalid public key"},
		{"control char in channel", `{"channel":"a\u0007b","text":"hi"}`, 400, "control character"},
		{"channel too long", `{"channel":"` + strings.Repeat("c", 65) + `","text":"hi"}`, 400, "channel name"},
		{"text too long", `{"channel":"general","text":"` + long + `"}`, 400, "limit is 4096"},
		{"dm too long", `{"to":"` + n.id.Public().String() + `","text":"` + long + `"}`, 400, "limit"},
		{"unknown field", `{"channel":"general","text":"hi","colour":"red"}`, 400, "colour"},
		{"bad priority", `{"channel":"general","text":"hi","priority":"urgent"}`, 400, "priority"},
		{"high on channel", `{"channel":"general","text":"hi","priority":"high"}`, 400, "normal"},
		{"short ttl", `{"channel":"general","text":"hi","ttl_s":5}`, 400, "ttl_s"},
		{"not json", `hello`, 400, "invalid JSON"},
		{"empty body", ``, 400, "empty"},
		{"trailing", `{"channel":"general","text":"hi"} {}`, 400, "trailing"},
		{"oversize", `{"channel":"general","text":"` + strings.Repeat("y", 70<<10) + `"}`, 413, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := n.do(t, "POST", "/api/v1/messages", "application/json", []byte(tc.body))
			expectError(t, code, body, tc.code, tc.says)
		})
	}
	// Only JSON: what a cross-site form or simple request can send is refused.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		code, body, _ := n.do(t, "POST", "/api/v1/messages", ct, []byte(`{"channel":"general","text":"hi"}`))
		expectError(t, code, body, 415, "application/json")
	}
	if st := n.st.Stats(); st.Messages != 0 {
		t.Fatalf("store holds %d messages after rejected sends", st.Messages)
	}
}

func TestRequestErrors(t *testing.T) {
	n := newNode(t)
	for _, tc := range []struct {
		method, path string
		code         int
		says         string
	}{
		{"DELETE", "/api/v1/messages", 405, "not allowed"},
		{"POST", "/api/v1/status", 405, "GET"},
		{"PUT", "/api/v1/envelopes", 405, "POST"},
		{"GET", "/api/v1/nothing", 404, "no such endpoint"},
		{"GET", "/api/v1/messages?chanel=x", 400, "unknown query parameter"},
		{"GET", "/api/v1/messages?limit=0", 400, "limit"},
		{"GET", "/api/v1/messages?limit=5000", 400, "limit"},
		{"GET", "/api/v1/messages?since=-4", 400, "since"},
		{"GET", "/api/v1/messages?to=123", 400, "public key"},
		{"GET", "/api/v1/messages?channel=a&to=" + strings.Repeat("00", 32), 400, "at most one"},
		{"GET", "/api/v1/messages?channel_id=xyz", 400, "channel id"},
		{"GET", "/api/v1/messages/abc", 400, "message id"},
		{"GET", "/api/v1/messages/" + strings.Repeat("00", 32), 404, "no message"},
		{"GET", "/api/v1/envelopes/" + strings.Repeat("00", 32), 404, "no message"},
		{"GET", "/api/v1/events?since=5", 400, "unknown query parameter"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, body, hdr := n.do(t, tc.method, tc.path, "", nil)
			expectError(t, code, body, tc.code, tc.says)
			if tc.code == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// event is one server-sent event.
type event struct{ name, data string }

// stream opens GET path and delivers its events and comments on channels
// until the body ends; ended is closed then.
func (n *node) stream(t *testing.T, ctx context.Context, path string) (events chan event, comments chan string, ended chan struct{}) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.http.URL+path, nil)
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events, comments, ended = make(chan event, 1024), make(chan string, 1024), make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					events <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, ":"):
				select {
				case comments <- line:
				default:
				}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return events, comments, ended
}

func waitEvent(t *testing.T, c <-chan event) event {
	t.Helper()
	select {
	case ev := <-c:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return event{}
	}
}

func TestEvents(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.Heartbeat = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(ctxT(t))
	events, comments, ended := n.stream(t, ctx, "/api/v1/events?channel=general")

	// Stored before and elsewhere: not sent. Stored after, on the channel: sent.
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "weather", Text: "rain"}); err != nil {
		t.Fatal(err)
	}
	id, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "live"})
	if err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, events)
	var m api.Message
	if ev.name != "message" || json.Unmarshal([]byte(ev.data), &m) != nil || m.ID != id || m.Text != "live" || m.Channel != "general" {
		t.Fatalf("event = %+v", ev)
	}
	// Heartbeats keep an idle stream alive.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case c := <-comments:
			seen = c == ": ping"
		case <-deadline:
			t.Fatal("no heartbeat")
		}
	}
	// The client leaving ends the handler; the subscription is released.
	cancel()
	<-ended
}

func TestEventsEndOnClose(t *testing.T) {
	n := newNode(t)
	events, _, ended := n.stream(t, ctxT(t), "/api/v1/events")
	if _, err := n.client.Send(ctxT(t), api.SendRequest{Channel: "general", Text: "one"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events)
	n.srv.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after Close")
	}
}

// A stream that cannot keep up is told so and closed, rather than
// silently missing messages.
func TestEventsLagged(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.EventBuffer = 1 })
	events, _, ended := n.stream(t, ctxT(t), "/api/v1/events")
	other, _ := message.NewIdentity(rand.Reader)
	// The store hands a whole committed batch to subscribers at once; a
	// burst of concurrent writes makes batches of more than one, which
	// overflow a buffer of one. Bursts repeat until that happens.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-ended:
		default:
			if time.Now().After(deadline) {
				t.Fatal("stream never lagged")
			}
			var wg sync.WaitGroup
			for j := range 64 {
				e, _ := other.NewText("general", strings.Repeat("m", 1+j%7)+string(rune('a'+i%26)), time.Now().Add(time.Duration(i*64+j)*time.Millisecond), 0)
				wg.Go(func() { _, _ = n.st.Put(t.Context(), e.Raw()) })
			}
			wg.Wait()
			continue
		}
		break
	}
	var last event
	for {
		select {
		case ev := <-events:
			last = ev
			continue
		default:
		}
		break
	}
	if last.name != "lagged" || !strings.Contains(last.data, "reconnect") {
		t.Fatalf("last event = %+v, want lagged", last)
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := &api.Client{BaseURL: "http://" + addr}
	_, err = c.Status(ctxT(t))
	var ue *api.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach the node at http://"+addr+": is `lifeline run` running?") {
		t.Fatalf("err = %v", err)
	}
}
