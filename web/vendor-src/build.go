//go:build ignore

// Command build bundles entry.js and the @noble packages that npm ci put in
// node_modules into ../app/vendor/noble.js, one minified ES module for the
// page's oldest browsers, and writes ../app/vendor/VENDOR.md with the
// versions, the npm integrity hashes and the bundle's SHA-256.
//
// Run it from this directory after `npm ci` (make vendor-js does both):
//
//	go run build.go
//
// esbuild is used as a Go module so that building needs no esbuild binary
// from npm; the node's own build needs neither.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/evanw/esbuild/pkg/api"

	"lifeline/web/build/webbuild"
)

const (
	outDir = "../app/vendor"
	outMD  = outDir + "/VENDOR.md"
)

// bundle is one vendored file: an entry point here, the file it becomes,
// and the npm packages it takes code from.
type bundle struct {
	entry, out string
	packages   []string
	what       string // for VENDOR.md
}

// bundles are the vendored files. The QR encoder is its own file so that
// the crypto bundle's checksum and review stay separate from it.
var bundles = []bundle{
	{"entry.js", "noble.js", []string{"@noble/curves", "@noble/hashes", "@noble/ciphers"},
		"the page's cryptography: `ed25519`, `x25519`, `sha256`, `sha512`, `hkdf`, `randomBytes`, `chacha20poly1305`, `xchacha20poly1305`"},
	{"entry-qr.js", "qr.js", []string{"uqr"}, "the QR code encoder for key backups and team invites: `encode`"},
}

// tooNew are built-ins the page's oldest browsers (webbuild.Engines) lack. esbuild lowers syntax, not
// library calls, so the bundle is searched for them: a hit fails the build
// rather than a phone in the field. globalThis and Object.hasOwn are defined
// by shims.js where missing, so they are not searched for.
var tooNew = map[string]*regexp.Regexp{
	"Array.prototype.at (Chrome 92)":       regexp.MustCompile(`\.at\(`),
	"Array.prototype.flat (Chrome 69)":     regexp.MustCompile(`\.flat(Map)?\(`),
	"findLast (Chrome 97)":                 regexp.MustCompile(`\.findLast(Index)?\(`),
	"Object.fromEntries (Chrome 73)":       regexp.MustCompile(`Object\.fromEntries`),
	"String.prototype.replaceAll (Chr 85)": regexp.MustCompile(`\.replaceAll\(`),
	"String.prototype.matchAll (Chr 73)":   regexp.MustCompile(`\.matchAll\(`),
	"structuredClone (Chrome 98)":          regexp.MustCompile(`structuredClone`),
	"queueMicrotask (Chrome 71)":           regexp.MustCompile(`queueMicrotask`),
	"Promise.any/allSettled (Chrome 76)":   regexp.MustCompile(`Promise\.(any|allSettled)`),
	"WeakRef (Chrome 84)":                  regexp.MustCompile(`WeakRef|FinalizationRegistry`),
}

type lock struct {
	Packages map[string]struct {
		Version   string `json:"version"`
		Integrity string `json:"integrity"`
		License   string `json:"license"`
	} `json:"packages"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run() error {
	var l lock
	b, err := os.ReadFile("package-lock.json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("package-lock.json: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	md.WriteString(vendorHead)
	for _, bd := range bundles {
		for _, p := range bd.packages {
			lp := l.Packages["node_modules/"+p]
			fmt.Fprintf(&md, "| `%s` | `%s` | %s | %s | `%s` |\n", bd.out, p, lp.Version, lp.License, lp.Integrity)
		}
	}
	md.WriteString(vendorMiddle)
	for _, bd := range bundles {
		js, err := build(l, bd)
		if err != nil {
			return fmt.Errorf("%s: %w", bd.out, err)
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(js)
		zw.Close()
		sum := sha256.Sum256(js)
		if err := os.WriteFile(filepath.Join(outDir, bd.out), js, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&md, "- `%s`, %s: SHA-256 `%x`, %d bytes, %d gzipped\n", bd.out, bd.what, sum, len(js), gz.Len())
		fmt.Printf("%s: %d bytes, %d gzipped, sha256 %x\n", bd.out, len(js), gz.Len(), sum)
	}
	md.WriteString(vendorTail)
	return os.WriteFile(outMD, []byte(md.String()), 0o644)
}

// build bundles one vendored file and checks it against the targets.
func build(l lock, bd bundle) ([]byte, error) {
	// The installed packages must be the locked ones: a stale node_modules
	// would otherwise be bundled under the lock's versions.
	var banner []string
	for _, p := range bd.packages {
		lp, ok := l.Packages["node_modules/"+p]
		if !ok {
			return nil, fmt.Errorf("package-lock.json does not lock %s", p)
		}
		var installed struct{ Version string }
		pj, err := os.ReadFile(filepath.Join("node_modules", p, "package.json"))
		if err != nil {
			return nil, fmt.Errorf("%s is not installed: run npm ci first (%v)", p, err)
		}
		if err := json.Unmarshal(pj, &installed); err != nil {
			return nil, fmt.Errorf("%s/package.json: %w", p, err)
		}
		if installed.Version != lp.Version {
			return nil, fmt.Errorf("node_modules has %s %s, package-lock.json locks %s: run npm ci", p, installed.Version, lp.Version)
		}
		banner = append(banner, p+" "+lp.Version+" ("+lp.License+")")
	}
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{bd.entry},
		Bundle:      true,
		Format:      api.FormatESModule,
		Engines:     webbuild.Engines(),
		// The app's targets and overrides: see webbuild.Supported.
		Supported:         webbuild.Supported(),
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		TreeShaking:       api.TreeShakingTrue,
		// The packages' full licences are appended below instead of
		// esbuild's scattered legal comments.
		LegalComments: api.LegalCommentsNone,
		Charset:       api.CharsetUTF8,
		Banner: map[string]string{"js": "/* " + strings.Join(banner, ", ") +
			", with shims for old browsers. Built by web/vendor-src (make vendor-js); see VENDOR.md. */"},
		LogLevel: api.LogLevelWarning,
		Write:    false,
		Outfile:  filepath.Join(outDir, bd.out),
	})
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("esbuild failed with %d errors (above)", len(res.Errors))
	}
	if len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("esbuild wrote %d files, want 1", len(res.OutputFiles))
	}
	js := res.OutputFiles[0].Contents
	// The Safari < 14.1 bug: a rest element in an array pattern, in a
	// declaration or assignment, a for-of head, or a parameter list.
	if m := webbuild.ArrayRest(js); m != "" {
		return nil, fmt.Errorf("the bundle has an array rest pattern (%s), which Safari 14.0 may get wrong: declare destructuring unsupported and find another way", m)
	}
	var found []string
	for name, re := range tooNew {
		if re.Match(js) {
			found = append(found, name)
		}
	}
	if len(found) > 0 {
		sort.Strings(found)
		return nil, fmt.Errorf("the bundle uses built-ins the target browsers lack: %s", strings.Join(found, "; "))
	}
	notice, err := licences(bd.packages)
	if err != nil {
		return nil, err
	}
	return append(js, notice...), nil
}

// licences returns one legal comment (/*!, which bundlers keep) holding
// every bundled package's LICENSE: the copyright lines of all, and the
// permission text once where it is the same.
func licences(packages []string) ([]byte, error) {
	var names, copyrights []string
	var text string
	seen := map[string]bool{}
	for _, p := range packages {
		b, err := os.ReadFile(filepath.Join("node_modules", p, "LICENSE"))
		if err != nil {
			return nil, err
		}
		var rest []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.HasPrefix(line, "Copyright") {
				if !seen[line] {
					seen[line] = true
					copyrights = append(copyrights, line)
				}
				continue
			}
			rest = append(rest, line)
		}
		r := strings.TrimSpace(strings.Join(rest, "\n"))
		if text != "" && r != text {
			return nil, fmt.Errorf("%s's licence differs from the others': list it on its own", p)
		}
		text = r
		names = append(names, p)
	}
	if strings.Contains(text, "*/") {
		return nil, fmt.Errorf("a licence contains */")
	}
	c := "\n/*!\n" + strings.Join(names, ", ") + ":\n\n" + strings.Join(copyrights, "\n") + "\n\n" + text + "\n*/\n"
	return []byte(c), nil
}

const vendorHead = `# Vendored JavaScript

The page's third-party code, bundled into minified ES modules for the page's
oldest browsers (Chrome and Android WebView 67, Samsung Internet 9.2, iOS Safari
14, Firefox 68, Edge 79). They are committed so that building the node never
needs npm. This file is written by the build; do not edit it.

| file | package | version | licence | npm integrity (package-lock.json) |
| --- | --- | --- | --- | --- |
`

const vendorMiddle = `
- ` + "`noble.js`" + `: the audited [@noble](https://paulmillr.com/noble/) libraries by Paul Miller.
- ` + "`qr.js`" + `: [uqr](https://github.com/unjs/uqr), a QR code encoder after Project Nayuki's.

All are MIT licensed; each file ends with its packages' licence text and
copyright lines.

`

const vendorTail = `
Old browsers: esbuild lowers newer syntax (class fields, ` + "`?.`, `??`" + `) for the targets
above, and ` + "`web/vendor-src/shims.js`" + ` defines the two built-ins noble uses that they
lack, where missing: ` + "`globalThis`" + ` (Chrome < 71), through which noble finds
` + "`crypto.getRandomValues`" + `, and ` + "`Object.hasOwn`" + ` (Chrome < 93, Safari < 15.4,
Firefox < 92), which noble calls while building its curves, so that without it the
module would not even load. Destructuring is left as it is: esbuild cannot lower it
and lists Safari 14.0 as lacking it for one WebKit bug with array rest patterns
(` + "`[a, ...r] = x`" + `), which the build checks the bundles do not contain. The build
also fails if a bundle names other built-ins too new for the targets, and
` + "`web/app/proto_vectors.mjs`" + ` (run by ` + "`go test ./message`" + `) runs the page's protocol
code on ` + "`noble.js`" + ` with Chrome 67's set of built-ins.

## Rebuild

` + "```" + `
make vendor-js
` + "```" + `

runs ` + "`npm ci`" + ` in ` + "`web/vendor-src`" + ` (the versions and hashes above, from its
` + "`package-lock.json`" + `), then ` + "`go run build.go`" + ` there, which bundles with esbuild
(the Go module ` + "`github.com/evanw/esbuild`" + `, pinned in the root ` + "`go.mod`" + `, which also builds the app) and
rewrites this file. The output is deterministic: the same lock gives the same
SHA-256. To move to new versions, change the exact versions in
` + "`web/vendor-src/package.json`" + `, run ` + "`npm install`" + ` there, then ` + "`make vendor-js`" + `,
and run ` + "`go test ./message ./web/...`" + `.
`
