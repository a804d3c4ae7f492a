package lifeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/web/browsertest"
)

// BenchmarkPhoneFirstLoad is a first visit to a kit's page: a fresh
// browser profile each time, the node on loopback holding 200 messages in
// #general. It reports the bytes transferred, the first contentful paint
// (first render), and when the app is ready to write in (interactive: the
// person's key made, the channel's history shown), with Chromium's CPU
// throttled 4× (a slow phone) and, as the anchor of the same run, not
// throttled.
func BenchmarkPhoneFirstLoad(b *testing.B) {
	n := startNodeWith(b, b.TempDir(), func(c *lifeline.Config) { c.APIHosts = []string{browsertest.KitHost} })
	url := browsertest.KitURL("http://" + n.node.APIAddr() + "/")
	for i := range 200 {
		if _, err := n.client.Send(context.Background(), api.SendRequest{Channel: "general", Text: fmt.Sprintf("message %d about the water point", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, throttle := range []float64{1, 4} {
		b.Run(fmt.Sprintf("cpu=%gx", throttle), func(b *testing.B) {
			var bytes int64
			var fcp, ready time.Duration
			for b.Loop() {
				p := browsertest.Start(b, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, Timeout: time.Minute})
				p.ThrottleCPU(throttle)
				p.Navigate(url)
				p.WaitText("ol.msgs", "message 199")
				var ms float64
				p.Eval(`new Promise((ok) => { const f = () => { const m = performance.getEntriesByName('lifeline-ready'); if (m.length) ok(m[0].startTime); else setTimeout(f, 10); }; f(); })`, &ms)
				ready += time.Duration(ms * float64(time.Millisecond))
				fcp += p.PaintTimings().FirstContentfulPaint
				bytes += p.BytesTransferred()
				p.Close()
			}
			k := float64(b.N)
			b.ReportMetric(float64(bytes)/k, "bytes/load")
			b.ReportMetric(float64(fcp.Milliseconds())/k, "ms-first-render")
			b.ReportMetric(float64(ready.Milliseconds())/k, "ms-interactive")
			b.ReportMetric(0, "ns/op") // a browser's start dominates it: not the figure
		})
	}
}
