package api

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"lifeline/message"
)

// A public API (Options.Public, a hub) serves strangers: it must not sign
// for them, and one of them must not fill the hub.

// trusted reports whether r may act as the node's operator: sign as the
// node, read direct messages sealed to it, see its peers and radios. That
// is a client on this machine, not through a proxy on it (a proxy's
// requests all come from loopback), or one that proved it holds the admin
// token (see operator.go). Everyone else (a phone on the kit's Wi-Fi, a
// stranger on a hub) acts as themselves: they sign with their own key.
func (s *Server) trusted(r *http.Request) bool {
	if ok, _ := r.Context().Value(operatorKey{}).(bool); ok {
		return true
	}
	return fromLoopback(r) && r.Header.Get("X-Forwarded-For") == "" && r.Header.Get("Forwarded") == "" &&
		r.Header.Get("X-Real-Ip") == ""
}

// localOnly serves h to trusted clients only: h uses the node's identity.
func (s *Server) localOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.trusted(r) {
			writeError(w, http.StatusForbidden, "this node signs only for its operator (on its own machine, or with "+
				"its admin token): sign the envelope with your own key and POST it to /api/v1/envelopes")
			return
		}
		h(w, r)
	}
}

// limited bounds how fast each remote address may call h. Trusted clients
// are not limited.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(r, 1) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "too many envelopes from %s: at most %g a second", remoteIP(r), s.opts.PublicRate)
			return
		}
		h(w, r)
	}
}

// allow takes n envelopes from r's budget. Trusted clients are not
// limited.
func (s *Server) allow(r *http.Request, n int) bool {
	return s.trusted(r) || s.limits.allow(clientKey(r), n)
}

// allowStrangers takes from the strangers' total budget one envelope's
// worth for each of envs not signed by a member, and reports false, taking
// nothing, when it cannot now. A member's key is public, so an envelope
// naming a member as its author counts as theirs only once its signature
// verifies; those checks are bounded too (memberClaims), so forged claims
// cost no more than strangers' envelopes do: past that bound, claims count
// as strangers'. Trusted clients are not counted.
func (s *Server) allowStrangers(r *http.Request, envs ...[]byte) bool {
	if s.trusted(r) {
		return true
	}
	n := 0
	for _, raw := range envs {
		e, err := message.Decode(raw)
		member := err == nil && s.opts.Members != nil && s.opts.Members(e.Author) &&
			s.memberClaims.Allow() && e.VerifySignature() == nil
		if !member {
			n++
		}
	}
	return n == 0 || s.strangers.AllowN(time.Now(), n)
}

// busy answers a request the strangers' total budget refused.
func (s *Server) busy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusTooManyRequests, "the node takes at most %g envelopes a second from strangers, all together, and is at that limit: try again shortly",
		s.opts.StrangersRate)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientKey is what the rate limit counts by: the address, or for IPv6
// its /64, which one subscriber usually holds whole.
func clientKey(r *http.Request) string {
	ip := net.ParseIP(remoteIP(r))
	if ip == nil || ip.To4() != nil {
		return remoteIP(r)
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
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

func (c *clientLimits) allow(addr string, n int) bool {
	l := c.limiter(addr)
	return l != nil && l.AllowN(time.Now(), n)
}

// limiter is addr's token bucket, or nil while maxClients other addresses
// are remembered and none of them is idle: under a flood from many
// addresses, new ones wait.
func (c *clientLimits) limiter(addr string) *rate.Limiter {
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
				return nil
			}
		}
		l = rate.NewLimiter(c.rate, c.burst)
		c.by[addr] = l
	}
	return l
}
