package lifeline_test

import (
	"fmt"
	"testing"
	"time"

	"lifeline"
	"lifeline/radio/testbed"
)

// TestNodeFollowsGPS: a kit with a GPS receiver (here behind a
// pseudo-terminal, opened as /dev/ttyACM0 would be) and a system clock a
// day behind follows the receiver, and says so.
func TestNodeFollowsGPS(t *testing.T) {
	master, slave, err := testbed.OpenTerminal()
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	n := startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
		c.GPS = slave.Name()
		c.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
	})
	waitFor(t, "the node follows the GPS", func() bool {
		// One RMC sentence a second, as a receiver sends them.
		now := time.Now().UTC()
		body := fmt.Sprintf("GPRMC,%s,A,4807.038,N,01131.000,E,0.0,0.0,%s,,", now.Format("150405.00"), now.Format("020106"))
		var sum byte
		for i := range len(body) {
			sum ^= body[i]
		}
		if _, err := fmt.Fprintf(master, "$%s*%02X\r\n", body, sum); err != nil {
			t.Fatal(err)
		}
		st, err := n.client.Status(ctxT(t))
		return err == nil && st.Clock.Source == "gps" && time.Since(time.UnixMilli(st.Time)).Abs() < 2*time.Second
	})
}
