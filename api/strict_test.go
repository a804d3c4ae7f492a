package api_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// TestMalformedQueryRefused: a query string Go cannot parse whole (a
// semicolon) is refused, not read as "no filter": a listing of one
// channel must never answer with every channel.
func TestMalformedQueryRefused(t *testing.T) {
	n := newNode(t)
	for _, q := range []string{"channel=x;y", "channel=general&to=%zz"} {
		for _, path := range []string{"/api/v1/messages?", "/api/v1/events?"} {
			if w := phone(n, "GET", path+q, nil, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "query") {
				t.Errorf("GET %s%s: %d %s", path, q, w.Code, w.Body)
			}
		}
	}
}

// TestInvalidUTF8Refused: the node does not sign a text the sender never
// wrote (encoding/json would have turned the bytes into U+FFFD).
func TestInvalidUTF8Refused(t *testing.T) {
	n := newNode(t)
	code, body, _ := n.do(t, "POST", "/api/v1/messages", "application/json", []byte("{\"channel\":\"general\",\"text\":\"caf\xe9\"}"))
	if code != http.StatusBadRequest || !strings.Contains(string(body), "UTF-8") {
		t.Fatalf("invalid UTF-8: %d %s", code, body)
	}
	if st := n.st.Stats(); st.Messages != 0 {
		t.Fatalf("%d messages stored", st.Messages)
	}
}

// TestSlowBody: a body sent slower than the read timeout gets 408 with a
// message that names no socket address.
func TestSlowBody(t *testing.T) {
	id := newIdentity(t)
	st, err := store.Open(t.TempDir()+"/l.db", store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := api.New(api.Options{Store: st, Identity: id, ReadTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers and a first byte of a 100-byte body, then nothing.
	if _, err := c.Write([]byte("POST /api/v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n\x01")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&b)
	if resp.StatusCode != http.StatusRequestTimeout || strings.Contains(b.String(), "127.0.0.1") {
		t.Fatalf("slow body: %d %s", resp.StatusCode, b.String())
	}
}

// TestEventStreamsPerClient: one address that is not the operator holds at
// most MaxStreamsPerClient streams, so it cannot take the node's whole
// stream budget from everyone else; the operator is not limited.
func TestEventStreamsPerClient(t *testing.T) {
	n := newNode(t)
	// Through a proxy header a loopback client is not the operator: it
	// counts as one remote address here, as a phone on the Wi-Fi does.
	open := func(ctx context.Context, proxied bool) int {
		req, _ := http.NewRequestWithContext(ctx, "GET", n.http.URL+"/api/v1/events", nil)
		if proxied {
			req.Header.Set("X-Forwarded-For", "10.42.0.23")
		}
		resp, err := n.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
		}
		return resp.StatusCode
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	for i := range api.MaxStreamsPerClient {
		if code := open(ctx, true); code != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, code)
		}
	}
	if code := open(ctxT(t), true); code != http.StatusTooManyRequests {
		t.Fatalf("stream %d from one address: %d, want 429", api.MaxStreamsPerClient+1, code)
	}
	if code := open(ctxT(t), false); code != http.StatusOK {
		t.Fatalf("the operator's stream: %d", code)
	}
	cancel() // the address's streams end; it may open again
	poll(t, "a stream for the address again", func() bool { return open(ctxT(t), true) == http.StatusOK })
}

// TestDiskFull507: a node whose disk is too full for its store answers
// writes with 507 and a plain reason, phones and operator alike, and keeps
// answering reads.
func TestDiskFull507(t *testing.T) {
	// A real store on a real disk, told to keep more free than any disk
	// has: its free-space check refuses every write, as on a full disk.
	full, err := store.Open(filepath.Join(t.TempDir(), "full.db"), store.Options{NoSync: true, MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { full.Close() })
	n := newNode(t, func(o *api.Options) { o.Store = full })
	phone, _ := message.NewIdentity(rand.Reader)
	e, err := phone.NewText("general", "hello", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*httptest.ResponseRecorder{
		serve(n, "POST", "/api/v1/envelopes", "192.168.4.20:5000", e.Raw()),
		serve(n, "POST", "/api/v1/messages", "127.0.0.1:5000", []byte(`{"channel":"general","text":"from the operator"}`)),
	} {
		if w.Code != http.StatusInsufficientStorage || !strings.Contains(w.Body.String(), "no space left on the store's disk") {
			t.Fatalf("write on a full disk: %d %s, want 507 saying why", w.Code, w.Body)
		}
	}
	if w := serve(n, "GET", "/api/v1/messages?channel=general", "192.168.4.20:5000", nil); w.Code != http.StatusOK {
		t.Fatalf("read on a full disk: %d %s", w.Code, w.Body)
	}
}

// TestHealthz: /healthz says whether the node can take messages, and why
// not: a supervisor or a monitor reads it without any key.
func TestHealthz(t *testing.T) {
	ok := newNode(t)
	if w := serve(ok, "GET", "/healthz", "192.168.4.20:5000", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ok":true`) {
		t.Fatalf("a healthy node: %d %s", w.Code, w.Body)
	}
	full, err := store.Open(filepath.Join(t.TempDir(), "full.db"), store.Options{NoSync: true, MinFree: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { full.Close() })
	n := newNode(t, func(o *api.Options) { o.Store = full })
	if w := serve(n, "GET", "/healthz", "192.168.4.20:5000", nil); w.Code != http.StatusServiceUnavailable ||
		!strings.Contains(w.Body.String(), "no space left on the store's disk") {
		t.Fatalf("a node whose disk is full: %d %s, want 503 saying why", w.Code, w.Body)
	}
}
