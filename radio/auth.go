package radio

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"
)

// airLabel separates the radio's key from every other use of the mesh key
// (libp2p's pnet uses it as it is, mDNS hashes it under its own label).
const airLabel = "lifeline/radio/v1"

// airKey authenticates the frames of a keyed (private) mesh, as
// Reticulum's interface access codes do: every frame ends in a tag, the
// first TagSize bytes of HMAC-SHA256 under a key derived from the mesh
// key, over the frame and, for a want, the round it asks from (below).
// A frame whose tag does not check out is dropped before anything else
// reads it, so a stranger on the band can neither inject messages or
// fragments nor make a node answer anything.
//
// Four bytes: a forger must guess, and each guess costs a frame on air
// (seconds at LongFast, within a duty cycle), so 2^32 guesses are out of
// reach; a longer tag would cost every frame more airtime for nothing.
// Replays of genuine frames are not stopped by the tag: the flood drops
// frames it has seen, and wants are bound to a round (see Router.unseal).
type airKey struct {
	mac hash.Hash // HMAC-SHA256 under the radio key; the router is not shared between goroutines
}

// newAirKey derives the radio key from a mesh key: HMAC-SHA256(meshKey,
// "lifeline/radio/v1").
func newAirKey(meshKey []byte) *airKey {
	d := hmac.New(sha256.New, meshKey)
	d.Write([]byte(airLabel))
	return &airKey{mac: hmac.New(sha256.New, d.Sum(nil))}
}

// tag computes the tag of frame in context ctx (nil but for a want).
func (k *airKey) tag(frame, ctx []byte) []byte {
	k.mac.Reset()
	k.mac.Write(frame)
	k.mac.Write(ctx)
	return k.mac.Sum(nil)[:TagSize]
}

// seal appends the tag to frame.
func (k *airKey) seal(frame, ctx []byte) []byte { return append(frame, k.tag(frame, ctx)...) }

// open checks the tag at the end of b in constant time and returns the
// frame before it, aliasing b.
func (k *airKey) open(b, ctx []byte) ([]byte, bool) {
	n := len(b) - TagSize
	if n < wholeHeader {
		return nil, false
	}
	return b[:n], hmac.Equal(k.tag(b[:n], ctx), b[n:])
}

// roundContext is what a want's tag covers besides its bytes: the end of
// the window of the round it asks from, which both ends know (the target
// sent it in its digest) and which is not sent again.
func roundContext(to uint32) []byte { return binary.BigEndian.AppendUint32(nil, to) }

// answerShare is the share of the duty-cycle budget (of the window when
// the region has none) a node spends answering its neighbours: messages
// sent in answer to wants, offers made after a neighbour's digest, and
// symbols sent in answer to mores. On an open mesh anyone can send those
// requests in a neighbour's name (its tag is two bytes of its public key);
// this bounds what they can make a node spend, and leaves the rest for
// its own messages and relays.
const answerShare = 0.5

// spend bounds the airtime spent on something over any window: what each
// answer costs is counted when it is decided (before it waits in the
// queue, so the queue cannot fill with answers), and an answer that would
// go over the budget is not made. Memory is bounded by the budget over the
// airtime of the shortest answer.
type spend struct {
	window, budget time.Duration
	log            []spent // by when decided, roughly: offers wait a random delay
}

type spent struct {
	at      time.Time
	airtime time.Duration
}

// used is the airtime decided in the window ending at now.
func (s *spend) used(now time.Time) time.Duration {
	from := now.Add(-s.window)
	i := 0
	for i < len(s.log) && !s.log[i].at.After(from) {
		i++
	}
	if i > 0 {
		s.log = append(s.log[:0], s.log[i:]...)
	}
	var sum time.Duration
	for _, e := range s.log {
		if e.at.After(from) {
			sum += e.airtime
		}
	}
	return sum
}

// take counts airtime spent at at, if it fits the budget in the window
// ending at now.
func (s *spend) take(now, at time.Time, airtime time.Duration) bool {
	if s.used(now)+airtime > s.budget {
		return false
	}
	s.log = append(s.log, spent{at: at, airtime: airtime})
	return true
}
