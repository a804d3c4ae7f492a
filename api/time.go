package api

import (
	"net/http"
	"time"

	"lifeline/clock"
)

// phoneUncertainty is how far off a phone's reading may be on arrival: it
// carries no round trip, and a page's request can sit in a slow Wi-Fi's
// queue for a while.
const phoneUncertainty = 2 * time.Second

// postTime takes a phone's clock as a source for the node's (the phone's
// own comes from the cell network) and answers with the node's status of
// its clock. Each address counts as one phone, its newest reading
// replacing the last; the clock takes the median of several, and anything
// better (a hub, a member peer, a GPS) outranks them all.
func (s *Server) postTime(w http.ResponseWriter, r *http.Request) {
	var req TimeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Time <= 0 || req.Time >= 1<<48 {
		writeError(w, http.StatusBadRequest, "time is %d: want unix milliseconds", req.Time)
		return
	}
	s.opts.Clock.Observe(clock.Sample{Channel: clock.ChannelPhone, Source: remoteIP(r), Time: time.UnixMilli(req.Time),
		Quality: clock.Phone, Uncertainty: phoneUncertainty})
	st := s.opts.Clock.Status()
	writeJSON(w, http.StatusOK, struct {
		Time  int64       `json:"time"`
		Clock ClockStatus `json:"clock"`
	}{st.Time.UnixMilli(), newClockStatus(st)})
}
