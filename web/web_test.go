package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, a *App, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	return w
}

// TestAppServed: the embedded app is there, served compressed to browsers
// that accept it, revalidated by ETag, and locked to the node by its
// Content-Security-Policy.
func TestAppServed(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/index.html", "/app.js", "/style.css", "/i18n/en.json", "/i18n/index.json"} {
		w := get(t, a, p, nil)
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Fatalf("GET %s: %d, %d bytes", p, w.Code, w.Body.Len())
		}
	}
	w := get(t, a, "/", nil)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/ is %q", ct)
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	plain := get(t, a, "/app.js", nil)
	zipped := get(t, a, "/app.js", map[string]string{"Accept-Encoding": "gzip, deflate"})
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len()/2 {
		t.Fatalf("gzip: %q, %d bytes against %d", zipped.Header().Get("Content-Encoding"), zipped.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, plain.Body.Bytes()) {
		t.Fatal("the compressed app.js is not app.js")
	}
	if w := get(t, a, "/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip sent to a browser that refused it")
	}
	etag := plain.Header().Get("ETag")
	if w := get(t, a, "/app.js", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("revalidation: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := get(t, a, "/nope.js", nil); w.Code != 404 {
		t.Errorf("a missing file: %d", w.Code)
	}
	raw, gz := a.Size()
	t.Logf("app: %d bytes, %d compressed", raw, gz)
}

// TestLanguages: every catalogue has exactly English's keys, every string
// the app asks for is in English, placeholders match, and the node lists
// each catalogue with its name and direction.
func TestLanguages(t *testing.T) {
	dir := filepath.Join("app", "i18n")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) < 5 {
		t.Fatalf("catalogues: %v %v", files, err)
	}
	load := func(p string) map[string]string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return m
	}
	en := load(filepath.Join(dir, "en.json"))
	placeholders := regexp.MustCompile(`\{\w+\}`)
	for _, f := range files {
		c := load(f)
		for k, v := range en {
			cv, ok := c[k]
			if !ok {
				t.Errorf("%s lacks %q", f, k)
				continue
			}
			// A translation may leave a placeholder out ("one message"
			// needs no {n}), never add one the app does not fill.
			for _, ph := range placeholders.FindAllString(cv, -1) {
				if !slices.Contains(placeholders.FindAllString(v, -1), ph) {
					t.Errorf("%s %q: placeholder %s, which English lacks", f, k, ph)
				}
			}
		}
		for k := range c {
			if _, ok := en[k]; !ok {
				t.Errorf("%s has %q, which English lacks", f, k)
			}
		}
	}
	// Every key the app names is in English. Keys built at run time
	// (state_ + state, radio_ + state, uplink_ + state) are listed whole.
	src, err := os.ReadFile(filepath.Join("app", "app.js"))
	if err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(filepath.Join("app", "index.html"))
	used := regexp.MustCompile(`\btn?\('([a-z_]+)'`).FindAllStringSubmatch(string(src), -1)
	used = append(used, regexp.MustCompile(`data-t(?:-label)?="([a-z_]+)"`).FindAllStringSubmatch(string(html), -1)...)
	for _, u := range used {
		k := u[1]
		if strings.HasSuffix(k, "_") {
			continue // a prefix
		}
		if _, ok := en[k]; !ok {
			if _, ok := en[k+".one"]; !ok {
				t.Errorf("the app asks for %q, which en.json lacks", k)
			}
		}
	}
	for _, k := range []string{"state_queued", "state_stored", "state_left", "state_delivered", "state_refused",
		"radio_down", "radio_detecting", "radio_configuring", "radio_ready", "radio_failed",
		"uplink_up", "uplink_down", "uplink_unknown", "uplink_none"} {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json lacks %q", k)
		}
	}
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	var langs []Language
	if err := json.Unmarshal(get(t, a, "/i18n/index.json", nil).Body.Bytes(), &langs); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range langs {
		got[l.Code] = l.Dir
	}
	for code, dir := range map[string]string{"en": "ltr", "fr": "ltr", "es": "ltr", "ar": "rtl", "fa": "rtl"} {
		if got[code] != dir {
			t.Errorf("/i18n/index.json: %s is %q, want %q", code, got[code], dir)
		}
	}
}
