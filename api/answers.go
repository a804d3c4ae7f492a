package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Reading is open to everyone, but answers cost the node's memory, CPU
// and its Wi-Fi's airtime, which all its people share. For clients that
// are not the operator:
//
//   - the bytes answered each address (Options.AnswerRate, AnswerBurst),
//     and all of them together (StrangersAnswerRate), are charged as they
//     are written, event streams included; a request that finds its
//     budget spent gets 429 until it refills, and an answer or stream
//     that overspends it is cut;
//   - at most maxInFlightPerAddr requests of one address, and
//     maxInFlight of all, are served at once (a listing is held in memory
//     until written: up to about 4 MB), event streams aside (they are
//     bounded by count, see events.go);
//   - every answer but a stream must be written within answerWriteTimeout,
//     so a client that does not read frees what it holds.

// In-flight bounds for clients that are not the operator.
const (
	maxInFlightPerAddr = 4
	maxInFlight        = 16
	answerWriteTimeout = 30 * time.Second
)

// errAnswerBudget cuts an answer whose client has spent its budget.
var errAnswerBudget = errors.New("answer budget spent")

// metered applies the answer budgets to every request of a client that is
// not the operator.
func (s *Server) metered(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.trusted(r) {
			next.ServeHTTP(w, r)
			return
		}
		key := clientKey(r)
		now := time.Now()
		per := s.answers.limiter(key)
		wait := refill(s.answerTotal, now)
		if per == nil {
			wait = max(wait, time.Second)
		} else {
			wait = max(wait, refill(per, now))
		}
		if wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, http.StatusTooManyRequests, "too much asked of this node: answers to %s are at most %s a second, to everyone who is not its operator %s; try again in %s",
				remoteIP(r), byteRate(s.opts.AnswerRate), byteRate(s.opts.StrangersAnswerRate), retryAfter(wait)+" s")
			return
		}
		stream := strings.HasPrefix(r.URL.Path, "/api/v1/events")
		if !stream {
			if !s.inFlight.take(key) {
				w.Header().Set("Retry-After", "1")
				writeError(w, http.StatusServiceUnavailable, "this node is answering %d requests of %s or %d of everyone at once, its most: try again shortly",
					maxInFlightPerAddr, remoteIP(r), maxInFlight)
				return
			}
			defer s.inFlight.give(key)
			_ = http.NewResponseController(w).SetWriteDeadline(now.Add(answerWriteTimeout))
		}
		next.ServeHTTP(&budgetWriter{ResponseWriter: w, per: per, total: s.answerTotal}, r)
	})
}

// inFlight counts the requests being answered, per address and in all.
type inFlight struct {
	mu     sync.Mutex
	all    int
	byAddr map[string]int
}

func (f *inFlight) take(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.all >= maxInFlight || f.byAddr[key] >= maxInFlightPerAddr {
		return false
	}
	if f.byAddr == nil {
		f.byAddr = make(map[string]int)
	}
	f.all++
	f.byAddr[key]++
	return true
}

func (f *inFlight) give(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all--
	if f.byAddr[key]--; f.byAddr[key] <= 0 {
		delete(f.byAddr, key)
	}
}

// budgetWriter charges what is written to the answer budgets, and refuses
// to write once either is overspent.
type budgetWriter struct {
	http.ResponseWriter
	per, total *rate.Limiter
}

func (b *budgetWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if b.per.TokensAt(now) < 0 || b.total.TokensAt(now) < 0 {
		return 0, errAnswerBudget
	}
	// Reservations may take a bucket below zero: the next write, or the
	// next request, waits for it to refill.
	b.per.ReserveN(now, min(len(p), b.per.Burst()))
	b.total.ReserveN(now, min(len(p), b.total.Burst()))
	return b.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (b *budgetWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// refill is how long until l holds a token again; 0 if it does.
func refill(l *rate.Limiter, now time.Time) time.Duration {
	t := l.TokensAt(now)
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) / float64(l.Limit()) * float64(time.Second))
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

func byteRate(r float64) string {
	if r >= 1<<20 {
		return fmt.Sprintf("%.3g MiB", r/(1<<20))
	}
	return fmt.Sprintf("%.3g KiB", r/(1<<10))
}
