package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	// ReportsOmitted counts the reports left out of Reports: a node that
	// restarts again and again during one outage reports the loss each
	// time, and Reports keeps only the first outageReports-1 of them and
	// the one that ended the outage.
	ReportsOmitted int `json:"reports_omitted,omitempty"`
}

// Bounds of GET /api/v1/outages. Anyone can mint keys and sign reports, so
// nothing here may grow with the reports a node holds except the time one
// request takes, and that is capped by outageScan.
const (
	// outageScan bounds the reports one request reads: the newest ones
	// by created time, read store.MaxLimit at a time and dropped once
	// looked at. A hub holds reports from many nodes for a month; 100,000
	// is many outages of a thousand nodes. Older reports are left out of
	// the answer, and it says so (HeaderPartial).
	outageScan = 100_000
	// outageHeld bounds the reports one request keeps while it reads:
	// those of the nodes its page may show (see window), about 150 bytes
	// each, so 2.5 MB at most.
	outageHeld = 16_384
	// outageNodeReports bounds the reports of one node that are paired
	// into outages: its newest, by report time. A node whose uplink flaps
	// every few minutes for a month goes beyond; its older outages are
	// then not listed. outageHeld must hold two nodes' worth (window
	// trims a node only when it has twice this).
	outageNodeReports = 4096
	// outageReports bounds the report ids one outage lists (Reports).
	outageReports = 16
	// outageHub bounds the hub name an outage shows: a peer id is 52
	// characters, and the report's author, maybe a stranger, wrote it.
	outageHub = 128
	// maxOutageJSON bounds one outage in JSON, so an answer holds at most
	// limit times this: the key and times take about 250 bytes, the hub
	// at most 6*outageHub (JSON escapes), the ids 67 bytes each.
	maxOutageJSON = 2560
	// maxReportMs is the last millisecond of year 9999, the last time
	// encoding/json can write: a report that claims a later time, or one
	// before 1970, is skipped, or a single stranger's report would make
	// every answer fail.
	maxReportMs = 253402300799999
)

// HeaderPartial is "true" on an outages answer when the node held more
// reports than one request reads (outageScan): outages recorded only in
// older reports are not listed.
const HeaderPartial = "Lifeline-Partial"

// getOutages lists the outages in the reports this node holds, a page at
// a time: the outages of the nodes in key order, each node's by start.
// limit bounds the outages of one answer (default DefaultLimit, at most
// MaxLimit); when more remain, Lifeline-More is true and Lifeline-Next-After
// is the after to ask with next.
func (s *Server) getOutages(w http.ResponseWriter, r *http.Request) {
	v, err := queryValues(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	q, err := parseOutageQuery(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	// Each request may read up to outageScan reports (about a
	// second and 5 MB on a Pi): a few at once, whoever asks.
	select {
	case s.outageSlots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "the node is listing outages for %d clients already: try again shortly", cap(s.outageSlots))
		return
	}
	p, err := listOutages(r.Context(), s.opts.Store, q)
	<-s.outageSlots // computed: a slow reader of the answer holds no slot
	if err != nil {
		if r.Context().Err() != nil {
			return // the client left
		}
		s.internalError(w, r, "listing outages", err)
		return
	}
	if p.More {
		w.Header().Set(HeaderNextAfter, p.Next.String())
	}
	w.Header().Set(HeaderMore, strconv.FormatBool(p.More))
	w.Header().Set(HeaderPartial, strconv.FormatBool(p.Partial))
	writeJSON(w, http.StatusOK, p.Outages)
}

// outageCursor is a position in the listing's order: after the outage of
// Node that starts at Start and whose first report is Report, or, with
// Whole, after every outage of Node. The zero cursor is the beginning.
type outageCursor struct {
	Node   message.PublicKey
	Whole  bool
	Start  int64
	Report message.ID
	set    bool
}

// String is the cursor as the after parameter carries it: the node's key,
// alone (after all of its outages) or with ".START.REPORT".
func (c outageCursor) String() string {
	if c.Whole {
		return c.Node.String()
	}
	return fmt.Sprintf("%s.%d.%s", c.Node, c.Start, c.Report)
}

func parseOutageCursor(s string) (outageCursor, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 1 && len(parts) != 3 {
		return outageCursor{}, errors.New("want a node key, or a key, start and report id joined by dots")
	}
	node, err := message.ParsePublicKey(parts[0])
	if err != nil {
		return outageCursor{}, err
	}
	c := outageCursor{Node: node, Whole: len(parts) == 1, set: true}
	if c.Whole {
		return c, nil
	}
	if strings.TrimLeft(parts[1], "0123456789") != "" {
		return outageCursor{}, errors.New("start is not a decimal number")
	}
	if c.Start, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return outageCursor{}, fmt.Errorf("start: %w", err)
	}
	if c.Report, err = message.ParseID(parts[2]); err != nil {
		return outageCursor{}, err
	}
	return c, nil
}

// outageQuery is a parsed GET /api/v1/outages.
type outageQuery struct {
	after outageCursor
	limit int
}

// parseOutageQuery reads after and limit, as strictly as parseQuery.
func parseOutageQuery(v url.Values) (outageQuery, error) {
	q := outageQuery{limit: DefaultLimit}
	for k, vs := range v {
		if k != "after" && k != "limit" {
			return q, fmt.Errorf("unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return q, fmt.Errorf("query parameter %q given %d times", k, len(vs))
		}
	}
	if v.Has("after") {
		c, err := parseOutageCursor(v.Get("after"))
		if err != nil {
			return q, fmt.Errorf("after is %q: %w", v.Get("after"), err)
		}
		q.after = c
	}
	var err error
	q.limit, err = parseLimit(v, q.limit)
	return q, err
}

// outagePage is one answer of listOutages.
type outagePage struct {
	Outages []Outage
	// More: outages after Next remain; ask again with after=Next.
	More bool
	Next outageCursor
	// Partial: the read stopped at outageScan reports; older ones were
	// not looked at.
	Partial bool
}

// rep is what pairing needs of one report: a few numbers, not the
// envelope.
type rep struct {
	at, lastUp, since int64
	gain              bool
	hub               string
	id                message.ID
}

// parseRep reads a report record, or says it is of no use to pairing.
func parseRep(e *message.Envelope) (rep, bool) {
	r, err := message.ParseReport(e)
	if err != nil {
		return rep{}, false
	}
	ok := func(ms int64) bool { return ms >= 0 && ms <= maxReportMs }
	if r.At <= 0 || !ok(r.At) || !ok(r.LastUp) || !ok(r.Since) {
		return rep{}, false
	}
	p := rep{at: r.At, lastUp: r.LastUp, since: r.Since, id: e.ID()}
	switch r.Event {
	case message.EventUplinkLost:
	case message.EventUplinkRegained:
		p.gain = true
		if len(r.Hub) <= outageHub {
			p.hub = r.Hub
		}
	default:
		return rep{}, false
	}
	return p, true
}

// window keeps the reports of the nodes a page may show: the nodes after
// the cursor, in key order, up to a ceiling that comes down whenever the
// kept reports pass held, or the nodes that have outages pass limit (each
// such node gives the page one outage at least). Lowering the ceiling
// drops the greatest node kept, and every report of a node at or above it
// is ignored from then on, so each node below the ceiling keeps every
// report read: its outages are complete.
type window struct {
	after   outageCursor
	limit   int
	held    int
	maxHeld int
	// ceiling, when set, excludes it and every greater key.
	ceiling *message.PublicKey
	nodes   map[message.PublicKey]*nodeReps
	// outaged counts the nodes with a report that starts an outage.
	outaged int
}

type nodeReps struct {
	reps    []rep
	outaged bool
}

// wants reports whether a report of node belongs in the page's window.
func (w *window) wants(node message.PublicKey) bool {
	if w.after.set {
		c := bytes.Compare(node[:], w.after.Node[:])
		if c < 0 || c == 0 && w.after.Whole {
			return false
		}
	}
	return w.ceiling == nil || bytes.Compare(node[:], w.ceiling[:]) < 0
}

func (w *window) add(node message.PublicKey, p rep) {
	if !w.wants(node) {
		return
	}
	n := w.nodes[node]
	if n == nil {
		n = &nodeReps{}
		w.nodes[node] = n
	}
	n.reps = append(n.reps, p)
	w.held++
	if !n.outaged && (!p.gain || p.since > 0) {
		n.outaged = true
		w.outaged++
	}
	if len(n.reps) >= 2*outageNodeReports {
		w.held -= len(n.reps)
		n.reps = newest(n.reps, outageNodeReports)
		w.held += len(n.reps)
	}
	for w.held > w.maxHeld || w.outaged > w.limit {
		w.dropGreatest()
	}
}

// dropGreatest forgets the greatest node kept and makes it the ceiling.
// Its cost is linear in the nodes kept, which held bounds; it runs at most
// once for each node ever kept.
func (w *window) dropGreatest() {
	var top message.PublicKey
	first := true
	for k := range w.nodes {
		if first || bytes.Compare(k[:], top[:]) > 0 {
			top, first = k, false
		}
	}
	n := w.nodes[top]
	w.held -= len(n.reps)
	if n.outaged {
		w.outaged--
	}
	delete(w.nodes, top)
	w.ceiling = &top
}

// byTime orders a node's reports by report time, then id, so the same
// reports pair the same way in every request.
func byTime(a, b rep) int {
	return cmp.Or(cmp.Compare(a.at, b.at), bytes.Compare(a.id[:], b.id[:]))
}

// newest sorts reps by time and keeps the last n.
func newest(reps []rep, n int) []rep {
	slices.SortFunc(reps, byTime)
	if len(reps) > n {
		reps = slices.Clone(reps[len(reps)-n:]) // let the rest be collected
	}
	return reps
}

// listOutages reads the newest outageScan reports, newest first by created
// time, a store page at a time, keeping only the window's reports, and
// pairs them into one page of outages.
func listOutages(ctx context.Context, st Store, q outageQuery) (outagePage, error) {
	c, err := message.Channel(message.ReportsChannel)
	if err != nil {
		return outagePage{}, err
	}
	w := &window{after: q.after, limit: q.limit, maxHeld: outageHeld, nodes: map[message.PublicKey]*nodeReps{}}
	var p outagePage
	read := 0
	sq := store.Query{Channel: &c, Limit: store.MaxLimit}
	for {
		if err := ctx.Err(); err != nil {
			return outagePage{}, err
		}
		recs, err := st.List(sq)
		if err != nil {
			return outagePage{}, fmt.Errorf("read reports: %w", err)
		}
		if len(recs) > outageScan-read {
			recs = recs[len(recs)-(outageScan-read):] // the newest of them
			p.Partial = true
		}
		read += len(recs)
		for _, rec := range recs {
			if e := rec.Envelope; w.wants(e.Author) {
				if r, ok := parseRep(e); ok {
					w.add(e.Author, r)
				}
			}
		}
		if p.Partial || len(recs) < sq.Limit {
			break
		}
		oldest := recs[0].Envelope // List answers oldest first
		if oldest.Created <= 0 {
			break
		}
		sq.Before, sq.BeforeID = oldest.Created, oldest.ID()
		if read == outageScan {
			// Exactly at the bound: partial only if anything is older.
			sq.Limit = 1
			older, err := st.List(sq)
			if err != nil {
				return outagePage{}, fmt.Errorf("read reports: %w", err)
			}
			p.Partial = len(older) > 0
			break
		}
	}

	nodes := make([]message.PublicKey, 0, len(w.nodes))
	for k := range w.nodes {
		nodes = append(nodes, k)
	}
	slices.SortFunc(nodes, func(a, b message.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	p.Outages = []Outage{}
	for _, node := range nodes {
		list := pair(node, newest(w.nodes[node].reps, outageNodeReports))
		if q.after.set && node == q.after.Node {
			list = slices.DeleteFunc(list, func(o Outage) bool { return outageKeyCmp(o, q.after.Start, q.after.Report) <= 0 })
		}
		for _, o := range list {
			if len(p.Outages) == q.limit {
				p.More = true
				break
			}
			p.Outages = append(p.Outages, o)
		}
		if p.More {
			break
		}
	}
	switch {
	case p.More:
		last := p.Outages[len(p.Outages)-1]
		p.Next = outageCursor{Node: mustKey(last.Node), Start: last.Start.UnixMilli(), Report: mustID(last.Reports[0]), set: true}
	case w.ceiling != nil:
		// Every node below the ceiling is done; the greatest kept is the
		// place to go on from. One is always kept: a single node's
		// reports fit in held, and limit is at least 1.
		if len(nodes) == 0 {
			return outagePage{}, errors.New("outages: the window kept no node")
		}
		p.More = true
		p.Next = outageCursor{Node: nodes[len(nodes)-1], Whole: true, set: true}
	}
	return p, nil
}

// outageKeyCmp orders an outage of a node against a cursor's position:
// by start, then by its first report's id.
func outageKeyCmp(o Outage, start int64, report message.ID) int {
	return cmp.Or(cmp.Compare(o.Start.UnixMilli(), start), strings.Compare(o.Reports[0], report.String()))
}

func mustKey(s string) message.PublicKey {
	k, err := message.ParsePublicKey(s)
	if err != nil {
		panic(err) // written by pair from a key
	}
	return k
}

func mustID(s string) message.ID {
	id, err := message.ParseID(s)
	if err != nil {
		panic(err) // written by pair from an id
	}
	return id
}

// Outages pairs each node's uplink_lost and uplink_regained reports into
// outages, oldest start first. Reports of other kinds, or unreadable, are
// skipped. It holds every record it is given: the API pages instead.
func Outages(recs []*store.Record) []Outage {
	byNode := map[message.PublicKey][]rep{}
	for _, rec := range recs {
		if r, ok := parseRep(rec.Envelope); ok {
			byNode[rec.Envelope.Author] = append(byNode[rec.Envelope.Author], r)
		}
	}
	out := []Outage{}
	for node, reps := range byNode {
		out = append(out, pair(node, newest(reps, len(reps)))...)
	}
	slices.SortFunc(out, func(a, b Outage) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// pair turns one node's reports, in time order, into its outages, ordered
// by start (then first report). A node that restarted during an outage
// reports the loss again: the outage runs from the first loss to the next
// gain.
func pair(node message.PublicKey, reps []rep) []Outage {
	var out []Outage
	ms := func(v int64) *time.Time { t := time.UnixMilli(v).UTC(); return &t }
	var open *Outage
	var omitted []string // the open outage's reports beyond the bound
	note := func(id message.ID) {
		if len(open.Reports) < outageReports {
			open.Reports = append(open.Reports, id.String())
			return
		}
		open.ReportsOmitted++
		omitted = append(omitted[:0], id.String()) // only the last matters
	}
	closeOpen := func() {
		if len(omitted) > 0 {
			// Keep the report that ended it: the first ones and the last
			// are the evidence of its start and end.
			open.Reports[len(open.Reports)-1] = omitted[0]
		}
		out = append(out, *open)
		open, omitted = nil, omitted[:0]
	}
	name := node.String()
	for _, p := range reps {
		if !p.gain {
			if open != nil && p.lastUp > open.Start.UnixMilli() {
				// The uplink worked after the open outage began: its
				// return was not reported here. It ended by LastUp.
				open.End, open.Ongoing, open.EndLatest = ms(p.lastUp), false, true
				open.Duration = open.End.Sub(open.Start).Seconds()
				closeOpen()
			}
			if open == nil {
				open = &Outage{Node: name, Start: *ms(p.at), Ongoing: true}
				if p.lastUp > 0 {
					open.LastUp = ms(p.lastUp)
				}
			}
			note(p.id)
			continue
		}
		if open == nil {
			if p.since == 0 {
				continue // no loss known: the first uplink of a node
			}
			// The loss report is not here (yet): the gain says when the
			// loss was detected, and when the uplink last worked.
			open = &Outage{Node: name, Start: *ms(p.since)}
			if p.lastUp > 0 {
				open.LastUp = ms(p.lastUp)
			}
		}
		open.End, open.Ongoing, open.Hub = ms(p.at), false, p.hub
		open.Duration = open.End.Sub(open.Start).Seconds()
		note(p.id)
		closeOpen()
	}
	if open != nil {
		closeOpen()
	}
	slices.SortFunc(out, func(a, b Outage) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Reports[0], b.Reports[0]))
	})
	return out
}

// OutagesPage is one answer of Client.OutagesPage.
type OutagesPage struct {
	Outages []Outage
	// Next is the after to ask with for the next page; "" with More false.
	Next string
	// More: outages after Next remain.
	More bool
	// Partial: the node left its oldest reports out (HeaderPartial).
	Partial bool
}

// OutagesPage returns one page of the outages the node's reports record:
// those after after ("" for the first page), at most limit (0 for the
// node's default), in the node's order (by node key, then start).
func (c *Client) OutagesPage(ctx context.Context, after string, limit int) (OutagesPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/v1/outages"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	b, h, _, err := c.doHeader(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return OutagesPage{}, err
	}
	var p OutagesPage
	if err := json.Unmarshal(b, &p.Outages); err != nil {
		return OutagesPage{}, fmt.Errorf("node answered with invalid JSON: %w", err)
	}
	p.More = h.Get(HeaderMore) == "true"
	p.Partial = h.Get(HeaderPartial) == "true"
	if p.More {
		if p.Next = h.Get(HeaderNextAfter); p.Next == "" {
			return OutagesPage{}, fmt.Errorf("node said there are more outages but sent no %s header", HeaderNextAfter)
		}
	}
	return p, nil
}

// clientOutagePages bounds the pages Client.Outages asks for: 1,000 pages
// of MaxLimit is more outages than a node reads (outageScan reports).
const clientOutagePages = 1000

// Outages returns every outage the node's reports record, oldest start
// first, asking for it a page at a time. Whether the node left old
// reports out is lost here: see OutagesPage.
func (c *Client) Outages(ctx context.Context) ([]Outage, error) {
	var out []Outage
	after := ""
	for range clientOutagePages {
		p, err := c.OutagesPage(ctx, after, MaxLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Outages...)
		if !p.More {
			slices.SortStableFunc(out, func(a, b Outage) int {
				return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Node, b.Node))
			})
			return out, nil
		}
		if p.Next == after {
			return nil, fmt.Errorf("node repeated the outages page after %q", after)
		}
		after = p.Next
	}
	return nil, fmt.Errorf("node still had more outages after %d pages", clientOutagePages)
}
