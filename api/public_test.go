package api_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
)

// serve runs one request through the server as if it came from remote
// (no network: the remote address is what is being tested).
func serve(n *node, method, path, remote string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://203.0.113.7"+path, bytes.NewReader(body))
	req.RemoteAddr = remote
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodPost && path == "/api/v1/envelopes" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	w := httptest.NewRecorder()
	n.srv.ServeHTTP(w, req)
	return w
}

// TestPublicAPI: a hub's API does not sign for remote clients, takes
// envelopes they signed, and bounds how fast each address posts them.
func TestPublicAPI(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.Public, o.PublicRate, o.PublicBurst = true, 1, 3 })
	send := []byte(`{"channel":"news","text":"signed by the hub?"}`)
	if w := serve(n, "POST", "/api/v1/messages", "198.51.100.20:4000", send); w.Code != http.StatusForbidden {
		t.Fatalf("remote POST /messages: %d %s", w.Code, w.Body)
	}
	if w := serve(n, "POST", "/api/v1/messages", "127.0.0.1:4000", send); w.Code != http.StatusCreated && w.Code != http.StatusOK {
		t.Fatalf("local POST /messages: %d %s", w.Code, w.Body)
	}
	outside, _ := message.NewIdentity(rand.Reader)
	post := func(remote string, i int) int {
		e, err := outside.NewText("news", "from outside "+string(rune('a'+i)), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return serve(n, "POST", "/api/v1/envelopes", remote, e.Raw()).Code
	}
	for i := range 3 {
		if code := post("198.51.100.20:4000", i); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("remote envelope %d: %d", i, code)
		}
	}
	if code := post("198.51.100.20:4001", 3); code != http.StatusTooManyRequests {
		t.Fatalf("fourth envelope at once from one address: %d, want 429", code)
	}
	if code := post("198.51.100.21:4000", 4); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("another address: %d", code)
	}
	if code := post("127.0.0.1:5000", 5); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("a local client is not limited: %d", code)
	}
	// Reading stays open to everyone.
	if w := serve(n, "GET", "/api/v1/messages?channel=news", "198.51.100.22:4000", nil); w.Code != http.StatusOK {
		t.Fatalf("remote GET: %d", w.Code)
	}
	// A proxy on the hub's own machine is not the hub's user.
	req := httptest.NewRequest("POST", "http://203.0.113.7/api/v1/messages", bytes.NewReader(send))
	req.RemoteAddr, req.Header = "127.0.0.1:4000", http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {"198.51.100.30"}}
	w := httptest.NewRecorder()
	n.srv.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Fatalf("POST /messages through a local proxy: %d", w.Code)
	}
	// A direct message to the hub's own key is opened for the hub's user
	// only, never for a stranger.
	dm, err := outside.NewDirect(rand.Reader, n.id.Public(), "for the operator only", message.PriorityNormal, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if code := serve(n, "POST", "/api/v1/envelopes", "127.0.0.1:5000", dm.Raw()).Code; code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("post dm: %d", code)
	}
	path := "/api/v1/messages?to=" + n.id.Public().String()
	if body := serve(n, "GET", path, "198.51.100.22:4000", nil).Body.String(); strings.Contains(body, "for the operator only") {
		t.Fatalf("a stranger read the hub's direct message: %s", body)
	}
	if body := serve(n, "GET", path, "127.0.0.1:4000", nil).Body.String(); !strings.Contains(body, "for the operator only") {
		t.Fatalf("the hub's user cannot read its direct message: %s", body)
	}
}

// TestStrangersTotal: many addresses, each within its own budget, together
// get no more than the strangers' total; a member's envelopes are not
// counted against it, and the node's operator is never limited.
func TestStrangersTotal(t *testing.T) {
	member, _ := message.NewIdentity(rand.Reader)
	n := newNode(t, func(o *api.Options) {
		o.PublicRate, o.PublicBurst = 1, 2
		o.StrangersRate, o.StrangersBurst = 0.001, 10
		o.Members = func(k message.PublicKey) bool { return k == member.Public() }
	})
	post := func(by *message.Identity, remote string, i int) int {
		e, err := by.NewText("news", fmt.Sprint("envelope ", i), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return serve(n, "POST", "/api/v1/envelopes", remote, e.Raw()).Code
	}
	stored, refused := 0, 0
	for i := range 40 { // 40 fresh keys from 20 addresses, 2 each: every address within its burst
		key, _ := message.NewIdentity(rand.Reader)
		switch code := post(key, fmt.Sprintf("198.51.100.%d:4000", 10+i/2), i); code {
		case http.StatusCreated:
			stored++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("stranger's envelope %d: %d", i, code)
		}
	}
	if stored != 10 || refused != 30 {
		t.Fatalf("strangers from 20 addresses stored %d and were refused %d; the total allows 10", stored, refused)
	}
	if code := post(member, "198.51.100.99:4000", 100); code != http.StatusCreated {
		t.Fatalf("a member's envelope while strangers are at their limit: %d", code)
	}
	// A member's key is public: envelopes that name it as author but do
	// not verify are strangers' (here, refused at the total).
	e, _ := member.NewText("news", "forged", time.Now(), 0)
	forged := bytes.Clone(e.Raw())
	forged[len(forged)-1] ^= 1
	if code := serve(n, "POST", "/api/v1/envelopes", "198.51.100.98:4000", forged).Code; code != http.StatusTooManyRequests {
		t.Fatalf("an envelope forged in a member's name while strangers are at their limit: %d, want 429", code)
	}
	stranger, _ := message.NewIdentity(rand.Reader)
	if code := post(stranger, "127.0.0.1:4000", 101); code != http.StatusCreated {
		t.Fatalf("the operator's client: %d", code)
	}
}

// TestWipeOnlyForTheOperator: only the node's operator can have it wipe
// itself, and only with the confirmation spelled out.
func TestWipeOnlyForTheOperator(t *testing.T) {
	wiped := 0
	n := newNode(t, func(o *api.Options) { o.Wipe = func() error { wiped++; return nil } })
	confirm := []byte(`{"confirm":"` + api.WipeConfirm + `"}`)
	if w := serve(n, "POST", "/api/v1/wipe", "192.168.4.20:5000", confirm); w.Code != http.StatusForbidden || wiped != 0 {
		t.Fatalf("a phone on the Wi-Fi asked for a wipe: %d, wiped %d times", w.Code, wiped)
	}
	if w := serve(n, "POST", "/api/v1/wipe", "127.0.0.1:5000", []byte(`{}`)); w.Code != http.StatusBadRequest || wiped != 0 {
		t.Fatalf("a wipe without confirmation: %d, wiped %d times", w.Code, wiped)
	}
	w := serve(n, "POST", "/api/v1/wipe", "127.0.0.1:5000", confirm)
	if w.Code != http.StatusOK || wiped != 1 || !strings.Contains(w.Body.String(), `"wiped":true`) {
		t.Fatalf("the operator's wipe: %d %s, wiped %d times", w.Code, w.Body, wiped)
	}
}

// TestAnswerBudget: the bytes the node answers each address that is not
// its operator are bounded, and so are those it answers all of them
// together; the operator is never limited.
func TestAnswerBudget(t *testing.T) {
	n := newNode(t, func(o *api.Options) {
		o.AnswerRate, o.AnswerBurst = 1, 20_000
		o.StrangersAnswerRate, o.StrangersAnswerBurst = 1, 50_000
	})
	for i := range 40 {
		body := fmt.Sprintf(`{"channel":"general","text":"message %d %s"}`, i, strings.Repeat("x", 900))
		if w := serve(n, "POST", "/api/v1/messages", "127.0.0.1:5000", []byte(body)); w.Code != http.StatusCreated {
			t.Fatalf("operator's send: %d %s", w.Code, w.Body)
		}
	}
	list := "/api/v1/messages?channel=general&limit=40" // about 50 KB an answer
	got := func(remote string) (int, *httptest.ResponseRecorder) {
		for i := 1; i <= 10; i++ {
			if w := serve(n, "GET", list, remote, nil); w.Code != http.StatusOK {
				return i, w
			}
		}
		return 0, nil
	}
	// One address: its first answer spends its budget (charged once
	// written), the next is refused and says when to come back.
	i, w := got("192.168.4.20:5000")
	if i != 2 || w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("one address: refused at request %d (%v), want the second, 429 with Retry-After", i, w)
	}
	// Everyone else together: the total goes first, whatever the number
	// of addresses.
	refusedAt := 0
	for a := 21; a < 40 && refusedAt == 0; a++ {
		if w := serve(n, "GET", list, fmt.Sprintf("192.168.4.%d:5000", a), nil); w.Code == http.StatusTooManyRequests {
			refusedAt = a
		}
	}
	if refusedAt == 0 || refusedAt > 22 {
		t.Fatalf("fresh addresses were answered until .%d; the total allows one answer more", refusedAt)
	}
	if w := serve(n, "GET", list, "127.0.0.1:5000", nil); w.Code != http.StatusOK {
		t.Fatalf("the operator was limited: %d", w.Code)
	}
}

// TestAnswerBudgetStreamsAndSlowReaders: an event stream that replays the
// store is charged like any answer and cut once the address's budget is
// spent; and clients that ask for big listings without reading them hold
// at most a few requests of their address, whatever the number of
// connections: the next one is refused, not served.
func TestAnswerBudgetStreamsAndSlowReaders(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.AnswerRate, o.AnswerBurst = 1, 50_000 })
	for i := range 300 {
		body := fmt.Sprintf(`{"channel":"general","text":"message %d %s"}`, i, strings.Repeat("x", 900))
		if w := serve(n, "POST", "/api/v1/messages", "127.0.0.1:5000", []byte(body)); w.Code != http.StatusCreated {
			t.Fatalf("operator's send: %d %s", w.Code, w.Body)
		}
	}
	get := func(path string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", n.http.URL+path, nil)
		req.Header.Set("X-Forwarded-For", "192.168.4.20") // a phone, not the operator
		res, err := n.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := get("/api/v1/events?after=0")
	read, _ := io.Copy(io.Discard, res.Body) // ends when the stream is cut
	res.Body.Close()
	if read > 60_000 {
		t.Fatalf("an event stream replayed %d bytes to an address whose budget is 50,000", read)
	}
	if res := get("/api/v1/messages?limit=10"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the stream spent the budget: %d, want 429", res.StatusCode)
	}

	// Requests held up (a slow reader, a slow store: here the page's
	// handler waits until the test lets it go): an address gets at most
	// four answered at once, the next is refused, not queued.
	release := make(chan struct{})
	var inHandler atomic.Int32
	slow := newNode(t, func(o *api.Options) {
		o.App = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inHandler.Add(1); <-release })
	})
	defer close(release)
	getSlow := func() (int, error) {
		req, _ := http.NewRequest("GET", slow.http.URL+"/", nil)
		req.Header.Set("X-Forwarded-For", "192.168.4.21")
		c := &http.Client{Transport: slow.http.Client().Transport, Timeout: 10 * time.Second}
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	for i := int32(1); i <= 4; i++ {
		go getSlow()
		for deadline := time.Now().Add(10 * time.Second); inHandler.Load() < i; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("request %d of one address not answered while %d were", i, i-1)
			}
		}
	}
	if code, err := getSlow(); code != http.StatusServiceUnavailable {
		t.Fatalf("a fifth request of one address while four are held: %d, %v; want 503", code, err)
	}
	if n := inHandler.Load(); n != 4 {
		t.Fatalf("%d requests of one address answered at once", n)
	}
}
