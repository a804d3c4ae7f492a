package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics serves the node's figures in Prometheus's text format, read
// from the store, the mesh and the radios at each scrape (nothing is kept
// between scrapes). They are counts only, no keys nor addresses, so anyone
// may scrape them, like the status summary.

// metrics collects the node's figures when scraped.
type metrics struct{ s *Server }

// metricHelp describes a metric, by name.
func metricHelp(name string) string {
	switch name {
	case "lifeline_store_messages":
		return "Messages stored now."
	case "lifeline_store_bytes":
		return "Logical bytes of the messages stored now (see docs/STORE.md)."
	case "lifeline_store_quota_bytes":
		return "The store's quota in logical bytes; 0: none."
	case "lifeline_store_evicted_total":
		return "Messages removed to respect the quota, since the store was created."
	case "lifeline_store_expired_total":
		return "Messages removed on expiry, since the store was created."
	case "lifeline_store_refused_total":
		return "Acknowledged messages not stored when applied, since the node started."
	case "lifeline_store_last_seq":
		return "The arrival sequence number of the newest message stored."
	case "lifeline_store_ok":
		return "1 while the store can take messages, 0 when it broke or its disk is full."
	case "lifeline_mesh_peers":
		return "Peers connected over IP."
	case "lifeline_mesh_gossip_peers":
		return "Peers in the gossip mesh."
	case "lifeline_mesh_misbehaving_total":
		return "Peers cut off for misbehaving, since the node started."
	case "lifeline_mesh_blocked_peers":
		return "Peers blocked now."
	case "lifeline_uplink_up":
		return "1 while a hub is reachable, 0 while none is; absent without hubs."
	case "lifeline_radio_ready":
		return "1 while the radio is ready, by device."
	case "lifeline_radio_airtime_used_seconds":
		return "Airtime spent in the current duty-cycle window, by device."
	case "lifeline_radio_airtime_budget_seconds":
		return "The duty-cycle budget of a window, by device."
	case "lifeline_radio_queue":
		return "Frames waiting to go on air, by device."
	case "lifeline_radio_frames_sent_total":
		return "Frames sent on air, by device."
	case "lifeline_radio_frames_heard_total":
		return "Frames heard on air, by device."
	case "lifeline_mesh_reconciliations_total":
		return "Reconciliation sessions that ended well, as initiator or responder, since the node started."
	case "lifeline_mesh_reconcile_failures_total":
		return "Reconciliation sessions that failed, since the node started."
	case "lifeline_clock_offset_seconds":
		return "The node's clock minus its system clock: what the system clock is off by."
	case "lifeline_clock_uncertainty_seconds":
		return "How far off the node's clock may be; 0 when unknown."
	case "lifeline_clock_source":
		return "1 for the source the node's clock follows (gps, synced, hub, phone, system, floor)."
	case "lifeline_radio_board_airtime_ratio":
		return "The share of the last hour the board itself says it transmitted (RNode's STAT_CHTM), by device; absent for boards that do not say."
	case "lifeline_radio_device_errors_total":
		return "Errors the radio device reported, by device and meaning, since the node started."
	case "lifeline_radio_setup_warning":
		return "1 while the device's setup is wrong in a way the status says how to fix, by device."
	case "lifeline_radio_stored_total":
		return "Messages from the air the store took as new, by device."
	case "lifeline_kit_dns_answered_total":
		return "DNS queries the kit answered, since the node started; absent when not a kit."
	case "lifeline_kit_dns_limited_total":
		return "DNS queries the kit dropped over its rate limits, since the node started."
	case "lifeline_kit_released":
		return "Phones that opened the app and are told the kit's Wi-Fi is online."
	}
	return ""
}

func desc(name string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, metricHelp(name), labels, nil)
}

func (m metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(name string, v float64, labels ...string) {
		var names []string
		if len(labels) > 0 {
			names = []string{"device"}
		}
		ch <- prometheus.MustNewConstMetric(desc(name, names...), prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v float64, labels ...string) {
		var names []string
		if len(labels) > 0 {
			names = []string{"device"}
		}
		ch <- prometheus.MustNewConstMetric(desc(name, names...), prometheus.CounterValue, v, labels...)
	}
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	st := m.s.opts.Store.Stats()
	gauge("lifeline_store_messages", float64(st.Messages))
	gauge("lifeline_store_bytes", float64(st.Bytes))
	gauge("lifeline_store_quota_bytes", float64(st.Quota))
	counter("lifeline_store_evicted_total", float64(st.Evicted))
	counter("lifeline_store_expired_total", float64(st.Expired))
	counter("lifeline_store_refused_total", float64(st.Refused))
	gauge("lifeline_store_last_seq", float64(st.LastSeq))
	gauge("lifeline_store_ok", bool01(st.Problem == ""))
	if m.s.opts.Mesh != nil {
		ms := m.s.opts.Mesh()
		gauge("lifeline_mesh_peers", float64(ms.Peers))
		gauge("lifeline_mesh_gossip_peers", float64(ms.GossipPeers))
		counter("lifeline_mesh_misbehaving_total", float64(ms.Misbehaving))
		gauge("lifeline_mesh_blocked_peers", float64(ms.Blocked))
		counter("lifeline_mesh_reconciliations_total", float64(ms.Reconciliations))
		counter("lifeline_mesh_reconcile_failures_total", float64(ms.ReconcileFailures))
		if ms.Uplink.Hubs > 0 && ms.Uplink.State != "unknown" {
			gauge("lifeline_uplink_up", bool01(ms.Uplink.State == "up"))
		}
	}
	cs := m.s.opts.Clock.Status()
	gauge("lifeline_clock_offset_seconds", cs.Offset.Seconds())
	gauge("lifeline_clock_uncertainty_seconds", cs.Uncertainty.Seconds())
	ch <- prometheus.MustNewConstMetric(desc("lifeline_clock_source", "source"), prometheus.GaugeValue, 1, cs.Quality.String())
	if m.s.opts.Kit != nil {
		k := m.s.opts.Kit()
		counter("lifeline_kit_dns_answered_total", float64(k.DNSAnswered))
		counter("lifeline_kit_dns_limited_total", float64(k.DNSLimited))
		gauge("lifeline_kit_released", float64(k.Released))
	}
	if m.s.opts.Radio != nil {
		for _, r := range m.s.opts.Radio() {
			d := r.Device
			sch := r.Router.Scheduler
			gauge("lifeline_radio_ready", bool01(r.State == "ready"), d)
			gauge("lifeline_radio_airtime_used_seconds", sch.Used.Seconds(), d)
			gauge("lifeline_radio_airtime_budget_seconds", sch.Budget.Seconds(), d)
			gauge("lifeline_radio_queue", float64(sch.Queue), d)
			counter("lifeline_radio_frames_sent_total", float64(r.Router.Sent), d)
			counter("lifeline_radio_frames_heard_total", float64(r.Router.Heard), d)
			counter("lifeline_radio_stored_total", float64(r.Stored), d)
			gauge("lifeline_radio_setup_warning", bool01(r.Warning != ""), d)
			if r.Board != nil {
				gauge("lifeline_radio_board_airtime_ratio", r.Board.AirtimeLong, d)
			}
			for meaning, n := range r.Errors {
				ch <- prometheus.MustNewConstMetric(desc("lifeline_radio_device_errors_total", "device", "meaning"), prometheus.CounterValue, float64(n), d, meaning)
			}
		}
	}
}

// metricsHandler serves the figures of s.
func metricsHandler(s *Server) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics{s})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
