package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	return c.download(ctx, "/api/v1/backup", "backup", w)
}

// download copies the body of a GET of path (a file the node streams: a
// backup, an export) to w. An answer cut short is an error that says what
// was cut.
func (c *Client) download(ctx context.Context, path, what string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return answerError(resp, b, http.MethodGet, path)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s cut short: %w", what, err)
	}
	return nil
}
