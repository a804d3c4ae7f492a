package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/api"
)

// TestOperatorProof: an operator off the node's machine proves they hold
// the admin token without sending it. A request read off the Wi-Fi cannot
// be replayed or changed, the token sent in clear (Bearer) grants nothing,
// and a request signed with a clock far from the node's is refused, saying
// so; the Go client then signs again with the node's time.
func TestOperatorProof(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	skew := 2 * time.Hour // the node's clock is two hours ahead of this machine's
	wiped := 0
	n := newNode(t, func(o *api.Options) {
		o.AdminToken = token
		o.Now = func() time.Time { return time.Now().Add(skew) }
		o.Wipe = func() error { wiped++; return nil }
	})
	send := []byte(`{"confirm":"` + api.WipeConfirm + `"}`)
	sign := func(body []byte, at time.Time) map[string]string {
		return map[string]string{"Content-Type": "application/json",
			"Authorization": api.OperatorHeader(token, "POST", "/api/v1/wipe", at, body)}
	}
	hdr := sign(send, time.Now().Add(skew))
	if w := phone(n, "POST", "/api/v1/wipe", hdr, send); w.Code != http.StatusOK || wiped != 1 {
		t.Fatalf("the operator's request: %d %s", w.Code, w.Body)
	}
	if w := phone(n, "POST", "/api/v1/wipe", hdr, send); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "replay") {
		t.Fatalf("the same request again: %d %s, want 401 (a replay)", w.Code, w.Body)
	}
	other := []byte(`{"confirm":"` + api.WipeConfirm + `", "x": 1}`)
	if w := phone(n, "POST", "/api/v1/wipe", sign(send, time.Now().Add(skew)), other); w.Code != http.StatusUnauthorized {
		t.Fatalf("a body changed on the way: %d %s, want 401", w.Code, w.Body)
	}
	if w := phone(n, "POST", "/api/v1/wipe", sign(send, time.Now()), send); w.Code != http.StatusUnauthorized ||
		!strings.Contains(w.Body.String(), "clock") || w.Header().Get("Date") == "" {
		t.Fatalf("signed two hours off the node's clock: %d %s (Date %q), want 401 saying so, with the node's time", w.Code, w.Body, w.Header().Get("Date"))
	}
	bearer := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
	if w := phone(n, "POST", "/api/v1/wipe", bearer, send); w.Code != http.StatusForbidden {
		t.Fatalf("the token sent in clear: %d %s, want 403 (it proves nothing)", w.Code, w.Body)
	}

	// The Go client on a machine whose clock is two hours behind: refused
	// once, then signed with the node's time.
	c := &api.Client{BaseURL: n.http.URL, HTTP: n.http.Client(), Token: token}
	c.HTTP.Transport = forwarded{n.http.Client().Transport} // not loopback: a phone's address
	if _, err := c.Wipe(ctxT(t)); err != nil || wiped != 2 {
		t.Fatalf("the client with the token and a wrong clock: %v (wiped %d times)", err, wiped)
	}
}

// forwarded makes a loopback client look like one on the Wi-Fi.
type forwarded struct{ rt http.RoundTripper }

func (f forwarded) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", "192.168.4.50")
	return f.rt.RoundTrip(r)
}
