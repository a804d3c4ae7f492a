package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/message"
)

// TestKeyChangeVouch: the operator has the node vouch that a person's new
// key replaces the old; phones on the Wi-Fi cannot make the node vouch;
// listings show each key change's statement, a forged one with why it is
// not to be followed.
func TestKeyChangeVouch(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	n := newNode(t, func(o *api.Options) { o.AdminToken = token })
	ctx := ctxT(t)
	old, nw := newIdentity(t), newIdentity(t)

	id, err := n.client.Vouch(ctx, old.Public().String(), nw.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	m, err := n.client.Message(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := api.KeyChange{Old: old.Public().String(), New: nw.Public().String(), Voucher: n.id.Public().String()}
	if m.Kind != "keychange" || m.Channel != message.KeysChannel || m.Author != n.id.Public().String() || m.KeyChange == nil || *m.KeyChange != want {
		t.Fatalf("the vouched key change: %+v (%+v)", m, m.KeyChange)
	}

	// A phone cannot have the node vouch; the operator's token can.
	body := []byte(`{"old":"` + old.Public().String() + `","new":"` + newIdentity(t).Public().String() + `"}`)
	ct := map[string]string{"Content-Type": "application/json"}
	if w := phone(n, "POST", "/api/v1/keychange", ct, body); w.Code != http.StatusForbidden {
		t.Fatalf("a phone made the node vouch: %d %s", w.Code, w.Body)
	}
	if w := phone(n, "POST", "/api/v1/keychange", operator(token, "POST", "/api/v1/keychange", body), body); w.Code != http.StatusCreated {
		t.Fatalf("with the admin token: %d %s", w.Code, w.Body)
	}
	// The node cannot vouch for its own key, nor for a key nobody can
	// write to, nor for what is not a key.
	for name, req := range map[string]string{
		"its own key":    `{"old":"` + old.Public().String() + `","new":"` + n.id.Public().String() + `"}`,
		"a zero new key": `{"old":"` + old.Public().String() + `","new":"` + strings.Repeat("0", 64) + `"}`,
		"not a key":      `{"old":"xyz","new":"` + nw.Public().String() + `"}`,
		"the same key":   `{"old":"` + nw.Public().String() + `","new":"` + nw.Public().String() + `"}`,
	} {
		var e *api.Error
		var r api.KeyChangeRequest
		if err := json.Unmarshal([]byte(req), &r); err != nil {
			t.Fatal(err)
		}
		if _, err := n.client.Vouch(ctx, r.Old, r.New); !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest {
			t.Errorf("vouching for %s: %v, want 400", name, err)
		}
	}

	// A statement signed by both, posted by the person's page; and a
	// forged one (the old signature altered), which the node stores like
	// any well-signed envelope and lists with the reason.
	both, err := nw.NewKeyChange(old, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	forgedBody := bytes.Clone(both.Body)
	forgedBody[100] ^= 1
	keys, _ := message.Channel(message.KeysChannel)
	forged, err := nw.Sign(message.Draft{Kind: message.KindKeyChange, Priority: message.PriorityNormal, Created: time.Now().UnixMilli(), Channel: keys, Body: forgedBody})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*message.Envelope{both, forged} {
		if w := phone(n, "POST", "/api/v1/envelopes", map[string]string{"Content-Type": "application/octet-stream"}, e.Raw()); w.Code != http.StatusCreated {
			t.Fatalf("posting a key change: %d %s", w.Code, w.Body)
		}
	}
	ms, err := n.client.List(ctx, api.ListQuery{Channel: message.KeysChannel})
	if err != nil || len(ms) != 4 {
		t.Fatalf("key changes listed: %d, %v", len(ms), err)
	}
	byID := map[string]*api.KeyChange{}
	for _, m := range ms {
		byID[m.ID] = m.KeyChange
	}
	if kc := byID[both.ID().String()]; kc == nil || *kc != (api.KeyChange{Old: old.Public().String(), New: nw.Public().String()}) {
		t.Errorf("signed by both, listed as %+v", kc)
	}
	if kc := byID[forged.ID().String()]; kc == nil || kc.Old != old.Public().String() || !strings.Contains(kc.Error, "did not sign") {
		t.Errorf("forged, listed as %+v", kc)
	}
}

// TestStatusOperator: the status says whether the client is the operator,
// so the phone app shows the operator's section to the operator only.
func TestStatusOperator(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	n := newNode(t, func(o *api.Options) { o.AdminToken = token })
	for name, c := range map[string]struct {
		hdr  map[string]string
		want bool
	}{
		"a phone":              {nil, false},
		"a phone, wrong token": {operator(strings.Repeat("1", len(token)), "GET", "/api/v1/status", nil), false},
		"the admin token":      {operator(token, "GET", "/api/v1/status", nil), true},
	} {
		var st api.Status
		w := phone(n, "GET", "/api/v1/status", c.hdr, nil)
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Operator != c.want {
			t.Errorf("%s: operator %v (%v), want %v", name, st.Operator, err, c.want)
		}
	}
	st, err := n.client.Status(ctxT(t)) // loopback
	if err != nil || !st.Operator {
		t.Errorf("loopback: operator %v, %v", st.Operator, err)
	}
}
