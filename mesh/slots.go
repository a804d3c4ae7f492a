package mesh

import "sync"

// slots hands out responder sessions (sessions other peers run against
// us). Strangers may hold at most three quarters of them, and at most
// perSource from one address, so that strangers holding every slot they
// can get (idle ones lose theirs within respondGrace) still leave room for
// a member, and one address cannot take them all with fresh keys.
type slots struct {
	perSource int

	mu        sync.Mutex
	free      int // slots left
	strangers int // slots left to strangers
	bySource  map[string]int
}

func newSlots(total, perSource int) *slots {
	return &slots{perSource: perSource, free: total, strangers: total - max(1, total/4), bySource: map[string]int{}}
}

// take claims a slot, and returns the function that gives it back, or
// false when none is free to this peer.
func (s *slots) take(member bool, source string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free == 0 {
		return nil, false
	}
	if member {
		s.free--
		return func() { s.mu.Lock(); s.free++; s.mu.Unlock() }, true
	}
	if s.strangers == 0 || s.bySource[source] >= s.perSource {
		return nil, false
	}
	s.free--
	s.strangers--
	s.bySource[source]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.free++
		s.strangers++
		if s.bySource[source]--; s.bySource[source] == 0 {
			delete(s.bySource, source)
		}
	}, true
}
