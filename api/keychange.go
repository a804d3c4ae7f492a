package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"lifeline/message"
)

// KeyChangeTTL is how long a key change the node vouches for lives: as long
// as a conversation may wait for someone to come back, so a year.
const KeyChangeTTL = 365 * 24 * time.Hour

// KeyChange is a key change message as listings show it (Message.KeyChange).
type KeyChange struct {
	// Old is the replaced key, New the key that replaces it.
	Old string `json:"old"`
	New string `json:"new"`
	// Voucher is the key that vouched (the message's author), for a
	// vouched change; empty for a change signed by both keys.
	Voucher string `json:"voucher,omitempty"`
	// Error says why the statement is not valid (a forged old signature,
	// a vouched change signed by a key it names): nodes carry such
	// messages, and clients must not follow them.
	Error string `json:"error,omitempty"`
}

// keyChangeView parses a key change message for listings.
func keyChangeView(e *message.Envelope) *KeyChange {
	if len(e.Body) < 65 {
		return nil // Decode refuses such a body: not reached
	}
	kc, err := message.ParseKeyChange(e)
	v := &KeyChange{Old: kc.Old.String(), New: kc.New.String()}
	if err != nil {
		// The keys as the body has them, so an operator sees what was
		// claimed, with why nobody should follow it.
		var o, n message.PublicKey
		copy(o[:], e.Body[1:33])
		copy(n[:], e.Body[33:65])
		v.Old, v.New, v.Error = o.String(), n.String(), err.Error()
		return v
	}
	if kc.Vouched {
		v.Voucher = kc.Voucher.String()
	}
	return v
}

// KeyChangeRequest is the body of POST /api/v1/keychange.
type KeyChangeRequest struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// postKeyChange has the node vouch that new replaces old, for its
// operator: someone who lost their phone and its key comes to the kit,
// and the operator, who knows them, vouches. Clients show that the node
// vouched and ask their person before they follow it.
func (s *Server) postKeyChange(w http.ResponseWriter, r *http.Request) {
	var req KeyChangeRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	old, err := message.ParsePublicKey(req.Old)
	if err != nil {
		writeError(w, http.StatusBadRequest, "old: %v", err)
		return
	}
	nw, err := message.ParsePublicKey(req.New)
	if err != nil {
		writeError(w, http.StatusBadRequest, "new: %v", err)
		return
	}
	env, err := s.opts.Identity.VouchKeyChange(old, nw, s.stamp(), KeyChangeTTL)
	if err != nil {
		if errors.Is(err, message.ErrMalformed) || errors.Is(err, message.ErrBadKey) {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		s.internalError(w, r, "signing a key change", err)
		return
	}
	res, err := s.opts.Store.PutOwn(r.Context(), env.Raw())
	if err != nil {
		s.putError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/messages/"+res.ID.String())
	writeJSON(w, http.StatusCreated, SendResponse{ID: res.ID.String()})
}

// Vouch has the node vouch that key newKey replaces oldKey (POST
// /api/v1/keychange; the node's operator only) and returns the message id.
func (c *Client) Vouch(ctx context.Context, oldKey, newKey string) (string, error) {
	b, err := json.Marshal(KeyChangeRequest{Old: oldKey, New: newKey})
	if err != nil {
		return "", err
	}
	var res SendResponse
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/keychange", b, &res); err != nil {
		return "", err
	}
	return res.ID, nil
}
