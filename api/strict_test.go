package api_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/api"
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
