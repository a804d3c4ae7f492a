package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// getBackup streams a backup of the node (Options.Backup) to its operator:
// a tar archive holding the node's keys, so never anyone else's.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Backup == nil {
		writeError(w, http.StatusNotImplemented, "this node cannot make backups")
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="lifeline-backup.tar"`)
	if err := s.opts.Backup(w); err != nil {
		// The status line is gone already: cutting the stream short is
		// what tells the client (the archive has no end).
		s.opts.Logger.Error("api: backup", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// Backup streams a backup of the node to w (GET /api/v1/backup; the
// operator only). An archive cut short is an error.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	base := strings.TrimRight(c.BaseURL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("node URL %q: %w", c.BaseURL, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", OperatorHeader(c.Token, req.Method, req.URL.RequestURI(), time.Now(), nil))
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{URL: base, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e ErrorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &Error{StatusCode: resp.StatusCode, Message: e.Error}
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("backup cut short: %w", err)
	}
	return nil
}
