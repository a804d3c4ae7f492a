package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Reading is open to everyone, but answers cost the node's CPU and its
// Wi-Fi's airtime, which all its people share: the bytes the node answers
// each untrusted address are bounded (Options.AnswerRate, AnswerBurst),
// and so are those it answers all untrusted addresses together
// (StrangersAnswerRate), so that many addresses buy no more than one node
// can send. An answer is charged once written (its size is not known
// before); a client whose budget is spent gets 429 until it refills. Event
// streams are bounded by count instead (see events.go).

// metered charges every answer to an untrusted client to the answer
// budgets.
func (s *Server) metered(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.trusted(r) || strings.HasPrefix(r.URL.Path, "/api/v1/events") {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		per := s.answers.limiter(clientKey(r))
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
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		per.ReserveN(now, min(cw.n, per.Burst())) // may go below zero: the next request waits
		s.answerTotal.ReserveN(now, min(cw.n, s.answerTotal.Burst()))
	})
}

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

// countingWriter counts the bytes of an answer's body.
type countingWriter struct {
	http.ResponseWriter
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
