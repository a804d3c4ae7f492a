// Package clock is the node's idea of the time: a board without a
// real-time clock boots with a stale one, and a node that believes it
// refuses every message ("created in the future") and has its own refused
// everywhere ("expired"). The Clock learns the time from the sources the
// node has — a GPS board, the system clock when the kernel says it is
// synchronised, hubs, mesh peers, the browsers of the phones that open the
// app — and never trusts a time earlier than its floor (the build's time,
// or the last time the node saved).
//
// The package owns the choice of source and the never-backwards stamp for
// what the node signs; it does no I/O. The caller hands it samples (mesh
// time queries, phones, GPS sentences) and reads Now, Stamp and Status.
// Samples are extrapolated with Go's monotonic clock, so the system clock
// being set while the node runs does not move them.
//
// Imports: the standard library only.
package clock

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Quality ranks where a time comes from, worst first. A sample relayed by
// a peer keeps the quality of the peer's own source, capped by how far the
// peer is trusted (Channel).
type Quality uint8

const (
	// Floor: nothing better is known; the floor (build time or the time
	// last saved) plus the time elapsed since start.
	Floor Quality = iota
	// System: the system clock, not known to be synchronised (a board
	// without a real-time clock boots with the time it saved at shutdown).
	System
	// Phone: phones' browsers; phones take their time from the cell
	// network.
	Phone
	// Hub: an internet hub, a server kept on time by NTP.
	Hub
	// Synced: the system clock, synchronised (NTP) by the kernel's account.
	Synced
	// GPS: a GPS receiver attached to the node.
	GPS
)

var qualityNames = [...]string{"floor", "system", "phone", "hub", "synced", "gps"}

func (q Quality) String() string {
	if int(q) < len(qualityNames) {
		return qualityNames[q]
	}
	return fmt.Sprintf("quality(%d)", q)
}

// Channel is how a sample reached the node, which caps its quality: a
// stranger's claim to follow a GPS counts as no better than a phone.
type Channel uint8

const (
	// ChannelStranger: a mesh peer that is not a member.
	ChannelStranger Channel = iota
	// ChannelPhone: a phone's browser, by its address.
	ChannelPhone
	// ChannelMember: a static peer or a node of the private mesh.
	ChannelMember
	// ChannelHub: one of the node's configured hubs.
	ChannelHub
	// ChannelGPS: the GPS receiver attached to the node.
	ChannelGPS
)

var channelNames = [...]string{"stranger", "phone", "member", "hub", "gps"}

func (c Channel) String() string {
	if int(c) < len(channelNames) {
		return channelNames[c]
	}
	return fmt.Sprintf("channel(%d)", c)
}

// cap is the best quality a sample from the channel can have.
func (c Channel) cap() Quality {
	switch c {
	case ChannelGPS:
		return GPS
	case ChannelHub, ChannelMember:
		return Hub
	default:
		return Phone
	}
}

// filterAge is how long a source's surest reading is kept over less sure
// newer ones (see Observe).
const filterAge = 10 * time.Minute

// MaxHops bounds how many nodes a time may have been relayed through: two
// nodes that each follow the other (each relay adds one) drop out of each
// other's choice instead of keeping a lost source alive forever.
const MaxHops = 4

// Drift is the most a crystal oscillator is assumed to run off, 100 ppm
// (Raspberry Pi boards measure within about 50): a sample's uncertainty
// grows by this fraction of its age.
const Drift = 100e-6

// Sample is one reading of another clock.
type Sample struct {
	Channel Channel
	// Source names the sender within its channel (a peer id, a phone's
	// address): a source's newer sample replaces its older one, and
	// several agreeing sources are needed to outvote one.
	Source string
	// Time is the source's time when the reading arrived here, with the
	// transit already accounted for (half the round trip).
	Time time.Time
	// At is the system clock's reading (Options.System) when it arrived;
	// Observe sets it when zero. Its monotonic reading, if any,
	// extrapolates the sample.
	At time.Time
	// Quality is what the source itself follows (capped by Channel).
	Quality Quality
	// Hops: 0 for a source that follows its own clock, one more for each
	// node the time was relayed through.
	Hops int
	// Uncertainty: how far off Time may be (the source's own, plus half
	// the round trip).
	Uncertainty time.Duration
}

// Options configure a Clock.
type Options struct {
	// System reads the system clock; time.Now if nil. Tests skew it.
	System func() time.Time
	// Synced reports whether the kernel keeps the system clock
	// synchronised (NTP); nil means never. See SystemSynced.
	Synced func() bool
	// Floor is the earliest time the clock may ever say: the build's
	// time, or the last time saved by a previous run, whichever is later.
	Floor time.Time
	// LastStamp is the last time a previous run stamped (Stamp): stamps
	// continue after it (see Stamp).
	LastStamp time.Time
	// MaxAge is how long a sample is used; default 6 h. Extrapolated with
	// the monotonic clock it stays good for long; the bound is for sources
	// that went away.
	MaxAge time.Duration
	// MaxSources bounds the samples kept: one per source, the oldest
	// dropped first; default 64.
	MaxSources int
}

// Clock is safe for concurrent use.
type Clock struct {
	opts  Options
	start time.Time // system reading at New, with its monotonic reading

	mu      sync.Mutex
	samples map[sampleKey]Sample
	last    time.Time // the last Stamp
	stepped time.Duration
}

type sampleKey struct {
	ch  Channel
	src string
}

// New returns a clock.
func New(opts Options) *Clock {
	if opts.System == nil {
		opts.System = time.Now
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 6 * time.Hour
	}
	if opts.MaxSources <= 0 {
		opts.MaxSources = 64
	}
	return &Clock{opts: opts, start: opts.System(), samples: make(map[sampleKey]Sample), last: opts.LastStamp}
}

// Observe adds a sample. Samples whose relay chain is too long, or that
// follow no better than an unsynchronised system clock (which this node
// has too), are ignored.
func (c *Clock) Observe(s Sample) {
	if s.At.IsZero() {
		s.At = c.opts.System()
	}
	s.Quality = min(s.Quality, s.Channel.cap())
	if s.Hops > MaxHops || s.Quality < Phone || s.Time.IsZero() || s.Time.Before(c.opts.Floor) {
		// A relay loop, no better than this node's own clock, or
		// certainly wrong (a phone reset to a default date after a flat
		// battery says 1970 or 2000).
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := sampleKey{s.Channel, s.Source}
	if old, ok := c.samples[k]; ok && old.Quality == s.Quality && old.Hops == s.Hops {
		// NTP's clock filter, in short: of a source's readings, the one
		// with the shortest round trip is the most accurate (a slow answer
		// may have waited on either leg), so a newer reading replaces an
		// older only if it is no less sure, counting the older's drift
		// since, or once the older is a while old.
		age := s.At.Sub(old.At)
		if age < filterAge && old.Uncertainty+time.Duration(float64(age)*Drift) < s.Uncertainty {
			return
		}
	}
	if _, ok := c.samples[k]; !ok && len(c.samples) >= c.opts.MaxSources {
		// Make room by dropping the oldest sample of the least trusted
		// channel: a flood of phones' or strangers' samples never pushes
		// out a hub's.
		var victim sampleKey
		found := false
		for vk, v := range c.samples {
			if !found || vk.ch < victim.ch || (vk.ch == victim.ch && v.At.Before(c.samples[victim].At)) {
				victim, found = vk, true
			}
		}
		if victim.ch > k.ch {
			return // everything kept is more trusted than this
		}
		delete(c.samples, victim)
	}
	c.samples[k] = s
}

// Forget drops a source's sample (a peer found lying, say).
func (c *Clock) Forget(ch Channel, source string) {
	c.mu.Lock()
	delete(c.samples, sampleKey{ch, source})
	c.mu.Unlock()
}

// Status is the clock's account of itself.
type Status struct {
	// Time is the clock's time.
	Time time.Time
	// Quality is the source it follows; Via the channel, when the source
	// is another clock; Sources how many sources agree on it (a median).
	Quality Quality
	Via     string
	Sources int
	// Hops: how many nodes the time was relayed through.
	Hops int
	// Uncertainty: how far off Time may be; 0 when unknown (the system
	// clock unsynchronised, the floor).
	Uncertainty time.Duration
	// Offset is Time minus the system clock: what the system clock is
	// off by, as far as the clock knows.
	Offset time.Duration
	// Floor is the earliest time the clock may say.
	Floor time.Time
	// Stepped, when not zero, is how far the stamps stepped back the last
	// time the clock learnt that it had been more than MaxHold ahead.
	Stepped time.Duration
}

// Now is the clock's time.
func (c *Clock) Now() time.Time { return c.Status().Time }

// Status tells the time, which source it follows and how sure it is.
func (c *Clock) Status() Status {
	sys := c.opts.System()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.choose(sys)
	st.Offset = st.Time.Sub(sys)
	st.Floor = c.opts.Floor
	st.Stepped = c.stepped
	return st
}

// choose picks the best source: local GPS and a synchronised system clock
// first, then the best quality among the samples (a median of the sources
// of that quality, so one liar among three is outvoted), then the system
// clock when it is not below the floor, then the floor.
func (c *Clock) choose(sys time.Time) Status {
	if c.opts.Synced != nil && c.opts.Synced() && !sys.Before(c.opts.Floor) {
		// A GPS sample still outranks it (checked below).
		best := Status{Time: sys, Quality: Synced, Sources: 1}
		if s, ok := c.bestSamples(sys, GPS); ok {
			return s
		}
		return best
	}
	if s, ok := c.bestSamples(sys, Phone); ok {
		return s
	}
	if !sys.Before(c.opts.Floor) {
		return Status{Time: sys, Quality: System, Sources: 1}
	}
	// The system clock is before the floor: it is certainly wrong. Count
	// from the floor with the time elapsed since start.
	return Status{Time: c.opts.Floor.Add(sys.Sub(c.start)), Quality: Floor}
}

// bestSamples is the median of the fresh samples of the best quality,
// if that is at least least.
func (c *Clock) bestSamples(sys time.Time, least Quality) (Status, bool) {
	var best Quality
	for k, s := range c.samples {
		if age := sys.Sub(s.At); age > c.opts.MaxAge || age < -time.Minute {
			delete(c.samples, k)
			continue
		}
		best = max(best, s.Quality)
	}
	if best < least {
		return Status{}, false
	}
	type estimate struct {
		t     time.Time
		s     Sample
		uncer time.Duration
	}
	var es []estimate
	for _, s := range c.samples {
		if s.Quality != best {
			continue
		}
		age := sys.Sub(s.At) // monotonic when both readings have it
		es = append(es, estimate{t: s.Time.Add(age), s: s, uncer: s.Uncertainty + time.Duration(float64(age)*Drift)})
	}
	slices.SortFunc(es, func(a, b estimate) int { return a.t.Compare(b.t) })
	m := es[(len(es)-1)/2] // the lower median: an even split leans to the past
	return Status{Time: m.t, Quality: best, Via: m.s.Channel.String(), Sources: len(es), Hops: m.s.Hops, Uncertainty: m.uncer}, true
}

// MaxHold is how far ahead of the clock the last stamp may be for stamps
// to hold still until the clock catches up (so that what the node signs
// stays in order). Receivers accept a message created up to an hour ahead
// of them (message.MaxClockSkew): held stamps within half of that are
// still accepted everywhere.
const MaxHold = 30 * time.Minute

// Stamp is the time for something the node signs: the clock's time, but
// never earlier than the previous stamp (one millisecond later), so that
// the node's messages stay in the order it made them even when the clock
// learns it was ahead. Only when the previous stamp is more than MaxHold
// ahead of the clock — the node followed a clock that was wrong by more
// than that — does the stamp step back to the clock: holding still would
// have every receiver refuse the node's messages as created in the future
// for as long as the error. Status.Stepped records it.
func (c *Clock) Stamp() time.Time {
	now := c.Now().Truncate(time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.After(c.last) {
		if c.last.Sub(now) <= MaxHold {
			now = c.last.Add(time.Millisecond)
		} else {
			c.stepped = c.last.Sub(now)
		}
	}
	c.last = now
	return now
}

// LastStamp is the last time Stamp returned (or Options.LastStamp), for
// the caller to save.
func (c *Clock) LastStamp() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Answer is what this clock tells another node that asks: its time, its
// quality and hops, and its uncertainty.
func (c *Clock) Answer() (t time.Time, q Quality, hops int, uncertainty time.Duration) {
	st := c.Status()
	return st.Time, st.Quality, st.Hops, st.Uncertainty
}
