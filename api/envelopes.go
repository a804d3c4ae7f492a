package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"lifeline/message"
)

// A phone is a courier between kits: when it joins a node's Wi-Fi it asks
// which of the envelopes it holds the node lacks (POST
// /api/v1/missing) and uploads those in one request (POST
// /api/v1/batch). Both bodies are binary, so a batch of sealed
// messages costs its bytes and no base64.

// Batch limits. A phone holds a few thousand envelopes; it sends them in
// requests this size.
const (
	// MaxBatchEnvelopes is the most envelopes one batch request carries.
	MaxBatchEnvelopes = 256
	// MaxBatchBytes bounds a batch request's body.
	MaxBatchBytes = 256 << 10
	// MaxMissingIDs is the most ids one missing request asks about.
	MaxMissingIDs = 1024
)

// BatchResult is one envelope's outcome in the answer of POST
// /api/v1/batch, in the order of the request: its id and
// whether it was new here, or why it was refused.
type BatchResult struct {
	ID    string `json:"id,omitempty"`
	New   bool   `json:"new"`
	Error string `json:"error,omitempty"`
}

// DecodeBatch splits a batch body, a sequence of (length uint16 big-endian,
// envelope) frames, into envelopes. The slices alias b.
func DecodeBatch(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("batch ends inside a length prefix")
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		switch {
		case n == 0:
			return nil, fmt.Errorf("envelope %d is empty", len(out)+1)
		case n > message.MaxEnvelope:
			return nil, fmt.Errorf("envelope %d is %d bytes, over the limit of %d", len(out)+1, n, message.MaxEnvelope)
		case n > len(b):
			return nil, fmt.Errorf("envelope %d announces %d bytes, %d follow", len(out)+1, n, len(b))
		case len(out) == MaxBatchEnvelopes:
			return nil, fmt.Errorf("more than %d envelopes in one batch", MaxBatchEnvelopes)
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}

// EncodeBatch is the inverse of DecodeBatch.
func EncodeBatch(envs [][]byte) []byte {
	var out []byte
	for _, e := range envs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out
}

// postEnvelopeBatch stores envelopes a phone carried here. Each is
// verified and stored on its own: one bad envelope is reported in its
// place and costs the others nothing.
func (s *Server) postEnvelopeBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, "application/octet-stream", MaxBatchBytes)
	if !ok {
		return
	}
	envs, err := DecodeBatch(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "batch: %v", err)
		return
	}
	if !s.allow(r, len(envs)) {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "too many envelopes from %s: at most %g a second", remoteIP(r), s.opts.PublicRate)
		return
	}
	if !s.allowStrangers(r, envs...) {
		s.busy(w)
		return
	}
	out := make([]BatchResult, len(envs))
	errs := make([]error, len(envs))
	// Stored side by side: a Put returns once the log holds it, and Puts
	// waiting together share one write and fsync of the log, where one
	// after the other they took one each (730 envelopes a second, against
	// several thousand).
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(batchWorkers, len(envs)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(envs); i = int(next.Add(1)) - 1 {
				res, err := s.opts.Store.Put(r.Context(), envs[i])
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = BatchResult{ID: res.ID.String(), New: res.New}
			}
		})
	}
	wg.Wait()
	if r.Context().Err() != nil {
		return
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case messageError(err):
			out[i] = BatchResult{Error: err.Error()}
		default:
			// The node's fault (quota, closing, disk): the phone keeps
			// the rest and tries again later.
			s.putError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// batchWorkers is how many envelopes of one batch are stored at once.
const batchWorkers = 64

// postMissing answers which of the given ids (a body of 32-byte ids) this
// node does not hold, as a body of ids in the same order.
func (s *Server) postMissing(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, "application/octet-stream", MaxMissingIDs*32)
	if !ok {
		return
	}
	if len(body)%32 != 0 {
		writeError(w, http.StatusBadRequest, "body is %d bytes: want whole 32-byte message ids", len(body))
		return
	}
	var out []byte
	for b := body; len(b) > 0; b = b[32:] {
		has, err := s.opts.Store.Has(message.ID(b[:32]))
		if err != nil {
			s.internalError(w, r, "looking up messages", err)
			return
		}
		if !has {
			out = append(out, b[:32]...)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}
