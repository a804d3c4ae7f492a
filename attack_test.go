package lifeline_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestNodeDiskFull: a node whose disk fills answers writes with 507 and
// keeps answering reads; once space returns it takes writes again, without
// a restart. (The data directory is a small tmpfs; mounting it needs root,
// which CI has.)
func TestNodeDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	n := startNodeWith(t, dir, nil)
	ctx := ctxT(t)
	before, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "before the disk filled"})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-(4<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "on a full disk"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusInsufficientStorage || !strings.Contains(ae.Message, "no space left") {
		t.Fatalf("send on a full disk: %v, want 507 saying why", err)
	}
	if _, err := n.client.Message(ctx, before); err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	os.Remove(filler)
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "room again"}); err != nil {
		t.Fatalf("send once space returned, without a restart: %v", err)
	}
}
