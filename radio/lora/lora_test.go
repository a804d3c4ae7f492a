package lora

import (
	"math/rand/v2"
	"testing"
	"time"
)

func near(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

// TestAirtime checks the formula against values from Semtech's LoRa
// calculator (and the figures in this project's brief).
func TestAirtime(t *testing.T) {
	lf := ModemPresets["LongFast"]
	for _, tc := range []struct {
		m       Modem
		payload int
		want    time.Duration
	}{
		{lf, 36, 518144 * time.Microsecond},   // 0.52 s
		{lf, 255, 2156544 * time.Microsecond}, // 2.16 s
		{lf, 0, 231424 * time.Microsecond},    // preamble and 8 header symbols + CR
		// SF12 at 125 kHz needs low data rate optimisation (32.8 ms symbols).
		{Modem{Bandwidth: 125000, SpreadingFactor: 12, CodingRate: 5, Preamble: 8}, 10, 991232 * time.Microsecond},
		// SF7, 125 kHz, 4/5, preamble 8, 20 bytes: 56.58 ms (Semtech calculator).
		{Modem{Bandwidth: 125000, SpreadingFactor: 7, CodingRate: 5, Preamble: 8}, 20, 56576 * time.Microsecond},
	} {
		if got := tc.m.Airtime(tc.payload); !near(got, tc.want, 50*time.Microsecond) {
			t.Errorf("%+v, %d bytes: %v, want %v", tc.m, tc.payload, got, tc.want)
		}
	}
	if !ModemPresets["LongSlow"].LowDataRateOptimize() || lf.LowDataRateOptimize() {
		t.Error("low data rate optimisation: SF12/125 kHz needs it, SF11/250 kHz does not")
	}
	for name, m := range ModemPresets {
		if err := m.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, ok := ModemPresets[DefaultModem]; !ok {
		t.Error("the default modem is not a preset")
	}
}

func TestDutyCycleBudget(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	d := &DutyCycle{Window: time.Hour, Fraction: 0.01} // 36 s an hour
	if d.Budget() != 36*time.Second {
		t.Fatalf("budget %v", d.Budget())
	}
	if w := d.Wait(t0, 37*time.Second); w >= 0 {
		t.Fatalf("a frame longer than the budget: wait %v, want negative", w)
	}
	// 30 s used in the first minute.
	for i := range 15 {
		d.Record(t0.Add(time.Duration(i)*4*time.Second), 2*time.Second)
	}
	now := t0.Add(time.Minute)
	if d.Used(now) != 30*time.Second {
		t.Fatalf("used %v", d.Used(now))
	}
	if w := d.Wait(now, 6*time.Second); w != 0 {
		t.Fatalf("6 s more fits exactly: wait %v", w)
	}
	// 8 s needs 2 s of the oldest to leave the window: it started at t0,
	// so the window must start at t0+2s, i.e. the frame must end at
	// t0+1h+2s.
	w := d.Wait(now, 8*time.Second)
	if want := t0.Add(time.Hour + 2*time.Second - 8*time.Second).Sub(now); w != want {
		t.Fatalf("wait %v, want %v", w, want)
	}
	// An hour later everything is forgotten.
	later := t0.Add(2 * time.Hour)
	if d.Used(later) != 0 || d.Wait(later, 36*time.Second) != 0 || len(d.sent) != 0 {
		t.Fatalf("after two hours: used %v, %d remembered", d.Used(later), len(d.sent))
	}
}

// TestDutyCycleNeverExceeded: a sender that always waits as told never
// exceeds the budget in any window, and never waits longer than needed.
func TestDutyCycleNeverExceeded(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	d := &DutyCycle{Window: 10 * time.Minute, Fraction: 0.1} // 60 s per 10 min
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	type tx struct {
		start time.Time
		dur   time.Duration
	}
	var all []tx
	for range 3000 {
		air := time.Duration(50+r.IntN(2500)) * time.Millisecond
		now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		w := d.Wait(now, air)
		if w < 0 {
			t.Fatal("a frame under the budget never fits")
		}
		if w > 0 {
			// Not a moment earlier would do.
			if early := w - time.Millisecond; early > 0 && d.Wait(now.Add(early), air) == 0 {
				t.Fatalf("waited %v, but %v was enough", w, early)
			}
		}
		now = now.Add(w)
		if d.Wait(now, air) != 0 {
			t.Fatalf("after waiting %v the frame still does not fit", w)
		}
		d.Record(now, air)
		all = append(all, tx{now, air})
		now = now.Add(air) // half-duplex: the next starts after this ends
	}
	// Check every window that ends at a frame's end.
	for _, last := range all {
		end := last.start.Add(last.dur)
		from := end.Add(-d.Window)
		var used time.Duration
		for _, x := range all {
			s, e := x.start, x.start.Add(x.dur)
			if s.Before(from) {
				s = from
			}
			if e.After(end) {
				e = end
			}
			if e.After(s) {
				used += e.Sub(s)
			}
		}
		if used > d.Budget() {
			t.Fatalf("window ending %v holds %v, budget %v", end, used, d.Budget())
		}
	}
}

// TestDutyCycleEnded: a frame the board held back is counted where it
// really was, so the budget frees up from its real end.
func TestDutyCycleEnded(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	d := DutyCycle{Window: 10 * time.Second, Fraction: 0.1} // 1 s per 10 s
	d.Record(t0, time.Second)
	d.Ended(t0.Add(3 * time.Second)) // held 2 s by listen before talk
	// The next 1 s frame must wait until the window no longer holds the
	// frame's real airtime [2 s, 3 s]: 9 s from +3 s (7 s as recorded).
	if w := d.Wait(t0.Add(3*time.Second), time.Second); w != 9*time.Second {
		t.Fatalf("wait %v, want 9s", w)
	}
	d.Ended(t0.Add(time.Second)) // earlier than recorded: never moves back
	if w := d.Wait(t0.Add(3*time.Second), time.Second); w != 9*time.Second {
		t.Fatalf("moved back: wait %v", w)
	}
}

// TestRNodePreamble: RNode's preamble rule at the presets, worked by hand:
// a LongFast symbol lasts 8.192 ms, so 24 ms is 3 symbols and the floor
// of 18 holds; a ShortFast symbol lasts 0.512 ms, so 24 ms is 46.9, 47.
func TestRNodePreamble(t *testing.T) {
	for _, c := range []struct {
		preset string
		want   int
	}{{"LongFast", 18}, {"LongSlow", 18}, {"MediumFast", 18}, {"ShortSlow", 24}, {"ShortFast", 47}} {
		m := ModemPresets[c.preset]
		if got := RNodePreamble(m.Bandwidth, m.SpreadingFactor, m.CodingRate); got != c.want {
			t.Errorf("%s: %d symbols, want %d", c.preset, got, c.want)
		}
	}
	// SF7 at 500 kHz, 21.9 kb/s: 0.256 ms symbols, 24 ms is 93.75 → 94.
	// Above 30 kb/s the target is 6 ms: SF6 at 500 kHz, 37.5 kb/s, has
	// 0.128 ms symbols, 46.9 → 47.
	if got := RNodePreamble(500000, 7, 5); got != 94 {
		t.Errorf("SF7 500 kHz: %d symbols, want 94", got)
	}
	if got := RNodePreamble(500000, 6, 5); got != 47 {
		t.Errorf("SF6 500 kHz: %d symbols, want 47", got)
	}
}

// TestRNodeSlot: 12 symbols, within 24 and 100 ms.
func TestRNodeSlot(t *testing.T) {
	for _, c := range []struct {
		bw, sf int
		want   time.Duration
	}{{250000, 11, 98 * time.Millisecond}, {125000, 12, 100 * time.Millisecond}, {250000, 7, 24 * time.Millisecond}, {125000, 9, 49 * time.Millisecond}} {
		if got := RNodeSlot(c.bw, c.sf); got != c.want {
			t.Errorf("%d Hz SF%d: slot %v, want %v", c.bw, c.sf, got, c.want)
		}
	}
	if got := RNodeMaxWait(250000, 7); got != 17*24*time.Millisecond {
		t.Errorf("ShortFast's longest wait %v", got)
	}
}
