package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"lifeline/api"
)

// BenchmarkSendChannel measures one POST /api/v1/messages through the
// handler: decode, sign, verify and store (without fsync).
func BenchmarkSendChannel(b *testing.B) {
	n := newNodeTB(b)
	body := `{"channel":"general","text":"water at the school, bring containers"}`
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/v1/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		n.srv.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkListChannel measures GET /api/v1/messages for a page of 100.
func BenchmarkListChannel(b *testing.B) {
	n := newNodeTB(b)
	for range 200 {
		if _, err := n.client.Send(b.Context(), api.SendRequest{Channel: "general", Text: "a message of ordinary length"}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		w := httptest.NewRecorder()
		n.srv.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/messages?channel=general", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
