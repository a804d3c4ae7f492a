package lifeline_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
)

// TestStrangersAlertFlood: a node run by an attacker holds 620 alerts,
// each from a fresh key and with the longest lifetime; the victim
// reconciles with it (a static peer, so the attacker's node key is even a
// member). The alerts take only the room strangers' messages had: every
// message of the victim's vouched member and of the victim itself
// survives, and the victim can still post.
func TestStrangersAlertFlood(t *testing.T) {
	member, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	attacker := startNode(t, t.TempDir())
	var alerts []*message.Envelope
	for i := range 620 {
		key, err := message.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := message.Channel("general")
		e, err := key.Sign(message.Draft{Kind: message.KindAlert, Priority: message.PriorityAlert,
			Created: time.Now().UnixMilli(), TTL: message.MaxTTL, Channel: ch,
			Body: fmt.Appendf(nil, "alert %d: %0300d", i, i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := attacker.client.PostEnvelope(ctx, e.Raw()); err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, e)
	}

	const quota = 120_000 // about 200 messages of these sizes
	dir := t.TempDir()
	victim := startNodeWith(t, dir, func(c *lifeline.Config) {
		c.Quota = quota
		c.Members = []string{member.Public().String()}
	})
	var keep []string
	ch, _ := message.Channel("general")
	for i := range 40 {
		e, err := member.Sign(message.Draft{Kind: message.KindText, Priority: message.PriorityLow,
			Created: time.Now().UnixMilli(), Channel: ch, Body: fmt.Appendf(nil, "member %d: %0300d", i, i)})
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := victim.client.PostEnvelope(ctx, e.Raw())
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, id)
	}
	for i := range 10 {
		id, err := victim.client.Send(ctx, api.SendRequest{Channel: "general", Text: fmt.Sprintf("own %d: %0300d", i, i)})
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, id)
	}

	addr := meshAddr(t, attacker)
	if err := victim.shutdown(); err != nil { // restart with the attacker as a static peer
		t.Fatal(err)
	}
	victim = startNodeWith(t, dir, func(c *lifeline.Config) {
		c.Quota = quota
		c.Members = []string{member.Public().String()}
		c.Peers = []string{addr}
	})
	// Every alert reaches the victim: stored, or stored and evicted by a
	// later one.
	waitFor(t, "the victim to take every alert", func() bool {
		st, err := victim.client.Status(ctx)
		if err != nil {
			return false
		}
		alertsHeld := st.Messages - int64(len(keep))
		return st.Evicted > 0 && alertsHeld+st.Evicted >= int64(len(alerts))
	})
	for _, id := range keep {
		if _, err := victim.client.Message(ctx, id); err != nil {
			t.Fatalf("a member's or the node's own message was evicted by strangers' alerts: %v", err)
		}
	}
	if _, err := victim.client.Send(ctx, api.SendRequest{Channel: "general", Text: "still here"}); err != nil {
		t.Fatalf("the node cannot post after the flood: %v", err)
	}
	st, _ := victim.client.Status(ctx)
	t.Logf("victim: %d messages, %d bytes of %d, %d evicted", st.Messages, st.Bytes, st.Quota, st.Evicted)
}
