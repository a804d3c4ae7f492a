package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// TestVouch: `lifeline vouch OLD NEW` has the node sign a vouched key
// change, which the node then lists; wrong keys are usage errors.
func TestVouch(t *testing.T) {
	id, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "lifeline.db"), store.Options{Own: id.Public(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := api.New(api.Options{Store: st, Identity: id, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv) // loopback: the operator
	t.Cleanup(hs.Close)
	t.Cleanup(srv.Close)
	old, _ := message.NewIdentity(rand.Reader)
	nw, _ := message.NewIdentity(rand.Reader)

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"vouch", "--api", hs.URL, old.Public().String(), nw.Public().String()}, strings.NewReader(""), &out, &errb); code != exitOK {
		t.Fatalf("vouch: exit %d, %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "vouched: "+nw.Public().String()+" replaces "+old.Public().String()) {
		t.Fatalf("vouch said %q", out.String())
	}
	ms, err := (&api.Client{BaseURL: hs.URL}).List(t.Context(), api.ListQuery{Channel: message.KeysChannel})
	if err != nil || len(ms) != 1 || ms[0].KeyChange == nil || ms[0].KeyChange.Voucher != id.Public().String() || ms[0].KeyChange.New != nw.Public().String() {
		t.Fatalf("listed: %+v, %v", ms, err)
	}

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"vouch", "--api", hs.URL, old.Public().String()}, exitUsage, "the old key and the new key"},
		{[]string{"vouch", "--api", hs.URL, "abc", nw.Public().String()}, exitUsage, `the old key "abc"`},
		{[]string{"vouch", "--api", hs.URL, old.Public().String(), id.Public().String()}, exitError, "vouch for its own"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb); code != tc.code || !strings.Contains(out.String()+errb.String(), tc.says) {
			t.Errorf("lifeline %q: exit %d, %q%q; want %d saying %q", tc.args, code, out.String(), errb.String(), tc.code, tc.says)
		}
	}
}
