// Package air simulates the LoRa air between radios, for tests and the
// testbed: which radio hears which (a link graph, each link with its frame
// loss), how long each frame occupies the channel, half-duplex radios, and
// collisions: two frames that overlap at a receiver are both lost there.
// It is a pure state machine: the caller passes the time, and the random
// numbers come from a seeded source, so every run can be replayed.
package air

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Air is a shared channel.
type Air struct {
	links map[[2]int]float64 // (from, to) -> loss probability
	rnd   *rand.Rand
	on    []*transmission // on air or recently ended, by start
	keep  time.Duration   // how long ended transmissions are kept to judge overlaps

	// Counters since creation, over all receivers.
	Sent, Delivered, Lost, Collided, Deaf int
}

type transmission struct {
	from       int
	start, end time.Time
	frame      []byte
	resolved   bool
}

// Delivery is a frame that reached a radio.
type Delivery struct {
	To, From int
	Frame    []byte
	At       time.Time // when it ended, that is when the receiver has it
}

// New returns an empty channel whose randomness comes from seed.
func New(seed uint64) *Air {
	return &Air{links: map[[2]int]float64{}, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), keep: time.Minute}
}

// Link lets a and b hear each other, each frame lost with probability loss.
func (a *Air) Link(x, y int, loss float64) {
	a.links[[2]int{x, y}] = loss
	a.links[[2]int{y, x}] = loss
}

// Line links n radios 0..n-1 each to its neighbours only.
func (a *Air) Line(n int, loss float64) {
	for i := 1; i < n; i++ {
		a.Link(i-1, i, loss)
	}
}

func (a *Air) hears(to, from int) bool {
	_, ok := a.links[[2]int{from, to}]
	return ok
}

// Transmit puts a frame on air from radio from, starting at start and
// lasting airtime. The caller (the radio) must not transmit while its own
// previous frame is on air.
func (a *Air) Transmit(from int, start time.Time, airtime time.Duration, frame []byte) {
	a.Sent++
	t := &transmission{from: from, start: start, end: start.Add(airtime), frame: append([]byte(nil), frame...)}
	i := len(a.on)
	for i > 0 && a.on[i-1].start.After(start) {
		i--
	}
	a.on = slices.Insert(a.on, i, t)
}

// Busy reports whether radio x hears a transmission on air at now
// (channel activity detection, for listen-before-talk). Its own does not
// count.
func (a *Air) Busy(x int, now time.Time) bool {
	for _, t := range a.on {
		if t.from != x && a.hears(x, t.from) && !t.start.After(now) && t.end.After(now) {
			return true
		}
	}
	return false
}

// Until returns the frames that have finished reaching their receivers by
// now, in the order they ended. A receiver loses a frame that overlapped,
// at that receiver, with another frame it could hear (both are lost: a
// collision), or with its own transmission (a radio is half-duplex), or
// to the link's loss.
func (a *Air) Until(now time.Time) []Delivery {
	var out []Delivery
	for _, t := range a.on {
		if t.resolved || t.end.After(now) {
			continue
		}
		t.resolved = true
		for _, l := range a.receivers(t.from) {
			to, loss := l.to, l.loss
			switch {
			case a.overlapsOwn(to, t):
				a.Deaf++
			case a.collides(to, t):
				a.Collided++
			case a.rnd.Float64() < loss:
				a.Lost++
			default:
				a.Delivered++
				out = append(out, Delivery{To: to, From: t.from, Frame: t.frame, At: t.end})
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Delivery) int { return x.At.Compare(y.At) })
	a.prune(now)
	return out
}

type link struct {
	to   int
	loss float64
}

// receivers lists who hears from, with the loss, in a fixed order, so
// that a seed replays the same run.
func (a *Air) receivers(from int) []link {
	var out []link
	for pair, loss := range a.links {
		if pair[0] == from {
			out = append(out, link{pair[1], loss})
		}
	}
	slices.SortFunc(out, func(x, y link) int { return x.to - y.to })
	return out
}

func (a *Air) overlapsOwn(to int, t *transmission) bool {
	for _, o := range a.on {
		if o.from == to && o.start.Before(t.end) && o.end.After(t.start) {
			return true
		}
	}
	return false
}

func (a *Air) collides(to int, t *transmission) bool {
	for _, o := range a.on {
		if o != t && o.from != to && a.hears(to, o.from) && o.start.Before(t.end) && o.end.After(t.start) {
			return true
		}
	}
	return false
}

// prune forgets transmissions that can no longer overlap anything
// unresolved.
func (a *Air) prune(now time.Time) {
	i := 0
	for i < len(a.on) && a.on[i].resolved && now.Sub(a.on[i].end) > a.keep {
		i++
	}
	a.on = a.on[i:]
}
