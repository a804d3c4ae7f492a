package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"lifeline/bundle"
	"lifeline/store"
)

// An export is every message the node holds, or a channel's, a
// recipient's, or those created in a time range, as one bundle (package
// bundle): what an operator carries on a USB stick to a node with no link
// to this one. It is the operator's only: it is the whole store, and
// costly to read. It is written as the store is walked, so the node holds
// one chunk of it at a time whatever its size.

// BundleType is the media type of a bundle.
const BundleType = "application/x-lifeline-bundle"

// getExport streams an export: GET /api/v1/export?channel=|channel_id=|to=
// &since=&until=.
func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	q, err := parseExportQuery(s, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	w.Header().Set("Content-Type", BundleType)
	w.Header().Set("Content-Disposition", `attachment; filename="lifeline-export.llb"`)
	sent := &countingWriter{w: w}
	bw := bufio.NewWriterSize(sent, 64<<10)
	out, err := bundle.NewWriter(bw, s.now())
	if err == nil {
		err = s.opts.Store.Export(r.Context(), q, func(rec *store.Record) error {
			return out.Add(rec.Envelope.Raw())
		})
	}
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		// The client left.
	case sent.n == 0:
		w.Header().Del("Content-Disposition")
		s.internalError(w, r, "the export", err)
	default:
		s.opts.Logger.Error("api: export", "err", err)
		// The status line is gone already: cutting the stream short is
		// what tells the client (the bundle lacks its end marker).
		panic(http.ErrAbortHandler)
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// parseExportQuery reads at most one of channel, channel_id and to (as a
// listing does), since and until (created unix ms: since <= created <
// until).
func parseExportQuery(s *Server, r *http.Request) (store.ExportQuery, error) {
	v, err := queryValues(r)
	if err != nil {
		return store.ExportQuery{}, err
	}
	var q store.ExportQuery
	for _, bound := range []struct {
		name string
		to   *int64
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if !v.Has(bound.name) {
			continue
		}
		n, err := strconv.ParseInt(v.Get(bound.name), 10, 64)
		if err != nil || n < 0 || len(v[bound.name]) > 1 {
			return q, fmt.Errorf("%s is %q: want unix milliseconds, 0 or more, once", bound.name, v.Get(bound.name))
		}
		*bound.to = n
		v.Del(bound.name)
	}
	for _, k := range []string{"after", "raw"} {
		if v.Has(k) {
			return q, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	dest, err := s.parseQuery(v, false) // channel, channel_id, to, and nothing unknown
	if err != nil {
		return q, err
	}
	q.Channel, q.Recipient = dest.Channel, dest.Recipient
	return q, nil
}

// ExportQuery selects what Client.Export asks for; the zero value is
// everything. Since and Until bound the created time (Since <= created <
// Until); zero means no bound.
type ExportQuery struct {
	Channel   string
	ChannelID string
	To        string
	Since     time.Time
	Until     time.Time
}

func (q ExportQuery) values() url.Values {
	v := ListQuery{Channel: q.Channel, ChannelID: q.ChannelID, To: q.To}.values()
	if !q.Since.IsZero() {
		v.Set("since", strconv.FormatInt(max(q.Since.UnixMilli(), 0), 10))
	}
	if !q.Until.IsZero() {
		v.Set("until", strconv.FormatInt(max(q.Until.UnixMilli(), 0), 10))
	}
	return v
}

// Export streams an export of the node (GET /api/v1/export; the operator
// only) to w: a bundle. An export cut short is an error; w then holds a
// bundle without its end marker, which readers report as cut short.
func (c *Client) Export(ctx context.Context, q ExportQuery, w io.Writer) error {
	path := "/api/v1/export"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	return c.download(ctx, path, "export", w)
}

// PostBatch posts envelopes in one batch (POST /api/v1/batch): at most
// MaxBatchEnvelopes, MaxBatchBytes encoded. It returns each one's outcome,
// in order. When the node answers 429 (everyone but its operator has a
// budget of envelopes a second), it waits as long as the node says and
// posts again, until ctx ends.
func (c *Client) PostBatch(ctx context.Context, envs [][]byte) ([]BatchResult, error) {
	const path = "/api/v1/batch"
	body := EncodeBatch(envs)
	for {
		resp, err := c.send(ctx, http.MethodPost, path, "application/octet-stream", body)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return nil, &UnreachableError{URL: c.base(), Err: err}
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			wait, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
			if perr != nil || wait < 1 {
				wait = 1
			}
			select {
			case <-time.After(time.Duration(min(wait, 60)) * time.Second):
				continue
			case <-ctx.Done():
				return nil, errors.Join(ctx.Err(), answerError(resp, b, http.MethodPost, path))
			}
		}
		if resp.StatusCode != http.StatusOK {
			return nil, answerError(resp, b, http.MethodPost, path)
		}
		var out []BatchResult
		if err := json.Unmarshal(b, &out); err != nil {
			return nil, fmt.Errorf("node answered with invalid JSON: %w", err)
		}
		if len(out) != len(envs) {
			return nil, fmt.Errorf("node answered %d results for %d envelopes", len(out), len(envs))
		}
		return out, nil
	}
}
