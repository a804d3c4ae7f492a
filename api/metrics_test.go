package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"lifeline/api"
	"lifeline/clock"
	"lifeline/mesh"
	"lifeline/radio"
	"lifeline/radio/link"
)

// TestMetrics: /metrics is scraped and parsed as Prometheus reads it, and
// says what the node holds and sees.
func TestMetrics(t *testing.T) {
	n := newNode(t, func(o *api.Options) {
		o.Mesh = func() mesh.Status {
			return mesh.Status{Peers: 3, GossipPeers: 2, Uplink: mesh.UplinkStatus{Hubs: 1, State: "up"}, Reconciliations: 7}
		}
		// A system clock three days behind, and a hub that told the time.
		behind := func() time.Time { return time.Now().Add(-72 * time.Hour) }
		o.Clock = clock.New(clock.Options{System: behind})
		o.Clock.Observe(clock.Sample{Channel: clock.ChannelHub, Source: "hub", Time: time.Now(), Quality: clock.Synced, Uncertainty: 40 * time.Millisecond})
		o.Kit = func() api.KitStatus {
			return api.KitStatus{Address: "10.42.0.1", DNSAnswered: 7, DNSLimited: 1, Released: 2}
		}
		// A board that keeps its own account, reported two errors, and is
		// set up wrong.
		o.Radio = func() []radio.StationStatus {
			return []radio.StationStatus{{Status: link.Status{Device: "/dev/ttyACM0", State: "ready",
				Errors: map[string]int{"queue full": 2}, Warning: "set the region",
				Board: &link.BoardStats{AirtimeLong: 0.0375}}}}
		}
	})
	for _, text := range []string{"one", "two"} {
		if _, err := n.client.Send(ctxT(t), api.SendRequest{Channel: "general", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := n.http.Client().Get(n.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("%s missing from the scrape", name)
		}
		m := f.Metric[0]
		if m.Gauge != nil {
			return m.Gauge.GetValue()
		}
		return m.Counter.GetValue()
	}
	for name, want := range map[string]float64{
		"lifeline_store_messages":             2,
		"lifeline_store_ok":                   1,
		"lifeline_mesh_peers":                 3,
		"lifeline_mesh_gossip_peers":          2,
		"lifeline_uplink_up":                  1,
		"lifeline_store_evicted_total":        0,
		"lifeline_mesh_reconciliations_total": 7,
		"lifeline_kit_dns_answered_total":     7,
		"lifeline_kit_dns_limited_total":      1,
		"lifeline_kit_released":               2,
		"lifeline_radio_ready":                1,
		"lifeline_radio_setup_warning":        1,
		"lifeline_radio_board_airtime_ratio":  0.0375,
		"lifeline_radio_device_errors_total":  2,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	if u := value("lifeline_clock_uncertainty_seconds"); u < 0.04 || u > 0.05 {
		t.Errorf("lifeline_clock_uncertainty_seconds = %g, want the hub's 0.04 and a little drift", u)
	}
	if off := value("lifeline_clock_offset_seconds"); off < 72*3600-1 || off > 72*3600+1 {
		t.Errorf("lifeline_clock_offset_seconds = %g, want 72 h", off)
	}
	if src := families["lifeline_clock_source"]; src == nil || len(src.Metric) != 1 || src.Metric[0].Label[0].GetValue() != "hub" {
		t.Errorf("lifeline_clock_source: %v", src)
	}
}
