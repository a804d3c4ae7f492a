package clock

import (
	"fmt"
	"testing"
	"time"
)

// fakeSystem is a system clock the test sets.
type fakeSystem struct{ t time.Time }

func (f *fakeSystem) now() time.Time { return f.t }

var truth = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestFloorOverridesAClockBeforeIt(t *testing.T) {
	sys := &fakeSystem{truth.Add(-3 * 24 * time.Hour)}
	floor := truth.Add(-time.Hour)
	c := New(Options{System: sys.now, Floor: floor})
	st := c.Status()
	if st.Quality != Floor || !st.Time.Equal(floor) {
		t.Fatalf("status %+v: want the floor %s", st, floor)
	}
	sys.t = sys.t.Add(time.Minute)
	if got := c.Now(); !got.Equal(floor.Add(time.Minute)) {
		t.Fatalf("a minute later: %s, want the floor plus a minute", got)
	}
	// A system clock at or after the floor is followed.
	sys.t = truth
	if st := c.Status(); st.Quality != System || !st.Time.Equal(truth) {
		t.Fatalf("status %+v: want the system clock", st)
	}
}

func TestFollowsTheBestSource(t *testing.T) {
	sys := &fakeSystem{truth.Add(-72 * time.Hour)}
	c := New(Options{System: sys.now})
	if st := c.Status(); st.Quality != System {
		t.Fatalf("no samples: %+v", st)
	}
	// Two phones, one of them wrong by a day, and a third: the median.
	c.Observe(Sample{Channel: ChannelPhone, Source: "10.0.0.2", Time: truth, At: sys.t, Quality: Phone})
	c.Observe(Sample{Channel: ChannelPhone, Source: "10.0.0.3", Time: truth.Add(24 * time.Hour), At: sys.t, Quality: Phone})
	c.Observe(Sample{Channel: ChannelPhone, Source: "10.0.0.4", Time: truth.Add(time.Second), At: sys.t, Quality: Phone})
	st := c.Status()
	if st.Quality != Phone || st.Sources != 3 || st.Time.Sub(truth).Abs() > time.Second {
		t.Fatalf("phones: %+v", st)
	}
	if st.Offset.Round(time.Hour) != 72*time.Hour {
		t.Fatalf("offset %s, want 72h", st.Offset)
	}
	// A hub outranks them.
	hubTime := truth.Add(200 * time.Millisecond)
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: hubTime, At: sys.t, Quality: Synced, Uncertainty: 20 * time.Millisecond})
	st = c.Status()
	if st.Quality != Hub || st.Via != "hub" || !st.Time.Equal(hubTime) || st.Uncertainty != 20*time.Millisecond {
		t.Fatalf("hub: %+v", st)
	}
	// It is extrapolated, with the drift added to its uncertainty.
	sys.t = sys.t.Add(time.Hour)
	st = c.Status()
	if !st.Time.Equal(hubTime.Add(time.Hour)) || st.Uncertainty != 20*time.Millisecond+360*time.Millisecond {
		t.Fatalf("an hour later: %+v", st)
	}
	// A synchronised system clock outranks a hub.
	synced := true
	c.opts.Synced = func() bool { return synced }
	if st := c.Status(); st.Quality != Synced || !st.Time.Equal(sys.t) {
		t.Fatalf("synced: %+v", st)
	}
	// A GPS outranks everything.
	c.Observe(Sample{Channel: ChannelGPS, Source: "gps", Time: truth.Add(time.Hour), At: sys.t, Quality: GPS})
	if st := c.Status(); st.Quality != GPS {
		t.Fatalf("gps: %+v", st)
	}
	// Samples older than MaxAge are dropped.
	synced = false
	sys.t = sys.t.Add(7 * time.Hour)
	if st := c.Status(); st.Quality != System {
		t.Fatalf("after MaxAge: %+v", st)
	}
}

func TestChannelCapsQuality(t *testing.T) {
	sys := &fakeSystem{truth.Add(-72 * time.Hour)}
	c := New(Options{System: sys.now})
	// A stranger claiming a GPS counts as a phone; a member claiming one
	// as a hub.
	c.Observe(Sample{Channel: ChannelStranger, Source: "s", Time: truth, At: sys.t, Quality: GPS})
	if st := c.Status(); st.Quality != Phone {
		t.Fatalf("stranger: %+v", st)
	}
	c.Observe(Sample{Channel: ChannelMember, Source: "m", Time: truth, At: sys.t, Quality: GPS, Hops: 1})
	if st := c.Status(); st.Quality != Hub || st.Via != "member" || st.Hops != 1 {
		t.Fatalf("member: %+v", st)
	}
	// Peers following an unsynchronised clock, and relay loops, are not
	// used.
	c2 := New(Options{System: sys.now})
	c2.Observe(Sample{Channel: ChannelMember, Source: "m", Time: truth, At: sys.t, Quality: System})
	c2.Observe(Sample{Channel: ChannelHub, Source: "h", Time: truth, At: sys.t, Quality: Hub, Hops: MaxHops + 1})
	if st := c2.Status(); st.Quality != System {
		t.Fatalf("unsynchronised peer and loop: %+v", st)
	}
}

func TestSamplesBoundedStrangersFirst(t *testing.T) {
	sys := &fakeSystem{truth}
	c := New(Options{System: sys.now, MaxSources: 4})
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: truth, At: sys.t, Quality: Hub})
	for i := range 100 {
		sys.t = sys.t.Add(time.Millisecond)
		c.Observe(Sample{Channel: ChannelStranger, Source: fmt.Sprint(i), Time: truth.Add(24 * time.Hour), At: sys.t, Quality: Phone})
	}
	if n := len(c.samples); n != 4 {
		t.Fatalf("%d samples kept, want 4", n)
	}
	if st := c.Status(); st.Quality != Hub {
		t.Fatalf("a flood of strangers pushed out the hub: %+v", st)
	}
	// A stranger cannot take a member's place.
	for i := range 3 {
		c.Observe(Sample{Channel: ChannelMember, Source: fmt.Sprint("m", i), Time: truth, At: sys.t, Quality: Hub, Hops: 1})
	}
	c.Observe(Sample{Channel: ChannelStranger, Source: "late", Time: truth, At: sys.t, Quality: Phone})
	if _, ok := c.samples[sampleKey{ChannelStranger, "late"}]; ok {
		t.Fatal("a stranger's sample replaced a member's")
	}
}

func TestStampNeverBackwards(t *testing.T) {
	sys := &fakeSystem{truth.Add(2 * time.Hour)} // two hours ahead
	c := New(Options{System: sys.now})
	first := c.Stamp()
	if !first.Equal(truth.Add(2 * time.Hour)) {
		t.Fatalf("first stamp %s", first)
	}
	if s := c.Stamp(); !s.Equal(first.Add(time.Millisecond)) {
		t.Fatalf("second stamp at the same time: %s, want a millisecond later", s)
	}
	// Learning that it was 20 minutes ahead: stamps hold still.
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: sys.t.Add(-20 * time.Minute), At: sys.t, Quality: Hub})
	if s := c.Stamp(); !s.Equal(first.Add(2 * time.Millisecond)) {
		t.Fatalf("stamp after a 20 min correction: %s", s)
	}
	if st := c.Status(); st.Stepped != 0 {
		t.Fatalf("stepped %s", st.Stepped)
	}
	// Learning that it was two hours ahead: holding still would cut the
	// node off for two hours, so the stamp steps back, and says so.
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: truth, At: sys.t, Quality: Hub})
	s := c.Stamp()
	if !s.Equal(truth) {
		t.Fatalf("stamp after a 2 h correction: %s, want %s", s, truth)
	}
	if st := c.Status(); st.Stepped.Round(time.Minute) != 2*time.Hour {
		t.Fatalf("stepped %s, want 2h", st.Stepped)
	}
	// LastStamp carries over a restart.
	c2 := New(Options{System: sys.now, LastStamp: c.LastStamp().Add(time.Minute)})
	c2.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: truth, At: sys.t, Quality: Hub})
	if s := c2.Stamp(); !s.Equal(truth.Add(time.Minute + time.Millisecond)) {
		t.Fatalf("stamp after restart: %s", s)
	}
}

func TestSamplesBeforeTheFloorIgnored(t *testing.T) {
	sys := &fakeSystem{truth}
	c := New(Options{System: sys.now, Floor: truth.Add(-24 * time.Hour)})
	c.Observe(Sample{Channel: ChannelPhone, Source: "reset", Time: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), Quality: Phone})
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: truth.Add(-48 * time.Hour), Quality: Hub})
	if st := c.Status(); st.Quality != System {
		t.Fatalf("followed a time before the floor: %+v", st)
	}
}

func TestSurestReadingKept(t *testing.T) {
	sys := &fakeSystem{truth}
	c := New(Options{System: sys.now})
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: truth, At: sys.t, Quality: Hub, Uncertainty: 5 * time.Millisecond})
	// A slow answer, off by its long round trip.
	sys.t = sys.t.Add(time.Minute)
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: sys.t.Add(400 * time.Millisecond), At: sys.t, Quality: Hub, Uncertainty: 500 * time.Millisecond})
	if st := c.Status(); !st.Time.Equal(sys.t) || st.Uncertainty > 20*time.Millisecond {
		t.Fatalf("the slow answer replaced the sure one: %+v", st)
	}
	// Once the sure one is old, the newest reading is taken.
	sys.t = sys.t.Add(filterAge)
	c.Observe(Sample{Channel: ChannelHub, Source: "hub", Time: sys.t.Add(400 * time.Millisecond), At: sys.t, Quality: Hub, Uncertainty: 500 * time.Millisecond})
	if st := c.Status(); !st.Time.Equal(sys.t.Add(400 * time.Millisecond)) {
		t.Fatalf("an old reading kept: %+v", st)
	}
}
