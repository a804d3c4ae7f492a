package kit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// verdict is what an operating system concludes from its probe's answer,
// by the rules each documents or shows in its source (docs/KIT.md):
// "online", "portal" (it opens the sign-in window on the answer's page),
// or "offline".
func verdict(os string, status int, body string) string {
	switch os {
	case "android", "chrome":
		// NetworkMonitor: 204 is online; 200 to 399 is a portal,
		// except a 200 with a body of 4 bytes or less, a failure.
		switch {
		case status == 204:
			return "online"
		case status == 200 && len(body) <= 4:
			return "offline"
		case status >= 200 && status <= 399:
			return "portal"
		}
		return "offline"
	case "apple":
		// CaptiveNetworkSupport: the Success page, else the portal.
		if status == 200 && strings.Contains(body, "<TITLE>Success</TITLE>") && strings.Contains(body, "<BODY>Success</BODY>") {
			return "online"
		}
		return "portal"
	case "windows":
		// NCSI: the file's exact text, else a redirect is a portal.
		if status == 200 && (body == "Microsoft Connect Test" || body == "Microsoft NCSI") {
			return "online"
		}
		if status >= 300 && status <= 399 {
			return "portal"
		}
		return "offline"
	case "firefox":
		// CaptiveDetect: the exact content, else a redirect or another
		// content is a portal.
		if status == 200 && (body == "success\n" || body == `<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>`) {
			return "online"
		}
		if status >= 300 && status <= 399 || status == 200 {
			return "portal"
		}
		return "offline"
	}
	return "unknown os " + os
}

// portalKit is a kit whose API answers to the kit's name and to IP
// addresses (as api.Server.AnswersTo does) with "api".
func portalKit(t *testing.T, now *time.Time) http.Handler {
	t.Helper()
	k := newKit(t, func() time.Time { return *now })
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })
	ours := func(host string) bool {
		h := hostOnly(host)
		_, err := netip.ParseAddr(h)
		return h == DefaultName || err == nil
	}
	return k.Handler(api, ours)
}

// do sends a request from client (an IP address) and returns the answer.
func do(h http.Handler, method, url, client string) *http.Response {
	r := httptest.NewRequest(method, url, nil)
	r.RemoteAddr = client + ":40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProbes: every known probe sees a portal until the phone's person
// pressed the portal's button, and online after, for that phone only.
func TestProbes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := portalKit(t, &now)
	const phone, other = "10.42.0.23", "10.42.0.24"
	url := func(p probe) string {
		path := p.path
		if path == "" {
			path = "/hotspot-detect.html"
		}
		return "http://" + p.host + path
	}
	check := func(who, want string) {
		t.Helper()
		for _, p := range probes {
			res := do(h, "GET", url(p), who)
			b := body(t, res)
			if got := verdict(p.os, res.StatusCode, b); got != want {
				t.Errorf("%s from %s: %d %q: %s concludes %s, want %s", url(p), who, res.StatusCode, b, p.os, got, want)
			}
			if want == "portal" && res.Header.Get("Location") != "http://lifeline.kit/portal" {
				t.Errorf("%s: Location %q, want the portal", url(p), res.Header.Get("Location"))
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", url(p), res.Header.Get("Cache-Control"))
			}
		}
	}
	check(phone, "portal")
	// Any other page of any other name leads to the portal too.
	if res := do(h, "GET", "http://example.com/news?a=1", phone); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "http://lifeline.kit/portal" {
		t.Fatalf("example.com before the portal: %d %s", res.StatusCode, res.Header.Get("Location"))
	}

	// The portal page, then its button: the app.
	res := do(h, "GET", "http://lifeline.kit/portal", phone)
	page := body(t, res)
	if res.StatusCode != 200 || !strings.Contains(page, `id="address">http://lifeline.kit<`) || !strings.Contains(page, "http://10.42.0.1/") || !strings.Contains(page, `action="/portal"`) {
		t.Fatalf("portal page: %d\n%s", res.StatusCode, page)
	}
	check(phone, "portal") // seeing the page releases nothing
	res = do(h, "POST", "http://lifeline.kit/portal", phone)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "http://lifeline.kit/" {
		t.Fatalf("the portal's button: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	check(phone, "online")
	check(other, "portal")
	if res := do(h, "GET", "http://example.com/news", phone); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "http://lifeline.kit/" {
		t.Fatalf("example.com after the portal: %d %s", res.StatusCode, res.Header.Get("Location"))
	}

	// The app and the API are served under the kit's name and addresses,
	// never under a foreign name.
	for _, u := range []string{"http://lifeline.kit/", "http://lifeline.kit/api/v1/status", "http://10.42.0.1/api/v1/status"} {
		if res := do(h, "GET", u, other); body(t, res) != "api" {
			t.Fatalf("%s: not the API", u)
		}
	}
	if res := do(h, "GET", "http://evil.example/api/v1/status", phone); res.StatusCode != http.StatusFound || body(t, res) == "api" {
		t.Fatalf("a foreign name reached the API: %d", res.StatusCode)
	}
	// other opened the app (GET /): released without the button.
	check(other, "online")

	// A phone that stops probing is forgotten after releaseFor; one that
	// keeps probing is not.
	now = now.Add(releaseFor - time.Minute)
	check(phone, "online")
	now = now.Add(releaseFor - time.Minute)
	check(phone, "online")
	check(other, "portal")
}

// TestReleasesBounded: the table keeps at most its size, dropping what
// expired first, then what would expire first.
func TestReleasesBounded(t *testing.T) {
	r := newReleases(3, time.Hour)
	at := time.Unix(1_700_000_000, 0)
	a := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 42, 0, byte(i)}) }
	for i := range 3 {
		r.release(a(i), at.Add(time.Duration(i)*time.Minute))
	}
	now := at.Add(5 * time.Minute)
	r.release(a(3), now)
	if r.refresh(a(0), now) || !r.refresh(a(1), now) || !r.refresh(a(2), now) || !r.refresh(a(3), now) {
		t.Fatal("the oldest release was not the one dropped")
	}
	if n := r.count(now); n != 3 {
		t.Fatalf("%d released, want 3", n)
	}
	for i := 10; i < 10_000; i++ {
		r.release(a(i%250), now)
	}
	if n := len(r.until); n > 3 {
		t.Fatalf("the table grew to %d", n)
	}
	r.release(netip.Addr{}, now) // a request without an address
	if n := len(r.until); n > 3 {
		t.Fatalf("the table grew to %d", n)
	}
}

// TestPortalLanguage: the page speaks the phone's language, right to left
// where it is written so.
func TestPortalLanguage(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := portalKit(t, &now)
	for _, c := range []struct{ accept, lang, dir string }{
		{"", "en", "ltr"},
		{"ar-EG,ar;q=0.9,en;q=0.8", "ar", "rtl"},
		{"de-DE, fa;q=0.7", "fa", "rtl"},
		{"fr-CA", "fr", "ltr"},
		{"xx", "en", "ltr"},
	} {
		r := httptest.NewRequest("GET", "http://lifeline.kit/portal", nil)
		r.Header.Set("Accept-Language", c.accept)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if page := w.Body.String(); !strings.Contains(page, `<html lang="`+c.lang+`" dir="`+c.dir+`">`) {
			t.Errorf("Accept-Language %q: %s", c.accept, page[:min(len(page), 120)])
		}
	}
}

func TestConfigChecks(t *testing.T) {
	for _, ok := range []string{"10.42.0.1", "wlan0", "wlp2s0", "192.168.4.1"} {
		if _, _, err := ParseAddress(ok); err != nil {
			t.Errorf("ParseAddress(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0.0.0.0", "fe80::1", "224.0.0.1", "10.42.0", "a/b", "averyveryverylongname0"} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) took it", bad)
		}
	}
	for _, ok := range []string{"lifeline.kit", "Camp-3.Lifeline.kit.", "lifeline.home.arpa"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"lifeline.local", "lifeline", "10.42.0.1", "-a.kit", "a..kit", "a_b.kit", "http://lifeline.kit"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) took it", bad)
		}
	}
}
