// Package webbuild builds the phone web app: it turns the plain ES modules
// of web/app into the files of web/dist that the node embeds and serves.
//
// The node's Go build never runs this and never needs npm: web/dist is
// committed, `make web` (go run ./web/build) rebuilds it, and the tests of
// this package fail when the committed files differ from a fresh build.
//
// What the build does, and why:
//
//   - app.js is bundled with its imports into one minified ES module, so a
//     phone fetches one script instead of a waterfall of modules over a slow
//     Wi-Fi. Syntax newer than the oldest target browsers (Engines) is
//     lowered, and syntax that cannot be lowered fails the build. Built-in
//     library calls are not polyfilled: that is the app's own concern.
//   - style.css is bundled (local @import inlined) and minified the same way.
//   - index.html and i18n/*.json are copied byte for byte; the catalogues
//     must be valid JSON, so a broken one fails here and not on a phone.
//
// The output depends only on the contents of web/app, never on where the
// checkout lives or when the build runs, so a rebuild can be compared byte
// for byte with what is committed.
package webbuild

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// Budget is the most bytes the whole built app (every file of web/dist, as
// stored, before HTTP compression) may take: old phones on a congested kit
// Wi-Fi load it on their first visit.
const Budget = 200 * 1024

// Engines are the oldest browsers the page must run on: Android 8's Chrome
// and WebView 67 (the first Chrome with BigInt, which the crypto needs and
// which cannot be lowered; Samsung Internet 9.2 is Chromium 67 too), Safari
// 14 on macOS and iOS, Firefox 68 and the first Chromium Edge, 79.
func Engines() []api.Engine {
	return []api.Engine{
		{Name: api.EngineChrome, Version: "67"},
		{Name: api.EngineSafari, Version: "14"},
		{Name: api.EngineIOS, Version: "14"},
		{Name: api.EngineFirefox, Version: "68"},
		{Name: api.EngineEdge, Version: "79"},
	}
}

// Supported overrides esbuild's table where it is stricter than the
// browsers. esbuild marks destructuring as missing before Safari 14.1 / iOS
// 14.5 because Safari 14.0 fails a subtest of the ES2015 compatibility table
// (rest elements in array patterns), and then refuses every destructuring
// ("Transforming destructuring to the configured target environment is not
// supported yet"): any `const {a} = o` would fail the build. Safari has had
// destructuring since 10; esbuild's changelog gives this override for such
// cases (--supported:destructuring=true), and CheckSyntax looks for the one
// pattern Safari 14.0 gets wrong.
func Supported() map[string]bool {
	return map[string]bool{"destructuring": true}
}

// Files is a built app: paths relative to the dist folder, with forward
// slashes, mapped to the files' contents.
type Files map[string][]byte

// Names returns the paths of f, sorted.
func (f Files) Names() []string {
	names := make([]string, 0, len(f))
	for name := range f {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Size returns the total bytes of f.
func (f Files) Size() int {
	n := 0
	for _, b := range f {
		n += len(b)
	}
	return n
}

// entryPoints are bundled; each gives the file of the same name in dist.
var entryPoints = []string{"app.js", "style.css"}

// Build builds the app from the folder appDir (web/app) in memory.
func Build(appDir string) (Files, error) {
	abs, err := filepath.Abs(appDir)
	if err != nil {
		return nil, err
	}
	for _, name := range append([]string{"index.html"}, entryPoints...) {
		if _, err := os.Stat(filepath.Join(abs, name)); err != nil {
			return nil, fmt.Errorf("the app has no %s: %w", name, err)
		}
	}
	out := Files{}

	res := api.Build(api.BuildOptions{
		EntryPoints: entryPoints,
		// Paths in messages and in the output are relative to the app, so
		// the output is the same in every checkout.
		AbsWorkingDir: abs,
		// Never written: Write is false. Outdir only names the outputs.
		Outdir:     filepath.Join(abs, "dist"),
		EntryNames: "[dir]/[name]",
		Bundle:     true,
		Write:      false,
		Format:     api.FormatESModule,
		Platform:   api.PlatformBrowser,
		Engines:    Engines(),
		Supported:  Supported(),
		// No source maps in dist: they would double the app's size.
		Sourcemap:         api.SourceMapNone,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		// Module scripts are always decoded as UTF-8, and the page and its
		// style sheet are served as UTF-8, so text in other scripts (the
		// catalogues' fallbacks, Arabic, Persian) stays one to three bytes
		// a character rather than six-byte \u escapes.
		Charset: api.CharsetUTF8,
		// The licences of bundled libraries (noble's MIT notices) are kept,
		// together at the end where they cost nothing to parse.
		LegalComments: api.LegalCommentsEndOfFile,
		LogLevel:      api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		return nil, buildError("bundling", res.Errors)
	}
	outdir := filepath.Join(abs, "dist")
	for _, f := range res.OutputFiles {
		rel, err := filepath.Rel(outdir, f.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("esbuild wrote %s outside dist", f.Path)
		}
		out[filepath.ToSlash(rel)] = f.Contents
	}

	index, err := os.ReadFile(filepath.Join(abs, "index.html"))
	if err != nil {
		return nil, err
	}
	out["index.html"] = index

	catalogues, err := filepath.Glob(filepath.Join(abs, "i18n", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range catalogues {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			var v any
			err := json.Unmarshal(b, &v)
			return nil, fmt.Errorf("i18n/%s is not valid JSON: %v", filepath.Base(p), err)
		}
		out["i18n/"+filepath.Base(p)] = b
	}
	return out, nil
}

// buildError formats esbuild's messages like its command line does.
func buildError(what string, msgs []api.Message) error {
	text := api.FormatMessages(msgs, api.FormatMessagesOptions{Kind: api.ErrorMessage})
	return fmt.Errorf("%s failed:\n%s", what, strings.Join(text, ""))
}

// isAppFile reports whether the file at rel (slash-separated, relative to
// the dist folder) belongs to the built app. Go files do not: a package that
// embeds dist may keep its embed.go there, and Write must leave it alone.
func isAppFile(rel string) bool {
	return path.Ext(rel) != ".go"
}

// Read reads the built app from distDir: every file but Go files.
func Read(distDir string) (Files, error) {
	out := Files{}
	err := filepath.WalkDir(distDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(distDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !isAppFile(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = b
		return nil
	})
	return out, err
}

// Write makes distDir hold exactly files: it writes each file whose
// contents changed, and removes every other app file (Go files stay) and the
// folders left empty, so a file dropped from web/app leaves dist too.
func Write(distDir string, files Files) error {
	old, err := Read(distDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, name := range files.Names() {
		if b, ok := old[name]; ok && bytes.Equal(b, files[name]) {
			continue
		}
		p := filepath.Join(distDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	for name := range old {
		if _, ok := files[name]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(distDir, filepath.FromSlash(name))); err != nil {
			return err
		}
		// Remove the folders this leaves empty, up to distDir.
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if os.Remove(filepath.Join(distDir, filepath.FromSlash(dir))) != nil {
				break // not empty
			}
		}
	}
	return nil
}
