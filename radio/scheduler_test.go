package radio

import (
	"errors"
	"lifeline/radio/lora"
	"strings"
	"testing"
	"time"

	"lifeline/message"
)

func TestSchedulerPriorityAndBudget(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	region := lora.Region{Name: "test", DutyCycle: 0.01, Window: time.Hour} // 36 s an hour
	lf := lora.ModemPresets["LongFast"]
	s := NewScheduler(region, lf, 10)
	frame := make([]byte, 255) // 2.16 s each
	for i, p := range []message.Priority{message.PriorityLow, message.PriorityNormal, message.PriorityAlert, message.PriorityNormal, message.PriorityHigh} {
		if err := s.Enqueue(t0, frame, p, strings.Repeat("k", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	now := t0
	for {
		q, wait, why := s.Next(now)
		if q == nil {
			if wait < 0 {
				break
			}
			t.Fatalf("waiting %v (%s) with a fresh budget", wait, why)
		}
		order = append(order, q.Key)
		now = now.Add(q.Airtime)
	}
	// Alert, high, then the two normals in arrival order, then low.
	if got := strings.Join(order, ","); got != "kkk,kkkkk,kk,kkkk,k" {
		t.Fatalf("order %s", got)
	}

	// 16 frames of 2.16 s fill 34.5 s of the 36 s budget; the 17th waits
	// until the first leaves the window, and the status says why.
	s = NewScheduler(region, lf, 100)
	now = t0
	for range 17 {
		s.Enqueue(now, frame, message.PriorityNormal, "")
	}
	sent := 0
	for {
		q, wait, why := s.Next(now)
		if q == nil {
			if sent != 16 || wait <= 0 || !strings.Contains(why, "duty cycle") {
				t.Fatalf("after %d frames: wait %v, %q", sent, wait, why)
			}
			st := s.Status(now)
			if st.Queue != 1 || st.Wait != wait || st.Used != 16*lf.Airtime(255) {
				t.Fatalf("status %+v", st)
			}
			// Exactly when the budget allows: the window ending with the
			// new frame must have let go of enough of the first one.
			later := now.Add(wait)
			if q, _, _ := s.Next(later.Add(-time.Millisecond)); q != nil {
				t.Fatal("sent before the budget allowed")
			}
			if q, _, _ := s.Next(later); q == nil {
				t.Fatal("not sent when the budget allowed")
			}
			break
		}
		sent++
		now = now.Add(q.Airtime)
	}
}

func TestSchedulerLimits(t *testing.T) {
	t0 := time.Now()
	us := NewScheduler(lora.Regions["US915"], lora.ModemPresets["LongFast"], 2)
	if err := us.Enqueue(t0, make([]byte, 255), message.PriorityNormal, ""); err == nil {
		t.Fatal("a 2.16 s frame under US915's 400 ms dwell limit")
	}
	fast := NewScheduler(lora.Regions["US915"], lora.ModemPresets["ShortFast"], 2)
	for _, p := range []message.Priority{message.PriorityLow, message.PriorityNormal} {
		if err := fast.Enqueue(t0, []byte{1}, p, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a lower or equal priority is refused, a higher one pushes out
	// the lowest.
	if err := fast.Enqueue(t0, []byte{2}, message.PriorityLow, ""); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("low into a full queue: %v", err)
	}
	if err := fast.Enqueue(t0, []byte{3}, message.PriorityAlert, "sos"); err != nil {
		t.Fatal(err)
	}
	if st := fast.Status(t0); st.ByPriority["alert"] != 1 || st.ByPriority["low"] != 0 || st.Refused != 2 {
		t.Fatalf("status %+v", st)
	}
	// A rebroadcast made unnecessary is cancelled.
	if n := fast.Cancel("sos"); n != 1 || fast.Status(t0).Queue != 1 {
		t.Fatalf("cancel: %d", n)
	}
}
