package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// The operator's settings page (GET and PUT /api/v1/settings): the few
// settings a kit's operator changes in the field — the node's name, the
// radios' region and preset, the hubs, the mesh key, kit mode — without
// editing files. The node (package lifeline) keeps them, validates a
// change against everything else it runs with, and restarts itself to
// apply it once the answer is sent.

// Settings is the node's side of the settings page. The API owns the
// interface; the node implements it.
type Settings interface {
	// Settings returns the current settings and the choices.
	Settings() SettingsView
	// ChangeSettings validates and saves a change; it does not apply it
	// (see Restart). Errors wrapping ErrInvalidSettings are the
	// operator's (400), ErrSettingsTooSoon asks them to wait (429); any
	// other is the node's.
	ChangeSettings(ctx context.Context, ch SettingsChange) (SettingsView, error)
	// Restart applies the saved settings: the node restarts itself in
	// the same process. It returns at once.
	Restart()
}

// Errors a Settings implementation wraps.
var (
	ErrInvalidSettings = errors.New("invalid settings")
	ErrSettingsTooSoon = errors.New("settings changed a moment ago")
)

// SettingsRetryAfter is the Retry-After, in seconds, of a change refused
// with ErrSettingsTooSoon.
const SettingsRetryAfter = 3

// maxSettingsBody bounds PUT /api/v1/settings: a name, a few hubs, a key.
const maxSettingsBody = 16 << 10

// SettingsView is GET /api/v1/settings: what the node runs with. The mesh
// key itself never leaves the node: only whether there is one, and its
// fingerprint, which operators compare between kits.
type SettingsView struct {
	// Name is the node's name, shown to people on the kit ("" if none).
	Name string `json:"name"`
	// RadioRegion and RadioPreset are those of every radio (the first
	// radio's, should they differ; the defaults when there is none:
	// they apply to the radios configured later).
	RadioRegion string `json:"radio_region"`
	RadioPreset string `json:"radio_preset"`
	// Radios are the configured radios, each with its own.
	Radios []RadioSetting `json:"radios"`
	Hubs   []string       `json:"hubs"`
	// MeshKey says whether the mesh is private, and by which key.
	MeshKey MeshKeyView `json:"mesh_key"`
	Kit     KitSetting  `json:"kit"`
	// FromPage lists the settings that come from this page (and override
	// the config file); CommandLine those that the node's command line
	// sets, which the page cannot change. Names as in SettingsChange.
	FromPage    []string `json:"from_page"`
	CommandLine []string `json:"command_line"`
	// Choices are the valid names for the selects.
	Choices SettingsChoices `json:"choices"`
	// LastError, when set, says why the last change did not start and
	// was undone.
	LastError string `json:"last_error,omitempty"`
	// Restarting is true in the answer of a change: the node restarts
	// once it is sent (a few seconds without the API).
	Restarting bool `json:"restarting,omitempty"`
}

// RadioSetting is one radio on the settings page.
type RadioSetting struct {
	Device string `json:"device"`
	Region string `json:"region"`
	Preset string `json:"preset"`
}

// MeshKeyView is the mesh key as the page sees it.
type MeshKeyView struct {
	// Set: the mesh is private.
	Set bool `json:"set"`
	// Fingerprint identifies the key (16 hex digits in groups of four);
	// the same on every node holding it.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// KitSetting is kit mode on the settings page (see docs/KIT.md).
type KitSetting struct {
	On bool `json:"on"`
	// Address is the Wi-Fi interface (wlan0) or its IPv4 address.
	Address string `json:"address,omitempty"`
	// Name is the app's host name; the default (lifeline.kit) if empty.
	Name string `json:"name,omitempty"`
}

// SettingsChoices are the names the selects offer.
type SettingsChoices struct {
	Regions []string `json:"regions"`
	Presets []string `json:"presets"`
}

// SettingsChange is the body of PUT /api/v1/settings. Only the fields
// present change; Reset returns the named settings to the config file's.
type SettingsChange struct {
	Name        *string        `json:"name,omitempty"`
	RadioRegion *string        `json:"radio_region,omitempty"`
	RadioPreset *string        `json:"radio_preset,omitempty"`
	Hubs        *[]string      `json:"hubs,omitempty"`
	MeshKey     *MeshKeyChange `json:"mesh_key,omitempty"`
	Kit         *KitSetting    `json:"kit,omitempty"`
	Reset       []string       `json:"reset,omitempty"`
}

// MeshKeyChange changes the mesh key: exactly one of its fields.
type MeshKeyChange struct {
	// Generate makes a new random key on the node.
	Generate bool `json:"generate,omitempty"`
	// Key is a key in the text form `lifeline meshkey` writes (a libp2p
	// swarm.key file).
	Key string `json:"key,omitempty"`
	// Off makes the mesh open.
	Off bool `json:"off,omitempty"`
}

// getSettings answers the current settings, for the operator.
func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	if s.opts.Settings == nil {
		writeError(w, http.StatusNotImplemented, "this node has no settings page")
		return
	}
	writeJSON(w, http.StatusOK, s.opts.Settings.Settings())
}

// putSettings saves a change, answers, and has the node restart with it.
func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) {
	if s.opts.Settings == nil {
		writeError(w, http.StatusNotImplemented, "this node has no settings page")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSettingsBody)
	var ch SettingsChange
	if !decodeJSON(w, r, &ch) {
		return
	}
	v, err := s.opts.Settings.ChangeSettings(r.Context(), ch)
	switch {
	case errors.Is(err, ErrInvalidSettings):
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	case errors.Is(err, ErrSettingsTooSoon):
		w.Header().Set("Retry-After", strconv.Itoa(SettingsRetryAfter))
		writeError(w, http.StatusTooManyRequests, "%v", err)
		return
	case err != nil:
		s.internalError(w, r, "saving the settings", err)
		return
	}
	v.Restarting = true
	// The answer goes out whole before the node stops its API: the
	// restart waits for requests in flight (Serve's graceful shutdown).
	w.Header().Set("Connection", "close")
	writeJSON(w, http.StatusAccepted, v)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.opts.Settings.Restart()
}

// Settings returns the node's settings (operator only).
func (c *Client) Settings(ctx context.Context) (SettingsView, error) {
	var v SettingsView
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/settings", nil, &v)
	return v, err
}

// ChangeSettings saves a change; the node restarts with it after
// answering (its status answers again a moment later).
func (c *Client) ChangeSettings(ctx context.Context, ch SettingsChange) (SettingsView, error) {
	var v SettingsView
	body, err := json.Marshal(ch)
	if err != nil {
		return v, err
	}
	err = c.doJSON(ctx, http.MethodPut, "/api/v1/settings", body, &v)
	return v, err
}
