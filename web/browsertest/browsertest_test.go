package browsertest

import (
	"bytes"
	"fmt"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a test web server on 127.0.0.1 that records the paths it was
// asked for.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	langs []string // Accept-Language of each request
}

func newServer(t *testing.T, pages map[string]string) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.langs = append(s.langs, r.Header.Get("Accept-Language"))
		s.mu.Unlock()
		body, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, ".js"):
			w.Header().Set("Content-Type", "text/javascript")
		case strings.HasSuffix(r.URL.Path, ".txt"):
			w.Header().Set("Content-Type", "text/plain")
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		}
		// Every load comes over the wire, so byte counts are comparable.
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) host() string { return s.Listener.Addr().String() }

func (s *server) requested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

const head = `<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"></head>`

// startTimed starts a browser and logs how long Chromium took.
func startTimed(t *testing.T, opts Options) *Browser {
	t.Helper()
	start := time.Now()
	b := Start(t, opts)
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	return b
}

// TestPhone: the browser is a 412-pixel-wide touch phone in the language
// asked for, and typing reaches the page.
func TestPhone(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body><input id="in"><p id="out"></p>
<script>document.getElementById("in").addEventListener("input", e => {
	document.getElementById("out").textContent = e.target.value })</script></body></html>`})
	b := startTimed(t, Options{Lang: "ar", AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)

	var got struct {
		Width, Height int
		Ratio         float64
		Language      string
		Languages     []string
		Intl          string
		Touch, Coarse bool
	}
	b.Eval(`({
		width: innerWidth, height: innerHeight, ratio: devicePixelRatio,
		language: navigator.language, languages: navigator.languages,
		intl: Intl.DateTimeFormat().resolvedOptions().locale,
		touch: navigator.maxTouchPoints > 0, coarse: matchMedia("(pointer: coarse)").matches,
	})`, &got)
	if got.Width != Width || got.Height != Height || got.Ratio != DeviceScale {
		t.Errorf("viewport %d×%d at %v, want %d×%d at %v", got.Width, got.Height, got.Ratio, Width, Height, DeviceScale)
	}
	if !got.Touch || !got.Coarse {
		t.Errorf("touch %v, coarse pointer %v: want a touch screen", got.Touch, got.Coarse)
	}
	if got.Language != "ar" || len(got.Languages) == 0 || got.Languages[0] != "ar" || !strings.HasPrefix(got.Intl, "ar") {
		t.Errorf("navigator.language %q, languages %q, Intl locale %q: want ar", got.Language, got.Languages, got.Intl)
	}
	srv.mu.Lock()
	langs := slices.Clone(srv.langs)
	srv.mu.Unlock()
	if len(langs) == 0 || !strings.HasPrefix(langs[0], "ar") {
		t.Errorf("Accept-Language %q, want ar first", langs)
	}

	b.Type("#in", "سلام Lifeline")
	b.WaitText("#out", "سلام Lifeline")
	b.SetValue("#in", "درود")
	b.WaitText("#out", "درود")
}

// TestDefaultLanguage: without Lang the phone is in Chromium's default, so
// TestPhone's Arabic came from the option.
func TestDefaultLanguage(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body></body></html>`})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	var lang string
	b.Eval(`navigator.language`, &lang)
	if lang != "en-US" {
		t.Errorf("navigator.language = %q without Lang, want en-US", lang)
	}
}

// TestRequestPolicy: requests to hosts other than the allowed ones are
// failed and recorded; the allowed host is reached.
func TestRequestPolicy(t *testing.T) {
	srv := newServer(t, map[string]string{
		"/": head + `<body><img src="http://127.0.0.2:9/pixel.png"><p id="out"></p><script>
const out = document.getElementById("out");
new WebSocket("ws://127.0.0.2:9/socket");
const get = u => fetch(u).then(r => r.text(), e => "failed");
Promise.all([get("http://example.invalid/x"), get("http://127.0.0.2:9/y"), get("/same.txt")])
	.then(r => { out.textContent = r.join("|") });
</script></body></html>`,
		"/same.txt": "same-host",
	})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	b.WaitText("#out", "failed|failed|same-host")

	blocked := b.Blocked()
	slices.Sort(blocked)
	want := []string{"http://127.0.0.2:9/pixel.png", "http://127.0.0.2:9/y", "http://example.invalid/x", "ws://127.0.0.2:9/socket"}
	if !slices.Equal(blocked, want) {
		t.Errorf("Blocked() = %q, want %q", blocked, want)
	}
	if got := srv.requested(); !slices.Contains(got, "/same.txt") {
		t.Errorf("the server saw %q, want /same.txt among them", got)
	}
}

// TestWorkerRequests: a dedicated worker cannot reach other hosts either
// (names resolve to nothing), and its allowed requests work. Its requests
// are not recorded in Blocked: the tab's network events do not include a
// worker's (see Options.AllowHosts).
func TestWorkerRequests(t *testing.T) {
	srv := newServer(t, map[string]string{
		"/": head + `<body><p id="out"></p><script>
const w = new Worker("/worker.js");
w.onmessage = e => { document.getElementById("out").textContent = e.data };
</script></body></html>`,
		"/worker.js": `const get = u => fetch(u).then(r => r.text(), e => "failed");
Promise.all([get("http://127.0.0.2:9/from-worker"), get("http://example.invalid/from-worker"), get("/same.txt")]).then(r => postMessage(r.join("|")));`,
		"/same.txt": "same-host",
	})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	b.WaitText("#out", "failed|failed|same-host")
}

// TestKitURL: the same server under the kit's name is allowed, and the page
// there is not a secure context, as on a phone; on 127.0.0.1 it would be.
func TestKitURL(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body></body></html>`})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	for _, c := range []struct {
		url    string
		secure bool
	}{{srv.URL, true}, {KitURL(srv.URL), false}} {
		b.Navigate(c.url)
		var got struct {
			Secure bool
			Subtle string
		}
		b.Eval(`({secure: isSecureContext, subtle: typeof crypto.subtle})`, &got)
		if got.Secure != c.secure || (got.Subtle == "object") != c.secure {
			t.Errorf("%s: isSecureContext %v, crypto.subtle %s; want secure %v", c.url, got.Secure, got.Subtle, c.secure)
		}
	}
	if !strings.HasPrefix(KitURL(srv.URL), "http://"+KitHost+":") {
		t.Errorf("KitURL(%s) = %s", srv.URL, KitURL(srv.URL))
	}
}

// TestIsolatedProfiles: two browsers share no storage, and each keeps its
// own across a reload (so the first one's writes did happen).
func TestIsolatedProfiles(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body></body></html>`})
	a := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	a.Navigate(srv.URL)
	b.Navigate(srv.URL)

	const write = `new Promise((resolve, reject) => {
		localStorage.setItem("who", "a");
		const open = indexedDB.open("lifeline", 1);
		open.onupgradeneeded = () => open.result.createObjectStore("kv");
		open.onerror = () => reject(open.error);
		open.onsuccess = () => {
			const tx = open.result.transaction("kv", "readwrite");
			tx.objectStore("kv").put("a", "who");
			tx.oncomplete = () => { open.result.close(); resolve(true) };
			tx.onerror = () => reject(tx.error);
		};
	})`
	const read = `indexedDB.databases().then(dbs => ({
		local: localStorage.getItem("who"),
		dbs: dbs.map(d => d.name),
	}))`
	a.Eval(write, nil)
	a.Reload()

	type storage struct {
		Local *string
		DBs   []string
	}
	var inA, inB storage
	a.Eval(read, &inA)
	b.Eval(read, &inB)
	if inA.Local == nil || *inA.Local != "a" || !slices.Contains(inA.DBs, "lifeline") {
		t.Errorf("the writing browser lost its storage: %+v", inA)
	}
	if inB.Local != nil || len(inB.DBs) != 0 {
		t.Errorf("the other browser sees localStorage %v and IndexedDB databases %q", inB.Local, inB.DBs)
	}
}

// TestScreenshot: a PNG of the whole viewport at the device scale.
func TestScreenshot(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body style="margin:0;background:#0a0"><h1>Lifeline</h1></body></html>`})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	path := filepath.Join(t.TempDir(), "shots", "phone.png")
	b.Screenshot(path)
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	// 412 × 2.625 = 1081.5 and 915 × 2.625 = 2401.875: Chromium rounds.
	if w < 1081 || w > 1082 || h < 2401 || h > 2402 {
		t.Errorf("screenshot is %d×%d pixels, want the viewport at the device scale, about 1082×2402", w, h)
	}
	if r, g, _, _ := img.At(w/2, h-10).RGBA(); g>>8 != 0xaa || r>>8 != 0 {
		t.Errorf("the page's background did not render: pixel %v", img.At(w/2, h-10))
	}
}

// TestFontsRenderArabicAndPersian: the fonts .ci/run installs draw Arabic,
// the letters only Persian has, and Latin, each as its own glyph: a missing
// font draws every letter as the same empty box ("tofu"). The browser's own
// font fallback draws them on a canvas, and the pixels are compared.
// Writes arabic.png to the test's temporary folder for a human to look at.
func TestFontsRenderArabicAndPersian(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body dir="rtl" style="font-family:sans-serif;font-size:28px">
<p>سلام، این یک پیام آزمایشی است: پ چ ژ گ</p><p>مرحبا بالعالم</p><p dir="ltr">Lifeline 0123</p></body></html>`})
	b := startTimed(t, Options{Lang: "fa", AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	b.Screenshot(filepath.Join(t.TempDir(), "arabic.png"))

	// Each letter alone on a canvas, as a string of its pixels' alpha.
	const glyphs = `letters => {
		const c = document.createElement("canvas");
		c.width = 64; c.height = 64;
		const g = c.getContext("2d");
		g.font = "40px sans-serif";
		g.textBaseline = "middle";
		return letters.map(l => {
			g.clearRect(0, 0, 64, 64);
			g.fillText(l, 8, 32);
			const a = g.getImageData(0, 0, 64, 64).data;
			let s = "", ink = 0;
			for (let i = 3; i < a.length; i += 4) { s += a[i] > 127 ? "#" : "."; ink += a[i] > 127 }
			return ink ? s : "";
		});
	}`
	// U+0378 is unassigned: no font has it, so it draws the fallback box.
	letters := []string{"\u0378", "ب", "س", "ع", "ه", "ی", "پ", "چ", "ژ", "گ", "A", "g"}
	var drawn []string
	b.Eval(`(`+glyphs+`)(`+jsonArray(letters)+`)`, &drawn)
	if len(drawn) != len(letters) {
		t.Fatalf("drew %d glyphs for %d letters", len(drawn), len(letters))
	}
	seen := map[string]string{}
	for i, l := range letters {
		if drawn[i] == "" {
			t.Errorf("%q draws nothing", l)
			continue
		}
		if other, ok := seen[drawn[i]]; ok {
			t.Errorf("%q draws the same as %q: the fonts lack it (run .ci/run, which installs them)", l, other)
			continue
		}
		seen[drawn[i]] = l
	}
}

func jsonArray(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = jsString(v)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// TestBytesAndTimings: the bytes of a page load are counted (bodies and
// headers, the last load only), paint timings are there, and the CPU can be
// slowed.
func TestBytesAndTimings(t *testing.T) {
	big := strings.Repeat("x", 20000)
	srv := newServer(t, map[string]string{
		"/":         head + `<body><p id="out">hello</p><script src="/app.js"></script></body></html>`,
		"/app.js":   "/*" + big + "*/ fetch('/data.txt').then(r => r.text()).then(t => { document.getElementById('out').textContent = 'got ' + t.length })",
		"/data.txt": big,
		"/small":    head + `<body>small</body></html>`,
	})
	b := startTimed(t, Options{AllowHosts: []string{srv.host()}})
	b.Navigate(srv.URL)
	b.WaitText("#out", "got 20000")
	// The fetch's bytes are counted when it finishes, before the page
	// hands the text to the script.
	bodies := int64(len(head) + 2*len(big) + 200)
	n := b.BytesTransferred()
	if n < bodies || n > bodies+3*1000 {
		t.Errorf("BytesTransferred = %d, want the bodies (about %d) and three responses' headers", n, bodies)
	}
	t.Logf("page load: %d bytes", n)

	p := b.PaintTimings()
	if p.FirstContentfulPaint <= 0 || p.FirstPaint > p.FirstContentfulPaint {
		t.Errorf("paint timings %+v", p)
	}
	t.Logf("first paint %v, first contentful paint %v", p.FirstPaint, p.FirstContentfulPaint)

	b.Navigate(srv.URL + "/small")
	if n := b.BytesTransferred(); n > 2000 {
		t.Errorf("BytesTransferred after loading a small page = %d: the previous load was counted too", n)
	}

	// The same work in the page, then with the CPU four times slower. The
	// work is long enough (about 100 ms) to span Chromium's throttling
	// periods; the fastest of three unthrottled runs (the first compiles
	// it) is the one a busy machine disturbed least.
	const work = `(() => { const t = performance.now(); let x = 0; for (let i = 0; i < 2e7; i++) x += Math.sqrt(i); return performance.now() - t })()`
	fast := math.Inf(1)
	for range 3 {
		var ms float64
		b.Eval(work, &ms)
		fast = min(fast, ms)
	}
	var slow float64
	b.ThrottleCPU(4)
	b.Eval(work, &slow)
	b.ThrottleCPU(1)
	t.Logf("the work took %.1f ms, and %.1f ms with the CPU throttled 4×", fast, slow)
	if slow < 2*fast {
		t.Errorf("with the CPU throttled 4×, the work took %.1f ms against %.1f ms", slow, fast)
	}
}

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// TestFailureShowsThePage: a failed wait shows what the page logged and
// threw, which is what makes a failure in CI debuggable.
func TestFailureShowsThePage(t *testing.T) {
	srv := newServer(t, map[string]string{"/": head + `<body><p id="out">waiting</p><script>
console.log("page says hello");
setTimeout(() => { throw new Error("boom in the page") }, 0);
</script></body></html>`})
	rec := &recorder{TB: t}
	b := Start(rec, Options{AllowHosts: []string{srv.host()}, Timeout: 2 * time.Second})
	b.Navigate(srv.URL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WaitText("#out", "never there")
	}()
	<-done
	rec.mu.Lock()
	msg := rec.msg
	rec.mu.Unlock()
	for _, want := range []string{"never there", `"waiting"`, "page says hello", "boom in the page"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure message lacks %q:\n%s", want, msg)
		}
	}
}

// TestOldPhone: with OldPhone, what Chromium 67 lacks is gone before the
// page's first script runs (so code that calls it fails, as on such a
// phone); without it, it is there.
func TestOldPhone(t *testing.T) {
	page := head + `<body><script>
		window.early = typeof [].flat + ' ' + typeof document.body.replaceChildren + ' ' + typeof Object.fromEntries;
	</script></body></html>`
	srv := newServer(t, map[string]string{"/": page})
	for _, old := range []bool{true, false} {
		b := startTimed(t, Options{AllowHosts: []string{srv.host()}, OldPhone: old})
		b.Navigate(srv.URL)
		var early string
		b.Eval(`window.early`, &early)
		want := "function function function"
		if old {
			want = "undefined undefined undefined"
		}
		if early != want {
			t.Errorf("OldPhone %v: the page's first script saw %q, want %q", old, early, want)
		}
		var removed []string
		b.Eval(`window.__removed || []`, &removed)
		if old && len(removed) < 20 {
			t.Errorf("OldPhone removed only %v", removed)
		}
	}
}
