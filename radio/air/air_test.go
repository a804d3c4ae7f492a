package air

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestRangeAndHalfDuplex(t *testing.T) {
	a := New(1)
	a.Line(3, 0) // 0 - 1 - 2
	a.Transmit(0, t0, time.Second, []byte("from 0"))
	if !a.Busy(1, t0.Add(500*time.Millisecond)) || a.Busy(2, t0.Add(500*time.Millisecond)) || a.Busy(0, t0.Add(500*time.Millisecond)) {
		t.Fatal("busy: 1 hears 0, 2 does not, 0 does not count its own")
	}
	if got := a.Until(t0.Add(999 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("delivered before the frame ended: %+v", got)
	}
	got := a.Until(t0.Add(time.Second))
	if len(got) != 1 || got[0].To != 1 || string(got[0].Frame) != "from 0" || !got[0].At.Equal(t0.Add(time.Second)) {
		t.Fatalf("deliveries %+v", got)
	}
	// 1 starts transmitting while 0's next frame is on air: 1 is deaf to
	// 0's frame, and 0, still transmitting, is deaf to the start of 1's;
	// only 2 gets anything.
	a.Transmit(0, t0.Add(2*time.Second), time.Second, []byte("second"))
	a.Transmit(1, t0.Add(2500*time.Millisecond), time.Second, []byte("from 1"))
	got = a.Until(t0.Add(4 * time.Second))
	if len(got) != 1 || got[0].To != 2 || string(got[0].Frame) != "from 1" || a.Deaf != 2 {
		t.Fatalf("deliveries %+v, deaf %d", got, a.Deaf)
	}
}

// TestCollision: 0 and 2 cannot hear each other (hidden terminals) and
// transmit at overlapping times: 1, in the middle, loses both; a frame
// that does not overlap gets through.
func TestCollision(t *testing.T) {
	a := New(1)
	a.Line(3, 0)
	a.Transmit(0, t0, time.Second, []byte("a"))
	a.Transmit(2, t0.Add(900*time.Millisecond), time.Second, []byte("b"))
	a.Transmit(2, t0.Add(3*time.Second), time.Second, []byte("c"))
	got := a.Until(t0.Add(10 * time.Second))
	if len(got) != 1 || string(got[0].Frame) != "c" || a.Collided != 2 {
		t.Fatalf("deliveries %+v, collided %d", got, a.Collided)
	}
}

// TestLossIsSeeded: a link's loss rate shows, and one seed replays the
// same run.
func TestLossIsSeeded(t *testing.T) {
	run := func(seed uint64) (int, []int) {
		a := New(seed)
		a.Link(0, 1, 0.2)
		var got []int
		for i := range 1000 {
			a.Transmit(0, t0.Add(time.Duration(i)*time.Second), 500*time.Millisecond, []byte{byte(i)})
		}
		for _, d := range a.Until(t0.Add(time.Hour)) {
			got = append(got, int(d.Frame[0]))
		}
		return a.Lost, got
	}
	lost, got := run(7)
	if lost < 150 || lost > 250 || lost+len(got) != 1000 {
		t.Fatalf("lost %d of 1000 at 20 %%", lost)
	}
	lost2, got2 := run(7)
	if lost2 != lost || len(got2) != len(got) {
		t.Fatal("the same seed gave another run")
	}
	for i := range got {
		if got[i] != got2[i] {
			t.Fatal("the same seed gave another run")
		}
	}
}
