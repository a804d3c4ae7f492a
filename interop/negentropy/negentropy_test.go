// Package negentropy checks lifeline/reconcile against go-nostr's
// nip77/negentropy, an independent implementation of Negentropy v1, in both
// roles and byte for byte.
package negentropy

import (
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	gn "github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"

	"lifeline/reconcile"
)

type scenario struct {
	name                 string
	common, onlyA, onlyB int
	tsRange              uint64
}

var scenarios = []scenario{
	{"empty", 0, 0, 0, 10},
	{"identical", 500, 0, 0, 1000},
	{"one missing each side", 2000, 1, 1, 100000},
	{"disjoint", 0, 300, 300, 1000},
	{"same timestamp", 1000, 40, 60, 1},
	{"large", 30000, 100, 200, 1 << 30},
}

// build makes the two sides. Timestamps stay below 2^31 so that every
// implementation, including 32-bit varint decoders, reads them.
func build(seed uint64, sc scenario) (a, b []reconcile.Item, have, need map[string]bool) {
	r := mrand.New(mrand.NewPCG(seed, 7))
	item := func() reconcile.Item {
		var it reconcile.Item
		it.Timestamp = 1_000_000_000 + r.Uint64N(sc.tsRange)
		for i := range it.ID {
			it.ID[i] = byte(r.Uint32())
		}
		return it
	}
	have, need = map[string]bool{}, map[string]bool{}
	for range sc.common {
		it := item()
		a, b = append(a, it), append(b, it)
	}
	for range sc.onlyA {
		it := item()
		a = append(a, it)
		have[hex.EncodeToString(it.ID[:])] = true
	}
	for range sc.onlyB {
		it := item()
		b = append(b, it)
		need[hex.EncodeToString(it.ID[:])] = true
	}
	return a, b, have, need
}

func theirStorage(items []reconcile.Item) *vector.Vector {
	v := vector.New()
	for _, it := range items {
		v.Insert(nostr.Timestamp(it.Timestamp), hex.EncodeToString(it.ID[:]))
	}
	v.Seal()
	return v
}

func ours(items []reconcile.Item) *reconcile.Vector {
	return reconcile.NewVector(append([]reconcile.Item(nil), items...))
}

// theirs wraps a go-nostr engine, draining its result channels as it runs.
type theirs struct {
	n          *gn.Negentropy
	wg         sync.WaitGroup
	have, need []string
}

func newTheirs(items []reconcile.Item, limit int, initiator bool) *theirs {
	t := &theirs{n: gn.New(theirStorage(items), limit)}
	if initiator {
		t.wg.Add(2)
		go func() {
			defer t.wg.Done()
			for id := range t.n.Haves {
				t.have = append(t.have, id)
			}
		}()
		go func() {
			defer t.wg.Done()
			for id := range t.n.HaveNots {
				t.need = append(t.need, id)
			}
		}()
	}
	return t
}

func toSet(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func hexIDs(ids [][32]byte) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = hex.EncodeToString(id[:])
	}
	return s
}

func sameSet(t *testing.T, what string, got []string, want map[string]bool) {
	t.Helper()
	g := toSet(got)
	if len(g) != len(got) {
		t.Errorf("%s: %d ids with duplicates", what, len(got))
	}
	if len(g) != len(want) {
		t.Fatalf("%s: got %d ids, want %d", what, len(g), len(want))
	}
	for id := range want {
		if !g[id] {
			t.Fatalf("%s: missing %s", what, id)
		}
	}
}

// TestTheirInitiatorOurResponder: go-nostr starts, we answer.
func TestTheirInitiatorOurResponder(t *testing.T) {
	for _, limit := range []int{0, 4096, 50_000} {
		for _, sc := range scenarios {
			t.Run(fmt.Sprintf("%s/limit%d", sc.name, limit), func(t *testing.T) {
				a, b, wantHave, wantNeed := build(1, sc)
				them := newTheirs(a, limit, true)
				us, err := reconcile.New(ours(b), limit)
				if err != nil {
					t.Fatal(err)
				}
				msg := them.n.Start()
				for rounds := 0; msg != ""; rounds++ {
					if rounds > 50 {
						t.Fatal("no convergence")
					}
					raw, _ := hex.DecodeString(msg)
					reply, err := us.Respond(raw)
					if err != nil {
						t.Fatalf("our responder: %v", err)
					}
					if msg, err = them.n.Reconcile(hex.EncodeToString(reply)); err != nil {
						t.Fatalf("their initiator: %v", err)
					}
				}
				them.wg.Wait()
				sameSet(t, "their have", them.have, wantHave)
				sameSet(t, "their need", them.need, wantNeed)
			})
		}
	}
}

// TestOurInitiatorTheirResponder: we start, go-nostr answers.
func TestOurInitiatorTheirResponder(t *testing.T) {
	for _, limit := range []int{0, 4096, 50_000} {
		for _, sc := range scenarios {
			t.Run(fmt.Sprintf("%s/limit%d", sc.name, limit), func(t *testing.T) {
				a, b, wantHave, wantNeed := build(2, sc)
				us, _ := reconcile.New(ours(a), limit)
				them := newTheirs(b, limit, false)
				msg, err := us.Initiate()
				if err != nil {
					t.Fatal(err)
				}
				var have, need [][32]byte
				for rounds := 0; msg != nil; rounds++ {
					if rounds > 50 {
						t.Fatal("no convergence")
					}
					reply, err := them.n.Reconcile(hex.EncodeToString(msg))
					if err != nil {
						t.Fatalf("their responder: %v", err)
					}
					raw, _ := hex.DecodeString(reply)
					if msg, have, need, err = us.Reconcile(raw, have, need); err != nil {
						t.Fatalf("our initiator: %v", err)
					}
				}
				sameSet(t, "our have", hexIDs(have), wantHave)
				sameSet(t, "our need", hexIDs(need), wantNeed)
			})
		}
	}
}

// TestSameBytes: without a frame limit both engines are deterministic, so
// every message of a session must be identical byte for byte.
func TestSameBytes(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			a, b, _, _ := build(3, sc)
			usI, _ := reconcile.New(ours(a), 0)
			usR, _ := reconcile.New(ours(b), 0)
			themI, themR := newTheirs(a, 0, true), newTheirs(b, 0, false)
			ourMsg, _ := usI.Initiate()
			theirMsg := themI.n.Start()
			for round := 0; ourMsg != nil || theirMsg != ""; round++ {
				if hex.EncodeToString(ourMsg) != theirMsg {
					t.Fatalf("round %d, initiator messages differ:\n ours   %x\n theirs %s", round, ourMsg, theirMsg)
				}
				ourReply, err := usR.Respond(ourMsg)
				if err != nil {
					t.Fatal(err)
				}
				theirReply, err := themR.n.Reconcile(theirMsg)
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(ourReply) != theirReply {
					t.Fatalf("round %d, responder messages differ:\n ours   %x\n theirs %s", round, ourReply, theirReply)
				}
				if ourMsg, _, _, err = usI.Reconcile(ourReply, nil, nil); err != nil {
					t.Fatal(err)
				}
				if theirMsg, err = themI.n.Reconcile(theirReply); err != nil {
					t.Fatal(err)
				}
			}
			themI.wg.Wait()
		})
	}
}
