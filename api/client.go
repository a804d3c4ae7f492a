package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a node's API. The zero HTTP uses http.DefaultClient;
// requests are bounded by the caller's context.
type Client struct {
	// BaseURL is the node's address, e.g. "http://127.0.0.1:7777".
	BaseURL string
	HTTP    *http.Client
	// Token, when set, is sent as the node's admin token (see
	// Options.AdminToken): what lets an operator on another machine act
	// as the node.
	Token string
}

// maxResponse bounds what the client reads from a node: a full listing of
// MaxLimit messages with maximal texts is under 20 MiB.
const maxResponse = 32 << 20

// Error is an error answer from the node.
type Error struct {
	StatusCode int
	// Message is the node's explanation, the "error" of its JSON answer.
	Message string
}

func (e *Error) Error() string { return e.Message }

// UnreachableError means no HTTP answer came back at all: nothing listens
// at the URL, or the connection broke.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the node at %s: is `lifeline run` running? (%v)", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// ListQuery filters Client.List; the zero value lists the newest
// DefaultLimit messages of every kind.
type ListQuery struct {
	Channel   string
	ChannelID string
	To        string
	Since     int64
	Limit     int
}

func (q ListQuery) values() url.Values {
	v := url.Values{}
	if q.Channel != "" {
		v.Set("channel", q.Channel)
	}
	if q.ChannelID != "" {
		v.Set("channel_id", q.ChannelID)
	}
	if q.To != "" {
		v.Set("to", q.To)
	}
	if q.Since != 0 {
		v.Set("since", strconv.FormatInt(q.Since, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Health asks GET /healthz: "" while the node can take messages, else
// the problem it reports (503); an error when it does not answer so.
func (c *Client) Health(ctx context.Context) (problem string, err error) {
	_, _, err = c.do(ctx, http.MethodGet, "/healthz", "", nil)
	if e, ok := errors.AsType[*Error](err); ok && e.StatusCode == http.StatusServiceUnavailable {
		return e.Message, nil
	}
	return "", err
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Send asks the node to sign and store a message; it returns the new id.
func (c *Client) Send(ctx context.Context, req SendRequest) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	var res SendResponse
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/messages", b, &res); err != nil {
		return "", err
	}
	return res.ID, nil
}

// Message fetches one message (GET /api/v1/messages/{id}).
func (c *Client) Message(ctx context.Context, id string) (*Message, error) {
	var m Message
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/messages/"+url.PathEscape(id), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// List returns messages, oldest first.
func (c *Client) List(ctx context.Context, q ListQuery) ([]Message, error) {
	var ms []Message
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/messages?"+q.values().Encode(), nil, &ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// Page is one answer of Client.ListAfter.
type Page struct {
	Messages []Message
	// Next is the after to pass next time (the Lifeline-Next-After header).
	Next uint64
	// More: more messages may be waiting now; ask again at once.
	More bool
}

// ListAfter returns messages in arrival order: those with a seq above
// after (0: from the first), oldest arrival first. q.Since must be 0. A
// client that polls for new messages calls it with the Next of its last
// Page: unlike Since, this misses nothing that arrives late.
func (c *Client) ListAfter(ctx context.Context, q ListQuery, after uint64) (Page, error) {
	v := q.values()
	v.Set("after", strconv.FormatUint(after, 10))
	b, h, _, err := c.doHeader(ctx, http.MethodGet, "/api/v1/messages?"+v.Encode(), "", nil)
	if err != nil {
		return Page{}, err
	}
	var p Page
	if err := json.Unmarshal(b, &p.Messages); err != nil {
		return Page{}, fmt.Errorf("node answered with invalid JSON: %w", err)
	}
	if p.Next, err = strconv.ParseUint(h.Get(HeaderNextAfter), 10, 64); err != nil {
		return Page{}, fmt.Errorf("node answered without a valid %s header: %w", HeaderNextAfter, err)
	}
	p.More = h.Get(HeaderMore) == "true"
	return p, nil
}

// ListJSON returns the node's JSON answer to a listing, unchanged.
func (c *Client) ListJSON(ctx context.Context, q ListQuery) ([]byte, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/api/v1/messages?"+q.values().Encode(), "", nil)
	return b, err
}

// Envelope returns the signed bytes of a message.
func (c *Client) Envelope(ctx context.Context, id string) ([]byte, error) {
	b, _, err := c.do(ctx, http.MethodGet, "/api/v1/envelopes/"+url.PathEscape(id), "", nil)
	return b, err
}

// PostEnvelope gives the node a signed envelope; isNew is false when it
// already had it.
func (c *Client) PostEnvelope(ctx context.Context, raw []byte) (id string, isNew bool, err error) {
	b, _, err := c.do(ctx, http.MethodPost, "/api/v1/envelopes", "application/octet-stream", raw)
	if err != nil {
		return "", false, err
	}
	var res EnvelopeResponse
	if err := json.Unmarshal(b, &res); err != nil {
		return "", false, fmt.Errorf("node answered with invalid JSON: %w", err)
	}
	return res.ID, res.New, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, body []byte, v any) error {
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	b, _, err := c.do(ctx, method, path, ct, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node answered with invalid JSON: %w", err)
	}
	return nil
}

// do sends one request and returns the body of a 2xx answer. Other answers
// become *Error, transport failures *UnreachableError.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, int, error) {
	b, _, code, err := c.doHeader(ctx, method, path, contentType, body)
	return b, code, err
}

// doHeader is do that also returns the answer's header.
func (c *Client) doHeader(ctx context.Context, method, path, contentType string, body []byte) ([]byte, http.Header, int, error) {
	resp, err := c.send(ctx, method, path, contentType, body)
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, resp.Header, resp.StatusCode, &UnreachableError{URL: c.base(), Err: err}
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp.Header, resp.StatusCode, answerError(resp, b, method, path)
	}
	return b, resp.Header, resp.StatusCode, nil
}

func (c *Client) base() string { return strings.TrimRight(c.BaseURL, "/") }

// send sends one request and returns the answer, whatever its status; the
// caller closes its body. Transport failures are *UnreachableError.
func (c *Client) send(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, error) {
	base := c.base()
	if _, err := url.Parse(base); err != nil || base == "" {
		return nil, fmt.Errorf("node URL %q: want something like http://127.0.0.1:7777", c.BaseURL)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	// An operator's request is signed with the node's time: if this
	// machine's clock is off, the node says so and gives its time (the
	// Date header), and the request is signed again once with that.
	var skew time.Duration
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return nil, fmt.Errorf("node URL %q: %w", c.BaseURL, err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if c.Token != "" {
			req.Header.Set("Authorization", OperatorHeader(c.Token, method, req.URL.RequestURI(), time.Now().Add(skew), body))
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &UnreachableError{URL: base, Err: err}
		}
		if c.Token == "" || attempt > 0 || resp.StatusCode != http.StatusUnauthorized {
			return resp, nil
		}
		at, derr := http.ParseTime(resp.Header.Get("Date"))
		if derr != nil {
			return resp, nil
		}
		resp.Body.Close()
		skew = time.Until(at)
	}
}

// answerError is the *Error of an answer that is not 2xx, whose body b
// has been read.
func answerError(resp *http.Response, b []byte, method, path string) error {
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error == "" {
		var h Health // GET /healthz says its problem so
		if json.Unmarshal(b, &h) == nil {
			eb.Error = h.Problem
		}
	}
	if eb.Error == "" {
		// Not a Lifeline node, or a proxy in between.
		eb.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
	}
	return &Error{StatusCode: resp.StatusCode, Message: eb.Error}
}
