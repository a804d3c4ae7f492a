// Package api serves a node's HTTP JSON API under /api/v1/ and the
// server-sent event stream of new messages. It is a client of the store like
// any link: everything it accepts is verified and stored before anyone else
// sees it, and it never talks to the other links.
//
// Every error answer is JSON, {"error": "what was wrong"}, with a 4xx status
// when the request was at fault and 5xx when the node was. See docs/API.md.
package api

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"lifeline/clock"
	"lifeline/mesh"
	"lifeline/message"
	"lifeline/radio"
	"lifeline/store"
)

// Store is what the API needs from the message store; *store.Store
// implements it. The API owns this interface (the consumer defines it) so
// it names only the methods it calls.
type Store interface {
	// Put verifies and stores an envelope that arrived from elsewhere.
	Put(ctx context.Context, raw []byte) (store.Result, error)
	// PutOwn verifies and stores an envelope this node signed for its user.
	PutOwn(ctx context.Context, raw []byte) (store.Result, error)
	Get(id message.ID) (*store.Record, error)
	Has(id message.ID) (bool, error)
	List(q store.Query) ([]*store.Record, error)
	// ListAfter pages in arrival order (Record.Seq); see store.ListAfter.
	ListAfter(q store.Query) (store.Page, error)
	Stats() store.Stats
	Subscribe(buf int) *store.Subscription
	// Export walks the messages q selects, in created order (export.go).
	Export(ctx context.Context, q store.ExportQuery, fn func(*store.Record) error) error
}

// Options configure a Server. Store and Identity are required.
type Options struct {
	Store Store
	// Identity is the node's: it signs what users send through the API and
	// opens direct messages addressed to the node.
	Identity *message.Identity
	// Version is reported by GET /api/v1/status.
	Version string
	// Now is the system clock; time.Now if nil. Tests move it.
	Now func() time.Time
	// Clock is the node's clock (package clock): messages are checked
	// against its time and stamped with its never-backwards stamps, and
	// phones tell it their time (POST /api/v1/time). Default: a clock
	// over Now.
	Clock *clock.Clock
	// Rand feeds direct-message encryption; crypto/rand if nil.
	Rand io.Reader
	// Logger receives request failures the node is responsible for.
	Logger *slog.Logger
	// Heartbeat is the interval of comment lines on idle event streams, so
	// proxies and phones do not drop them; 15s if zero.
	Heartbeat time.Duration
	// EventBuffer is how many messages an event stream may fall behind
	// before it is told it lagged; 256 if zero.
	EventBuffer int
	// Mesh reports the IP mesh for GET /api/v1/status; nil if the node
	// has none.
	Mesh func() mesh.Status
	// Radio reports the LoRa radios for GET /api/v1/status; nil if none.
	Radio func() []radio.StationStatus
	// AllowedHosts are the host names, besides IP literals and localhost,
	// that requests may carry in their Host header: the names the node is
	// reached by, e.g. "lifeline.local". Without a port; matched without
	// regard to case. Requests for any other name are refused (421), which
	// is what defeats DNS rebinding (see hostGuard).
	AllowedHosts []string
	// MaxEventStreams bounds the event streams open at once; each holds a
	// goroutine and a store subscription. Further streams are refused with
	// 503 and Retry-After until one ends. 64 if zero or less.
	MaxEventStreams int
	// Public is for an API reachable from the internet (a hub). Every
	// API lets only trusted clients (see trusted) have the node sign for
	// them (POST /api/v1/messages); everyone else posts envelopes they
	// signed, each remote address at most PublicRate a second (burst
	// PublicBurst). Behind a reverse proxy every client is the proxy's
	// address: give the proxy its own limits.
	Public bool
	// PublicRate is 5 if zero on a public API, else 20: phones on a
	// kit's Wi-Fi are its people, and a phone arriving as a courier
	// uploads what it carries at once (PublicBurst: 50, else 1000).
	PublicRate  float64
	PublicBurst int
	// StrangersRate and StrangersBurst bound the envelopes of strangers
	// (authors Members does not accept) that all untrusted clients
	// together may post, so that many addresses buy no more than the
	// node can verify besides its members' traffic. Defaults: ten times
	// PublicRate, twice PublicBurst.
	StrangersRate  float64
	StrangersBurst int
	// Wipe, if set, destroys the node's keys and messages when its
	// operator asks (POST /api/v1/wipe); the node stops after.
	Wipe func() error
	// Backup, if set, writes a backup of the node for its operator (GET
	// /api/v1/backup).
	Backup func(w io.Writer) error
	// AnswerRate and AnswerBurst bound the bytes of the answers to each
	// address that is not the operator (see answers.go), event streams
	// aside; StrangersAnswerRate and StrangersAnswerBurst, those to all
	// of them together. Defaults: 1 MiB a second, burst 16 MiB, for each
	// (a hub: 256 KiB, 4 MiB); 4 MiB a second, burst 64 MiB, together.
	AnswerRate           float64
	AnswerBurst          int
	StrangersAnswerRate  float64
	StrangersAnswerBurst int
	// Members, if set, says which authors are members (keys the operator
	// vouched for): their envelopes count only against their address's
	// budget, not against the strangers' total.
	Members func(message.PublicKey) bool
	// AdminToken, when not empty, lets a client that is not on this
	// machine act as the node's operator by proving it holds the token,
	// without sending it (operator.go): sign as the node, read what is
	// sealed to it, see its peers. Without it only loopback clients can
	// (see trusted). People on the kit's Wi-Fi act as themselves.
	AdminToken string
	// DefaultChannel is the channel the phone app opens for a first-time
	// visitor; DefaultChannelName if empty.
	DefaultChannel string
	// App, when not nil, serves the phone app: every GET outside /api/.
	App http.Handler
	// Kit reports the kit mode for GET /api/v1/status and /metrics; nil
	// when the node is not a kit.
	Kit func() KitStatus
	// Name is the node's name, in GET /api/v1/status for everyone: which
	// kit a phone is on. Empty if it has none.
	Name string
	// Settings, if set, serves the operator's settings page (GET and PUT
	// /api/v1/settings; settings.go).
	Settings Settings
	// ReadTimeout bounds reading a request, body included (Serve): a
	// client that sends its body slower is answered 408. 30s if zero.
	ReadTimeout time.Duration
}

// maxOutageListings is how many outages listings run at once.
const maxOutageListings = 2

// DefaultChannelName is Options.DefaultChannel when unset.
const DefaultChannelName = "general"

// Request body limits. A JSON send request carries at most MaxBody bytes of
// text, which JSON escaping can inflate up to six times; anything larger is
// not a request we could honour.
const (
	maxJSONBody = 64 << 10
	// DefaultLimit and MaxLimit bound GET /api/v1/messages.
	DefaultLimit = 100
	MaxLimit     = 1000
	// maxChannelNames bounds the names the server remembers, so requests
	// cannot grow its memory without limit; the least recently used name
	// is forgotten first.
	maxChannelNames = 4096
	// DefaultMaxEventStreams is Options.MaxEventStreams when unset.
	DefaultMaxEventStreams = 64
	// eventsRetryAfter is the Retry-After, in seconds, of a refused stream.
	eventsRetryAfter = "10"
)

// Server is the HTTP API of one node. It is an http.Handler; Serve runs it
// on a listener until a context ends.
type Server struct {
	opts    Options
	start   time.Time
	mux     *http.ServeMux
	handler http.Handler // mux behind hostGuard
	names   *channelNames
	// allowed holds Options.AllowedHosts, normalised by canonicalHost.
	allowed map[string]bool
	// streams holds one token per open event stream; its capacity is
	// MaxEventStreams.
	streams chan struct{}

	// closing is closed by Close to end event streams, which otherwise
	// never finish on their own and would hold up a graceful shutdown.
	closing   chan struct{}
	closeOnce sync.Once

	limits    *clientLimits // for clients that are not trusted
	strangers *rate.Limiter // strangers' envelopes from all untrusted clients together
	// memberClaims bounds the signatures checked to tell members'
	// envelopes from strangers' (see allowStrangers).
	memberClaims *rate.Limiter
	answers      *clientLimits // answer bytes to each untrusted address
	seenMACs     seenMACs      // operators' requests accepted, against replay
	inFlight     inFlight      // requests of untrusted clients being answered
	answerTotal  *rate.Limiter // answer bytes to all of them together
	// outageSlots bounds the outages listings computed at once.
	outageSlots chan struct{}
	perClient   streamCounts // open event streams by client
}

// New returns a Server. It does not listen; see Serve or use it as a Handler.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("api: Options.Store is required")
	}
	if opts.Identity == nil {
		return nil, errors.New("api: Options.Identity is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Clock == nil {
		opts.Clock = clock.New(clock.Options{System: opts.Now})
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 256
	}
	if opts.MaxEventStreams <= 0 {
		opts.MaxEventStreams = DefaultMaxEventStreams
	}
	if opts.PublicRate <= 0 {
		opts.PublicRate = 20
		if opts.Public {
			opts.PublicRate = 5
		}
	}
	if opts.PublicBurst <= 0 {
		opts.PublicBurst = 1000
		if opts.Public {
			opts.PublicBurst = 50
		}
	}
	if opts.StrangersRate <= 0 {
		opts.StrangersRate = 10 * opts.PublicRate
	}
	if opts.StrangersBurst <= 0 {
		opts.StrangersBurst = 2 * opts.PublicBurst
	}
	if opts.AnswerRate <= 0 {
		opts.AnswerRate = 1 << 20
		if opts.Public {
			opts.AnswerRate = 256 << 10
		}
	}
	if opts.AnswerBurst <= 0 {
		opts.AnswerBurst = 16 << 20
		if opts.Public {
			opts.AnswerBurst = 4 << 20
		}
	}
	if opts.StrangersAnswerRate <= 0 {
		opts.StrangersAnswerRate = 4 << 20
	}
	if opts.StrangersAnswerBurst <= 0 {
		opts.StrangersAnswerBurst = 64 << 20
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.DefaultChannel == "" {
		opts.DefaultChannel = DefaultChannelName
	}
	if _, err := message.NormaliseChannelName(opts.DefaultChannel); err != nil {
		return nil, fmt.Errorf("api: default channel %q: %w", opts.DefaultChannel, err)
	}
	allowed := make(map[string]bool, len(opts.AllowedHosts))
	for _, h := range opts.AllowedHosts {
		c := canonicalHost(h)
		if c == "" || strings.ContainsAny(c, ":/[]@ \t") && !isIP(c) {
			return nil, fmt.Errorf("api: AllowedHosts entry %q: want a host name without scheme or port, e.g. \"lifeline.local\"", h)
		}
		allowed[c] = true
	}
	s := &Server{
		opts:        opts,
		start:       opts.Now(),
		mux:         http.NewServeMux(),
		names:       newChannelNames(maxChannelNames),
		allowed:     allowed,
		streams:     make(chan struct{}, opts.MaxEventStreams),
		outageSlots: make(chan struct{}, maxOutageListings),
		closing:     make(chan struct{}),
	}
	s.limits = newClientLimits(opts.PublicRate, opts.PublicBurst)
	s.strangers = rate.NewLimiter(rate.Limit(opts.StrangersRate), opts.StrangersBurst)
	s.memberClaims = rate.NewLimiter(rate.Limit(opts.StrangersRate), opts.StrangersBurst)
	s.answers = newClientLimits(opts.AnswerRate, opts.AnswerBurst)
	s.answerTotal = rate.NewLimiter(rate.Limit(opts.StrangersAnswerRate), opts.StrangersAnswerBurst)
	s.routes()
	s.handler = s.hostGuard(s.operatorAuth(s.metered(s.mux)))
	return s, nil
}

func (s *Server) routes() {
	// Each path has its method-specific routes plus a method-less route
	// that only answers 405: ServeMux's own 405 is plain text, and every
	// answer of this API is JSON. The more specific pattern wins.
	type route struct {
		method  string
		handler http.HandlerFunc
	}
	for path, rs := range map[string][]route{
		"/api/v1/status":         {{"GET", s.getStatus}},
		"/healthz":               {{"GET", s.getHealth}},
		"/metrics":               {{"GET", metricsHandler(s).ServeHTTP}},
		"/api/v1/messages":       {{"GET", s.listMessages}, {"POST", s.localOnly(s.postMessage)}},
		"/api/v1/messages/{id}":  {{"GET", s.getMessage}},
		"/api/v1/envelopes":      {{"POST", s.limited(s.postEnvelope)}},
		"/api/v1/batch":          {{"POST", s.postEnvelopeBatch}},
		"/api/v1/wipe":           {{"POST", s.localOnly(s.postWipe)}},
		"/api/v1/backup":         {{"GET", s.localOnly(s.getBackup)}},
		"/api/v1/export":         {{"GET", s.localOnly(s.getExport)}},
		"/api/v1/keychange":      {{"POST", s.localOnly(s.postKeyChange)}},
		"/api/v1/missing":        {{"POST", s.postMissing}},
		"/api/v1/envelopes/{id}": {{"GET", s.getEnvelope}},
		"/api/v1/events":         {{"GET", s.events}},
		"/api/v1/outages":        {{"GET", s.getOutages}},
		"/api/v1/time":           {{"POST", s.limited(s.postTime)}},
		"/api/v1/settings":       {{"GET", s.localOnly(s.getSettings)}, {"PUT", s.localOnly(s.putSettings)}},
	} {
		allow := make([]string, 0, len(rs))
		for _, r := range rs {
			s.mux.HandleFunc(r.method+" "+path, r.handler)
			allow = append(allow, r.method)
			if r.method == "GET" {
				allow = append(allow, "HEAD")
			}
		}
		allowed := strings.Join(allow, ", ")
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, path, allowed)
		})
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s (see docs/API.md)", r.URL.Path)
	})
	if s.opts.App != nil {
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: GET, HEAD)", r.Method, r.URL.Path)
				return
			}
			s.opts.App.ServeHTTP(w, r)
		})
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// hostGuard serves a request only if it is addressed to this node by a
// name a browser cannot be tricked into using for it.
//
// The API has no login and field nodes listen on every interface. In a DNS
// rebinding attack a web page the phone visits (http://evil.example) makes
// its own name resolve to the node's address; the browser then treats the
// node as same-origin with the page, which can read decrypted direct
// messages and post as the node. But the browser still sends
// "Host: evil.example". So the Host header must be an IP literal, localhost
// (which browsers resolve themselves, never through DNS), or a name listed
// in Options.AllowedHosts; otherwise 421 Misdirected Request.
//
// State-changing requests (every method but GET, HEAD and OPTIONS) must in
// addition not come from another origin: an Origin header, when present,
// must name the host the request was sent to, and Sec-Fetch-Site must not
// be "cross-site"; otherwise 403. Tools such as curl send neither header.
// This is a second line behind the Content-Type check (see contentType),
// which stays.
func (s *Server) hostGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.AnswersTo(r.Host) {
			writeError(w, http.StatusMisdirectedRequest,
				"this node does not answer to the host name %q: use its IP address or localhost, "+
					"or add the name to the node's allowed hosts (api.Options.AllowedHosts)", r.Host)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
				writeError(w, http.StatusForbidden, "cross-origin request refused: Origin %q is not this node (%s)", o, r.Host)
				return
			}
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
				writeError(w, http.StatusForbidden, "cross-site request refused")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// AnswersTo reports whether the API serves requests whose Host header is
// host (with or without a port): an IP literal, localhost, or a name in
// Options.AllowedHosts. A kit's captive portal answers the other names
// itself (package kit), so that this check stays the only one.
func (s *Server) AnswersTo(host string) bool {
	h := canonicalHost(hostOnly(host))
	return isIP(h) || h == "localhost" || s.allowed[h]
}

// hostOnly strips the port, if any, from a Host header, and the brackets
// from an IPv6 literal.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// canonicalHost lower-cases a host name and drops a trailing dot, so
// "LifeLine.Local." and "lifeline.local" match.
func canonicalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// isIP reports whether h is an IPv4 or IPv6 literal, with or without an
// IPv6 zone.
func isIP(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

// sameOrigin reports whether an Origin header names the host and port the
// request was sent to. Default ports are made explicit on both sides, so
// "http://lifeline.local" matches "Host: lifeline.local:80". An opaque
// origin ("null", from sandboxed frames and some redirects) never matches.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	reqScheme := "http"
	if r.TLS != nil {
		reqScheme = "https"
	}
	return hostPort(u.Host, u.Scheme) == hostPort(r.Host, reqScheme)
}

// hostPort normalises host[:port] to lower-case host and explicit port.
func hostPort(hp, scheme string) string {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		h, p = hostOnly(hp), ""
	}
	if p == "" {
		p = "80"
		if scheme == "https" {
			p = "443"
		}
	}
	return net.JoinHostPort(canonicalHost(h), p)
}

// Close ends every open event stream. Requests of other kinds are not
// affected. It is safe to call more than once.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// ShutdownTimeout is how long Serve waits for requests in flight once its
// context ends.
const ShutdownTimeout = 5 * time.Second

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// event streams are told to end, requests in flight get ShutdownTimeout to
// finish. It closes ln. It returns nil after a shutdown asked for by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.ServeHandler(ctx, ln, s)
}

// ServeHandler is Serve with h in front of the API: h serves what it
// answers itself (a kit's portal) and hands the rest to s.
func (s *Server) ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// ReadTimeout covers reading the (bounded) body; there is no
		// WriteTimeout because event streams are long-lived. Event writes
		// carry their own deadline instead.
		ReadTimeout: s.opts.ReadTimeout,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
	hs.RegisterOnShutdown(s.Close)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("api: shutdown: %w", err), hs.Close())
	}
	<-errc // http.ErrServerClosed once Serve has returned
	return err
}

func (s *Server) now() time.Time { return s.opts.Clock.Now() }

// stamp is the time for what the node signs (clock.Clock.Stamp).
func (s *Server) stamp() time.Time { return s.opts.Clock.Stamp() }

// writeJSON writes v with the given status. An encoding or write error
// after the header has gone out is ignored: the client sees a cut response,
// and nothing better can be sent at that point.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, ErrorBody{Error: fmt.Sprintf(format, args...)})
}

// internalError logs a failure of the node itself and tells the client
// only that it happened: internal detail (paths, database state) stays in
// the log.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.opts.Logger.Error("api: "+what, "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "%s failed on the node; see its log", what)
}

// messageError reports whether err is the message package rejecting an
// envelope: the sender's fault, answered with 422 and the error's text.
func messageError(err error) bool {
	for _, target := range []error{
		message.ErrVersion, message.ErrTruncated, message.ErrTooLarge, message.ErrMalformed,
		message.ErrSignature, message.ErrFuture, message.ErrExpired, message.ErrBadKey,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// channelNames remembers the names behind channel ids the node has sent
// to, so listings can show "general" rather than 8 hex bytes. The id is a
// hash: a name cannot be recovered from it any other way.
//
// Only the node's own successful sends add names (see postMessage): a name
// merely asked about in a query is not remembered, or any client on the
// Wi-Fi could fill the table with junk. When the table is full the least
// recently used name (added or looked up) is forgotten, so a name in use
// is never crowded out for good.
type channelNames struct {
	mu  sync.Mutex
	max int
	m   map[message.ChannelID]*list.Element // of channelName
	lru list.List                           // front: most recently used
}

type channelName struct {
	id   message.ChannelID
	name string
}

func newChannelNames(max int) *channelNames {
	return &channelNames{max: max, m: make(map[message.ChannelID]*list.Element)}
}

func (c *channelNames) add(id message.ChannelID, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		c.lru.MoveToFront(e)
		return
	}
	for len(c.m) >= c.max && c.lru.Len() > 0 {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(channelName).id)
	}
	c.m[id] = c.lru.PushFront(channelName{id, name})
}

func (c *channelNames) name(id message.ChannelID) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return "", false
	}
	c.lru.MoveToFront(e)
	return e.Value.(channelName).name, true
}
