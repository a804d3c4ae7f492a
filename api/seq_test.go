package api_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
)

// listPage is GET path decoded, with the arrival-order headers.
func (n *node) listPage(t *testing.T, path string) ([]api.Message, uint64, bool) {
	t.Helper()
	code, body, hdr := n.do(t, "GET", path, "", nil)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var ms []api.Message
	if err := json.Unmarshal(body, &ms); err != nil {
		t.Fatal(err)
	}
	next, err := strconv.ParseUint(hdr.Get(api.HeaderNextAfter), 10, 64)
	if err != nil {
		t.Fatalf("GET %s: %s %q", path, api.HeaderNextAfter, hdr.Get(api.HeaderNextAfter))
	}
	return ms, next, hdr.Get(api.HeaderMore) == "true"
}

func postEnv(t *testing.T, n *node, e *message.Envelope) {
	t.Helper()
	if _, isNew, err := n.client.PostEnvelope(ctxT(t), e.Raw()); err != nil || !isNew {
		t.Fatalf("post envelope: %v, new %v", err, isNew)
	}
}

func textAt(t *testing.T, by *message.Identity, channel, body string, at time.Time) *message.Envelope {
	t.Helper()
	e, err := by.NewText(channel, body, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A message that reaches the node late, with a created time older than
// everything a client has seen, is in the client's next after= poll and
// not in its since= poll.
func TestListAfterLateArrival(t *testing.T) {
	n := newNode(t)
	ctx := ctxT(t)
	other, _ := message.NewIdentity(rand.Reader)
	for _, s := range []string{"one", "two"} {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: s}); err != nil {
			t.Fatal(err)
		}
	}
	ms, next, more := n.listPage(t, "/api/v1/messages?channel=general&after=0")
	if len(ms) != 2 || ms[0].Seq != 1 || ms[1].Seq != 2 || next != 2 || more || ms[1].Text != "two" {
		t.Fatalf("first poll: %+v next %d more %v", ms, next, more)
	}
	newest := ms[1].Created

	// Written offline a day ago, carried in now.
	late := textAt(t, other, "general", "from yesterday", time.Now().Add(-24*time.Hour))
	postEnv(t, n, late)

	if ms, _ := n.client.List(ctx, api.ListQuery{Channel: "general", Since: newest}); len(ms) != 0 {
		t.Fatalf("since poll found %d: created order cannot see a late arrival", len(ms))
	}
	p, err := n.client.ListAfter(ctx, api.ListQuery{Channel: "general"}, next)
	if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != late.ID().String() || p.Messages[0].Seq != 3 || p.Next != 3 || p.More {
		t.Fatalf("after poll: %+v, %v", p, err)
	}
	// The seq is in every message object.
	if code, body, _ := n.do(t, "GET", "/api/v1/messages/"+late.ID().String(), "", nil); code != 200 || !strings.Contains(string(body), `"seq":3`) {
		t.Fatalf("get: %s", body)
	}

	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/api/v1/messages?after=1&since=5", 400, "not both"},
		{"/api/v1/messages?after=-1", 400, "after is"},
		{"/api/v1/messages?after=+1", 400, "after is"},
		{"/api/v1/messages?after=x", 400, "after is"},
		{"/api/v1/events?after=x", 400, "after is"},
		{"/api/v1/messages?after=4", 409, "start again with after=0"},
	} {
		code, body, _ := n.do(t, "GET", tc.path, "", nil)
		expectError(t, code, body, tc.code, tc.says)
	}
	// At the end: an empty page that keeps the position.
	if ms, next, more := n.listPage(t, "/api/v1/messages?after=3"); len(ms) != 0 || next != 3 || more {
		t.Fatalf("at the end: %d, %d, %v", len(ms), next, more)
	}
}

// Many messages created in the same millisecond page exactly, a small
// limit at a time, by after=.
func TestListAfterSameMillisecond(t *testing.T) {
	n := newNode(t)
	other, _ := message.NewIdentity(rand.Reader)
	at := time.Now().Add(-time.Minute)
	want := map[string]bool{}
	for i := range 10 {
		e := textAt(t, other, "general", fmt.Sprint("same ms ", i), at)
		postEnv(t, n, e)
		want[e.ID().String()] = true
	}
	seen := map[string]bool{}
	var after, last uint64
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		p, err := n.client.ListAfter(ctxT(t), api.ListQuery{Channel: "general", Limit: 3}, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if seen[m.ID] || m.Seq <= last {
				t.Fatalf("duplicate or out of order: %+v", m)
			}
			seen[m.ID], last = true, m.Seq
		}
		after = p.Next
		if !p.More {
			break
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d of %d", len(seen), len(want))
	}
}

// after= with a channel filter returns that channel only, and Next moves
// past the others.
func TestListAfterChannel(t *testing.T) {
	n := newNode(t)
	ctx := ctxT(t)
	send := func(ch, text string) {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: ch, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	send("general", "g1")
	send("weather", "w1")
	send("weather", "w2")
	send("general", "g2")
	send("weather", "w3")
	ms, next, more := n.listPage(t, "/api/v1/messages?channel=general&after=0")
	if len(ms) != 2 || ms[0].Text != "g1" || ms[1].Text != "g2" || ms[1].Seq != 4 || next != 5 || more {
		t.Fatalf("general: %+v next %d more %v", ms, next, more)
	}
	ms, next, more = n.listPage(t, "/api/v1/messages?channel=weather&after=1&limit=2")
	if len(ms) != 2 || ms[0].Text != "w1" || ms[1].Text != "w2" || next != 3 || !more {
		t.Fatalf("weather: %+v next %d more %v", ms, next, more)
	}
}

// sse is one server-sent event as a browser dispatches it: name "" and
// empty data for a bare "id:" line, which only moves the last event id.
type sse struct {
	name, data string
	id         uint64
}

// openSSE opens an event stream with the given Last-Event-ID (none if
// empty) and delivers its events, bare ids included.
func (n *node) openSSE(t *testing.T, ctx context.Context, path, lastID string) <-chan sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.http.URL+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	c := make(chan sse, 4096)
	go func() {
		defer close(c)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		hasID := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || hasID {
					c <- ev
				}
				ev, hasID = sse{}, false
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "id: "):
				id, err := strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
				if err != nil {
					panic("bad id line " + line)
				}
				ev.id, hasID = id, true
			}
		}
	}()
	return c
}

func nextSSE(t *testing.T, c <-chan sse) sse {
	t.Helper()
	select {
	case ev, ok := <-c:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return sse{}
	}
}

func messageEvent(t *testing.T, c <-chan sse) (api.Message, uint64) {
	t.Helper()
	ev := nextSSE(t, c)
	var m api.Message
	if ev.name != "message" || json.Unmarshal([]byte(ev.data), &m) != nil || m.Seq != ev.id {
		t.Fatalf("event %+v", ev)
	}
	return m, ev.id
}

// A stream resumed with Last-Event-ID gets what it missed (late arrivals
// included), then live messages, with no gap and no duplicate.
func TestEventsResume(t *testing.T) {
	n := newNode(t)
	ctx := ctxT(t)
	other, _ := message.NewIdentity(rand.Reader)
	send := func(ch, text string) {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: ch, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	send("general", "before") // seq 1

	// A fresh stream starts at the newest seq and says so with a bare id.
	sctx, stop := context.WithCancel(ctx)
	c := n.openSSE(t, sctx, "/api/v1/events?channel=general", "")
	if ev := nextSSE(t, c); ev.name != "" || ev.id != 1 {
		t.Fatalf("first event %+v, want a bare id 1", ev)
	}
	send("general", "live 1") // seq 2
	if m, id := messageEvent(t, c); m.Text != "live 1" || id != 2 {
		t.Fatalf("live: %+v", m)
	}
	stop()

	// Missed while away: one on the channel, one elsewhere, one late.
	send("general", "missed")  // 3
	send("weather", "other 1") // 4 (texts differ: the same text in the same ms is one envelope)
	late := textAt(t, other, "general", "late", time.Now().Add(-48*time.Hour))
	postEnv(t, n, late)        // 5
	send("weather", "other 2") // 6

	// ?after= is stale (EventSource keeps its URL); the header wins.
	c = n.openSSE(t, ctx, "/api/v1/events?channel=general&after=0", "2")
	if m, id := messageEvent(t, c); m.Text != "missed" || id != 3 {
		t.Fatalf("backlog 1: %+v", m)
	}
	if m, id := messageEvent(t, c); m.ID != late.ID().String() || id != 5 {
		t.Fatalf("backlog 2: %+v", m)
	}
	// The position moves past the weather message at 6.
	if ev := nextSSE(t, c); ev.name != "" || ev.id != 6 {
		t.Fatalf("after the backlog %+v, want a bare id 6", ev)
	}
	send("general", "live 2")
	if m, id := messageEvent(t, c); m.Text != "live 2" || id != 7 {
		t.Fatalf("live after backlog: %+v", m)
	}

	// ?after= alone works too; a Last-Event-ID that is not a seq (an id
	// from before seqs) is ignored.
	c = n.openSSE(t, ctx, "/api/v1/events?after=5", "87ad5ed1")
	for _, want := range []uint64{6, 7} {
		if _, id := messageEvent(t, c); id != want {
			t.Fatalf("after=5: id %d, want %d", id, want)
		}
	}
	// A position from another store file: live from the newest seq.
	c = n.openSSE(t, ctx, "/api/v1/events", "1000")
	if ev := nextSSE(t, c); ev.name != "" || ev.id != 7 {
		t.Fatalf("beyond the end: %+v, want a bare id 7", ev)
	}
}

// Resuming while messages keep arriving: every seq after the resume
// point arrives exactly once, in order, whether it came from the backlog
// or live.
func TestEventsResumeUnderLoad(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.EventBuffer = 4096 })
	other, _ := message.NewIdentity(rand.Reader)
	const total = 300
	envs := make([]*message.Envelope, total)
	base := time.Now().Add(-time.Hour)
	for i := range envs {
		// Created times run backwards: arrival order is what counts.
		envs[i] = textAt(t, other, "general", fmt.Sprint("m", i), base.Add(-time.Duration(i)*time.Millisecond))
	}
	for _, e := range envs[:50] {
		postEnv(t, n, e)
	}
	done := make(chan error, 1)
	go func() {
		for _, e := range envs[50:] {
			if _, err := n.st.Put(context.Background(), e.Raw()); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c := n.openSSE(t, ctxT(t), "/api/v1/events", "20")
	for want := uint64(21); want <= total; want++ {
		ev := nextSSE(t, c)
		if ev.name == "" {
			t.Fatalf("bare id %d: the last event already had the position", ev.id)
		}
		if ev.name != "message" || ev.id != want {
			t.Fatalf("got %q id %d, want message %d", ev.name, ev.id, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
