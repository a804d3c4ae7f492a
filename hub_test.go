package lifeline_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
	"lifeline/store"
)

// meshAddr returns a node's loopback TCP mesh address, /p2p/ included.
func meshAddr(t testing.TB, s *started) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.client.Status(ctx)
	if err != nil || st.Status == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
	for _, a := range st.Status.Addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	t.Fatalf("no loopback TCP address in %v", st.Status.Addrs)
	return ""
}

func uplinkState(t *testing.T, s *started) string {
	st, err := s.client.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.Uplink.State
}

func asHub(c *lifeline.Config) { c.Role = lifeline.RoleHub }

// TestOutageRecord cuts a field node's hub for a measured interval, then
// restores it: the hub then holds the field node's signed reports, and
// the outage they record matches the interval within the probe period.
func TestOutageRecord(t *testing.T) {
	const probe = 300 * time.Millisecond
	hubDir := t.TempDir()
	hub := startNodeWith(t, hubDir, asHub)
	hubAddr := meshAddr(t, hub)
	field := startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
		c.Hubs, c.ProbeInterval = []string{hubAddr}, lifeline.Duration(probe)
	})
	waitFor(t, "uplink up", func() bool { return uplinkState(t, field) == "up" })

	cutAt := time.Now()
	if err := hub.shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "uplink down", func() bool { return uplinkState(t, field) == "down" })
	time.Sleep(1500 * time.Millisecond) // the outage being measured
	restoredAt := time.Now()
	// The same hub comes back: same key, same address.
	listen := hubAddr[:strings.Index(hubAddr, "/p2p/")]
	hub = startNodeWith(t, hubDir, func(c *lifeline.Config) { asHub(c); c.Listen = []string{listen} })

	var outages []api.Outage
	waitFor(t, "the field node's outage on the hub", func() bool {
		var err error
		if outages, err = hub.client.Outages(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return len(outages) == 1 && !outages[0].Ongoing
	})
	o := outages[0]
	if o.Node != field.node.ID().String() || len(o.Reports) != 2 {
		t.Fatalf("outage %+v", o)
	}
	// Detection takes at most a probe period, plus the dial and ping of
	// the probe itself on a busy machine (and, for the end, the hub's
	// start: all slower under emulation).
	slack := stretch(probe + 200*time.Millisecond)
	if d := o.Start.Sub(cutAt); d < 0 || d > slack {
		t.Errorf("outage start %s after the cut, want within %s", d, slack)
	}
	if d := o.End.Sub(restoredAt); d < 0 || d > slack {
		t.Errorf("outage end %s after the restore, want within %s", d, slack)
	}
	if o.LastUp == nil || o.LastUp.After(cutAt) || cutAt.Sub(*o.LastUp) > slack {
		t.Errorf("last up %v, cut at %v", o.LastUp, cutAt)
	}
	t.Logf("cut %s, restored %s later; recorded %s → %s (%.3f s)", cutAt.Format(time.StampMilli),
		restoredAt.Sub(cutAt).Round(time.Millisecond), o.Start.Format(time.StampMilli), o.End.Format(time.StampMilli), o.Duration)

	// The reports are the field node's own signed messages, readable as such.
	for _, id := range o.Reports {
		raw, err := hub.client.Envelope(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		e, err := message.Verify(raw, time.Now().UnixMilli())
		if err != nil || e.Kind != message.KindReport || e.Author.String() != field.node.ID().String() {
			t.Fatalf("report %s: %v", id, err)
		}
	}
	// And the field node lists the same outage.
	mine, err := field.client.Outages(ctxT(t))
	if err != nil || len(mine) != 1 || !mine[0].End.Equal(*o.End) {
		t.Fatalf("field node's outages: %+v %v", mine, err)
	}
}

// TestMessageFromOutside: a person on the internet, with their own key,
// posts a direct message for a field user to a hub; the field node gets it
// when it connects.
func TestMessageFromOutside(t *testing.T) {
	hub := startNodeWith(t, t.TempDir(), asHub)
	hubAddr := meshAddr(t, hub)
	fieldDir := t.TempDir()
	// The field node's key exists before it ever connects: the person
	// outside knows it (from an earlier message, a card, a website).
	fieldKey := nodeKey(t, fieldDir)

	outside, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The field user wrote to the person outside before (stored here as
	// if sent before the last shutdown): a node acknowledges only its
	// correspondents (receipts.go).
	wrote := writeBefore(t, fieldDir, outside.Public())
	dm, err := outside.NewDirect(rand.Reader, fieldKey, "your family is safe in the north camp", message.PriorityHigh, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, isNew, err := hub.client.PostEnvelope(ctxT(t), dm.Raw()); err != nil || !isNew {
		t.Fatalf("post to the hub: new=%v %v", isNew, err)
	}

	field := startNodeWith(t, fieldDir, func(c *lifeline.Config) {
		c.Hubs, c.ProbeInterval = []string{hubAddr}, lifeline.Duration(300*time.Millisecond)
	})
	var got []api.Message
	waitFor(t, "the direct message on the field node", func() bool {
		got, err = field.client.List(ctxT(t), api.ListQuery{To: fieldKey.String()})
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 1
	})
	if got[0].Text != "your family is safe in the north camp" || got[0].Author != outside.Public().String() {
		t.Fatalf("field node reads %+v", got[0])
	}
	// The field node's receipt goes back through the hub.
	waitFor(t, "the receipt on the hub", func() bool {
		rs, err := hub.client.List(ctxT(t), api.ListQuery{To: outside.Public().String()})
		if err != nil {
			t.Fatal(err)
		}
		rs = slices.DeleteFunc(rs, func(m api.Message) bool { return m.ID == wrote.String() })
		return len(rs) == 1 && rs[0].Kind == "receipt" && rs[0].Author == fieldKey.String()
	})
}

// writeBefore stores, in the node data directory dir, a direct message
// from the node's key to k, as if the node had sent it in an earlier run.
func writeBefore(t *testing.T, dir string, k message.PublicKey) message.ID {
	t.Helper()
	id, _, err := lifeline.LoadOrCreateIdentity(filepath.Join(dir, lifeline.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, lifeline.StoreFile), store.Options{Own: id.Public(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := id.NewDirect(rand.Reader, k, "are you safe?", message.PriorityNormal, time.Now(), 0)
	if err == nil {
		_, err = st.PutOwn(ctxT(t), e.Raw())
	}
	if err = errors.Join(err, st.Close()); err != nil {
		t.Fatal(err)
	}
	return e.ID()
}

// nodeKey creates the identity a node in dir will use.
func nodeKey(t *testing.T, dir string) message.PublicKey {
	t.Helper()
	id, _, err := lifeline.LoadOrCreateIdentity(dir + "/" + lifeline.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	return id.Public()
}
