package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// An operator who is not on the node's machine proves they hold the admin
// token without sending it: the kit's Wi-Fi is plain http, and anyone who
// knows its passphrase can read another phone's traffic. Each request
// carries
//
//	Authorization: Lifeline-Operator t=<unix ms>, mac=<64 hex digits>
//
// where mac is HMAC-SHA256, keyed by the token (its UTF-8 bytes), of
//
//	"lifeline/operator/v1\n" METHOD "\n" REQUEST-TARGET "\n" t "\n" hex(SHA-256(body))
//
// REQUEST-TARGET is the path and query (escaped as Go's URL.RequestURI
// does). The node accepts it when t
// is within OperatorWindow of its clock and the mac has not been seen
// before: a request read off the air cannot be replayed, nor its body or
// target changed.

// OperatorScheme is the Authorization scheme of an operator's request.
const OperatorScheme = "Lifeline-Operator"

// OperatorWindow is how far an operator's request time may be from the
// node's clock.
const OperatorWindow = 5 * time.Minute

// maxOperatorBody bounds the body of an operator's request: it is read
// whole to check the MAC.
const maxOperatorBody = MaxBatchBytes

// maxSeenMACs bounds the MACs remembered against replay.
const maxSeenMACs = 4096

// OperatorMAC is the MAC of an operator's request.
func OperatorMAC(token, method, target string, t int64, body []byte) string {
	h := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "lifeline/operator/v1\n%s\n%s\n%d\n%s", method, target, t, hex.EncodeToString(h[:]))
	return hex.EncodeToString(m.Sum(nil))
}

// OperatorHeader is the Authorization value of an operator's request.
func OperatorHeader(token, method, target string, t time.Time, body []byte) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("%s t=%d, mac=%s", OperatorScheme, ms, OperatorMAC(token, method, target, ms, body))
}

// operatorKey marks in a request's context that it proved the token.
type operatorKey struct{}

// operatorAuth checks the operator's proof on requests that carry one:
// valid, the request is the operator's (see trusted); not, it is refused
// with 401 and the reason, so a wrong clock or token is seen at once.
func (s *Server) operatorAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := strings.CutPrefix(r.Header.Get("Authorization"), OperatorScheme+" ")
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxOperatorBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reading the request: %v", err)
			return
		}
		if len(body) > maxOperatorBody {
			writeError(w, http.StatusRequestEntityTooLarge, "an operator's request is at most %d bytes", maxOperatorBody)
			return
		}
		if err := s.checkOperator(v, r.Method, r.URL.RequestURI(), body); err != nil {
			if errors.Is(err, ErrOperatorClock) {
				// The node's time, for the client to sign with.
				w.Header().Set("Date", s.opts.Now().UTC().Format(http.TimeFormat))
			}
			writeError(w, http.StatusUnauthorized, "not the operator: %v", err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), operatorKey{}, true))
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// ErrOperatorClock is wrapped when an operator's request time is too far
// from the node's clock (clients retry with the node's time).
var ErrOperatorClock = errors.New("the request's time is too far from the node's clock")

func (s *Server) checkOperator(v, method, target string, body []byte) error {
	if s.opts.AdminToken == "" {
		return errors.New("this node has no admin token")
	}
	var t int64
	var mac string
	for _, f := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "t":
			t, _ = strconv.ParseInt(val, 10, 64)
		case "mac":
			mac = val
		}
	}
	if t == 0 || len(mac) != 64 {
		return fmt.Errorf("want %s t=<unix ms>, mac=<64 hex digits>", OperatorScheme)
	}
	now := s.opts.Now()
	if d := now.Sub(time.UnixMilli(t)); d > OperatorWindow || d < -OperatorWindow {
		return fmt.Errorf("%w: %s apart, at most %s", ErrOperatorClock, d.Round(time.Second), OperatorWindow)
	}
	if !hmac.Equal([]byte(mac), []byte(OperatorMAC(s.opts.AdminToken, method, target, t, body))) {
		return errors.New("the MAC does not match: a wrong admin token, or the request was changed on the way")
	}
	if !s.seenMACs.add(mac, time.UnixMilli(t).Add(OperatorWindow), now) {
		return errors.New("this request was seen before (a replay), or too many operator requests at once")
	}
	return nil
}

// seenMACs remembers accepted MACs until their time leaves the window.
type seenMACs struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// add records mac, valid until until, and reports false if it was seen
// already or the memory is full.
func (m *seenMACs) add(mac string, until, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = make(map[string]time.Time)
	}
	if _, seen := m.until[mac]; seen {
		return false
	}
	if len(m.until) >= maxSeenMACs {
		for k, u := range m.until {
			if u.Before(now) {
				delete(m.until, k)
			}
		}
		if len(m.until) >= maxSeenMACs {
			return false
		}
	}
	m.until[mac] = until
	return true
}
