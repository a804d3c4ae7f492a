package api

import (
	"net"
	"net/http"
	"sync"

	"golang.org/x/time/rate"
)

// A public API (Options.Public, a hub) serves strangers: it must not sign
// for them, and one of them must not fill the hub.

// localOnly serves h to clients on this machine only, when the API is
// public: h uses the node's identity.
func (s *Server) localOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Public && !fromLoopback(r) {
			writeError(w, http.StatusForbidden, "this node signs only for clients on its own machine: "+
				"sign the envelope with your own key and POST it to /api/v1/envelopes")
			return
		}
		h(w, r)
	}
}

// limited bounds how fast each remote address may call h, when the API is
// public. Clients on this machine are not limited.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.limits != nil && !fromLoopback(r) && !s.limits.allow(remoteIP(r)) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "too many envelopes from %s: at most %g a second", remoteIP(r), s.opts.PublicRate)
			return
		}
		h(w, r)
	}
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func fromLoopback(r *http.Request) bool {
	ip := net.ParseIP(remoteIP(r))
	return ip != nil && ip.IsLoopback()
}

// maxClients bounds the remote addresses whose limits are remembered.
const maxClients = 4096

// clientLimits is a token bucket per remote address.
type clientLimits struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	by    map[string]*rate.Limiter
}

func newClientLimits(r float64, burst int) *clientLimits {
	return &clientLimits{rate: rate.Limit(r), burst: burst, by: make(map[string]*rate.Limiter)}
}

func (c *clientLimits) allow(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.by[addr]
	if l == nil {
		if len(c.by) >= maxClients {
			// Forget the addresses with full buckets: they lose nothing.
			for a, l := range c.by {
				if l.Tokens() >= float64(c.burst) {
					delete(c.by, a)
				}
			}
			if len(c.by) >= maxClients {
				return false // under a flood from many addresses, new ones wait
			}
		}
		l = rate.NewLimiter(c.rate, c.burst)
		c.by[addr] = l
	}
	return l.Allow()
}
