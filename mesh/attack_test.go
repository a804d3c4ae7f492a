package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"lifeline/message"
)

// rawPeer is an attacker: a bare libp2p host on 127.0.0.1 with a fresh
// key, speaking the reconcile stream by hand.
type rawPeer struct {
	t    *testing.T
	h    host.Host
	s    network.Stream
	r    *bufio.Reader
	in   int64 // bytes read from the stream
	out  int64 // bytes written to it
	done chan error
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &rawPeer{t: t, h: h}
}

func (a *rawPeer) connect(to *testNode) error {
	ai, err := peer.AddrInfoFromString(to.addr())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.h.Connect(ctx, *ai)
}

// open connects, opens a reconcile stream and exchanges version bytes: it
// fails when the node gives us no session slot.
func (a *rawPeer) open(to *testNode) error {
	if err := a.connect(to); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.h.NewStream(ctx, to.mesh.Host().ID(), ReconcileProtocol)
	if err != nil {
		return err
	}
	a.s, a.r = s, bufio.NewReader(countingReader{s, &a.in})
	a.write([]byte{streamVersion})
	if _, err := a.r.ReadByte(); err != nil {
		return fmt.Errorf("no hello: %w", err)
	}
	return nil
}

func (a *rawPeer) write(b []byte) {
	n, _ := a.s.Write(b)
	a.out += int64(n)
}

func (a *rawPeer) frame(typ byte, payload []byte) {
	w := countingWriter{a.s, &a.out}
	writeFrame(w, typ, payload)
}

// drain reads until the node ends the stream, in the background; done
// reports how it ended.
func (a *rawPeer) drain() {
	a.done = make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, a.r)
		a.done <- err
	}()
}

// negAll is a Negentropy message asking for every id the responder holds:
// one empty id list up to infinity.
var negAll = []byte{0x61, 0x00, 0x00, 0x02, 0x00}

// negNothing skips everything: the reply lists no id.
var negNothing = []byte{0x61, 0x00, 0x00, 0x00}

// TestWantOnlyWhatWasOffered: wants before a reconciliation, of ids not
// offered, or repeated, disconnect and block the peer, before the node has
// sent more than a few bytes for every byte it got; a key and address that
// keep doing it are refused at connect, while a member from that address
// still gets in.
func TestWantOnlyWhatWasOffered(t *testing.T) {
	member := startNode(t, t.TempDir(), newIdentity(t), Config{})
	victim := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{member.addr()}, BlockIPAfter: 3})
	ids := fill(t, victim.st, victim.id, 40, "held")
	eventually(t, 10*time.Second, "victim linked to its member", func() bool { return connected(victim, member) })
	repeat := make([]message.ID, batch) // one id the victim holds, 128 times
	for i := range repeat {
		repeat[i] = ids[0]
	}
	cases := []struct {
		name   string
		script func(a *rawPeer)
	}{
		{"want before reconciling", func(a *rawPeer) {
			a.frame(frameWant, encodeIDs(repeat))
		}},
		{"want not offered", func(a *rawPeer) {
			a.frame(frameNeg, negNothing)
			if _, err := readFrame(a.r); err != nil {
				a.t.Errorf("negentropy reply: %v", err)
			}
			a.frame(frameWant, encodeIDs(ids[:1]))
		}},
		{"want repeated", func(a *rawPeer) {
			a.frame(frameNeg, negAll)
			if _, err := readFrame(a.r); err != nil {
				a.t.Errorf("negentropy reply: %v", err)
			}
			a.frame(frameWant, encodeIDs(ids[:2]))
			if f, err := readFrame(a.r); err != nil || f.typ != frameEnvelopes {
				a.t.Errorf("offered ids not sent: %v", err)
			}
			a.frame(frameWant, encodeIDs(ids[1:3]))
			if f, err := readFrame(a.r); err == nil {
				a.t.Errorf("a repeated want answered with frame type %d", f.typ)
			}
		}},
	}
	for i, tc := range cases {
		a := newRawPeer(t)
		if err := a.open(victim); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tc.script(a)
		a.drain()
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the session went on", tc.name)
		}
		eventually(t, 10*time.Second, tc.name+": attacker disconnected and counted", func() bool {
			st := victim.mesh.Status()
			return st.Misbehaving == int64(i+1) && a.h.Network().Connectedness(victim.mesh.Host().ID()) != network.Connected
		})
		if i == 0 {
			// Before any reconciliation the node answered with its hello
			// and nothing else.
			if a.in > 4*a.out {
				t.Fatalf("%s: %d bytes in for %d out", tc.name, a.in, a.out)
			}
			t.Logf("%s: the attacker sent %d bytes and got %d", tc.name, a.out, a.in)
		}
	}
	// Three ids misbehaved from 127.0.0.1: a fourth fresh key is refused
	// at connect, the member is not.
	// (A dialler's Connect can return before the listener's refusal
	// after the handshake reaches it: what counts is that no session and
	// no connection come of it.)
	fresh := newRawPeer(t)
	if err := fresh.open(victim); err == nil {
		t.Fatal("a fresh key from a blocked address got a session")
	}
	if victim.mesh.Host().Network().Connectedness(fresh.h.ID()) == network.Connected {
		t.Fatal("a fresh key from a blocked address is connected")
	}
	member.mesh.Host().Network().ClosePeer(victim.mesh.Host().ID())
	eventually(t, 10*time.Second, "member reconnected from the blocked address", func() bool { return connected(victim, member) })
}

// TestStrangersCannotHoldEverySlot: strangers holding every slot they can
// get do not stop a member's session, and holders that make no progress
// lose their slots within the grace.
func TestStrangersCannotHoldEverySlot(t *testing.T) {
	const grace = 3 * time.Second
	member := startNode(t, t.TempDir(), newIdentity(t), Config{})
	victim := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{member.addr()},
		StrangerSlotsPerIP: maxResponders, respondGrace: grace})
	fill(t, victim.st, victim.id, 20, "victim")
	news := fill(t, member.st, member.id, 5, "member")
	eventually(t, 10*time.Second, "victim linked to its member", func() bool { return connected(victim, member) })

	strangerSlots := maxResponders - max(1, maxResponders/4)
	holders := make([]*rawPeer, strangerSlots)
	start := time.Now()
	for i := range holders {
		holders[i] = newRawPeer(t)
		if err := holders[i].open(victim); err != nil {
			t.Fatalf("stranger %d got no slot: %v", i, err)
		}
		holders[i].drain()
	}
	full := func() bool { return newRawPeer(t).open(victim) != nil }
	if !full() {
		t.Fatal("a stranger got a slot past the strangers' share")
	}
	stats, err := member.mesh.ReconcileWith(context.Background(), victim.mesh.Host().ID())
	if err != nil {
		t.Fatalf("member's session while strangers hold their slots: %v", err)
	}
	// (What the member holds may have gone by gossip already: the
	// session's completing is what counts.)
	if stats.Rounds == 0 || !hasAll(victim.st, news) {
		t.Fatalf("member's session: %+v", stats)
	}
	if !full() {
		t.Fatal("the holders lost their slots before the member's session ended: the test proves nothing")
	}
	for i, h := range holders {
		select {
		case err := <-h.done:
			if took := time.Since(start); took > grace+stretch(2*time.Second) {
				t.Fatalf("holder %d dropped after %s, the grace is %s", i, took, grace)
			}
			_ = err
		case <-time.After(grace + stretch(10*time.Second)):
			t.Fatalf("holder %d kept its slot", i)
		}
	}
	if st := victim.mesh.Status(); st.Misbehaving != 0 {
		t.Fatalf("idle peers counted as misbehaving: %d", st.Misbehaving)
	}
	if full() {
		t.Fatal("slots not given back")
	}
}

// TestSlotsPerSource: one address gets one stranger slot by default, a
// member any free one, and a released slot is free again.
func TestSlotsPerSource(t *testing.T) {
	s := newSlots(4, 1)
	r1, ok := s.take(false, "10.0.0.1")
	if !ok {
		t.Fatal("first stranger refused")
	}
	if _, ok := s.take(false, "10.0.0.1"); ok {
		t.Fatal("a second stranger slot for one address")
	}
	r2, _ := s.take(false, "10.0.0.2")
	_, ok3 := s.take(false, "10.0.0.3")
	if _, ok := s.take(false, "10.0.0.4"); !ok3 || ok {
		t.Fatalf("strangers' share: third %v, fourth %v; want 3 of 4", ok3, ok)
	}
	if _, ok := s.take(true, "10.0.0.1"); !ok {
		t.Fatal("member refused the reserved slot")
	}
	if _, ok := s.take(true, "10.0.0.9"); ok {
		t.Fatal("a fifth slot of four")
	}
	r1()
	r2()
	if _, ok := s.take(false, "10.0.0.1"); !ok {
		t.Fatal("released slot not free again")
	}
}

// TestFreshKeysShareTheAddressBudget: four fresh keys from one address
// together store no more than the address's budget, while a member from
// the same address is not held to it.
func TestFreshKeysShareTheAddressBudget(t *testing.T) {
	const perIP, each = 5, 10
	member := startNode(t, t.TempDir(), newIdentity(t), Config{})
	memberIDs := fill(t, member.st, member.id, 3, "member")
	victim := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{member.addr()},
		PushRatePerIP: 0.001, PushBurstPerIP: perIP, StrangerSlotsPerIP: maxResponders})
	var keys []*testNode
	for i := range 4 {
		k := startNode(t, t.TempDir(), newIdentity(t), Config{})
		fill(t, k.st, k.id, each, fmt.Sprint("key ", i))
		keys = append(keys, k)
	}
	for _, k := range keys {
		ai, _ := peer.AddrInfoFromString(victim.addr())
		if err := k.mesh.Host().Connect(context.Background(), *ai); err != nil {
			t.Fatal(err)
		}
	}
	// Each key's first session (it dialled, so it starts one) has ended.
	eventually(t, 30*time.Second, "every key tried to push", func() bool {
		for _, k := range keys {
			k.mesh.mu.Lock()
			st := k.mesh.state[victim.mesh.Host().ID()]
			tried := st != nil && (st.lastErr != "" || !st.lastReconcile.IsZero())
			k.mesh.mu.Unlock()
			if !tried {
				return false
			}
		}
		return true
	})
	eventually(t, 10*time.Second, "member's messages stored", func() bool { return hasAll(victim.st, memberIDs) })
	if got := count(victim.st); got != perIP+int64(len(memberIDs)) {
		t.Fatalf("victim stored %d: want %d from four keys on one address (their budget) and %d from the member",
			got, perIP, len(memberIDs))
	}
}

// TestGatherBounded: the block list keeps at most maxBlocked entries,
// dropping expired ones and then those expiring soonest, and blocks an
// address after enough misbehaving ids from it, never for members.
func TestGaterBounded(t *testing.T) {
	memberID := peer.ID("member")
	g := newGater(3, func(p peer.ID) bool { return p == memberID }, func(src string) bool { return src == "10.0.0.9" })
	now := time.Now()
	g.block("old", "", now.Add(-time.Second), false) // already expired
	for i := range maxBlocked + 100 {
		g.block(peer.ID(fmt.Sprint("p", i)), "", now.Add(time.Hour+time.Duration(i)*time.Second), false)
	}
	if n := g.count(); n > maxBlocked {
		t.Fatalf("%d entries, the bound is %d", n, maxBlocked)
	}
	if g.allowed(peer.ID(fmt.Sprint("p", maxBlocked+99))) {
		t.Fatal("the latest block was dropped")
	}
	if !g.allowed("p0") || !g.allowed("old") {
		t.Fatal("the soonest-expiring blocks were kept")
	}

	addr := func(ip string) network.ConnMultiaddrs {
		return connAddrs{ma.StringCast("/ip4/" + ip + "/tcp/4001")}
	}
	for i := range 2 {
		g.block(peer.ID(fmt.Sprint("bad", i)), "10.0.0.1", now.Add(time.Hour), false)
	}
	if !g.InterceptAccept(addr("10.0.0.1")) {
		t.Fatal("address blocked after two ids, the threshold is three")
	}
	g.block(memberID, "10.0.0.1", now.Add(time.Hour), true)
	if !g.InterceptAccept(addr("10.0.0.1")) {
		t.Fatal("a member's misbehaviour counted against its address")
	}
	g.block("bad2", "10.0.0.1", now.Add(time.Hour), false)
	if g.InterceptAccept(addr("10.0.0.1")) || g.InterceptSecured(network.DirInbound, "fresh", addr("10.0.0.1")) {
		t.Fatal("a fresh key from an address with three misbehaving ids got in")
	}
	if !g.InterceptSecured(network.DirInbound, "other", addr("10.0.0.2")) {
		t.Fatal("another address refused")
	}
	g.allowed(memberID) // the member's own block stands; by address it is not refused
	g.mu.Lock()
	delete(g.blocked, memberID)
	g.mu.Unlock()
	if !g.InterceptSecured(network.DirInbound, memberID, addr("10.0.0.1")) {
		t.Fatal("a member refused by address")
	}
	// Expiry lifts an address block.
	g.mu.Lock()
	g.sources["10.0.0.1"] = now.Add(-time.Second)
	g.mu.Unlock()
	if !g.InterceptAccept(addr("10.0.0.1")) {
		t.Fatal("an expired address block still refuses")
	}
}

type connAddrs struct{ remote ma.Multiaddr }

func (c connAddrs) LocalMultiaddr() ma.Multiaddr  { return ma.StringCast("/ip4/127.0.0.1/tcp/1") }
func (c connAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// TestGossipJunkVersion: an envelope whose version byte no version of ours
// will have is misbehaviour; a plausible future version is not.
func TestGossipJunkVersion(t *testing.T) {
	st := openStore(t, t.TempDir())
	m, err := New(Config{Identity: newIdentity(t), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: testLogger()}, st)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Host().Close()
	raw := signMany(t, newIdentity(t), 1)[0]
	for _, tc := range []struct {
		version byte
		bad     bool
	}{{0x00, true}, {0x02, false}, {maxFutureVersion, false}, {maxFutureVersion + 1, true}, {0x61, true}, {0xff, true}} {
		b := append([]byte{tc.version}, raw[1:]...)
		_, err := m.accept(context.Background(), peer.ID("gossiper"), b, false)
		if got := errors.Is(err, errMisbehaved); got != tc.bad {
			t.Errorf("version 0x%02x: misbehaviour %v, want %v (%v)", tc.version, got, tc.bad, err)
		}
	}
}

// TestStrangersShareReconcileWork: strangers' responder sessions together
// may cost only the work their shared budget holds. Once a stranger has
// spent it, its sessions end (or are refused) without it counting as
// misbehaviour, and a member's session runs in full.
func TestStrangersShareReconcileWork(t *testing.T) {
	const burst = 100_000
	member := startNode(t, t.TempDir(), newIdentity(t), Config{})
	victim := startNode(t, t.TempDir(), newIdentity(t), Config{Peers: []string{member.addr()},
		StrangerWorkRate: 1, strangerWorkBurst: burst})
	stranger := startNode(t, t.TempDir(), newIdentity(t), Config{})
	// The stranger holds what the victim holds: each session is pure
	// reconciliation work (walking the set), nothing to transfer.
	for _, id := range fill(t, victim.st, victim.id, 3000, "victim") {
		rec, err := victim.st.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stranger.st.Put(context.Background(), rec.Envelope.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	news := fill(t, member.st, member.id, 50, "member")
	eventually(t, 10*time.Second, "victim linked to its member", func() bool { return connected(victim, member) })
	if err := stranger.mesh.Host().Connect(context.Background(), peer.AddrInfo{ID: victim.mesh.Host().ID(), Addrs: victim.mesh.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}

	// Sessions one after the other until the strangers' budget cannot
	// start another. (A session refused while its predecessor still
	// holds the address's one slot is retried.)
	// The budget as it stands once the victim's side of every session
	// has ended and given back what it did not use (the initiator may
	// return first).
	tokens := func() float64 {
		eventually(t, 10*time.Second, "the victim's sessions ended", func() bool {
			r := victim.mesh.responders
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.free == maxResponders
		})
		return victim.mesh.budgets.work.available(time.Now())
	}
	sessions := 0
	for deadline := time.Now().Add(60 * time.Second); tokens() >= minStrangerWork; {
		if time.Now().After(deadline) {
			t.Fatalf("after %d sessions the strangers' budget still holds %.0f", sessions, tokens())
		}
		if _, err := stranger.mesh.ReconcileWith(context.Background(), victim.mesh.Host().ID()); err == nil {
			sessions++
		}
	}
	if _, err := stranger.mesh.ReconcileWith(context.Background(), victim.mesh.Host().ID()); err == nil {
		t.Fatal("a stranger's session ran with the strangers' budget spent")
	}
	if st := victim.mesh.Status(); st.Misbehaving != 0 {
		t.Fatalf("a stranger out of budget counted as misbehaving: %d", st.Misbehaving)
	}
	stats, err := member.mesh.ReconcileWith(context.Background(), victim.mesh.Host().ID())
	if err != nil || !hasAll(victim.st, news) {
		t.Fatalf("member's session after strangers spent theirs: %+v, %v", stats, err)
	}
	t.Logf("%d strangers' sessions spent the budget of %d; the member's session cost %d", sessions, burst, stats.Work)
}

// TestOfferedRangesBounded: a peer whose Negentropy messages make the node
// list thousands of separate ranges, round after round, is cut off before
// the ranges a session remembers (to check wants against) take much
// memory.
func TestOfferedRangesBounded(t *testing.T) {
	victim := startNode(t, t.TempDir(), newIdentity(t), Config{})
	fill(t, victim.st, victim.id, 10, "victim")
	a := newRawPeer(t)
	if err := a.open(victim); err != nil {
		t.Fatal(err)
	}
	// Each round, 4,096 empty id lists with a skipped millisecond
	// between them, in a part of time no earlier round used: every one is
	// a separate range listed.
	varint := func(b []byte, n uint64) []byte { // Negentropy's: big-endian base 128
		var tmp [10]byte
		i := len(tmp) - 1
		tmp[i] = byte(n & 0x7f)
		for n >>= 7; n != 0; n >>= 7 {
			i--
			tmp[i] = byte(n&0x7f) | 0x80
		}
		return append(b, tmp[i:]...)
	}
	rounds := 0
	for ; rounds < 30; rounds++ {
		msg := []byte{0x61}
		base := uint64(rounds) * 10_000
		msg = varint(varint(varint(msg, base+1), 0), 0) // skip up to base
		for range 4096 {
			msg = append(msg, 0x02, 0x00, 0x02, 0x00) // +1 ms, no prefix: an empty id list
			msg = append(msg, 0x02, 0x00, 0x00)       // +1 ms: skipped
		}
		a.frame(frameNeg, msg)
		if _, err := readFrame(a.r); err != nil {
			break
		}
	}
	if rounds > maxOffered/4096+1 {
		t.Fatalf("the node answered %d rounds of 4,096 separate listed ranges; it remembers at most %d", rounds, maxOffered)
	}
	eventually(t, 10*time.Second, "the peer blocked", func() bool { return victim.mesh.Status().Misbehaving > 0 })
}
