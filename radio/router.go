package radio

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"lifeline/message"
	"lifeline/radio/lora"
	"lifeline/reconcile"
)

// Messages is what the router reads of the node's store.
type Messages interface {
	// Window lists the IDs of the messages created in [from, to) (unix
	// milliseconds), oldest first, at most max of them.
	Window(from, to int64, max int) ([]message.ID, error)
	// Envelope returns a stored message's bytes.
	Envelope(id message.ID) ([]byte, error)
	// Has reports whether a message is stored.
	Has(id message.ID) (bool, error)
}

// RouterConfig configures a Router. Zero values take the defaults.
type RouterConfig struct {
	// Clock is the node's clock (package clock), against which
	// envelopes' times are checked; nil: the time the caller passes,
	// which otherwise only paces the air (and must not jump when the
	// node learns what time it is).
	Clock func() time.Time
	// Tag names this node to its neighbours in repair frames.
	Tag    uint16
	Region lora.Region
	Modem  lora.Modem
	// Airtime is what a frame of n bytes costs on air through the link,
	// when that is more than Modem says: a board's own header (RNode's
	// byte), a device's packet around it (Meshtastic's). Modem.Airtime if
	// nil.
	Airtime func(n int) time.Duration
	// MaxFrame is the most the link carries in one frame: MaxFrame if
	// 0, at least MinFrame (254 through an RNode, which takes a byte for
	// its header; 231 through Meshtastic).
	MaxFrame int
	// Hops is the hop limit of the floods this node starts; DefaultHops
	// if 0.
	Hops uint8
	// MaxQueue bounds the frames waiting to be sent; 256 if 0.
	MaxQueue int
	// RelayDelay bounds the random wait before a relay or a repair answer:
	// long enough that a neighbour's relay is heard first now and then.
	// Twice the airtime of a full frame if 0.
	RelayDelay time.Duration
	// RepairEvery is the mean interval between this node's digests; if
	// 0, 2 minutes or longer, so that digests take at most a tenth of the
	// duty-cycle budget; no repair at all if negative.
	RepairEvery time.Duration
	// RepairWindow: messages created this long before a digest are
	// repaired; 24 hours if 0.
	RepairWindow time.Duration
	// Settle: a digest leaves out messages younger than this, which may
	// still be flooding. Hops × (RelayDelay + a full frame's airtime) if 0.
	Settle time.Duration
	// Plain makes this node a plain flooder, the baseline the benchmarks
	// compare with: every frame relayed once, never cancelled, no repair.
	Plain bool
	// Seed seeds the random delays.
	Seed     uint64
	Messages Messages
	// AirKey, when set, makes the air private: the mesh key (the node's
	// 32-byte libp2p pnet key). Every frame then carries a tag keyed by
	// it, and frames without a valid one are dropped unread; nodes with
	// another key or none do not hear this node, nor it them. Nil: an
	// open mesh.
	AirKey []byte
}

// Defaults of a Router.
const (
	DefaultHops = 6
	// InitialSymbols is how many repair symbols a digest starts with:
	// enough to confirm equal sets or find one or two differences.
	InitialSymbols = 3
	// maxRoundSymbols bounds the symbols one repair round asks of a
	// neighbour (16 digests): about 180 differing messages.
	maxRoundSymbols = 16 * MaxSymbols
	// maxWindow bounds the messages a digest covers.
	maxWindow = 4096
	// maxPeers bounds the neighbours whose repair rounds are followed.
	maxPeers = 16
	// peerRoundAge: a round not continued for this long is forgotten.
	peerRoundAge = 10 * time.Minute
	// maxWantsWaiting bounds the wants queued at once.
	maxWantsWaiting = 16
	// maxAnswers bounds the messages one round of this node sends in
	// answer to wants and as offers: what neighbours can make it spend.
	maxAnswers = 4 * MaxWants
)

// Router is a node's LoRa logic: it turns new messages into frames, relays
// what it hears by managed flood, reassembles fragments, repairs what was
// lost by reconciling with its neighbours, and sends it all through the
// scheduler within the duty cycle. It is a pure state machine: the caller
// passes the time, feeds it what the radio hears (Heard) and what the
// store newly holds (Stored), stores the envelopes Heard returns, sends
// what Next returns, one frame at a time, and reports each frame's end
// (Done).
//
// Repair: every RepairEvery a node broadcasts a digest, the first few
// rateless IBLT symbols (reconcile/riblt.go) of the short IDs of the
// messages it holds in a recent window. A neighbour subtracts its own set;
// if the symbols do not decode it asks for more (a more), and once they
// do it wants what it lacks (a want, answered with the message, flagged
// repair) and offers what the sender lacks after a random delay. A node
// that gets a message by repair floods it on like a new one, so a frame
// lost on one hop costs one repair there, not a re-flood of everything.
type Router struct {
	cfg   RouterConfig
	rnd   *rand.Rand
	flood *Flood
	reasm *Reassembler
	sched *Scheduler
	air   *airKey // nil on an open mesh
	lay   layout
	// answers bounds the airtime spent answering neighbours' wants, mores
	// and digests: on an open mesh anyone can ask in a neighbour's name.
	answers spend

	delayed  []delayed // by at
	inflight *Queued
	deadline time.Time // when an unreported inflight frame is taken as ended
	// late counts frames taken as ended at their deadline: the ends the
	// radio reports for them later belong to them, not to the frame then
	// in flight, and are skipped so every later end stays with its frame.
	late int

	nextDigest time.Time
	lastDigest time.Time
	round      *ownRound
	prevTo     uint32 // the window end of the round before this one
	peers      map[uint16]*peerRound
	wants      map[string]*want // by queue key

	// outgoing follows this node's new messages out: the frames of each
	// not yet ended on air, and the message of each own frame's queue key.
	// A message whose last frame has ended is in left until Left takes it.
	outgoing map[message.ID]int
	ownKeys  map[string]message.ID
	left     []message.ID

	stats RouterStats
}

// maxOutgoing bounds the messages followed out. Frames dropped from a full
// queue or lost with the board never end, so their entries are forgotten
// when the bound is reached: such a message is then never reported as
// left, which is the truthful side to err on.
const maxOutgoing = 1024

type delayed struct {
	at    time.Time
	frame []byte
	prio  message.Priority
	key   string
}

// want is a want frame waiting to be sent, with what it asks for, so that
// a message that arrives meanwhile is not asked for.
type want struct {
	node uint16
	to   uint32 // the window end of the round asked from
	ids  []uint64
	mask []uint32
}

// ownRound is this node's latest digest: what it answers mores and wants
// from.
type ownRound struct {
	from, to uint32
	enc      *reconcile.Encoder
	ids      map[uint64]message.ID
	keys     []string        // queued digest frames
	sent     map[uint64]bool // messages answered or offered this round
	mores    map[int]bool    // symbol ranges sent this round, by start
}

// peerRound is a neighbour's digest being collected.
type peerRound struct {
	from, to uint32
	syms     []reconcile.Symbol
	at       time.Time
	done     bool // decoded or given up: later symbols of it are for others
}

// RouterStats are the router's counters since it started.
type RouterStats struct {
	Heard      int           `json:"heard"`     // frames decoded
	Malformed  int           `json:"malformed"` // frames that were not version 1 frames
	Delivered  int           `json:"delivered"` // envelopes handed on (whole or reassembled)
	Sent       int           `json:"sent"`      // frames sent
	Airtime    time.Duration `json:"airtime_ns"`
	QueueFull  int           `json:"queue_full"` // frames refused by a full queue
	Digests    int           `json:"digests"`    // digest frames sent or queued
	Mores      int           `json:"mores"`
	Wants      int           `json:"wants"`
	Answered   int           `json:"answered"`  // messages queued in answer to a want
	Offered    int           `json:"offered"`   // messages queued for a neighbour that lacked them
	Repaired   int           `json:"repaired"`  // repair frames heard
	Decoded    int           `json:"decoded"`   // neighbours' digests that decoded
	GaveUp     int           `json:"gave_up"`   // repair rounds abandoned undecoded
	Forged     int           `json:"forged"`    // whole envelopes that failed verification, not relayed
	StoreError int           `json:"store_err"` // reads of the store that failed
	// Unauthenticated counts frames dropped on a keyed mesh for a missing
	// or wrong tag: strangers, nodes with another key, noise, or a want
	// replayed from an earlier round.
	Unauthenticated int `json:"unauthenticated"`
	// Limited counts answers not made (messages, symbol ranges) because
	// the answer budget was spent.
	Limited int `json:"answers_limited"`
}

// NewRouter returns a router.
func NewRouter(cfg RouterConfig) *Router {
	if cfg.Hops == 0 {
		cfg.Hops = DefaultHops
	}
	cfg.Hops = min(cfg.Hops, MaxHops)
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 256
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = MaxFrame
	}
	cfg.MaxFrame = min(max(cfg.MaxFrame, MinFrame), MaxFrame)
	if cfg.Airtime == nil {
		cfg.Airtime = cfg.Modem.Airtime
	}
	full := cfg.Airtime(cfg.MaxFrame)
	if cfg.RelayDelay <= 0 {
		cfg.RelayDelay = 2 * full
	}
	lay, tag := newLayout(cfg.MaxFrame, false), 0
	if len(cfg.AirKey) > 0 {
		lay, tag = newLayout(cfg.MaxFrame, true), TagSize
	}
	if cfg.RepairEvery == 0 {
		// Digests take at most a tenth of the budget: every 2 minutes
		// at 10 %, every 9 at 1 % (LongFast).
		cfg.RepairEvery = 2 * time.Minute
		if d := cfg.Region.DutyCycle; d > 0 && d < 1 {
			digest := cfg.Airtime(digestHeader + InitialSymbols*reconcile.SymbolSize + tag)
			cfg.RepairEvery = max(cfg.RepairEvery, time.Duration(10*float64(digest)/d))
		}
	}
	if cfg.RepairWindow <= 0 {
		cfg.RepairWindow = 24 * time.Hour
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Duration(cfg.Hops) * (cfg.RelayDelay + full)
	}
	if cfg.Plain {
		cfg.RepairEvery = -1
	}
	r := &Router{
		cfg: cfg,
		rnd: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Tag))),
		// The flood remembers frames as long as they may be repaired, so a
		// repaired fragment is not relayed again as new.
		flood: NewFlood(cfg.RelayDelay, cfg.RepairWindow, 4096),
		// A partial message waits for repair to bring the rest: a few
		// rounds, since an answer may be cut short by the answer budget.
		reasm: NewReassembler(32, max(10*time.Minute, 4*cfg.RepairEvery)),
		sched: newScheduler(cfg.Region, cfg.Airtime, cfg.MaxQueue),
		lay:   lay,
		peers: map[uint16]*peerRound{},
		wants: map[string]*want{},

		outgoing: map[message.ID]int{},
		ownKeys:  map[string]message.ID{},
	}
	r.reasm.lay = lay
	if len(cfg.AirKey) > 0 {
		r.air = newAirKey(cfg.AirKey)
	}
	window, duty := cfg.Region.Window, cfg.Region.DutyCycle
	if window <= 0 {
		window = time.Hour
	}
	if duty <= 0 || duty > 1 {
		duty = 1
	}
	r.answers = spend{window: window, budget: time.Duration(answerShare * duty * float64(window))}
	return r
}

// encode gives a frame's bytes as this mesh sends them: in its layout,
// and on a keyed mesh with the tag, over ctx too (a want's round).
func (r *Router) encode(f Frame, ctx []byte) ([]byte, error) {
	b, err := f.append(nil, r.lay)
	if err != nil || r.air == nil {
		return b, err
	}
	return r.air.seal(b, ctx), nil
}

// unseal checks a received frame's tag on a keyed mesh and returns the
// frame without it; on an open mesh the frame as it is. Nothing but the
// type and target of a want is read before the tag checks out: a want's
// tag covers the round it asks from (this node's latest or the one
// before), so only its target can check it, and a want captured and sent
// again in a later round is not answered again. ours is false for a want
// to another node, which this node ignores unchecked.
func (r *Router) unseal(payload []byte) (frame []byte, ours, ok bool) {
	if r.air == nil {
		return payload, true, true
	}
	if len(payload) >= wantHeader+TagSize && FrameType(payload[0]&0x0f) == FrameWant {
		if binary.BigEndian.Uint16(payload[2:]) != r.cfg.Tag {
			return nil, false, false
		}
		for _, to := range []uint32{r.roundTo(), r.prevTo} {
			if to == 0 {
				continue
			}
			if b, ok := r.air.open(payload, roundContext(to)); ok {
				return b, true, true
			}
		}
		return nil, true, false
	}
	b, ok := r.air.open(payload, nil)
	return b, true, ok
}

func (r *Router) roundTo() uint32 {
	if r.round == nil {
		return 0
	}
	return r.round.to
}

func (r *Router) repairs() bool { return r.cfg.RepairEvery > 0 && r.cfg.Messages != nil }

// Stored takes a message the store has newly stored, from anywhere: a
// local user, the IP mesh, or the radio itself. Frames of it already
// heard or sent (it came by flood) are not sent again; the rest go out as
// a new flood.
func (r *Router) Stored(now time.Time, env []byte) error {
	frames, err := fragment(env, r.cfg.Hops, r.lay)
	if err != nil {
		return err
	}
	prio, _ := message.PeekPriority(env)
	mid := message.IDOf(env)
	if e, err := message.Decode(env); err == nil {
		r.soon(now, time.UnixMilli(e.Created))
		r.unwant(now, shortKey(e.ID()))
	}
	for _, f := range frames {
		id := IDOf(f)
		if r.flood.Seen(now, id) {
			continue
		}
		r.flood.SentID(now, id)
		b, err := r.encode(f, nil)
		if err != nil {
			return err
		}
		key := keyOwn + string(id[:])
		r.enqueue(now, b, prio, key)
		if len(r.outgoing) >= maxOutgoing {
			clear(r.outgoing)
			clear(r.ownKeys)
		}
		r.outgoing[mid]++
		r.ownKeys[key] = mid
	}
	return nil
}

// Left returns the messages this node put on air in full since the last
// call: every frame of theirs has ended on air. The caller owns the slice.
func (r *Router) Left() []message.ID {
	out := r.left
	r.left = nil
	return out
}

// ended follows an own frame out: when it was its message's last, the
// message has left this node.
func (r *Router) ended(q *Queued) {
	mid, ok := r.ownKeys[q.Key]
	if !ok {
		return
	}
	delete(r.ownKeys, q.Key)
	if r.outgoing[mid]--; r.outgoing[mid] <= 0 {
		delete(r.outgoing, mid)
		if len(r.left) >= maxOutgoing {
			r.left = r.left[1:] // nobody takes them (a router without a store): bounded
		}
		r.left = append(r.left, mid)
	}
}

// soon brings the next digest forward after a new message: a neighbour
// that lost part of it learns so from the digest that holds it, a round
// rather than a period later. The digest waits until the message is old
// enough to be in it, and digests stay at least a quarter period apart.
func (r *Router) soon(now, created time.Time) {
	if !r.repairs() || r.nextDigest.IsZero() {
		return
	}
	at := created.Add(r.cfg.Settle + time.Second) // a window ends on a whole second
	if at.Before(now) {
		at = now
	}
	at = at.Add(time.Duration(r.rnd.Float64() * float64(r.cfg.RelayDelay)))
	if earliest := r.lastDigest.Add(r.cfg.RepairEvery / 4); at.Before(earliest) {
		at = earliest
	}
	if at.Before(r.nextDigest) {
		r.nextDigest = at
	}
}

// Keys of queued frames, by what they are: own floods, relays, repair
// answers and offers, digests, mores, wants.
const (
	keyOwn    = "o"
	keyRelay  = "f"
	keyRepair = "r"
	keyDigest = "d"
	keyMore   = "m"
	keyWant   = "w"
)

// Heard takes a frame the radio received at now, and returns the
// envelopes it completed, for the store. On a keyed mesh, frames without
// a valid tag are counted and dropped first; then malformed frames.
func (r *Router) Heard(now time.Time, payload []byte) [][]byte {
	b, ours, ok := r.unseal(payload)
	if !ours {
		return nil // a want to another node: not this node's to check
	}
	if !ok {
		r.stats.Unauthenticated++
		return nil
	}
	f, err := decodeFrame(b, r.lay)
	if err != nil {
		r.stats.Malformed++
		return nil
	}
	r.stats.Heard++
	switch f.Type {
	case FrameWhole, FrameFragment:
		id := IDOf(f)
		if f.Repair {
			r.stats.Repaired++
			r.cancel(keyRepair + string(id[:])) // answered by someone else
			return r.take(now, f)
		}
		if f.Type == FrameWhole && !r.cfg.Plain {
			// A whole envelope can be checked before it costs anyone
			// airtime: one that is not genuine is neither relayed nor
			// handed on. (Fragments are checked once joined.)
			wall := now
			if r.cfg.Clock != nil {
				wall = r.cfg.Clock()
			}
			if _, err := message.Verify(f.Payload, wall.UnixMilli()); err != nil {
				r.stats.Forged++
				return nil
			}
		}
		d := r.flood.Heard(now, f, r.rnd.Float64())
		if d.Cancel && !r.cfg.Plain {
			r.cancel(keyRelay + string(id[:]))
		}
		if !d.New {
			return nil
		}
		// On an open mesh a forged fragment is relayed like any new frame
		// (it cannot be told until joined, and a stranger can as well send
		// garbage under new keys); the flood's and the reassembler's part
		// is that it displaces nothing genuine.
		if !d.Relay.IsZero() && !r.holds(f) {
			relay := f
			relay.Hops = min(f.Hops, r.cfg.Hops) - 1
			if b, err := r.encode(relay, nil); err == nil {
				r.later(d.Relay, b, framePriority(f), keyRelay+string(id[:]))
			}
		}
		return r.take(now, f)
	case FrameDigest:
		if r.repairs() && f.Node != r.cfg.Tag {
			r.digest(now, f)
		}
	case FrameWant:
		if r.repairs() && f.Node == r.cfg.Tag {
			r.answerWant(now, f)
		}
	case FrameMore:
		switch {
		case !r.repairs():
		case f.Node == r.cfg.Tag:
			r.answerMore(now, f)
		default:
			// Someone asked the same neighbour for more of the same round,
			// from where this node needs it: the answer is broadcast, so
			// ours can wait and see.
			if p := r.peers[f.Node]; p != nil && p.from == f.From && p.to == f.To &&
				int(f.Start) <= len(p.syms) && int(f.Start)+int(f.Count) > len(p.syms) {
				r.cancel(moreKey(f.Node, f.From, f.To))
			}
		}
	}
	return nil
}

// holds reports whether the store already holds the message a whole
// frame carries: then the frame is a late echo (a neighbour repaired it
// and flooded it on), and this node flooded it long ago. Fragments cannot
// tell; they rely on the flood's memory.
func (r *Router) holds(f Frame) bool {
	if f.Type != FrameWhole || r.cfg.Messages == nil || r.cfg.Plain {
		return false
	}
	ok, err := r.cfg.Messages.Has(message.IDOf(f.Payload))
	return ok && err == nil
}

// take hands on a whole envelope, or adds a fragment to its message.
func (r *Router) take(now time.Time, f Frame) [][]byte {
	env := f.Payload
	if f.Type == FrameWhole {
		env = append([]byte(nil), env...)
	} else {
		var err error
		if env, err = r.reasm.Add(now, f); err != nil || env == nil {
			return nil
		}
	}
	r.stats.Delivered++
	r.unwant(now, shortKey(message.IDOf(env)))
	return [][]byte{env}
}

// unwant takes a message that has arrived out of the wants still
// waiting.
func (r *Router) unwant(now time.Time, k uint64) {
	for key, w := range r.wants {
		i := slices.Index(w.ids, k)
		if i < 0 {
			continue
		}
		r.cancel(key)
		delete(r.wants, key)
		if ids := slices.Delete(w.ids, i, i+1); len(ids) > 0 {
			r.sendWant(now, w.node, w.to, ids, slices.Delete(w.mask, i, i+1))
		}
	}
}

// sendWant asks node for the messages with the given short IDs, or the
// fragments of them in mask, from its round whose window ends at to.
func (r *Router) sendWant(now time.Time, node uint16, to uint32, ids []uint64, mask []uint32) {
	b := make([]byte, 0, len(ids)*WantEntry)
	for i, k := range ids {
		b = binary.BigEndian.AppendUint64(b, k)
		b = append(b, byte(mask[i]>>16), byte(mask[i]>>8), byte(mask[i]))
	}
	frame, err := r.encode(Frame{Type: FrameWant, Node: node, Payload: b}, roundContext(to))
	if err != nil {
		return
	}
	key := fmt.Sprintf("%s%d/%x", keyWant, node, b)
	for k := range r.wants {
		if !r.sched.Has(k) {
			delete(r.wants, k) // pushed out of the queue or cancelled
		}
	}
	if len(r.wants) >= maxWantsWaiting {
		r.stats.QueueFull++
		return
	}
	if err := r.sched.Enqueue(now, frame, message.PriorityLow, key); err != nil {
		r.stats.QueueFull++
		return
	}
	r.stats.Wants++
	r.wants[key] = &want{node: node, to: to, ids: ids, mask: mask}
}

// framePriority is the priority of the message a frame carries, when the
// frame shows it (a whole envelope or a first fragment); normal otherwise.
func framePriority(f Frame) message.Priority {
	if f.Type == FrameWhole || f.Index == 0 {
		if p, ok := message.PeekPriority(f.Payload); ok {
			return p
		}
	}
	return message.PriorityNormal
}

// Next returns the frame to send now, or nil and how long to wait before
// asking again (negative: nothing to do until something is heard or
// stored). After sending a frame, report its end with Done before asking
// again; a frame never reported is taken as ended after twice its airtime
// and inflightSlack more, and its end, should it come, is skipped. Call
// Reset when the radio was lost, so no end is awaited.
func (r *Router) Next(now time.Time) ([]byte, time.Duration) {
	r.due(now)
	if r.inflight != nil {
		if now.Before(r.deadline) {
			return nil, r.deadline.Sub(now)
		}
		r.Done(now)
		r.late++
	}
	q, wait, _ := r.sched.Next(now)
	if q != nil {
		r.inflight, r.deadline = q, now.Add(2*q.Airtime+inflightSlack)
		switch q.Key[:1] {
		case keyRelay:
			r.flood.SentID(now, FrameID([]byte(q.Key[1:])))
		case keyWant:
			delete(r.wants, q.Key)
		}
		r.stats.Sent++
		r.stats.Airtime += q.Airtime
		return q.Frame, 0
	}
	soonest := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if w := max(t.Sub(now), 0); wait < 0 || w < wait {
			wait = w
		}
	}
	if len(r.delayed) > 0 {
		soonest(r.delayed[0].at)
	}
	if r.repairs() {
		soonest(r.nextDigest)
	}
	return nil, wait
}

// inflightSlack is how long past twice its airtime a frame may stay
// unreported before it is taken as ended: long enough for a board's
// listen-before-talk to wait out a busy channel.
const inflightSlack = 10 * time.Second

// Done reports that the frame Next returned last finished on air at end.
func (r *Router) Done(end time.Time) {
	if r.late > 0 {
		r.late-- // the end of a frame already taken as ended
		return
	}
	if r.inflight == nil {
		return
	}
	r.ended(r.inflight)
	r.inflight = nil
	r.sched.Done(end)
}

// Reset forgets the frame in flight and the ends awaited: the radio was
// lost (unplugged, rebooted), and whatever it held will not be sent.
func (r *Router) Reset(now time.Time) {
	if r.inflight != nil {
		r.sched.Done(now)
		r.inflight = nil
	}
	r.late = 0
}

// due moves relays and answers whose time has come to the scheduler, and
// starts a repair round when one is due.
func (r *Router) due(now time.Time) {
	i := 0
	for ; i < len(r.delayed) && !r.delayed[i].at.After(now); i++ {
		d := r.delayed[i]
		r.enqueue(now, d.frame, d.prio, d.key)
	}
	if i > 0 {
		r.delayed = append(r.delayed[:0], r.delayed[i:]...)
	}
	if !r.repairs() {
		return
	}
	if r.nextDigest.IsZero() {
		// The first digest soon after starting, but not in step with
		// neighbours that started at the same moment.
		r.nextDigest = now.Add(time.Duration(r.rnd.Float64() * float64(r.cfg.RepairEvery) / 4))
	}
	if now.Before(r.nextDigest) {
		return
	}
	r.nextDigest = now.Add(time.Duration((0.75 + r.rnd.Float64()/2) * float64(r.cfg.RepairEvery)))
	r.lastDigest = now
	r.startRound(now)
	for k, p := range r.peers {
		if now.Sub(p.at) > peerRoundAge {
			delete(r.peers, k)
		}
	}
}

func (r *Router) enqueue(now time.Time, frame []byte, p message.Priority, key string) {
	if err := r.sched.Enqueue(now, frame, p, key); err != nil {
		r.stats.QueueFull++
	}
}

// later queues a frame to be sent at at, unless one with its key waits.
func (r *Router) later(at time.Time, frame []byte, p message.Priority, key string) {
	if r.pending(key) {
		return
	}
	if len(r.delayed) >= r.cfg.MaxQueue {
		r.stats.QueueFull++
		return
	}
	i := len(r.delayed)
	for i > 0 && r.delayed[i-1].at.After(at) {
		i--
	}
	r.delayed = append(r.delayed, delayed{})
	copy(r.delayed[i+1:], r.delayed[i:])
	r.delayed[i] = delayed{at: at, frame: frame, prio: p, key: key}
}

func (r *Router) pending(key string) bool {
	for _, d := range r.delayed {
		if d.key == key {
			return true
		}
	}
	return r.sched.Has(key)
}

// cancel takes every frame with key off the delayed list and the queue.
func (r *Router) cancel(key string) {
	kept := r.delayed[:0]
	for _, d := range r.delayed {
		if d.key != key {
			kept = append(kept, d)
		}
	}
	clear(r.delayed[len(kept):])
	r.delayed = kept
	r.sched.Cancel(key)
}

func shortKey(id message.ID) uint64 { return binary.BigEndian.Uint64(id[:ShortID]) }

// window reads the short IDs of the messages created in [from, to)
// seconds.
func (r *Router) window(from, to uint32) ([]uint64, map[uint64]message.ID, error) {
	list, err := r.cfg.Messages.Window(int64(from)*1000, int64(to)*1000, maxWindow)
	if err != nil {
		r.stats.StoreError++
		return nil, nil, fmt.Errorf("radio: repair window: %w", err)
	}
	keys := make([]uint64, 0, len(list))
	ids := make(map[uint64]message.ID, len(list))
	for _, id := range list {
		k := shortKey(id)
		if _, dup := ids[k]; dup {
			continue // two IDs sharing 8 bytes: leave both to the flood
		}
		keys = append(keys, k)
		ids[k] = id
	}
	return keys, ids, nil
}

// startRound sends this node's digest.
func (r *Router) startRound(now time.Time) {
	if r.round != nil {
		for _, k := range r.round.keys {
			r.cancel(k) // a digest still waiting is stale
		}
		r.prevTo = r.round.to
	}
	end := now.Add(-r.cfg.Settle).Unix()
	if end <= 0 {
		return
	}
	to := uint32(end)
	from := uint32(max(end-int64(r.cfg.RepairWindow/time.Second), 0))
	keys, ids, err := r.window(from, to)
	if err != nil {
		return
	}
	r.round = &ownRound{from: from, to: to, enc: reconcile.NewEncoder(keys), ids: ids, sent: map[uint64]bool{}, mores: map[int]bool{}}
	r.sendSymbols(now, 0, InitialSymbols, false)
}

// sendSymbols queues a digest with symbols [start, start+n) of this
// node's round; an answer (to a more) only within the answer budget.
func (r *Router) sendSymbols(now time.Time, start, n int, answer bool) {
	key := fmt.Sprintf("%s%d/%d", keyDigest, r.round.to, start)
	if r.pending(key) {
		return
	}
	syms := r.round.enc.Symbols(start + n)[start:]
	f := Frame{Type: FrameDigest, Node: r.cfg.Tag, From: r.round.from, To: r.round.to, Start: uint16(start),
		Payload: reconcile.AppendSymbols(nil, syms)}
	b, err := r.encode(f, nil)
	if err != nil {
		return
	}
	if answer && !r.answers.take(now, now, r.cfg.Airtime(len(b))) {
		r.stats.Limited++
		return
	}
	r.round.keys = append(r.round.keys, key)
	r.stats.Digests++
	r.enqueue(now, b, message.PriorityLow, key)
}

func moreKey(node uint16, from, to uint32) string {
	return fmt.Sprintf("%s%d/%d/%d", keyMore, node, from, to)
}

// digest follows a neighbour's repair round.
func (r *Router) digest(now time.Time, f Frame) {
	syms, ok := reconcile.ParseSymbols(f.Payload)
	if !ok {
		return
	}
	p := r.peers[f.Node]
	if p == nil || p.from != f.From || p.to != f.To {
		if p == nil && len(r.peers) >= maxPeers {
			r.forgetOldestPeer()
		}
		p = &peerRound{from: f.From, to: f.To}
		r.peers[f.Node] = p
	}
	p.at = now
	have, start := len(p.syms), int(f.Start)
	switch {
	case p.done:
		return
	case start > have: // a digest of this round was lost
		r.askMore(now, f.Node, p)
		return
	case start+len(syms) <= have: // nothing new: an answer to someone else
		if !r.pending(moreKey(f.Node, p.from, p.to)) {
			r.askMore(now, f.Node, p)
		}
		return
	}
	p.syms = append(p.syms, syms[have-start:]...)
	local, ids, err := r.window(f.From, f.To)
	if err != nil {
		return
	}
	diff, ok := reconcile.Decode(p.syms, local)
	if !ok {
		if len(p.syms) >= maxRoundSymbols {
			r.stats.GaveUp++
			p.done = true
			return
		}
		r.askMore(now, f.Node, p)
		return
	}
	r.stats.Decoded++
	p.done = true
	r.cancel(moreKey(f.Node, f.From, f.To))
	if n := min(len(diff.Remote), MaxWants); n > 0 {
		// Of a message partly collected here, only the missing fragments.
		ids, mask := slices.Clone(diff.Remote[:n]), make([]uint32, n)
		for i, k := range ids {
			var key [keySize]byte
			binary.BigEndian.PutUint32(key[:], uint32(k>>32))
			mask[i] = r.reasm.Missing(key)
		}
		r.sendWant(now, f.Node, f.To, ids, mask)
	}
	// What the neighbour lacks: offered after a random delay, so that of
	// several neighbours holding it, the first heard sends it.
	for _, k := range diff.Local[:min(len(diff.Local), MaxWants)] {
		if r.round != nil && !r.answer(k) {
			continue
		}
		if r.sendRepair(now, now.Add(time.Duration(r.rnd.Float64()*float64(r.cfg.RelayDelay))), ids[k], AllFragments) {
			r.stats.Offered++
		}
	}
}

func (r *Router) forgetOldestPeer() {
	var oldest uint16
	var at time.Time
	for k, p := range r.peers {
		if at.IsZero() || p.at.Before(at) {
			oldest, at = k, p.at
		}
	}
	delete(r.peers, oldest)
}

// askMore asks a neighbour for the next symbols of its round, as many
// again as already held (so a round takes a logarithmic number of asks),
// after a short random delay in which another neighbour may ask first.
func (r *Router) askMore(now time.Time, node uint16, p *peerRound) {
	start := len(p.syms)
	n := min(max(start, InitialSymbols), r.lay.maxSymbols(), maxRoundSymbols-start)
	f := Frame{Type: FrameMore, Node: node, From: p.from, To: p.to, Start: uint16(start), Count: uint8(n)}
	b, err := r.encode(f, nil)
	if err != nil {
		return
	}
	r.stats.Mores++
	r.later(now.Add(time.Duration(r.rnd.Float64()*float64(r.cfg.RelayDelay)/2)), b, message.PriorityLow,
		moreKey(node, p.from, p.to))
}

// answerMore sends the symbols a neighbour asked for, if the round is
// still this node's latest.
func (r *Router) answerMore(now time.Time, f Frame) {
	if r.round == nil || r.round.from != f.From || r.round.to != f.To || int(f.Start)+int(f.Count) > maxRoundSymbols ||
		r.round.mores[int(f.Start)] {
		return // each range once a round: a neighbour that lost it asks again next round
	}
	r.round.mores[int(f.Start)] = true
	r.sendSymbols(now, int(f.Start), int(f.Count), true)
}

// answerWant sends the messages a neighbour wants.
func (r *Router) answerWant(now time.Time, f Frame) {
	if r.round == nil {
		return
	}
	for e := f.Payload; len(e) >= WantEntry; e = e[WantEntry:] {
		k := binary.BigEndian.Uint64(e)
		if id, ok := r.round.ids[k]; ok && r.answer(k) &&
			r.sendRepair(now, now, id, uint32(e[8])<<16|uint32(e[9])<<8|uint32(e[10])) {
			r.stats.Answered++
		}
	}
}

// answer reports whether this round may still send the message with
// short ID k, and counts it: each message once a round, and at most
// maxAnswers messages.
func (r *Router) answer(k uint64) bool {
	if r.round.sent[k] || len(r.round.sent) >= maxAnswers {
		return false
	}
	r.round.sent[k] = true
	return true
}

// sendRepair queues a stored message's frames in mask, flagged repair, at
// at, as many of them, in order, as fit the answer budget at now; it
// reports whether it queued any. A neighbour that gets only the first
// fragments wants the rest in a later round.
func (r *Router) sendRepair(now, at time.Time, id message.ID, mask uint32) bool {
	env, err := r.cfg.Messages.Envelope(id)
	if err != nil {
		r.stats.StoreError++
		return false
	}
	frames, err := fragment(env, 0, r.lay)
	if err != nil {
		return false
	}
	prio, _ := message.PeekPriority(env)
	queued := false
	for _, f := range frames {
		if f.Type == FrameFragment && mask&(1<<f.Index) == 0 {
			continue
		}
		f.Repair = true
		fid := IDOf(f)
		b, err := r.encode(f, nil)
		if err != nil {
			continue
		}
		key := keyRepair + string(fid[:])
		if r.pending(key) {
			queued = true
			continue
		}
		if !r.answers.take(now, at, r.cfg.Airtime(len(b))) {
			r.stats.Limited++
			break
		}
		r.later(at, b, prio, key)
		queued = true
	}
	return queued
}

// RouterStatus is what the router shows.
type RouterStatus struct {
	Tag uint16 `json:"tag"`
	// Keyed: frames are authenticated with the mesh key.
	Keyed        bool            `json:"keyed"`
	Scheduler    SchedulerStatus `json:"scheduler"`
	Delayed      int             `json:"delayed"` // relays and answers waiting for their random delay
	Sending      bool            `json:"sending"` // a frame is on air
	Reassembling int             `json:"reassembling"`
	Incomplete   int             `json:"incomplete"` // messages whose fragments stopped coming
	Relayed      int             `json:"relayed"`
	Cancelled    int             `json:"relays_cancelled"`
	Duplicates   int             `json:"duplicates"`
	// Substituted: messages whose fragments joined only after a forged
	// (or damaged) one was set aside.
	Substituted int `json:"substituted"`
	// AnswerUsed of AnswerBudget: the airtime spent answering neighbours
	// in the last window (the region's), and the most it may be.
	AnswerUsed   time.Duration `json:"answer_used_ns"`
	AnswerBudget time.Duration `json:"answer_budget_ns"`
	RouterStats
}

// Status reports the router's state at now.
func (r *Router) Status(now time.Time) RouterStatus {
	return RouterStatus{Tag: r.cfg.Tag, Keyed: r.air != nil, Scheduler: r.sched.Status(now), Delayed: len(r.delayed),
		Sending: r.inflight != nil, Reassembling: r.reasm.Pending(), Incomplete: r.reasm.Dropped, Relayed: r.flood.Relayed,
		Cancelled: r.flood.Cancelled, Duplicates: r.flood.Duplicates, Substituted: r.reasm.Substituted,
		AnswerUsed: r.answers.used(now), AnswerBudget: r.answers.budget, RouterStats: r.stats}
}
