package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"lifeline/message"
)

// Written by a second engineer who found the same race independently; it
// forces, every time, the window TestNoSpaceRecovers met about one run in
// ten (and test-arm's emulation met more often).

// openFilled opens a store without the free-space check on a tmpfs, then
// fills the disk: the log is preallocated, so Puts are acknowledged and
// their commits fail.
func openFilled(t *testing.T) (*Store, *clock) {
	t.Helper()
	dir := tmpfs(t, "32m")
	clk := newClock()
	s, err := Open(filepath.Join(dir, "store.db"), Options{Now: clk.Now, MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fill(t, dir, 0)
	return s, clk
}

// waiting reports whether id waits for the applier to take it.
func (s *Store) waiting(id message.ID) bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	return slices.ContainsFunc(s.toApply, func(o *op) bool { return o.kind == opPut && o.env.ID() == id })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNoSpaceHoldsWhatItHasNotTaken: Puts acknowledged while the applier
// commits earlier ones, on a full disk, are readable once the store has
// stalled, though the applier has not held them yet: acknowledged means
// readable.
//
// Holding statMu stops the applier where apply begins, so that a Put is
// acknowledged after it took its batch and before that batch fails, every
// time; taking its wake-up keeps it from taking that Put before the Get.
func TestNoSpaceHoldsWhatItHasNotTaken(t *testing.T) {
	s, clk := openFilled(t)
	alice := identity(1)
	body := strings.Repeat("x", message.MaxBody-16)
	var puts []*message.Envelope
	for i := range 3 {
		puts = append(puts, text(t, alice, "general", fmt.Sprint(i, body), clk.Now()))
	}
	s.statMu.Lock()
	unlock := sync.OnceFunc(s.statMu.Unlock)
	defer unlock()
	mustPut(t, s, puts[0])
	mustPut(t, s, puts[1]) // the logger handed puts[0] over before taking this one
	waitUntil(t, "the applier to take the first Put", func() bool { return !s.waiting(puts[0].ID()) })
	mustPut(t, s, puts[2])
	waitUntil(t, "the last Put to reach the applier", func() bool { return s.waiting(puts[2].ID()) })
	select {
	case <-s.kick:
	default:
	}
	unlock()
	waitUntil(t, "the stall", s.isStalled)
	for _, e := range puts {
		if _, err := s.Get(e.ID()); err != nil {
			t.Fatalf("acknowledged %s unreadable while stalled: %v", e.ID(), err)
		}
	}
}
