package kit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bounds of what strangers on the Wi-Fi can make the kit do or remember.
const (
	// A phone joining a network sends a few dozen queries at once (its
	// apps all wake up), then a few a second.
	dnsRate  = 20
	dnsBurst = 100
	// All sources together: far above a camp's phones, far below what
	// would starve the node on a Pi Zero.
	dnsTotalRate  = 500
	dnsTotalBurst = 1000
	// maxSources bounds the sources whose query rate is tracked.
	maxSources = 4096
	// maxDNSConns bounds the DNS-over-TCP connections open at once.
	maxDNSConns = 16
)

// sourceLimits holds a token bucket per source address, at most max of
// them. (api.clientLimits and mesh's budgets keep the same kind of table,
// keyed by strings, each with its own policy when full.)
type sourceLimits struct {
	rate  rate.Limit
	burst int
	max   int

	mu sync.Mutex
	by map[netip.Addr]*rate.Limiter
}

func newSourceLimits(r float64, burst, max int) *sourceLimits {
	return &sourceLimits{rate: rate.Limit(r), burst: burst, max: max, by: map[netip.Addr]*rate.Limiter{}}
}

// allow takes one token from a's bucket. A new source while the table is
// full takes the place of one whose bucket is full again (it loses
// nothing); when none is, the new source is refused until one is: under a
// flood from many (spoofed) addresses new ones wait, the others keep their
// limits.
func (s *sourceLimits) allow(a netip.Addr, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.by[a]
	if l == nil {
		if len(s.by) >= s.max {
			for k, o := range s.by {
				if o.TokensAt(now) >= float64(s.burst) {
					delete(s.by, k)
				}
			}
			if len(s.by) >= s.max {
				return false
			}
		}
		l = rate.NewLimiter(s.rate, s.burst)
		s.by[a] = l
	}
	return l.AllowN(now, 1)
}
