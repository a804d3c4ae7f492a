package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// request sends one request with the given Host and extra headers and
// returns status, body and headers.
func (n *node) request(t *testing.T, method, path, host string, hdr map[string]string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, n.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := n.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// A page that rebinds its own name to the node's address is same-origin
// with the node in the browser, but its requests still carry its name in
// Host: only IP literals, localhost and the configured names are served.
func TestHostCheck(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.AllowedHosts = []string{"Lifeline.Local."} })
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"", true}, // the test server's own 127.0.0.1:port
		{"127.0.0.1", true},
		{"192.168.4.1:7777", true},
		{"[::1]:7777", true},
		{"[fe80::1%25wlan0]:7777", true},
		{"localhost:7777", true},
		{"LocalHost", true},
		{"lifeline.local:7777", true},
		{"LIFELINE.LOCAL", true},
		{"evil.example", false},
		{"evil.example:7777", false},
		{"127.0.0.1.evil.example", false},
		{"localhost.evil.example:7777", false},
		{"other.local", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			send := []byte(`{"channel":"general","text":"posted with Host ` + tc.host + `"}`)
			for _, r := range []struct {
				method, path string
				hdr          map[string]string
				body         []byte
				okCode       int
			}{
				{"GET", "/api/v1/status", nil, nil, 200},
				{"GET", "/api/v1/messages?to=" + n.id.Public().String(), nil, nil, 200},
				{"POST", "/api/v1/messages", jsonCT, send, 201},
			} {
				code, body, _ := n.request(t, r.method, r.path, tc.host, r.hdr, r.body)
				if tc.ok {
					if code != r.okCode {
						t.Fatalf("%s %s: %d %s", r.method, r.path, code, body)
					}
					continue
				}
				expectError(t, code, body, http.StatusMisdirectedRequest, "AllowedHosts")
			}
		})
	}
	// Only the allowed hosts' sends were stored.
	ms, err := n.client.List(ctxT(t), api.ListQuery{Channel: "general"})
	if err != nil || len(ms) != 9 {
		t.Fatalf("stored %d sends, want 9: %v", len(ms), err)
	}
	// Event streams are guarded like the rest.
	code, body, _ := n.request(t, "GET", "/api/v1/events", "evil.example", nil, nil)
	expectError(t, code, body, http.StatusMisdirectedRequest, "evil.example")
}

func TestAllowedHostsValidated(t *testing.T) {
	id, _ := message.NewIdentity(rand.Reader)
	for _, bad := range []string{"", "lifeline.local:7777", "http://lifeline.local", "[::1]", "a b"} {
		_, err := api.New(api.Options{Store: &store.Store{}, Identity: id, AllowedHosts: []string{bad}})
		if err == nil || !strings.Contains(err.Error(), "AllowedHosts") {
			t.Errorf("AllowedHosts %q: %v", bad, err)
		}
	}
	if _, err := api.New(api.Options{Store: &store.Store{}, Identity: id, AllowedHosts: []string{"lifeline.local", "10.0.0.1", "::1"}}); err != nil {
		t.Fatal(err)
	}
}

// State-changing requests from another origin are refused even when the
// Host is acceptable (a page on another node of the same Wi-Fi, say).
func TestCrossOriginPost(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.AllowedHosts = []string{"lifeline.local"} })
	u, _ := url.Parse(n.http.URL)
	other, _ := message.NewIdentity(rand.Reader)
	stored := 0
	for i, tc := range []struct {
		name, host string
		hdr        map[string]string
		ok         bool
	}{
		{"no origin (curl)", "", nil, true},
		{"same origin", "", map[string]string{"Origin": n.http.URL, "Sec-Fetch-Site": "same-origin"}, true},
		{"same origin, case", "", map[string]string{"Origin": strings.ToUpper(n.http.URL[:4]) + n.http.URL[4:]}, true},
		{"named host, default port", "lifeline.local", map[string]string{"Origin": "http://lifeline.local"}, true},
		{"named host, explicit port 80", "lifeline.local:80", map[string]string{"Origin": "http://lifeline.local"}, true},
		{"sec-fetch-site none", "", map[string]string{"Sec-Fetch-Site": "none"}, true},
		{"foreign origin", "", map[string]string{"Origin": "http://evil.example"}, false},
		{"other port", "", map[string]string{"Origin": "http://" + u.Hostname() + ":1"}, false},
		{"opaque origin", "", map[string]string{"Origin": "null"}, false},
		{"cross-site fetch", "", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"named host, foreign origin", "lifeline.local", map[string]string{"Origin": "http://evil.example"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				path, ct string
				body     []byte
				okCode   int
			}{
				{"/api/v1/messages", "application/json", []byte(`{"channel":"general","text":"hi ` + tc.name + `"}`), 201},
				{"/api/v1/envelopes", "application/octet-stream", mustText(t, other, i), 201},
			} {
				hdr := map[string]string{"Content-Type": r.ct}
				for k, v := range tc.hdr {
					hdr[k] = v
				}
				code, body, _ := n.request(t, "POST", r.path, tc.host, hdr, r.body)
				if tc.ok {
					if code != r.okCode {
						t.Fatalf("POST %s: %d %s", r.path, code, body)
					}
					stored++
					continue
				}
				expectError(t, code, body, http.StatusForbidden, "cross-")
			}
		})
	}
	if st := n.st.Stats(); st.Messages != int64(stored) {
		t.Fatalf("store holds %d messages, want %d", st.Messages, stored)
	}
	// Reads are not state-changing: a foreign Origin on GET is answered
	// (the browser keeps the answer from the page, as no CORS header is
	// sent).
	code, body, _ := n.request(t, "GET", "/api/v1/status", "", map[string]string{"Origin": "http://evil.example"}, nil)
	if code != 200 {
		t.Fatalf("GET with foreign Origin: %d %s", code, body)
	}
}

func mustText(t *testing.T, id *message.Identity, i int) []byte {
	t.Helper()
	e, err := id.NewText("general", "carried "+string(rune('a'+i)), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return e.Raw()
}

// poll calls cond until it holds, failing the test after 10s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestEventStreamLimit(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.MaxEventStreams = 2 })
	ctx1, cancel1 := context.WithCancel(ctxT(t))
	events1, _, ended1 := n.stream(t, ctx1, "/api/v1/events")
	events2, _, _ := n.stream(t, ctxT(t), "/api/v1/events?channel=general")

	code, body, hdr := n.do(t, "GET", "/api/v1/events", "", nil)
	expectError(t, code, body, http.StatusServiceUnavailable, "limit")
	if hdr.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// A refused stream is not counted; the open ones still work.
	if _, err := n.client.Send(ctxT(t), api.SendRequest{Channel: "general", Text: "still live"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chan event{events1, events2} {
		if ev := waitEvent(t, c); ev.name != "message" || !strings.Contains(ev.data, "still live") {
			t.Fatalf("event = %+v", ev)
		}
	}
	// Other endpoints are not limited.
	if code, body, _ := n.do(t, "GET", "/api/v1/status", "", nil); code != 200 {
		t.Fatalf("status while streams are full: %d %s", code, body)
	}

	// One stream leaves; its slot is free once the server has noticed.
	cancel1()
	<-ended1
	var resp *http.Response
	poll(t, "a free stream slot", func() bool {
		req, _ := http.NewRequestWithContext(ctxT(t), "GET", n.http.URL+"/api/v1/events", nil)
		r, err := n.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode == http.StatusOK {
			resp = r
			return true
		}
		r.Body.Close()
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("events: %d", r.StatusCode)
		}
		return false
	})
	resp.Body.Close()
}

// Only the node's own sends teach it channel names; a name given in a
// query names that query's answer and is forgotten.
func TestChannelNamesFromSendsOnly(t *testing.T) {
	n := newNodeServer(t, func(s *api.Server) { api.SetMaxChannelNames(s, 2) })
	ctx := ctxT(t)
	other, _ := message.NewIdentity(rand.Reader)
	secret, _ := other.NewText("secret-place", "hello", time.Now(), 0)
	if _, _, err := n.client.PostEnvelope(ctx, secret.Raw()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "mine"}); err != nil {
		t.Fatal(err)
	}

	// The caller named the channel: its answer uses the name...
	ms, err := n.client.List(ctx, api.ListQuery{Channel: "Secret-Place"})
	if err != nil || len(ms) != 1 || ms[0].Channel != "secret-place" {
		t.Fatalf("listing by name: %+v %v", ms, err)
	}
	// ...and so does its event stream.
	events, _, _ := n.stream(t, ctx, "/api/v1/events?channel=secret-place")
	again, _ := other.NewText("secret-place", "again", time.Now(), 0)
	if _, _, err := n.client.PostEnvelope(ctx, again.Raw()); err != nil {
		t.Fatal(err)
	}
	var m api.Message
	if ev := waitEvent(t, events); json.Unmarshal([]byte(ev.data), &m) != nil || m.Channel != "secret-place" {
		t.Fatalf("event = %+v", ev)
	}
	// Junk queries, more than the table holds.
	for i := range 10 {
		if _, err := n.client.List(ctx, api.ListQuery{Channel: "junk" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	// Nobody else learns the queried name, and the sent one survived.
	ms, err = n.client.List(ctx, api.ListQuery{})
	if err != nil || len(ms) != 3 {
		t.Fatalf("list: %+v %v", ms, err)
	}
	for _, m := range ms {
		want := secret.Channel.String()
		if m.Own {
			want = "general"
		}
		if m.Channel != want {
			t.Errorf("message %q shows channel %q, want %q", m.Text, m.Channel, want)
		}
	}
}

// A full table forgets its least recently used name for a new one.
func TestChannelNamesEvictLRU(t *testing.T) {
	n := newNodeServer(t, func(s *api.Server) { api.SetMaxChannelNames(s, 2) })
	ctx := ctxT(t)
	// "a" is used again, so "b" is oldest. Texts differ: two sends in the
	// same millisecond with the same text are the same envelope.
	for i, ch := range []string{"a", "b", "a", "c"} {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: ch, Text: fmt.Sprintf("to %s #%d", ch, i)}); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := n.client.List(ctx, api.ListQuery{})
	if err != nil || len(ms) != 4 {
		t.Fatalf("list: %+v %v", ms, err)
	}
	bID, _ := message.Channel("b")
	for _, m := range ms {
		want := map[string]string{"a": "a", "b": bID.String(), "c": "c"}[m.Text[3:4]]
		if m.Channel != want {
			t.Errorf("message %q shows channel %q, want %q", m.Text, m.Channel, want)
		}
	}
	// Sending to "b" again brings its name back, in place of the least
	// recently used.
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "b", Text: "to b again"}); err != nil {
		t.Fatal(err)
	}
	ms, err = n.client.List(ctx, api.ListQuery{ChannelID: bID.String()})
	if err != nil || len(ms) != 2 || ms[0].Channel != "b" || ms[1].Channel != "b" {
		t.Fatalf("after sending to b again: %+v %v", ms, err)
	}
}
