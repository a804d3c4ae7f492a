package api_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
)

// phone sends one request as a phone on the kit's Wi-Fi would: from
// another address, with whatever headers it gives.
func phone(n *node, method, path string, hdr map[string]string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://10.42.0.1"+path, bytes.NewReader(body))
	req.RemoteAddr = "10.42.0.23:51000"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	n.srv.ServeHTTP(w, req)
	return w
}

// TestPhonesActAsThemselves: on a field node serving phones, what signs
// as the node or reads what is sealed to it answers only to loopback or to
// the admin token; people on the Wi-Fi post what they signed.
func TestPhonesActAsThemselves(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	n := newNode(t, func(o *api.Options) { o.AdminToken = token })
	json := map[string]string{"Content-Type": "application/json"}
	send := []byte(`{"channel":"general","text":"as the node?"}`)
	if w := phone(n, "POST", "/api/v1/messages", json, send); w.Code != http.StatusForbidden {
		t.Fatalf("phone POST /messages: %d %s", w.Code, w.Body)
	}
	wrong := operator(strings.Repeat("0", len(token)), "POST", "/api/v1/messages", send)
	if w := phone(n, "POST", "/api/v1/messages", wrong, send); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %s", w.Code, w.Body)
	}
	admin := operator(token, "POST", "/api/v1/messages", send)
	if w := phone(n, "POST", "/api/v1/messages", admin, send); w.Code != http.StatusCreated {
		t.Fatalf("admin token: %d %s", w.Code, w.Body)
	}

	// A direct message to the node: its text for the operator only.
	alice := newIdentity(t)
	dm, err := alice.NewDirect(rand.Reader, n.id.Public(), "for the node", message.PriorityNormal, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.st.Put(t.Context(), dm.Raw()); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/messages/" + dm.ID().String()
	if w := phone(n, "GET", path, nil, nil); w.Code != 200 || strings.Contains(w.Body.String(), "for the node") {
		t.Fatalf("phone reads the node's DM: %d %s", w.Code, w.Body)
	}
	if w := phone(n, "GET", path, operator(token, "GET", path, nil), nil); !strings.Contains(w.Body.String(), "for the node") {
		t.Fatalf("operator with token cannot read the node's DM: %s", w.Body)
	}
	// Status: the summary for everyone, the peers for the operator only.
	var st api.Status
	w := phone(n, "GET", "/api/v1/status", nil, nil)
	if err := jsonUnmarshal(w.Body.Bytes(), &st); err != nil || st.DefaultChannel != "general" || st.LastSeq < 2 || st.Summary.Uplink != "none" {
		t.Fatalf("status for a phone: %+v, %v", st, err)
	}
}

func newIdentity(t *testing.T) *message.Identity {
	t.Helper()
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestCourierEndpoints: a phone asks which envelopes the node lacks and
// uploads those in one batch; a bad one is refused in its place and costs
// the others nothing.
func TestCourierEndpoints(t *testing.T) {
	n := newNode(t)
	alice := newIdentity(t)
	var envs [][]byte
	var ids []byte
	for i := range 5 {
		e, err := alice.NewText("general", "carried "+string(rune('a'+i)), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e.Raw())
		id := e.ID()
		ids = append(ids, id[:]...)
	}
	if _, err := n.st.Put(t.Context(), envs[1]); err != nil {
		t.Fatal(err)
	}
	bin := map[string]string{"Content-Type": "application/octet-stream"}
	w := phone(n, "POST", "/api/v1/missing", bin, ids)
	if w.Code != 200 || w.Body.Len() != 4*32 || bytes.Contains(w.Body.Bytes(), ids[32:64]) {
		t.Fatalf("missing: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := phone(n, "POST", "/api/v1/missing", bin, ids[:40]); w.Code != http.StatusBadRequest {
		t.Fatalf("ragged ids: %d %s", w.Code, w.Body)
	}
	forged := bytes.Clone(envs[3])
	forged[len(forged)-1] ^= 1
	batch := api.EncodeBatch([][]byte{envs[0], envs[1], forged, envs[4]})
	w = phone(n, "POST", "/api/v1/batch", bin, batch)
	var res []api.BatchResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || w.Code != 200 || len(res) != 4 {
		t.Fatalf("batch: %d %s", w.Code, w.Body)
	}
	if !res[0].New || res[1].New || res[2].Error == "" || !strings.Contains(res[2].Error, "signature") || !res[3].New {
		t.Fatalf("batch results: %+v", res)
	}
	if w := phone(n, "POST", "/api/v1/batch", bin, batch[:len(batch)-3]); w.Code != http.StatusBadRequest {
		t.Fatalf("cut batch: %d %s", w.Code, w.Body)
	}
	if w := phone(n, "POST", "/api/v1/batch", map[string]string{"Content-Type": "text/plain"}, batch); w.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("batch as text/plain (a cross-site form could send that): %d", w.Code)
	}
}

func TestDecodeBatchBounds(t *testing.T) {
	one := []byte{1, 2, 3}
	many := make([][]byte, api.MaxBatchEnvelopes+1)
	for i := range many {
		many[i] = one
	}
	if _, err := api.DecodeBatch(api.EncodeBatch(many)); err == nil {
		t.Fatal("a batch over MaxBatchEnvelopes decoded")
	}
	if got, err := api.DecodeBatch(api.EncodeBatch(many[:3])); err != nil || len(got) != 3 {
		t.Fatalf("3 envelopes: %v, %v", got, err)
	}
	for _, b := range [][]byte{{0}, {0, 0}, {0xff, 0xff, 1}, {0, 5, 1, 2}} {
		if _, err := api.DecodeBatch(b); err == nil {
			t.Fatalf("%x decoded", b)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(api.EncodeBatch([][]byte{{1, 2, 3}, {4}}))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		envs, err := api.DecodeBatch(b)
		if err != nil {
			return
		}
		if len(envs) > api.MaxBatchEnvelopes || !bytes.Equal(api.EncodeBatch(envs), b) {
			t.Fatalf("decoded %d envelopes that do not re-encode to the input", len(envs))
		}
	})
}

// TestRawListingsAndStates: listings carry envelopes for pages that open
// their own mail, page back by (created, id), hide what is sealed, and
// follow a message from "on this node" to "left" and "delivered".
func TestRawListingsAndStates(t *testing.T) {
	n := newNode(t)
	alice, bob := newIdentity(t), newIdentity(t)
	t0 := time.Now().Add(-time.Minute)
	dm, _ := alice.NewDirect(rand.Reader, bob.Public(), "hi bob", message.PriorityNormal, t0, 0)
	team, _ := message.NewTeam(bytes.Repeat([]byte{3}, 32))
	tm, _ := alice.NewTeamText(rand.Reader, team, "team secret", message.PriorityNormal, t0, 0)
	prof, _ := alice.NewProfile(message.Profile{Name: "Alice"}, t0, 0)
	for _, e := range []*message.Envelope{dm, tm, prof} {
		if _, err := n.st.Put(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string, v any) {
		t.Helper()
		if m, ok := v.(*api.Message); ok {
			*m = api.Message{} // json.Unmarshal keeps fields the answer lacks
		}
		w := phone(n, "GET", path, nil, nil)
		if w.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatal(err)
		}
	}
	var m api.Message
	get("/api/v1/messages/"+dm.ID().String()+"?raw=1", &m)
	raw, _ := base64.StdEncoding.DecodeString(m.Envelope)
	if !bytes.Equal(raw, dm.Raw()) || m.Text != "" || m.Left || m.Delivered {
		t.Fatalf("raw DM: %+v", m)
	}
	got, err := bob.OpenDirect(mustDecode(t, raw))
	if err != nil || string(got) != "hi bob" {
		t.Fatalf("bob cannot open what the listing gave: %q %v", got, err)
	}
	get("/api/v1/messages/"+tm.ID().String(), &m)
	if m.Kind != "team" || m.Text != "" || m.Envelope != "" {
		t.Fatalf("team message shows %+v", m)
	}
	get("/api/v1/messages/"+prof.ID().String(), &m)
	if m.Kind != "profile" || m.Profile == nil || m.Profile.Name != "Alice" || m.Channel != message.ProfilesChannel {
		t.Fatalf("profile shows %+v", m)
	}
	// Left, then delivered by bob's receipt.
	if err := n.st.MarkLeft(t.Context(), []message.ID{dm.ID()}); err != nil {
		t.Fatal(err)
	}
	get("/api/v1/messages/"+dm.ID().String(), &m)
	if !m.Left || m.Delivered {
		t.Fatalf("after MarkLeft: %+v", m)
	}
	rc, _ := bob.NewReceipt(alice.Public(), []message.ID{dm.ID()}, time.Now())
	if _, err := n.st.Put(t.Context(), rc.Raw()); err != nil {
		t.Fatal(err)
	}
	get("/api/v1/messages/"+dm.ID().String(), &m)
	if !m.Delivered {
		t.Fatalf("after the recipient's receipt: %+v", m)
	}
	// Paging back.
	for i := range 5 {
		e, _ := alice.NewText("general", "n"+string(rune('0'+i)), t0.Add(time.Duration(i)*time.Second), 0)
		if _, err := n.st.Put(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	var page []api.Message
	get("/api/v1/messages?channel=general&limit=2", &page)
	if len(page) != 2 || page[1].Text != "n4" {
		t.Fatalf("newest page: %+v", page)
	}
	get("/api/v1/messages?channel=general&limit=2&before="+itoa(page[0].Created)+"&before_id="+page[0].ID, &page)
	if len(page) != 2 || page[0].Text != "n1" || page[1].Text != "n2" {
		t.Fatalf("page back: %+v", page)
	}
	for _, bad := range []string{"before=x", "before=5&since=3", "before_id=" + dm.ID().String(), "before=5&after=1", "raw=yes"} {
		if w := phone(n, "GET", "/api/v1/messages?"+bad, nil, nil); w.Code != http.StatusBadRequest {
			t.Errorf("?%s: %d %s", bad, w.Code, w.Body)
		}
	}
}

func mustDecode(t *testing.T, raw []byte) *message.Envelope {
	t.Helper()
	e, err := message.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// operator is the headers of an operator's JSON request proving it holds
// token (see api/operator.go), signed now.
func operator(token, method, target string, body []byte) map[string]string {
	return map[string]string{"Content-Type": "application/json",
		"Authorization": api.OperatorHeader(token, method, target, time.Now(), body)}
}
