package radio

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline/message"
	"lifeline/radio/air"
	"lifeline/radio/lora"
	"lifeline/radio/testbed"
)

// The radio simulation: Routers on the simulated air, in virtual time, each
// with a store of its own that verifies every envelope. Listen before talk
// is the board's (firmware-bridge), imitated here: a frame waits while the
// channel is busy. The same scenario runs on the real stack, each router
// behind a pseudo-terminal and a firmware core, in the root package's
// testbed test; here it is fast enough to run many seeds, and to measure.

// simStore is a node's store: verified envelopes by (created, id).
type simStore struct {
	env   map[message.ID][]byte
	order []simItem
}

type simItem struct {
	created int64
	id      message.ID
}

func newSimStore() *simStore { return &simStore{env: map[message.ID][]byte{}} }

func (s *simStore) put(raw []byte, now time.Time) (bool, error) {
	e, err := message.Verify(raw, now.UnixMilli())
	if err != nil {
		return false, err
	}
	if s.env[e.ID()] != nil {
		return false, nil
	}
	s.env[e.ID()] = append([]byte(nil), raw...)
	it := simItem{e.Created, e.ID()}
	i, _ := slices.BinarySearchFunc(s.order, it, func(a, b simItem) int {
		if a.created != b.created {
			return int(a.created - b.created)
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	s.order = slices.Insert(s.order, i, it)
	return true, nil
}

func (s *simStore) Window(from, to int64, max int) ([]message.ID, error) {
	var out []message.ID
	for _, it := range s.order {
		if it.created >= from && it.created < to && len(out) < max {
			out = append(out, it.id)
		}
	}
	return out, nil
}

func (s *simStore) Has(id message.ID) (bool, error) { return s.env[id] != nil, nil }

func (s *simStore) Envelope(id message.ID) ([]byte, error) {
	if b := s.env[id]; b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("no message %s", id)
}

type simNode struct {
	r       *Router
	st      *simStore
	held    []byte    // taken from the router, waiting for a clear channel
	wake    time.Time // when to ask the router again (zero: now)
	sending bool
	txEnd   time.Time
	sent    []testbed.Transmission
	got     map[message.ID]time.Time
}

type sim struct {
	t     testing.TB
	now   time.Time
	air   *air.Air
	modem lora.Modem
	reg   lora.Region
	rnd   *rand.Rand
	nodes []*simNode
	bad   int // envelopes a store refused
	// Radios on the air beyond the nodes (an attacker's), numbered from
	// len(nodes): what they heard, and when what they sent ends.
	overheard []air.Delivery
	injected  []time.Time
}

type simConfig struct {
	nodes int
	// grid, if set, links the nodes as a grid this wide (each hears the
	// ones beside, above and below) instead of a line.
	grid   int
	loss   float64
	region lora.Region
	modem  lora.Modem
	plain  bool
	seed   uint64
	// keys[i], if set, is node i's mesh key (a keyed mesh).
	keys [][]byte
	// links, if set, are the pairs of nodes that hear each other, instead
	// of a line.
	links [][2]int
	// repairEvery is every node's RouterConfig.RepairEvery.
	repairEvery time.Duration
	// maxFrame is every node's RouterConfig.MaxFrame: the link's.
	maxFrame int
}

var (
	simEpoch = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	simNever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) // a node with nothing to do
)

func newSim(t testing.TB, c simConfig) *sim {
	s := &sim{t: t, now: simEpoch, air: air.New(c.seed), modem: c.modem, reg: c.region, rnd: rand.New(rand.NewPCG(c.seed, 1))}
	for _, l := range c.links {
		s.air.Link(l[0], l[1], c.loss)
	}
	if c.grid == 0 && c.links == nil {
		s.air.Line(c.nodes, c.loss)
	}
	for i := 0; c.grid > 0 && i < c.nodes; i++ {
		if (i+1)%c.grid != 0 && i+1 < c.nodes {
			s.air.Link(i, i+1, c.loss)
		}
		if i+c.grid < c.nodes {
			s.air.Link(i, i+c.grid, c.loss)
		}
	}
	for i := range c.nodes {
		st := newSimStore()
		var key []byte
		if i < len(c.keys) {
			key = c.keys[i]
		}
		s.nodes = append(s.nodes, &simNode{st: st, got: map[message.ID]time.Time{},
			r: NewRouter(RouterConfig{Tag: uint16(100 + i), Region: c.region, Modem: c.modem, Plain: c.plain,
				Seed: c.seed*31 + uint64(i), Messages: st, AirKey: key, RepairEvery: c.repairEvery, MaxFrame: c.maxFrame})})
	}
	return s
}

// store puts an envelope into node i's store, as the node would, and tells
// its router when it is new.
func (s *sim) store(i int, env []byte) {
	n := s.nodes[i]
	isNew, err := n.st.put(env, s.now)
	if err != nil {
		s.bad++
		return
	}
	if isNew {
		n.got[message.IDOf(env)] = s.now
		if err := n.r.Stored(s.now, env); err != nil {
			s.t.Fatal(err)
		}
		n.wake = time.Time{}
	}
}

// step runs everything due at now, then moves now to the next event, not
// beyond limit. It reports false when nothing will ever happen again.
func (s *sim) step(limit time.Time) bool {
	for _, d := range s.air.Until(s.now) {
		if d.To >= len(s.nodes) {
			s.overheard = append(s.overheard, d)
			continue
		}
		n := s.nodes[d.To]
		for _, env := range n.r.Heard(d.At, d.Frame) {
			s.store(d.To, env)
		}
		n.wake = time.Time{}
	}
	for _, n := range s.nodes {
		if n.sending && !n.txEnd.After(s.now) {
			n.sending = false
			n.r.Done(n.txEnd)
			n.wake = time.Time{}
		}
	}
	for i, n := range s.nodes {
		if n.sending || n.wake.After(s.now) {
			continue
		}
		if n.held == nil {
			f, wait := n.r.Next(s.now)
			if f == nil {
				n.wake = simNever
				if wait >= 0 {
					n.wake = s.now.Add(wait)
				}
				continue
			}
			n.held = f
		}
		if s.air.Busy(i, s.now) {
			n.wake = s.now.Add(50*time.Millisecond + time.Duration(s.rnd.IntN(50))*time.Millisecond)
			continue
		}
		dur := s.modem.Airtime(len(n.held))
		s.air.Transmit(i, s.now, dur, n.held)
		n.sent = append(n.sent, testbed.Transmission{Start: s.now, Airtime: dur, Frame: n.held})
		n.held, n.sending, n.txEnd = nil, true, s.now.Add(dur)
	}
	next := limit
	kept := s.injected[:0]
	for _, end := range s.injected {
		if end.After(s.now) {
			kept = append(kept, end)
			next = minTime(next, end)
		}
	}
	s.injected = kept
	for _, n := range s.nodes {
		switch {
		case n.sending:
			next = minTime(next, n.txEnd)
		case n.wake.IsZero():
			next = s.now
		default:
			next = minTime(next, n.wake)
		}
	}
	if !next.After(s.now) && next.Equal(limit) {
		return false
	}
	s.now = next
	return s.now.Before(limit)
}

// inject puts a frame on air from radio from (not a node: an attacker's)
// now, without listening first.
func (s *sim) inject(from int, frame []byte) time.Duration {
	dur := s.modem.Airtime(len(frame))
	s.air.Transmit(from, s.now, dur, frame)
	s.injected = append(s.injected, s.now.Add(dur))
	return dur
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// runUntil steps until done or until limit of virtual time passes; it
// reports whether done.
func (s *sim) runUntil(limit time.Duration, done func() bool) bool {
	end := s.now.Add(limit)
	for !done() {
		if !s.step(end) {
			return done()
		}
	}
	return true
}

// maxUse is the most airtime node i spent in any window of the region's
// length.
func (s *sim) maxUse(i int) time.Duration { return testbed.MaxWindowUse(s.nodes[i].sent, s.reg.Window) }

func (s *sim) airtime() (frames int, total time.Duration) {
	for _, n := range s.nodes {
		for _, t := range n.sent {
			frames++
			total += t.Airtime
		}
	}
	return frames, total
}

// lineMessages are the must-show's three: a short one, a long one (in
// fragments), and an alert.
func lineMessages(t testing.TB, now time.Time) (short, long, alert []byte) {
	id := testIdentity()
	s, err := id.NewText("general", "Water point open at the school until 18:00.", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := id.NewText("general", strings.Repeat("Road to the clinic blocked at the bridge; use the hill track. ", 20), now.Add(time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := id.NewAlert("alerts", "Flood warning: river rising, move to high ground now.", now.Add(2*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s.Raw(), l.Raw(), a.Raw()
}

// TestLineTwentyPercentLoss is the must-show, in virtual time: five nodes
// in a line, each hearing only its neighbours, 20 % of frames lost on
// every link, at LongFast. A short message, a long one (six fragments) and
// an alert sent at one end all arrive at the other, over many seeds, in
// the 10 % and the 1 % bands, and no node ever spends more than its
// duty-cycle budget in any window. The same holds on a keyed mesh, whose
// frames give four bytes each to the tag.
func TestLineTwentyPercentLoss(t *testing.T) {
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for _, mesh := range []string{"open", "keyed"} {
		for _, region := range []string{"EU868", "EU868-1"} {
			for seed := range uint64(seeds) {
				lineTwentyPercentLoss(t, mesh, region, seed, MaxFrame)
			}
		}
		// The frame sizes of an RNode's link (254) and a Meshtastic
		// device's (233): smaller fragments, the same messages.
		for _, frame := range []int{254, MinFrame} {
			for seed := range uint64(2) {
				lineTwentyPercentLoss(t, mesh, "EU868", seed, frame)
			}
		}
	}
}

func lineTwentyPercentLoss(t *testing.T, mesh, region string, seed uint64, maxFrame int) {
	name := fmt.Sprintf("%s/%s/seed%d", mesh, region, seed)
	if maxFrame != MaxFrame {
		name = fmt.Sprintf("%s/%s/frame%d/seed%d", mesh, region, maxFrame, seed)
	}
	t.Run(name, func(t *testing.T) {
		c := simConfig{nodes: 5, loss: 0.2, region: lora.Regions[region],
			modem: lora.ModemPresets[lora.DefaultModem], seed: seed, maxFrame: maxFrame}
		if mesh == "keyed" {
			c.keys = meshKeys(5, testMeshKey(1))
		}
		s := newSim(t, c)
		short, long, alert := lineMessages(t, s.now)
		if frames, _ := Fragment(long, DefaultHops); len(frames) < 5 {
			t.Fatalf("the long message is %d frames", len(frames))
		}
		for _, env := range [][]byte{short, long, alert} {
			s.store(0, env)
		}
		far := s.nodes[4]
		ids := []message.ID{message.IDOf(short), message.IDOf(long), message.IDOf(alert)}
		ok := s.runUntil(12*time.Hour, func() bool {
			for _, id := range ids {
				if _, ok := far.got[id]; !ok {
					return false
				}
			}
			return true
		})
		took := s.now.Sub(simEpoch)
		frames, airtime := s.airtime()
		if !ok {
			for i, n := range s.nodes {
				t.Logf("node %d holds %d: %+v", i, len(n.got), n.r.Status(s.now))
			}
			t.Fatalf("after %v, the far end holds %d of 3; status %+v", took, len(far.got), far.r.Status(s.now))
		}
		// Alerts first: stored last, the alert is the first frame
		// on air.
		first := s.nodes[0].sent[0].Frame
		lay := openAir
		if mesh == "keyed" {
			first, lay = first[:len(first)-TagSize], keyedAir
		}
		if f, err := decodeFrame(first, lay); err != nil || !bytes.Equal(f.Payload, alert) {
			t.Errorf("the first frame on air is not the alert: %+v %v", f, err)
		}
		budget := time.Duration(float64(s.reg.Window) * s.reg.DutyCycle)
		longest := 0
		for i, n := range s.nodes {
			if u := s.maxUse(i); u > budget {
				t.Errorf("node %d used %v in one window, budget %v", i, u, budget)
			}
			for _, tx := range n.sent {
				longest = max(longest, len(tx.Frame))
			}
		}
		if longest > maxFrame || longest < maxFrame-TagSize-1 {
			t.Errorf("the longest frame on air is %d bytes; the link carries %d", longest, maxFrame)
		}
		if s.bad > 0 {
			t.Errorf("%d envelopes refused by the stores", s.bad)
		}
		t.Logf("all three across 4 hops in %v: %d frames, %v on air; repair: %+v", took.Round(time.Second), frames,
			airtime.Round(time.Millisecond), far.r.Status(s.now).RouterStats)
	})
}
