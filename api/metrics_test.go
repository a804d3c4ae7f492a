package api_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"lifeline/api"
	"lifeline/mesh"
)

// TestMetrics: /metrics is scraped and parsed as Prometheus reads it, and
// says what the node holds and sees.
func TestMetrics(t *testing.T) {
	n := newNode(t, func(o *api.Options) {
		o.Mesh = func() mesh.Status {
			return mesh.Status{Peers: 3, GossipPeers: 2, Uplink: mesh.UplinkStatus{Hubs: 1, State: "up"}}
		}
		o.Kit = func() api.KitStatus {
			return api.KitStatus{Address: "10.42.0.1", DNSAnswered: 7, DNSLimited: 1, Released: 2}
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
		"lifeline_store_messages":         2,
		"lifeline_store_ok":               1,
		"lifeline_mesh_peers":             3,
		"lifeline_mesh_gossip_peers":      2,
		"lifeline_uplink_up":              1,
		"lifeline_store_evicted_total":    0,
		"lifeline_kit_dns_answered_total": 7,
		"lifeline_kit_dns_limited_total":  1,
		"lifeline_kit_released":           2,
	} {
		if got := value(name); got != want {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
}
