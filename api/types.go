package api

import (
	"encoding/base64"

	"lifeline/clock"
	"lifeline/mesh"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/store"
)

// Status is the answer of GET /api/v1/status.
type Status struct {
	// ID is the node's public key, 64 hex digits.
	ID      string `json:"id"`
	Version string `json:"version"`
	// Name is the node's name, so people know which kit they are on;
	// absent if it has none. Show it isolated (a <bdi>): it may be in any
	// script, but never holds control or bidi formatting characters.
	Name string `json:"name,omitempty"`
	// Settings lists, for the operator only, the settings that the
	// operator's page set (GET /api/v1/settings): they override the
	// config file.
	Settings []string `json:"settings,omitempty"`
	// Messages and Bytes are what the store holds; Quota is its byte limit
	// (0: none). Evicted and Expired count removals since it was created.
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Quota    int64 `json:"quota"`
	Evicted  int64 `json:"evicted"`
	Expired  int64 `json:"expired"`
	UptimeS  int64 `json:"uptime_s"`
	// Time is the node's clock, unix milliseconds. Field nodes often boot
	// without a real-time clock; showing it lets people notice.
	Time int64 `json:"time"`
	// Clock says which source the node's clock follows and how sure it
	// is.
	Clock ClockStatus `json:"clock"`
	// LastSeq is the newest arrival sequence number: a client that has
	// seen nothing yet starts its event stream or listing near it.
	LastSeq uint64 `json:"last_seq"`
	// DefaultChannel is the channel a first-time visitor of the phone
	// app lands in.
	DefaultChannel string `json:"default_channel"`
	// Operator is true when the client asking is the node's operator (on
	// its own machine, or with the admin token; see trusted): the phone
	// app then offers the operator's actions, such as the wipe.
	Operator bool `json:"operator,omitempty"`
	// Summary is the node's links in a few words, for everyone,
	// including people on the kit's Wi-Fi who do not see the details.
	Summary Summary `json:"summary"`
	// The mesh's fields (peer_id, addrs, peers, peer_list, ...) sit at the
	// top level; absent when the node runs no mesh.
	*mesh.Status
	// Radio is each LoRa radio: its device and link state, region and
	// preset, the scheduler's queue and airtime in the current window,
	// frames sent, heard and lost, the last RSSI and SNR. Absent when the
	// node has none, and for strangers on a public hub.
	Radio []radio.StationStatus `json:"radio,omitempty"`
	// Kit is the kit mode (docs/KIT.md); absent when the node is not a
	// kit.
	Kit *KitStatus `json:"kit,omitempty"`
}

// KitStatus is a kit's mode: where phones find the app, and what its DNS
// answered. Everyone on the Wi-Fi may see it: it is what the DNS tells
// them anyway.
type KitStatus struct {
	// Address is the kit's IPv4 address; empty while the node waits for
	// Interface (the Wi-Fi interface named in the config) to have one.
	Address   string `json:"address"`
	Interface string `json:"interface,omitempty"`
	// Name is the app's host name: http://Name/.
	Name string `json:"name"`
	// DNSAnswered and DNSLimited count the DNS queries answered, and
	// dropped over the rate limits, since the node started.
	DNSAnswered uint64 `json:"dns_answered"`
	DNSLimited  uint64 `json:"dns_limited"`
	// Released is how many phones have opened the app and are told, by
	// address, that the Wi-Fi is online.
	Released int `json:"released"`
}

// Summary is what a person needs to know of the node's links: whether it
// reaches other nodes, its radios, and the internet. No addresses, no peer
// ids: who is connected from where is not for everyone on the Wi-Fi.
type Summary struct {
	// Peers is how many mesh peers are connected.
	Peers int `json:"peers"`
	// Radios holds each LoRa radio's state (down, detecting,
	// configuring, ready, failed).
	Radios []string `json:"radios"`
	// Uplink is "up", "down", "unknown" (no probe yet), or "none" (no
	// hub configured).
	Uplink string `json:"uplink"`
	// UplinkSince is when the uplink entered its state, LastUp when it
	// last worked; unix milliseconds, 0 if unknown.
	UplinkSince int64 `json:"uplink_since,omitempty"`
	LastUp      int64 `json:"last_up,omitempty"`
}

// SendRequest is the body of POST /api/v1/messages: exactly one of Channel
// and To, and Text.
type SendRequest struct {
	// Channel is a public channel name ("general", "#general").
	Channel string `json:"channel,omitempty"`
	// To is the recipient's public key, 64 hex digits.
	To   string `json:"to,omitempty"`
	Text string `json:"text"`
	// Priority is "low", "normal" (default), "high" or "alert". Channel
	// messages are "normal" or "alert"; an alert to a channel is an alert
	// message (KindAlert), to a person a direct message at alert priority.
	Priority string `json:"priority,omitempty"`
	// TTLSeconds is the message's lifetime; 0 means message.DefaultTTL.
	TTLSeconds int64 `json:"ttl_s,omitempty"`
}

// SendResponse is the answer of POST /api/v1/messages.
type SendResponse struct {
	ID string `json:"id"`
}

// EnvelopeResponse is the answer of POST /api/v1/envelopes.
type EnvelopeResponse struct {
	ID  string `json:"id"`
	New bool   `json:"new"`
}

// Message statuses. A status is only ever what this node knows to be true.
const (
	// StatusStored: an own message, in this node's store.
	StatusStored = "stored"
	// StatusLeft: an own message a mesh peer, hub or radio took.
	StatusLeft = "left"
	// StatusDelivered: an own message whose recipient's receipt came back.
	StatusDelivered = "delivered"
	// StatusReceived: a message that reached this node from elsewhere.
	StatusReceived = "received"
)

// Message is one message as GET /api/v1/messages and the event stream
// show it.
type Message struct {
	ID string `json:"id"`
	// Seq is the node's arrival sequence number: one more for each
	// message the node stores, in the order it stored them, whatever
	// their created times, never reused. Page by it (GET /api/v1/messages?after=SEQ) to
	// miss nothing. It is the node's own numbering, not the message's:
	// another node numbers the same message differently.
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
	// Channel is the channel's name when the node knows it (it remembers
	// the names it was asked about), else the channel id. Channel kinds only.
	Channel   string `json:"channel,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	// To is the recipient key of direct messages and receipts.
	To     string `json:"to,omitempty"`
	Author string `json:"author"`
	// Text is the text of channel texts and alerts, and of direct
	// messages addressed to this node, decrypted, for its operator (see
	// trusted). Other direct messages and team messages are sealed:
	// their text is omitted.
	Text string `json:"text,omitempty"`
	// Profile is the body of a profile message.
	Profile *message.Profile `json:"profile,omitempty"`
	// KeyChange is a key change message's statement: which key replaces
	// which, who vouched, and why it is not valid if it is not.
	KeyChange *KeyChange `json:"key_change,omitempty"`
	// Acks lists the message ids a receipt acknowledges.
	Acks []string `json:"acks,omitempty"`
	// Created, Expires and Received are unix milliseconds; Created and
	// Expires come from the author, Received from this node's clock.
	Created  int64  `json:"created"`
	Expires  int64  `json:"expires"`
	Received int64  `json:"received"`
	Priority string `json:"priority"`
	// Own is true for messages authored through this node.
	Own    bool   `json:"own"`
	Status string `json:"status"`
	// Left: a mesh peer, hub or radio took the message from this node.
	// Delivered: its recipient's receipt is here (direct messages).
	// Both hold for any author: a person's page follows its own
	// messages by them.
	Left      bool `json:"left"`
	Delivered bool `json:"delivered"`
	// Envelope is the signed envelope, standard base64, when the request
	// asked for it (raw=1): for pages that open what is sealed to their
	// own key, and carry envelopes between nodes.
	Envelope string `json:"envelope,omitempty"`
}

// message converts a store record for the API. The record is not retained.
// named, if not nil, is a channel name the request itself gave; it is used
// for that channel ahead of the names the node remembers. open says whether
// direct messages to the node are decrypted: not for strangers (see
// trusted).
func (s *Server) message(r *store.Record, named *channelName, open, raw bool) Message {
	e := r.Envelope
	m := Message{
		Left:      r.Left,
		Delivered: r.Delivered,
		ID:        e.ID().String(),
		Seq:       r.Seq,
		Kind:      e.Kind.String(),
		Author:    e.Author.String(),
		Created:   e.Created,
		Expires:   e.Expires(),
		Received:  r.Received,
		Priority:  e.Priority.String(),
		Own:       r.Own,
		Status:    StatusReceived,
	}
	if raw {
		m.Envelope = base64.StdEncoding.EncodeToString(e.Raw())
	}
	if r.Own {
		m.Status = StatusStored
		if r.Left {
			m.Status = StatusLeft
		}
		if r.Delivered {
			m.Status = StatusDelivered
		}
	}
	switch {
	case e.Kind.ToChannel():
		m.ChannelID = e.Channel.String()
		m.Channel = m.ChannelID
		if named != nil && named.id == e.Channel {
			m.Channel = named.name
		} else if n, ok := s.names.name(e.Channel); ok {
			m.Channel = n
		}
		if e.Kind == message.KindText || e.Kind == message.KindAlert {
			m.Text = e.Text()
		}
	case e.Kind.ToRecipient():
		m.To = e.Recipient.String()
	}
	switch e.Kind {
	case message.KindDirect:
		if open && e.Recipient == s.opts.Identity.Public() {
			pt, err := s.opts.Identity.OpenDirect(e)
			if err != nil {
				// A forged or damaged body: the signature is the
				// author's, but only the recipient can tell that the
				// ciphertext is garbage. Show the message without text.
				// Debug, not Warn: this runs on every listing of the
				// message, and any sender could flood the log with it.
				s.opts.Logger.Debug("api: cannot open direct message", "id", m.ID, "err", err)
				break
			}
			m.Text = string(pt)
		}
	case message.KindProfile:
		if p, err := message.ParseProfile(e); err == nil {
			m.Profile = &p
		}
		if c, err := message.Channel(message.ProfilesChannel); err == nil && c == e.Channel {
			m.Channel = message.ProfilesChannel
		}
	case message.KindKeyChange:
		m.KeyChange = keyChangeView(e)
		if c, err := message.Channel(message.KeysChannel); err == nil && c == e.Channel {
			m.Channel = message.KeysChannel
		}
	case message.KindReport:
		if c, err := message.Channel(message.ReportsChannel); err == nil && c == e.Channel {
			m.Channel = message.ReportsChannel
		}
	case message.KindReceipt:
		for _, id := range e.ReceiptIDs() {
			m.Acks = append(m.Acks, id.String())
		}
	}
	return m
}

// ClockStatus is the node's clock's account of itself (clock.Status).
type ClockStatus struct {
	// Source is what the clock follows: "gps", "synced" (the system
	// clock, kept by NTP), "hub", "phone" (phones' browsers, or mesh
	// strangers), "system" (the system clock, not known to be
	// synchronised) or "floor" (the system clock was earlier than the
	// build or the last time saved, so the clock counts from that).
	Source string `json:"source"`
	// Via is the channel the time came by, for a source that is another
	// clock: "hub", "member", "stranger", "phone" or "gps".
	Via string `json:"via,omitempty"`
	// Sources is how many sources of that quality the clock took the
	// median of; Hops how many nodes the time was relayed through.
	Sources int `json:"sources"`
	Hops    int `json:"hops,omitempty"`
	// UncertaintyMS is how far off the time may be, in milliseconds; 0
	// when unknown.
	UncertaintyMS int64 `json:"uncertainty_ms"`
	// OffsetMS is the node's clock minus its system clock: what the
	// system clock is off by.
	OffsetMS int64 `json:"offset_ms"`
	// SteppedMS, when not 0, is how far the node's signing times stepped
	// back when it learnt that its clock had been more than 30 minutes
	// ahead (docs/DECISIONS.md, "Time without a real-time clock").
	SteppedMS int64 `json:"stepped_ms,omitempty"`
}

func newClockStatus(st clock.Status) ClockStatus {
	return ClockStatus{Source: st.Quality.String(), Via: st.Via, Sources: st.Sources, Hops: st.Hops,
		UncertaintyMS: st.Uncertainty.Milliseconds(), OffsetMS: st.Offset.Milliseconds(), SteppedMS: st.Stepped.Milliseconds()}
}

// TimeRequest is a phone's clock, unix milliseconds (POST /api/v1/time).
type TimeRequest struct {
	Time int64 `json:"time"`
}
