package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// WipeConfirm is the confirmation POST /api/v1/wipe requires, so that no
// mistaken or replayed request with an empty body wipes a kit.
const WipeConfirm = "wipe this kit"

// WipeRequest is the body of POST /api/v1/wipe.
type WipeRequest struct {
	Confirm string `json:"confirm"` // must be WipeConfirm
}

// WipeResponse answers a wipe: the keys are gone when it is sent.
type WipeResponse struct {
	Wiped bool    `json:"wiped"`
	TookS float64 `json:"took_s"` // how long destroying took
	Error string  `json:"error,omitempty"`
}

// postWipe destroys the node's keys and messages (Options.Wipe) for its
// operator, then the node stops.
func (s *Server) postWipe(w http.ResponseWriter, r *http.Request) {
	if s.opts.Wipe == nil {
		writeError(w, http.StatusNotImplemented, "this node cannot wipe itself")
		return
	}
	var req WipeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Confirm != WipeConfirm {
		writeError(w, http.StatusBadRequest, "to wipe this kit's keys and messages for good, send {\"confirm\": %q}", WipeConfirm)
		return
	}
	start := time.Now()
	err := s.opts.Wipe()
	res := WipeResponse{Wiped: err == nil, TookS: time.Since(start).Seconds()}
	if err != nil {
		// Whatever could be destroyed was: say what could not.
		res.Error = err.Error()
		writeJSON(w, http.StatusInternalServerError, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Wipe asks the node to destroy its keys and messages; it stops after.
func (c *Client) Wipe(ctx context.Context) (WipeResponse, error) {
	var res WipeResponse
	body, err := json.Marshal(WipeRequest{Confirm: WipeConfirm})
	if err != nil {
		return res, err
	}
	err = c.doJSON(ctx, http.MethodPost, "/api/v1/wipe", body, &res)
	return res, err
}
