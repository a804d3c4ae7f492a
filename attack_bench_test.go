package lifeline_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"lifeline"
	"lifeline/api"
	"lifeline/mesh"
	"lifeline/message"
)

// BenchmarkFlood: a stranger floods a field node with valid messages from
// 100 fresh keys, as fast as one process can push them: published raw on
// the gossip topic (signed beforehand, so pushing costs the attacker
// nothing but the network), and posted to the node's API as a phone on its
// Wi-Fi would. Meanwhile the node's operator reads its status (what the
// status page does), and a member node (a static peer) writes a message
// every 250 ms. It reports the status latency at the 50th and 99th
// percentile before the flood (the anchor) and during it, how long the
// member's messages took to arrive, and how many of the stranger's
// messages the node stored a second.
func BenchmarkFlood(b *testing.B) {
	for b.Loop() {
		floodOnce(b)
	}
}

func floodOnce(b *testing.B) {
	const (
		keys      = 100
		envelopes = 200_000 // more than the 10 s can take, so the flood never pauses
		flood     = 10 * time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	member := startNodeWith(b, b.TempDir(), nil)
	memberAddr := meshAddr(b, member)
	victim := startNodeWith(b, b.TempDir(), func(c *lifeline.Config) { c.Peers = []string{memberAddr} })
	victimAddr := meshAddr(b, victim)

	// The stranger's messages, signed beforehand.
	ids := make([]*message.Identity, keys)
	for i := range ids {
		ids[i], _ = message.NewIdentity(rand.Reader)
	}
	raws := make([][]byte, envelopes)
	now := time.Now()
	var signers sync.WaitGroup
	for w := range 2 {
		signers.Go(func() {
			for i := w; i < envelopes; i += 2 {
				e, err := ids[i%keys].NewText("general", fmt.Sprintf("flood %d", i), now, 0)
				if err != nil {
					panic(err)
				}
				raws[i] = e.Raw()
			}
		})
	}
	signers.Wait()

	status := func(d time.Duration) []time.Duration {
		var out []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); {
			t0 := time.Now()
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := victim.client.Status(sctx)
			scancel()
			if err != nil {
				b.Fatalf("status: %v", err)
			}
			out = append(out, time.Since(t0))
			time.Sleep(20 * time.Millisecond) // a client polling, not a load generator
		}
		return out
	}
	idle := status(3 * time.Second)
	before, _ := victim.client.Status(ctx)

	// The gossip flood: a raw GossipSub host, no validation of its own.
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { s := sha256.Sum256(m.Data); return string(s[:]) }))
	if err != nil {
		b.Fatal(err)
	}
	topic, err := ps.Join(mesh.Topic)
	if err != nil {
		b.Fatal(err)
	}
	ai, err := peer.AddrInfoFromString(victimAddr)
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(topic.ListPeers(), ai.ID); {
		if time.Now().After(deadline) {
			b.Fatal("the victim never joined the attacker's topic")
		}
		time.Sleep(10 * time.Millisecond)
	}
	floodCtx, stopFlood := context.WithTimeout(ctx, flood)
	defer stopFlood()
	var published, posted, refused atomic.Int64
	var gossipFor, postFor time.Duration // how long each pusher pushed
	floodStart := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer func() { gossipFor = time.Since(floodStart) }()
		for _, raw := range raws[:envelopes*3/4] {
			if floodCtx.Err() != nil {
				return
			}
			if topic.Publish(floodCtx, raw) == nil {
				published.Add(1)
			}
		}
	})
	// The API flood: a phone on the Wi-Fi (a proxy header makes a
	// loopback client a stranger), as fast as the node answers.
	var posters sync.WaitGroup
	wg.Go(func() {
		posters.Wait()
		postFor = time.Since(floodStart)
	})
	for w := range 4 {
		posters.Add(1)
		wg.Go(func() {
			defer posters.Done()
			for i := envelopes*3/4 + w; i < envelopes && floodCtx.Err() == nil; i += 4 {
				req, _ := http.NewRequestWithContext(floodCtx, http.MethodPost, victim.client.BaseURL+"/api/v1/envelopes", bytes.NewReader(raws[i]))
				req.Header.Set("Content-Type", "application/octet-stream")
				req.Header.Set("X-Forwarded-For", "192.168.4.77")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				res.Body.Close()
				if res.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
				} else {
					posted.Add(1)
				}
			}
		})
	}
	// The member writes every 250 ms; each message is timed until the
	// victim serves it.
	var memberLat []time.Duration
	var mu sync.Mutex
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := 0; floodCtx.Err() == nil; i++ {
			<-tick.C
			t0 := time.Now()
			id, err := member.client.Send(ctx, api.SendRequest{Channel: "general", Text: fmt.Sprint("member ", i)})
			if err != nil {
				b.Errorf("member send: %v", err)
				return
			}
			wg.Go(func() {
				for deadline := t0.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if _, err := victim.client.Message(ctx, id); err == nil {
						mu.Lock()
						memberLat = append(memberLat, time.Since(t0))
						mu.Unlock()
						return
					}
				}
				b.Errorf("a member's message did not reach the flooded node within 60 s")
			})
		}
	})
	during := status(flood - 500*time.Millisecond)
	wg.Wait()
	after, _ := victim.client.Status(ctx)

	pct := func(ds []time.Duration, p float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(idle, 0.5), "ms-status-p50-idle")
	b.ReportMetric(pct(idle, 0.99), "ms-status-p99-idle")
	b.ReportMetric(pct(during, 0.5), "ms-status-p50-flood")
	b.ReportMetric(pct(during, 0.99), "ms-status-p99-flood")
	if len(memberLat) > 0 {
		b.ReportMetric(pct(memberLat, 0.5), "ms-member-p50")
		b.ReportMetric(pct(memberLat, 0.99), "ms-member-p99")
	}
	b.ReportMetric(float64(published.Load())/gossipFor.Seconds(), "gossiped/s")
	b.ReportMetric(float64(posted.Load()+refused.Load())/postFor.Seconds(), "posted/s")
	b.ReportMetric(float64(after.Messages-before.Messages)/flood.Seconds(), "stored/s")
	b.ReportMetric(0, "ns/op")
}
