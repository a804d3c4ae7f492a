// Package web is the phone app: the page people on a kit's Wi-Fi use to
// message from a browser, with nothing to install. Its sources are in
// app/ (plain ES modules, one string catalogue per language in app/i18n);
// `make web` bundles them into dist/, which is embedded in the binary and
// served by Handler. The Go build needs neither npm nor the bundler.
//
// The page is served over plain http from the kit: not a secure context.
// Everything it needs comes from the node, which the Content-Security-Policy
// below also enforces: the page can reach nothing else.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed dist
var dist embed.FS

// csp allows the page its own scripts, styles and API, images it makes
// itself (QR codes), and nothing from anywhere else.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// App serves the embedded app. Files are read and compressed once, by New.
type App struct {
	files map[string]*file // by URL path
}

type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

// Language is one entry of /i18n/index.json: a catalogue's code, its own
// name for itself, and its writing direction.
type Language struct {
	Code string `json:"code"`
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

// New loads the embedded app.
func New() (*App, error) { return load(dist) }

func load(fsys fs.FS) (*App, error) {
	root, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, err
	}
	a := &App{files: map[string]*file{}}
	var langs []Language
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		if dir, name := path.Split(p); dir == "i18n/" && strings.HasSuffix(name, ".json") {
			l, err := language(strings.TrimSuffix(name, ".json"), b)
			if err != nil {
				return fmt.Errorf("web: catalogue %s: %w", p, err)
			}
			langs = append(langs, l)
		}
		a.add("/"+p, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if a.files["/index.html"] == nil {
		return nil, fmt.Errorf("web: the app has no index.html: run make web")
	}
	a.files["/"] = a.files["/index.html"]
	idx, err := json.Marshal(langs)
	if err != nil {
		return nil, err
	}
	a.add("/i18n/index.json", idx)
	return a, nil
}

// language reads a catalogue's own description: its "_name" and "_dir".
func language(code string, b []byte) (Language, error) {
	var c struct {
		Name string `json:"_name"`
		Dir  string `json:"_dir"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Language{}, err
	}
	if c.Name == "" || (c.Dir != "ltr" && c.Dir != "rtl") {
		return Language{}, fmt.Errorf("want \"_name\" and \"_dir\" (ltr or rtl)")
	}
	return Language{Code: code, Name: c.Name, Dir: c.Dir}, nil
}

func (a *App) add(p string, b []byte) {
	f := &file{body: b, ctype: mime.TypeByExtension(path.Ext(p))}
	if f.ctype == "" {
		f.ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	f.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	if buf.Len() < len(b) {
		f.gz = buf.Bytes()
	}
	a.files[p] = f
}

// Size returns the app's bytes, uncompressed and as served compressed.
func (a *App) Size() (raw, gz int) {
	for p, f := range a.files {
		if p == "/" {
			continue
		}
		raw += len(f.body)
		if f.gz != nil {
			gz += len(f.gz)
		} else {
			gz += len(f.body)
		}
	}
	return raw, gz
}

// ServeHTTP serves the app's files, compressed when the browser accepts
// gzip. Every answer revalidates (ETag): a kit's app changes when the node
// is updated, and a phone must not keep an old page that speaks an old API.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := a.files[r.URL.Path]
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if f == nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Type", f.ctype)
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// acceptsGzip reports whether Accept-Encoding allows gzip (q above 0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
