package message

import (
	"encoding/json"
	"fmt"
	"time"
)

// ReportsChannel is the channel every node's reports go to.
const ReportsChannel = "lifeline/reports"

// Report events.
const (
	EventUplinkLost     = "uplink_lost"
	EventUplinkRegained = "uplink_regained"
)

// Report is the body of a KindReport envelope: what a node observed of its
// own links, signed by the node, so that once the data is out the record
// of a shutdown is evidence anyone can check. Times are unix milliseconds.
// Unknown fields are kept by JSON readers and ignored: later versions add
// fields, not meanings.
type Report struct {
	Event string `json:"event"`
	// At is when the node detected the change: within one probe period of
	// it.
	At int64 `json:"at"`
	// LastUp is the last moment the uplink was known to work before the
	// loss (0: not since the node started). uplink_regained repeats it, so
	// that one report records a whole outage: the loss's report may be
	// missing (evicted, older than a hub's window, not carried yet).
	LastUp int64 `json:"last_up,omitempty"`
	// Since, for uplink_regained, is when the loss it ends was detected
	// (0: the uplink had not worked since the node started).
	Since int64 `json:"since,omitempty"`
	// Hub, for uplink_regained, is the hub's peer id.
	Hub string `json:"hub,omitempty"`
	// Peers is how many local peers the node had at the time.
	Peers int `json:"peers"`
	// Radio is the LoRa radio's state at the time: "none", "up", "down".
	Radio string `json:"radio"`
}

// NewReport signs r to ReportsChannel. Reports are normal priority, with
// the default lifetime.
func (id *Identity) NewReport(r Report, now time.Time) (*Envelope, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	c, err := Channel(ReportsChannel)
	if err != nil {
		return nil, err
	}
	return id.Sign(Draft{Kind: KindReport, Priority: PriorityNormal, Created: now.UnixMilli(), Channel: c, Body: body})
}

// ParseReport reads a report envelope's body.
func ParseReport(e *Envelope) (Report, error) {
	var r Report
	if e.Kind != KindReport {
		return r, fmt.Errorf("%w: a %s is not a report", ErrMalformed, e.Kind)
	}
	if err := json.Unmarshal(e.Body, &r); err != nil {
		return r, fmt.Errorf("%w: report: %v", ErrMalformed, err)
	}
	return r, nil
}
