package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/bundle"
	"lifeline/message"
	"lifeline/store"
)

// readBundle reads every envelope of b and the error the reader ended with.
func readBundle(t *testing.T, b []byte) ([]message.ID, error) {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a bundle (%d bytes): %v", len(b), err)
	}
	var ids []message.ID
	for {
		raw, err := r.Next()
		if err != nil {
			return ids, err
		}
		e, derr := message.Decode(raw)
		if derr != nil {
			t.Fatalf("entry %d: %v", len(ids), derr)
		}
		ids = append(ids, e.ID())
	}
}

// failingStore fails an export after a number of records.
type failingStore struct {
	*store.Store
	after int
}

func (s failingStore) Export(ctx context.Context, q store.ExportQuery, fn func(*store.Record) error) error {
	n := 0
	return s.Store.Export(ctx, q, func(r *store.Record) error {
		if n++; n > s.after {
			return errors.New("the disk failed")
		}
		return fn(r)
	})
}

// TestExportEndpoint: the operator exports everything, a channel or a
// time range as a bundle; nobody else can; bad filters are refused; an
// export that fails on the way is cut short, never ended as if whole.
func TestExportEndpoint(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	n := newNode(t, func(o *api.Options) { o.AdminToken = token })
	alice, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	var all, water []*message.Envelope
	for i := range 700 {
		channel := "general"
		if i%4 == 0 {
			channel = "water"
		}
		e, err := alice.NewText(channel, fmt.Sprint("message ", i), base.Add(time.Duration(i)*time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.st.Put(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
		if channel == "water" {
			water = append(water, e)
		}
	}
	export := func(c *api.Client, q api.ExportQuery) ([]message.ID, error) {
		var buf bytes.Buffer
		if err := c.Export(ctxT(t), q, &buf); err != nil {
			return nil, err
		}
		ids, err := readBundle(t, buf.Bytes())
		if !errors.Is(err, io.EOF) {
			t.Fatalf("the export ends with %v, want a whole bundle", err)
		}
		return ids, nil
	}
	same := func(what string, got []message.ID, want []*message.Envelope) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d envelopes, want %d", what, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i].ID() {
				t.Fatalf("%s: envelope %d differs", what, i)
			}
		}
	}
	ids, err := export(n.client, api.ExportQuery{})
	if err != nil {
		t.Fatal(err)
	}
	same("everything", ids, all)
	ids, err = export(n.client, api.ExportQuery{Channel: "#Water"})
	if err != nil {
		t.Fatal(err)
	}
	same("water", ids, water)
	since, until := time.UnixMilli(all[100].Created), time.UnixMilli(all[300].Created)
	ids, err = export(n.client, api.ExportQuery{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	same("a time range", ids, all[100:300])

	// The operator off the node's machine, with the token's proof.
	operator := &api.Client{BaseURL: n.http.URL, HTTP: &http.Client{Transport: forwarded{n.http.Client().Transport}}, Token: token}
	ids, err = export(operator, api.ExportQuery{Channel: "water"})
	if err != nil {
		t.Fatal(err)
	}
	same("the operator's", ids, water)
	// A phone on the Wi-Fi: no.
	phoneClient := &api.Client{BaseURL: n.http.URL, HTTP: &http.Client{Transport: forwarded{n.http.Client().Transport}}}
	if _, err := export(phoneClient, api.ExportQuery{}); err == nil || err.(*api.Error).StatusCode != http.StatusForbidden {
		t.Fatalf("a phone's export: %v, want 403", err)
	}

	for _, bad := range []string{"since=yesterday", "until=-1", "after=3", "raw=1", "channel=general&to=" + alice.Public().String(),
		"since=1&since=2", "limit=10", "channel=" + strings.Repeat("x", 300)} {
		if code, body, _ := n.do(t, "GET", "/api/v1/export?"+bad, "", nil); code != http.StatusBadRequest {
			t.Errorf("export?%s: %d %s, want 400", bad, code, body)
		}
	}
}

// TestExportCutShort: a store that fails during an export cuts the
// answer; the client says so, and what it wrote reads as a bundle cut
// short, with everything before the failure. One that fails before
// anything was sent answers an error.
func TestExportCutShort(t *testing.T) {
	n := newNode(t)
	failing := newNode(t, func(o *api.Options) { o.Store = failingStore{Store: n.st, after: 900} })
	alice, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		e, err := alice.NewText("general", fmt.Sprint("message ", i), time.Now().Add(-time.Duration(i)*time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.st.Put(t.Context(), e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := failing.client.Export(ctxT(t), api.ExportQuery{}, &buf); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("an export that failed on the node: %v", err)
	}
	ids, err := readBundle(t, buf.Bytes())
	if !errors.Is(err, bundle.ErrTruncated) || len(ids) > 900 || len(ids) == 0 {
		t.Fatalf("what was written: %d envelopes, %v; want up to 900, cut short", len(ids), err)
	}
	early := newNode(t, func(o *api.Options) { o.Store = failingStore{Store: n.st, after: 10} })
	buf.Reset()
	err = early.client.Export(ctxT(t), api.ExportQuery{}, &buf)
	if ae, ok := errors.AsType[*api.Error](err); !ok || ae.StatusCode != http.StatusInternalServerError || buf.Len() != 0 {
		t.Fatalf("an export that failed before sending: %v (%d bytes written), want 500", err, buf.Len())
	}
}

// TestPostBatchBudgets: the operator's import is not held to the
// envelopes-a-second budget of an address; a phone's is.
func TestPostBatchBudgets(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	n := newNode(t, func(o *api.Options) {
		o.AdminToken = token
		o.PublicRate, o.PublicBurst = 1, 10
	})
	alice, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(k, size int) [][]byte {
		var out [][]byte
		for i := range size {
			e, err := alice.NewText("general", fmt.Sprint("batch ", k, " message ", i), time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Raw())
		}
		return out
	}
	operator := &api.Client{BaseURL: n.http.URL, HTTP: &http.Client{Transport: forwarded{n.http.Client().Transport}}, Token: token}
	for k := range 3 {
		envs := batch(k, api.MaxBatchEnvelopes)
		res, err := operator.PostBatch(ctxT(t), envs)
		if err != nil {
			t.Fatalf("the operator's batch %d: %v", k, err)
		}
		for i, r := range res {
			if !r.New || r.Error != "" {
				t.Fatalf("batch %d, envelope %d: %+v", k, i, r)
			}
		}
	}
	// Again: already stored, and one forged among them.
	envs := batch(9, 3)
	envs[1] = bytes.Clone(envs[1])
	envs[1][len(envs[1])-1] ^= 1
	res, err := operator.PostBatch(ctxT(t), envs)
	if err != nil || !res[0].New || res[1].Error == "" || !strings.Contains(res[1].Error, message.ErrSignature.Error()) || !res[2].New {
		t.Fatalf("a batch with a forged envelope: %+v %v", res, err)
	}
	if res, err := operator.PostBatch(ctxT(t), envs[:1]); err != nil || res[0].New || res[0].Error != "" {
		t.Fatalf("again: %+v %v", res, err)
	}

	phoneClient := &api.Client{BaseURL: n.http.URL, HTTP: &http.Client{Transport: forwarded{n.http.Client().Transport}}}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err = phoneClient.PostBatch(ctx, batch(10, 50))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a phone's batch over its budget: %v, want 429 waited on until the deadline", err)
	}
}
