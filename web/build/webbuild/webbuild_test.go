package webbuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The app's source and the committed build, from this package's folder.
const (
	appDir  = "../../app"
	distDir = "../../dist"
)

// committed reads web/dist, failing the test if it cannot.
func committed(t *testing.T) Files {
	t.Helper()
	files, err := Read(distDir)
	if err != nil {
		t.Fatalf("reading web/dist: %v (run make web)", err)
	}
	if len(files) == 0 {
		t.Fatal("web/dist is empty: run make web")
	}
	return files
}

// TestDistUpToDate: the committed web/dist is what web/app builds to, so
// the node never serves an app older than its source.
func TestDistUpToDate(t *testing.T) {
	want, err := Build(appDir)
	if err != nil {
		t.Fatal(err)
	}
	got := committed(t)
	var stale []string
	for _, name := range want.Names() {
		if b, ok := got[name]; !ok {
			stale = append(stale, name+" is missing")
		} else if !bytes.Equal(b, want[name]) {
			stale = append(stale, fmt.Sprintf("%s differs (%d bytes committed, %d built)", name, len(b), len(want[name])))
		}
	}
	for _, name := range got.Names() {
		if _, ok := want[name]; !ok {
			stale = append(stale, name+" is not built from web/app any more")
		}
	}
	if len(stale) > 0 {
		t.Errorf("web/dist is out of date with web/app: run make web\n  %s", strings.Join(stale, "\n  "))
	}
}

// TestBuildDeterministic: the same sources give the same bytes, wherever
// the checkout is, so TestDistUpToDate compares like with like.
func TestBuildDeterministic(t *testing.T) {
	a, err := Build(appDir)
	if err != nil {
		t.Fatal(err)
	}
	copyDir := filepath.Join(t.TempDir(), "elsewhere", "app")
	if err := os.CopyFS(copyDir, os.DirFS(appDir)); err != nil {
		t.Fatal(err)
	}
	b, err := Build(copyDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("built %v here and %v from a copy", a.Names(), b.Names())
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between a build here and a build from a copy elsewhere", name)
		}
	}
}

// TestDistSyntaxTarget: the bundle has no syntax the oldest target browsers
// lack (a phone would show a blank page: a syntax error stops the module).
func TestDistSyntaxTarget(t *testing.T) {
	files := committed(t)
	js := 0
	for _, name := range files.Names() {
		if filepath.Ext(name) != ".js" {
			continue
		}
		js++
		if err := CheckSyntax(name, files[name]); err != nil {
			t.Error(err)
		}
	}
	if js == 0 {
		t.Error("web/dist has no script")
	}
}

// TestCheckSyntaxCatchesNewSyntax: the check fails on syntax each target
// lacks (so TestDistSyntaxTarget can fail), and passes what they all have.
func TestCheckSyntaxCatchesNewSyntax(t *testing.T) {
	tooNew := map[string]string{
		"logical assignment (Chrome 85)":   "let a, b = 1; a ??= b; export { a }",
		"nullish coalescing (Chrome 80)":   "export const f = (a, b) => a ?? b",
		"optional chaining (Chrome 80)":    "export const f = a => a?.b",
		"class static block (Safari 16.4)": "export class A { static { globalThis.x = 1 } }",
		"#priv in obj (Safari 15)":         "export class A { #p = 1; static has(o) { return #p in o } }",
		"private methods (Safari 15)":      "export class A { #m() {} go() { this.#m() } }",
		"class fields (Chrome 72)":         "export class A { x = 1 }",
		"top-level await (Chrome 89)":      "export const v = await Promise.resolve(1)",
		"regexp v flag (Chrome 112)":       `export const r = /[\p{L}--[a-z]]/v`,
		"named groups (Firefox 78)":        `export const m = /(?<y>\d{4})/.exec("2024").groups.y`,
		"lookbehind (Safari 16.4)":         `export const r = /(?<=@)\w+/`,
		// What a bundle holds once esbuild lowered such literals: it builds,
		// and throws on the old phone when it runs.
		"lowered named group":       `export const r = new RegExp("(?<y>\\d{4})")`,
		"lowered lookbehind":        `export const r = RegExp('(?<=/)x', "g")`,
		"lowered dotAll, backquote": "export const r = new RegExp(`a.b`, `s`)",
		// Declared supported for Safari 14.0 but for this one case.
		"array rest pattern (Safari 14.1)": "export const f = ([a, ...rest]) => rest",
		"array rest assignment":            "let a, r; [a, ...r] = [1, 2]; export { r }",
	}
	for what, src := range tooNew {
		if err := CheckSyntax(what, []byte(src)); err == nil {
			t.Errorf("%s: not caught in %s", what, src)
		}
	}
	supported := map[string]string{
		"BigInt (Chrome 67)":               "export const n = 2n ** 64n",
		"async generators (Chrome 63)":     "export async function* g(s) { for await (const x of s) yield x }",
		"object rest/spread (Chrome 60)":   "export const f = ({ a, ...r }) => ({ ...r, a })",
		"optional catch binding (Chr 66)":  "try { f() } catch { }",
		"spread in calls and arrays":       "export const f = (a, g) => g(...a, ...[1])",
		"supported regexps, also as calls": `export const r = [/a\/b/gimuy, new RegExp("\\d+/\n", "g"), RegExp(x), RegExp("\u{1F600}|\x41")]`,
		"dynamic import (Chrome 63)":       "export const load = () => import('./x.js')",
		"template literals, classes, let":  "export class A { get x() { return `${1}` } }",
		"exponent, destructuring defaults": "export const f = ([a = 1] = []) => a ** 2",
		// esbuild prints every number without separators, so they never
		// reach a bundle.
		"numeric separators": "export const n = 1_000_000",
	}
	for what, src := range supported {
		if err := CheckSyntax(what, []byte(src)); err != nil {
			t.Errorf("%s: flagged, though every target has it: %v", what, err)
		}
	}
}

// TestDistSizeBudget: old phones on a busy kit Wi-Fi load the whole app on
// their first visit.
func TestDistSizeBudget(t *testing.T) {
	files := committed(t)
	if n := files.Size(); n > Budget {
		var sizes []string
		for _, name := range files.Names() {
			sizes = append(sizes, fmt.Sprintf("%8d  %s", len(files[name]), name))
		}
		t.Errorf("web/dist takes %d bytes (%.1f KiB), over the budget of %d bytes (%d KiB):\n%s",
			n, float64(n)/1024, Budget, Budget/1024, strings.Join(sizes, "\n"))
	} else {
		t.Logf("web/dist takes %d bytes (%.1f KiB) of %d KiB", n, float64(n)/1024, Budget/1024)
	}
}

// TestDistNoExternalReferences: the page asks for nothing outside the node
// that serves it.
func TestDistNoExternalReferences(t *testing.T) {
	files := committed(t)
	for _, name := range files.Names() {
		for _, ref := range ExternalRefs(name, files[name]) {
			t.Errorf("%s refers to another host: %s", name, ref)
		}
	}
	for _, m := range MissingRefs(files) {
		t.Errorf("refers to a file that web/dist lacks: %s", m)
	}
}

// TestExternalRefsCatches: the scanner finds each way a page can name
// another host, and ignores comments, licence banners and namespaces.
func TestExternalRefsCatches(t *testing.T) {
	caught := []struct{ name, src string }{
		{"a.js", `fetch("https://api.example.com/x")`},
		{"a.js", `import("http://cdn.example/m.js").then(m => m)`},
		{"a.js", "new EventSource(`//other.example/events`)"},
		{"a.js", `const s = new WebSocket("wss://relay.example/")`},
		{"a.js", `img.src = '//1.2.3.4/p.png'`},
		{"a.css", `body{background:url(https://x.example/bg.png)}`},
		{"a.css", `@import "//fonts.example/css";`},
		{"a.css", `div{background:url( "//x.example/a.png")}`},
		{"index.html", `<script src="https://cdn.example/x.js"></script>`},
		{"index.html", `<link rel=stylesheet href=//fonts.example/f.css>`},
		{"index.html", `<img src='http://192.168.1.1/a.png'>`},
		{"en.json", `{"help": "see https://example.org/help"}`},
	}
	for _, c := range caught {
		if refs := ExternalRefs(c.name, []byte(c.src)); len(refs) == 0 {
			t.Errorf("%s: missed the reference in %s", c.name, c.src)
		}
	}
	clean := []struct{ name, src string }{
		{"a.js", "/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com), https://github.com/paulmillr */\nexport const x = 1 // see https://example.org\n"},
		{"a.js", `document.createElementNS("http://www.w3.org/2000/svg", "svg")`},
		{"a.js", `fetch("/api/v1/status"); fetch(location.origin + "/api/v1/x"); const re = /\/\//`},
		{"a.js", `const u = "http://" + location.host + "/api/v1/events"`},
		{"a.css", `/* from https://example.org */ a{background:url(icon.svg)}`},
		{"index.html", `<!-- https://example.org --><link rel="stylesheet" href="style.css"><a href="#top">`},
	}
	for _, c := range clean {
		if refs := ExternalRefs(c.name, []byte(c.src)); len(refs) > 0 {
			t.Errorf("%s: flagged %q in %s", c.name, refs, c.src)
		}
	}
}

// TestMissingRefs: a file the page names but the build did not copy.
func TestMissingRefs(t *testing.T) {
	files := Files{
		"index.html": []byte(`<link href="style.css" rel="stylesheet"><script type="module" src="./app.js"></script><link rel="icon" href="/icon.svg">`),
		"style.css":  []byte(`a{background:url("img/a.png#x")}`),
		"app.js":     []byte(``),
	}
	got := MissingRefs(files)
	if len(got) != 2 || !strings.Contains(got[0], "icon.svg") || !strings.Contains(got[1], "img/a.png") {
		t.Errorf("MissingRefs = %q, want icon.svg and img/a.png", got)
	}
}

// TestBuildFailures: what must stop the build stops it, with a message
// that says where.
func TestBuildFailures(t *testing.T) {
	for _, c := range []struct {
		what  string
		files map[string]string
		want  string
	}{
		{"missing import", map[string]string{"app.js": `import {x} from './nope.js'; x()`}, "nope.js"},
		{"unlowerable syntax", map[string]string{"app.js": `await 1`}, "await"},
		{"broken catalogue", map[string]string{"i18n/ar.json": `{"a": }`}, "ar.json"},
	} {
		dir := t.TempDir()
		base := map[string]string{"index.html": "<!doctype html>", "app.js": "", "style.css": ""}
		for name, src := range c.files {
			base[name] = src
		}
		for name, src := range base {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Build(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Build error %v, want one naming %q", c.what, err, c.want)
		}
	}
}

// TestWrite: Write leaves dist holding exactly the build, keeps Go files
// (an embed.go may live there) and removes what the app dropped.
func TestWrite(t *testing.T) {
	dist := t.TempDir()
	for name, b := range map[string]string{"embed.go": "package dist", "old.js": "x", "i18n/old.json": "{}"} {
		p := filepath.Join(dist, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := Files{"app.js": []byte("a"), "i18n/ar.json": []byte("{}")}
	if err := Write(dist, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dist)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Names()) != fmt.Sprint(want.Names()) {
		t.Errorf("dist holds %v, want %v", got.Names(), want.Names())
	}
	if _, err := os.Stat(filepath.Join(dist, "embed.go")); err != nil {
		t.Errorf("Write removed embed.go: %v", err)
	}
}

// TestCheckCatchesWhatTheBuildLets: a named group builds (esbuild turns the
// literal into new RegExp), and the check of the built bundle catches it.
func TestCheckCatchesWhatTheBuildLets(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"index.html": `<script type="module" src="app.js"></script><link rel="stylesheet" href="style.css">`,
		"app.js":     `document.title = /(?<year>\d{4})/.exec(document.title).groups.year`,
		"style.css":  "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	problems := Check(files)
	if len(problems) != 1 || !strings.Contains(problems[0], "(?<year>") {
		t.Errorf("Check of a bundle with a lowered named group: %q\nbundle: %s", problems, files["app.js"])
	}
}
