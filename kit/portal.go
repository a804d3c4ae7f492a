package kit

import (
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// PortalPath is the portal page on the app's host: where a phone that
// has not seen it yet is sent, whatever it asked for.
const PortalPath = "/portal"

// A phone is "released" once its person has pressed the portal's button
// (or opened the app): from then on, for releaseFor after its last probe,
// its connectivity probes are answered "online", so the phone keeps the
// Wi-Fi without nagging, and any other name leads straight to the app.
// The table is by address, bounded; see docs/DECISIONS.md (kit mode).
const (
	releaseFor  = 12 * time.Hour
	maxReleased = 4096
)

// probe is one operating system's connectivity check: a host (and a path,
// or any path when empty) and the answer that means "online".
type probe struct {
	host, path string
	os         string
	online     func(w http.ResponseWriter)
}

// Answers that mean "online", as each system's check expects them
// (docs/KIT.md says where each comes from).
var (
	noContent = func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }
	text      = func(ctype, body string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(body))
		}
	}
	appleSuccess = text("text/html", "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>")
)

// probes are the checks the kit knows.
var probes = []probe{
	// Android, ChromeOS and Chrome: HTTP 204 with no body. Anything else
	// from 200 to 399 (a body over 4 bytes for a 200) is a portal.
	{host: "connectivitycheck.gstatic.com", path: "/generate_204", os: "android", online: noContent},
	{host: "connectivitycheck.android.com", path: "/generate_204", os: "android", online: noContent},
	{host: "clients1.google.com", path: "/generate_204", os: "android", online: noContent},
	{host: "clients3.google.com", path: "/generate_204", os: "android", online: noContent},
	{host: "www.google.com", path: "/gen_204", os: "android", online: noContent},
	{host: "www.google.com", path: "/generate_204", os: "android", online: noContent},
	{host: "play.googleapis.com", path: "/generate_204", os: "android", online: noContent},
	{host: "www.gstatic.com", path: "/generate_204", os: "chrome", online: noContent},
	// Apple (iOS, iPadOS, macOS): a page whose title and body are
	// "Success"; older systems ask other hosts of Apple's, any path.
	{host: "captive.apple.com", os: "apple", online: appleSuccess},
	{host: "www.apple.com", path: "/library/test/success.html", os: "apple", online: appleSuccess},
	{host: "www.appleiphonecell.com", os: "apple", online: appleSuccess},
	{host: "www.itools.info", os: "apple", online: appleSuccess},
	{host: "www.ibook.info", os: "apple", online: appleSuccess},
	{host: "www.airport.us", os: "apple", online: appleSuccess},
	{host: "www.thinkdifferent.us", os: "apple", online: appleSuccess},
	// Windows 10 and 11 (NCSI), and Windows 8 and older.
	{host: "www.msftconnecttest.com", path: "/connecttest.txt", os: "windows", online: text("text/plain", "Microsoft Connect Test")},
	{host: "ipv6.msftconnecttest.com", path: "/connecttest.txt", os: "windows", online: text("text/plain", "Microsoft Connect Test")},
	{host: "www.msftncsi.com", path: "/ncsi.txt", os: "windows", online: text("text/plain", "Microsoft NCSI")},
	// Firefox: the exact bytes of these files.
	{host: "detectportal.firefox.com", path: "/canonical.html", os: "firefox",
		online: text("text/html", `<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>`)},
	{host: "detectportal.firefox.com", path: "/success.txt", os: "firefox", online: text("text/plain", "success\n")},
}

// findProbe returns the probe a request to host and path is, or nil.
func findProbe(host, path string) *probe {
	for i := range probes {
		p := &probes[i]
		if p.host == host && (p.path == "" || p.path == path) {
			return p
		}
	}
	return nil
}

// Handler serves a kit's port 80: requests whose Host the API answers to
// (ours reports that: the API's own check, so there is one) go to api,
// except the portal page; every other Host is answered here and never
// reaches the API:
//
//   - a connectivity probe: "online" for a released phone, else a
//     redirect (302) to the portal, which is what makes each system show
//     it;
//   - anything else: a redirect to the app for a released phone, else to
//     the portal.
//
// Redirects go to the app's name, never to anything taken from the
// request, and nothing here may be cached: a phone back on the internet
// must not keep a redirect for a real site.
func (k *Kit) Handler(api http.Handler, ours func(host string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ours(r.Host) {
			k.foreign(w, r)
			return
		}
		if r.URL.Path == PortalPath {
			k.portal(w, r)
			return
		}
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// The person found the app: the phone needs no portal.
			k.released.release(clientAddr(r), k.opts.Now())
		}
		api.ServeHTTP(w, r)
	})
}

func (k *Kit) appURL() string    { return "http://" + k.opts.Name + "/" }
func (k *Kit) portalURL() string { return "http://" + k.opts.Name + PortalPath }

func (k *Kit) foreign(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	host := strings.ToLower(strings.TrimSuffix(hostOnly(r.Host), "."))
	released := k.released.refresh(clientAddr(r), k.opts.Now())
	if p := findProbe(host, r.URL.Path); p != nil {
		if released {
			p.online(w)
			return
		}
		k.log.Debug("kit: connectivity probe answered with the portal", "os", p.os, "from", r.RemoteAddr)
		redirect(w, k.portalURL())
		return
	}
	if released {
		redirect(w, k.appURL())
		return
	}
	redirect(w, k.portalURL())
}

// redirect answers 302 Found to url, with a link for clients that do not
// follow redirects.
func redirect(w http.ResponseWriter, url string) {
	w.Header().Set("Location", url)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusFound)
	_ = redirectPage.Execute(w, url)
}

var redirectPage = template.Must(template.New("redirect").Parse(`<a href="{{.}}">{{.}}</a>` + "\n"))

// portal serves the portal page (GET) and its button (POST), which
// releases the phone and opens the app.
func (k *Kit) portal(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method == http.MethodHead {
			return
		}
		s := portalStrings(r.Header.Get("Accept-Language"))
		_ = portalPage.Execute(w, portalData{portalText: s, Name: k.opts.Name, Addr: k.Addr().String(), Action: PortalPath})
	case http.MethodPost:
		k.released.release(clientAddr(r), k.opts.Now())
		w.Header().Set("Location", k.appURL())
		w.WriteHeader(http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// hostOnly strips the port, if any, from a Host header, and the brackets
// of an IPv6 literal (as the API does).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// releases remembers the released phones by address, each until an
// expiry, at most max of them.
type releases struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	until map[netip.Addr]time.Time
}

func newReleases(max int, ttl time.Duration) *releases {
	return &releases{ttl: ttl, max: max, until: map[netip.Addr]time.Time{}}
}

// release marks a released until now+ttl. When the table is full, expired
// entries go first, then the one closest to expiry: a phone forgotten
// sees the portal once more, nothing worse.
func (r *releases) release(a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.until[a]; !ok && len(r.until) >= r.max {
		var oldest netip.Addr
		var oldestAt time.Time
		for k, t := range r.until {
			if !now.Before(t) {
				delete(r.until, k)
			} else if !oldest.IsValid() || t.Before(oldestAt) {
				oldest, oldestAt = k, t
			}
		}
		if len(r.until) >= r.max {
			delete(r.until, oldest)
		}
	}
	r.until[a] = now.Add(r.ttl)
}

// refresh reports whether a is released, and if so extends its release:
// a phone that keeps probing stays released.
func (r *releases) refresh(a netip.Addr, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.until[a]
	if !ok {
		return false
	}
	if !now.Before(t) {
		delete(r.until, a)
		return false
	}
	r.until[a] = now.Add(r.ttl)
	return true
}

// count returns how many phones are released at now.
func (r *releases) count(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range r.until {
		if now.Before(t) {
			n++
		}
	}
	return n
}
