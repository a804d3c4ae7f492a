package api

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"lifeline/message"
	"lifeline/store"
)

// Outage is one node's loss of its uplink, from the signed reports this
// node holds. Start is when the node detected the loss; the uplink last
// worked at LastUp (so the loss began between the two). End is when the
// node detected it had an uplink again; an outage without End is ongoing,
// as far as the reports here tell.
type Outage struct {
	Node     string     `json:"node"` // the reporting node's public key
	Start    time.Time  `json:"start"`
	LastUp   *time.Time `json:"last_up,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Duration float64    `json:"duration_s,omitempty"` // End - Start, seconds
	Ongoing  bool       `json:"ongoing"`
	// EndLatest says that the report of the uplink's return is missing:
	// a later loss says the uplink worked at End, so the outage ended by
	// then.
	EndLatest bool     `json:"end_latest,omitempty"`
	Hub       string   `json:"hub,omitempty"` // the hub reached at End
	Reports   []string `json:"reports"`       // ids of the signed reports it rests on
}

// maxReports bounds the reports one outages request reads.
const maxReports = 100_000

// getOutages lists the outages in the reports this node holds, oldest
// start first.
func (s *Server) getOutages(w http.ResponseWriter, r *http.Request) {
	recs, err := reports(s.opts.Store)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read reports: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, Outages(recs))
}

func reports(st Store) ([]*store.Record, error) {
	c, err := message.Channel(message.ReportsChannel)
	if err != nil {
		return nil, err
	}
	var out []*store.Record
	q := store.Query{Channel: &c, Limit: store.MaxLimit}
	for len(out) < maxReports {
		page, err := st.ListAfter(q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Records...)
		if !page.More {
			break
		}
		q.After = page.Next
	}
	return out, nil
}

// Outages pairs each node's uplink_lost and uplink_regained reports into
// outages. Reports of other kinds, or unreadable, are skipped. A node that
// restarted during an outage reports the loss again: the outage runs from
// the first loss to the next gain.
func Outages(recs []*store.Record) []Outage {
	type rep struct {
		r  message.Report
		id string
	}
	byNode := map[message.PublicKey][]rep{}
	for _, rec := range recs {
		e := rec.Envelope
		r, err := message.ParseReport(e)
		if err != nil {
			continue
		}
		byNode[e.Author] = append(byNode[e.Author], rep{r, e.ID().String()})
	}
	out := []Outage{}
	ms := func(v int64) *time.Time { t := time.UnixMilli(v).UTC(); return &t }
	for node, reps := range byNode {
		slices.SortStableFunc(reps, func(a, b rep) int { return cmp.Compare(a.r.At, b.r.At) })
		var open *Outage
		for _, p := range reps {
			switch p.r.Event {
			case message.EventUplinkLost:
				if open != nil && p.r.LastUp > open.Start.UnixMilli() {
					// The uplink worked after the open outage began: its
					// return was not reported here. It ended by LastUp.
					open.End, open.Ongoing, open.EndLatest = ms(p.r.LastUp), false, true
					open.Duration = open.End.Sub(open.Start).Seconds()
					out = append(out, *open)
					open = nil
				}
				if open == nil {
					open = &Outage{Node: node.String(), Start: *ms(p.r.At), Ongoing: true}
					if p.r.LastUp > 0 {
						open.LastUp = ms(p.r.LastUp)
					}
				}
				open.Reports = append(open.Reports, p.id)
			case message.EventUplinkRegained:
				if open == nil {
					if p.r.Since == 0 {
						continue // no loss known: the first uplink of a node
					}
					// The loss report is not here (yet): the gain says
					// when the loss was detected, and when the uplink
					// last worked.
					open = &Outage{Node: node.String(), Start: *ms(p.r.Since)}
					if p.r.LastUp > 0 {
						open.LastUp = ms(p.r.LastUp)
					}
				}
				open.End, open.Ongoing, open.Hub = ms(p.r.At), false, p.r.Hub
				open.Duration = open.End.Sub(open.Start).Seconds()
				open.Reports = append(open.Reports, p.id)
				out = append(out, *open)
				open = nil
			}
		}
		if open != nil {
			out = append(out, *open)
		}
	}
	slices.SortFunc(out, func(a, b Outage) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// Outages returns the outages the node's reports record.
func (c *Client) Outages(ctx context.Context) ([]Outage, error) {
	var out []Outage
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/outages", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
