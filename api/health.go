package api

import "net/http"

// Health is the answer of GET /healthz.
type Health struct {
	OK bool `json:"ok"`
	// Problem says why the node cannot take messages now: its store broke
	// (the node then ends, for its supervisor to restart it) or its disk
	// is full.
	Problem string `json:"problem,omitempty"`
}

// getHealth answers GET /healthz: 200 while the node can take messages,
// 503 with the problem when it cannot. For supervisors and monitoring: it
// says nothing about the node's people, so anyone may ask.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) {
	st := s.opts.Store.Stats()
	if st.Problem != "" {
		writeJSON(w, http.StatusServiceUnavailable, Health{Problem: st.Problem})
		return
	}
	writeJSON(w, http.StatusOK, Health{OK: true})
}
