package radio

import (
	"testing"
	"time"

	"lifeline/message"
	"lifeline/radio/lora"
)

// BenchmarkForwarding compares Lifeline's forwarding (managed flood plus
// repair) with plain flooding (every node rebroadcasts every frame once)
// on the same simulated scenarios, at LongFast in EU868 with 20 % frame
// loss per link: the must-show's three messages (short, long in six
// fragments, alert) sent from one corner. Each iteration is one seed.
// Metrics: transmissions and seconds of airtime per delivered message
// (a message reaching one node), and the share of deliveries made.
// Lifeline's count includes every digest, want and more it sent until the
// last node had all three (or 12 hours passed); plain flooding's runs
// until the air is quiet.
func BenchmarkForwarding(b *testing.B) {
	for _, topo := range []struct {
		name        string
		nodes, grid int
	}{
		{"line5", 5, 0},
		{"grid9", 9, 3},
	} {
		for _, plain := range []bool{false, true} {
			name := topo.name + "/lifeline"
			if plain {
				name = topo.name + "/plain"
			}
			b.Run(name, func(b *testing.B) {
				var frames, deliveries, possible int
				var airtime time.Duration
				for i := 0; b.Loop(); i++ {
					s := newSim(b, simConfig{nodes: topo.nodes, loss: 0.2, region: lora.Regions["EU868"],
						modem: lora.ModemPresets[lora.DefaultModem], plain: plain, grid: topo.grid, seed: uint64(i)})
					short, long, alert := lineMessages(b, s.now)
					ids := []message.ID{message.IDOf(short), message.IDOf(long), message.IDOf(alert)}
					for _, env := range [][]byte{short, long, alert} {
						s.store(0, env)
					}
					all := func() bool {
						for _, n := range s.nodes {
							for _, id := range ids {
								if _, ok := n.got[id]; !ok {
									return false
								}
							}
						}
						return true
					}
					s.runUntil(12*time.Hour, all)
					f, a := s.airtime()
					frames += f
					airtime += a
					for _, n := range s.nodes[1:] {
						for _, id := range ids {
							if _, ok := n.got[id]; ok {
								deliveries++
							}
						}
					}
					possible += len(ids) * (topo.nodes - 1)
				}
				b.ReportMetric(float64(frames)/float64(deliveries), "tx/delivery")
				b.ReportMetric(airtime.Seconds()/float64(deliveries), "airtime-s/delivery")
				b.ReportMetric(100*float64(deliveries)/float64(possible), "%delivered")
			})
		}
	}
}
