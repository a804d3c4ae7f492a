package store

import (
	"errors"
	"sync"

	"lifeline/message"
)

// ErrLagged: the subscriber did not keep up and its buffer filled; its
// channel was closed. Resubscribe and catch up with List or Items.
var ErrLagged = errors.New("subscriber lagged")

// Subscription receives every new message after its transaction commits,
// never duplicates. C is closed when the subscription ends; Err then says
// why.
type Subscription struct {
	C <-chan *Record

	c     chan *Record
	store *Store
	mu    sync.Mutex
	done  bool
	err   error
}

// Subscribe returns a subscription with a buffer of buf records (at least
// 1). The applier never waits for a subscriber: one whose buffer is full
// is closed with ErrLagged.
func (s *Store) Subscribe(buf int) *Subscription {
	c := make(chan *Record, max(buf, 1))
	sub := &Subscription{C: c, c: c, store: s}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.isClosed() {
		sub.end(ErrClosed)
		return sub
	}
	s.subs[sub] = struct{}{}
	return sub
}

func (s *Store) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// Close ends the subscription; C is closed and Err returns nil.
func (sub *Subscription) Close() {
	sub.store.subMu.Lock()
	delete(sub.store.subs, sub)
	sub.store.subMu.Unlock()
	sub.end(nil)
}

// Err returns why the subscription ended: nil while it runs or after
// Close, ErrLagged, or ErrClosed when the store closed.
func (sub *Subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

func (sub *Subscription) end(err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.done {
		return
	}
	sub.done, sub.err = true, err
	close(sub.c)
}

// notify runs on the applier after a commit. It holds subMu, so a
// subscriber's Close waits for at most one batch of non-blocking sends.
func (s *Store) notify(recs []*Record, removed map[message.ID]bool) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for sub := range s.subs {
		sub.mu.Lock()
		for _, r := range recs {
			if sub.done {
				break
			}
			if removed[r.Envelope.ID()] {
				continue
			}
			select {
			case sub.c <- r:
			default:
				sub.done, sub.err = true, ErrLagged
				close(sub.c)
			}
		}
		if sub.done {
			delete(s.subs, sub)
		}
		sub.mu.Unlock()
	}
}
