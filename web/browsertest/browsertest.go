// Package browsertest drives a real headless Chromium from Go tests, the
// way a phone on a kit's Wi-Fi uses the node's web app.
//
// Each [Start] launches one Chromium process with its own profile (nothing
// is shared between browsers or tests), sized and behaving like a mid-range
// Android phone (412×915 CSS pixels, device scale 2.625, mobile, touch),
// optionally in another language. The page may reach only the hosts the
// test allows: every other request is failed before it leaves the browser
// and recorded, so a test can prove the page asked for nothing outside the
// node ([Browser.Blocked]).
//
// The helpers wait on conditions in the page with a deadline, never for a
// fixed time, and fail the test with the page's console and its last
// exceptions attached:
//
//	srv := httptest.NewServer(handler) // listens on 127.0.0.1
//	b := browsertest.Start(t, browsertest.Options{
//		Lang:       "ar",
//		AllowHosts: []string{srv.Listener.Addr().String()},
//	})
//	b.Navigate(browsertest.KitURL(srv.URL)) // a plain-http page, like on a phone
//	b.WaitText("#status", "متصل")
//	b.Type("#compose", "مرحبا\n")
//	var n int
//	b.Eval(`document.querySelectorAll(".msg").length`, &n)
//
// Helpers call t.Fatal, so call them from the test's goroutine.
//
// Chromium comes from $CHROMIUM, or /usr/bin/chromium (Debian's package,
// which .ci/run installs). A missing browser fails the test: a skipped
// browser test proves nothing.
package browsertest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The phone the browser plays: a 412×915 CSS-pixel screen at a device scale
// of 2.625 (a 1080×2400 panel), the most common class of Android phone.
const (
	Width       = 412
	Height      = 915
	DeviceScale = 2.625
)

// KitHost is a host name that the browser resolves to 127.0.0.1. A page
// loaded from it is not a secure context, as on a phone that opens the kit's
// http:// address: no crypto.subtle, no service worker. Pages loaded from
// 127.0.0.1 or localhost are secure contexts and would hide code that
// breaks on phones. See [KitURL].
const KitHost = "kit.test"

// KitURL returns u (a URL on 127.0.0.1, such as an httptest.Server's) with
// the host [KitHost]: the same server, seen as a phone sees the kit. The
// request policy treats KitHost:port as 127.0.0.1:port.
func KitURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() != "127.0.0.1" {
		return u
	}
	p.Host = KitHost
	if port := portOf(u); port != "" {
		p.Host += ":" + port
	}
	return p.String()
}

func portOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Port()
}

// Options configure a browser.
type Options struct {
	// Lang is the language of the phone, as a BCP 47 tag ("ar", "fa",
	// "en-GB"): navigator.language and navigator.languages report it, the
	// Accept-Language header carries it, and Intl formats in it. Empty is
	// Chromium's default, en-US.
	Lang string

	// AllowHosts are the host:port pairs the page may reach, such as
	// srv.Listener.Addr().String(). Every request of the page to another
	// host (another port of the same host included) is recorded in
	// Blocked. Host names other than KitHost and localhost resolve to
	// nothing, so a page cannot reach anything by name; an IP address it
	// names is not held back (this sandbox has no other network), only
	// recorded. Requests of a worker are not recorded: the tab's network
	// events do not include them. Navigate to a host not listed fails.
	//
	// An earlier version paused every request (the Fetch domain) and
	// failed those to other hosts; now and then Chromium then never sent a
	// page's request at all (a POST with a body while others were in
	// flight), which hung the page's tests.
	AllowHosts []string

	// OldPhone removes, before any script of any page runs, the built-in
	// functions and objects that Chromium 67 (Android 8's oldest Chrome and
	// WebView, the app's oldest target) lacks: code that calls one fails
	// as it would on such a phone. Syntax is checked by web/build.
	OldPhone bool

	// Init is JavaScript run at the start of every document, before the
	// page's own scripts (after OldPhone's removals): to set up what a
	// real phone would have, such as a wrong clock.
	Init string

	// Headers are sent with every request of the page: X-Forwarded-For,
	// say, makes the page a phone on the kit's Wi-Fi rather than a client
	// on the node's own machine, which the node trusts as its operator.
	Headers map[string]string

	// SystemDNS resolves every host name through the system's resolver,
	// as a phone does, instead of KitHost only: for a test that runs the
	// browser in a network namespace whose DNS is a kit's (cmd/node's
	// captive-portal test). Requests are still recorded against
	// AllowHosts.
	SystemDNS bool

	// Timeout bounds each helper (a navigation, a wait, an evaluation).
	// Zero means 15 seconds: enough on a loaded 2-core machine, short
	// enough that a hang fails the test quickly.
	Timeout time.Duration
}

// Browser is one headless Chromium with one tab. Its methods are for the
// test's goroutine; Blocked, BytesTransferred and Console may also be
// called from others.
type Browser struct {
	t       testing.TB
	timeout time.Duration
	allowed map[string]bool

	ctx         context.Context // the tab's
	cancelTab   context.CancelFunc
	cancelAlloc context.CancelFunc
	wg          sync.WaitGroup // the goroutines that serve the tab's events
	closeOnce   sync.Once

	mu         sync.Mutex
	blocked    []string
	console    []string // the last maxConsole messages
	exceptions []string // the last maxExceptions uncaught exceptions
	loader     cdp.LoaderID
	loaderOf   map[network.RequestID]cdp.LoaderID
	bytes      map[cdp.LoaderID]int64
}

const (
	maxConsole    = 40
	maxExceptions = 5
)

// Start launches Chromium and opens a blank tab. The browser is closed and
// its profile removed when the test ends.
func Start(t testing.TB, opts Options) *Browser {
	t.Helper()
	exe := os.Getenv("CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("no Chromium at %s (%v): run .ci/run, which installs Debian's chromium, or set $CHROMIUM", exe, err)
	}
	b := &Browser{
		t:        t,
		timeout:  opts.Timeout,
		allowed:  map[string]bool{},
		loaderOf: map[network.RequestID]cdp.LoaderID{},
		bytes:    map[cdp.LoaderID]int64{},
	}
	if b.timeout == 0 {
		b.timeout = 15 * time.Second
	}
	for _, h := range opts.AllowHosts {
		b.allowed[strings.ToLower(h)] = true
	}

	// The profile is the test's: removed after the browser is closed (the
	// cleanups run last-registered first, and TempDir registered its own
	// here, before b.Close below).
	profile := t.TempDir()
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // root in CI, and in containers without user namespaces
		chromedp.DisableGPU,
		// Without these, Chromium in a sandbox without internet stalls on
		// its own calls home (QUIC probes, component and variation updates).
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(Width, Height),
	)
	if !opts.SystemDNS {
		// The kit's name for pages that must not be secure contexts.
		// The kit's name resolves to loopback, every other name to
		// nothing: a page cannot reach a host by name. The request
		// policy (onEvent) records every request to a host that is not
		// allowed.
		flags = append(flags, chromedp.Flag("host-resolver-rules", "MAP "+KitHost+" 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"))
	}
	if opts.Lang != "" {
		// --accept-lang sets navigator.language(s) and Accept-Language for
		// every request from the first; --lang and $LANGUAGE do nothing in
		// headless Chromium 156 (measured). Intl follows the locale
		// override set on the tab below.
		flags = append(flags, chromedp.Flag("accept-lang", opts.Lang))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(b.onEvent))
	b.ctx, b.cancelTab, b.cancelAlloc = ctx, cancelTab, cancelAlloc
	t.Cleanup(b.Close)

	// The first action starts the browser. Its context must be the tab's
	// own, without a deadline, or the deadline would end the browser; a
	// browser that hangs at start ends the test through the timer below.
	startTimer := time.AfterFunc(60*time.Second, cancelTab)
	err := chromedp.Do(ctx)
	startTimer.Stop()
	if err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}

	console := chromedp.Console(ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.record(console)
	}()

	b.do("setting up the tab", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(Width, Height,
			chromedp.EmulateScale(DeviceScale), chromedp.EmulateMobile,
			chromedp.EmulateTouch, chromedp.EmulatePortrait)); err != nil {
			return err
		}
		if opts.Lang != "" {
			// ICU wants "ar" or "fa_IR"; a BCP 47 tag's hyphen becomes _.
			locale := strings.ReplaceAll(opts.Lang, "-", "_")
			if _, err := chromedp.Call(ctx, emulation.SetLocaleOverride,
				emulation.SetLocaleOverrideParams{Locale: locale}); err != nil {
				return err
			}
		}
		if len(opts.Headers) > 0 {
			hdr := network.Headers{}
			for k, v := range opts.Headers {
				hdr[k] = v
			}
			if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hdr}); err != nil {
				return err
			}
		}
		var init string
		if opts.OldPhone {
			init = "window.__removed = (" + chrome67 + ")(window);\n"
		}
		if init += opts.Init; init != "" {
			if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
				page.AddScriptToEvaluateOnNewDocumentParams{Source: init}); err != nil {
				return err
			}
		}
		return nil
	})
	return b
}

// isNetwork reports whether u goes over the network (not data:, blob:,
// about:).
func isNetwork(u string) bool {
	for _, p := range []string{"http:", "https:", "ws:", "wss:"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// allows reports whether the policy lets a request to rawURL through.
func (b *Browser) allows(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		switch u.Scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	if host == KitHost {
		host = "127.0.0.1"
	}
	return b.allowed[net.JoinHostPort(host, port)]
}

// record keeps the last console messages and exceptions for failure
// reports.
func (b *Browser) record(messages iter.Seq2[chromedp.ConsoleMessage, error]) {
	for m, err := range messages {
		if err != nil {
			return
		}
		line := m.String()
		if m.URL != "" {
			line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
		}
		b.mu.Lock()
		b.console = appendLast(b.console, line, maxConsole)
		if m.IsException() {
			text := m.Text
			if m.Exception != nil && m.Exception.Exception != nil && m.Exception.Exception.Description != "" {
				text = m.Exception.Exception.Description // the message and its stack
			}
			b.exceptions = appendLast(b.exceptions, text, maxExceptions)
		}
		b.mu.Unlock()
	}
}

func appendLast(s []string, v string, max int) []string {
	s = append(s, v)
	if len(s) > max {
		s = slices.Delete(s, 0, len(s)-max)
	}
	return s
}

// onEvent runs in the tab's message loop, in the order the browser sent the
// events, and before the reply to any later command: so the bytes of a
// load are counted by the time the command that follows it returns. It
// must return fast and send no command.
func (b *Browser) onEvent(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if u := ev.Request.URL; isNetwork(u) && !b.allows(u) {
			b.blocked = append(b.blocked, u)
		}
		l := ev.LoaderID
		if l == "" {
			l = b.loader // a worker's request: the page's
		}
		b.loaderOf[ev.RequestID] = l
	case *network.EventLoadingFinished:
		// encodedDataLength is what came over the wire for the request:
		// the response's headers and its (possibly compressed) body.
		if l, ok := b.loaderOf[ev.RequestID]; ok {
			b.bytes[l] += int64(ev.EncodedDataLength)
			delete(b.loaderOf, ev.RequestID)
		}
	case *network.EventLoadingFailed:
		delete(b.loaderOf, ev.RequestID)
	case *network.EventWebSocketCreated:
		if !b.allows(ev.URL) {
			b.blocked = append(b.blocked, ev.URL)
		}
	case *page.EventFrameNavigated:
		if ev.Frame.ParentID == "" {
			b.loader = ev.Frame.LoaderID
		}
	}
}

// BytesTransferred returns the bytes the current page load took from the
// network so far: the document and every request the page made since, each
// counted when it finished, headers included. A request from a page before
// the last Navigate or Reload does not count.
func (b *Browser) BytesTransferred() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes[b.loader]
}

// Blocked returns the URLs of the requests to hosts outside AllowHosts, in
// order: each was failed, except WebSockets (see Options.AllowHosts).
func (b *Browser) Blocked() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.blocked)
}

// Console returns the page's last console messages, uncaught exceptions
// and browser log entries, oldest first, such as "error: Failed to load
// resource: net::ERR_BLOCKED_BY_CLIENT".
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.console)
}

// do runs f with the helper deadline and fails the test on an error.
func (b *Browser) do(what string, f func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done after %v: %w", b.timeout, err)
		}
		b.t.Fatalf("%s: %v%s", what, err, b.report())
	}
}

// report is what a failure shows of the page.
func (b *Browser) report() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	if len(b.exceptions) > 0 {
		s.WriteString("\n--- last exceptions in the page:")
		for _, e := range b.exceptions {
			s.WriteString("\n" + e)
		}
	}
	if len(b.console) > 0 {
		s.WriteString("\n--- console of the page (last messages):")
		for _, m := range b.console {
			s.WriteString("\n" + m)
		}
	}
	if len(b.blocked) > 0 {
		s.WriteString("\n--- requests blocked (hosts not in Options.AllowHosts): " + strings.Join(b.blocked, ", "))
	}
	return s.String()
}

// Navigate loads rawURL and waits for its load event. A URL whose host is
// not allowed fails the test; about:blank is allowed (it closes the page).
func (b *Browser) Navigate(rawURL string) {
	b.t.Helper()
	if rawURL != "about:blank" && !b.allows(rawURL) {
		b.t.Fatalf("Navigate(%s): the host is not in Options.AllowHosts %v", rawURL, slices.Sorted(maps.Keys(b.allowed)))
	}
	b.do("Navigate("+rawURL+")", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(rawURL))
	})
}

// Reload reloads the page and waits for its load event.
func (b *Browser) Reload() {
	b.t.Helper()
	b.do("Reload", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Reload())
	})
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(selector string) {
	b.t.Helper()
	b.do("WaitVisible("+selector+")", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(selector)))
	})
}

// WaitText waits until the text of the first element matching the CSS
// selector contains substr. On failure it shows the text it last saw.
func (b *Browser) WaitText(selector, substr string) {
	b.t.Helper()
	const check = `(sel, want) => { const e = document.querySelector(sel); return !!e && e.textContent.includes(want) }`
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[bool](check,
		chromedp.WithPollingArgs(selector, substr),
		chromedp.WithPollingInterval(20*time.Millisecond), // in the page, not a sleep here
		chromedp.WithPollingTimeout(b.timeout)))
	if err == nil {
		return
	}
	// The last text, read with a fresh deadline for the report.
	seen := "(no such element)"
	rctx, rcancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer rcancel()
	js := fmt.Sprintf(`(e => e ? e.textContent : null)(document.querySelector(%s))`, jsString(selector))
	if text, rerr := chromedp.Run(rctx, chromedp.Evaluate[*string](js)); rerr == nil && text != nil {
		seen = fmt.Sprintf("%q", *text)
	}
	b.t.Fatalf("WaitText(%s, %q): %v; the element's text is %s%s", selector, substr, err, seen, b.report())
}

// jsString quotes s as a JavaScript string.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// Click clicks the first element matching the CSS selector, once it is
// visible, with mouse events at its centre.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	b.do("Click("+selector+")", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector)))
	})
}

// SetValue sets the value of the form field matching the CSS selector and
// fires input and change events, as when a person edits it and leaves it.
func (b *Browser) SetValue(selector, value string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e) throw new Error("no element matches the selector");
		e.value = %s;
		e.dispatchEvent(new Event("input", {bubbles: true}));
		e.dispatchEvent(new Event("change", {bubbles: true}));
	})()`, jsString(selector), jsString(value))
	b.do("SetValue("+selector+")", func(ctx context.Context) error {
		if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(selector))); err != nil {
			return err
		}
		return chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](js))
	})
}

// Type focuses the element matching the CSS selector and types text into it
// key by key; "\n" is the Enter key.
func (b *Browser) Type(selector, text string) {
	b.t.Helper()
	b.do("Type("+selector+")", func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(selector), text))
	})
}

// Eval evaluates the JavaScript expression js in the page, waits for it if
// it is a promise, and decodes its value, as JSON, into out (a pointer, or
// nil to ignore the value). A thrown exception fails the test.
func (b *Browser) Eval(js string, out any) {
	b.t.Helper()
	b.do("Eval("+js+")", func(ctx context.Context) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
		if err != nil || out == nil {
			return err
		}
		if raw == nil {
			raw = []byte("null") // undefined: out stays as it is
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decoding %s into %T: %w", raw, out, err)
		}
		return nil
	})
}

// ThrottleCPU slows the page's CPU by rate (4 is four times slower): a
// laptop's core becomes an old phone's.
func (b *Browser) ThrottleCPU(rate float64) {
	b.t.Helper()
	b.do("ThrottleCPU", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetCPUThrottlingRate, emulation.SetCPUThrottlingRateParams{Rate: rate})
		return err
	})
}

// Paint holds the paint timings of the current page, from the start of its
// navigation.
type Paint struct {
	FirstPaint           time.Duration // the first pixel of the page rendered
	FirstContentfulPaint time.Duration // the first text or image rendered
}

// PaintTimings waits until the page has painted content and returns when it
// first painted. It reads the browser's own Paint Timing entries, so no
// script in the page is needed.
func (b *Browser) PaintTimings() Paint {
	b.t.Helper()
	const js = `(() => {
		const e = {};
		for (const p of performance.getEntriesByType("paint")) e[p.name] = p.startTime;
		return e["first-contentful-paint"] === undefined ? null : e;
	})()`
	var p Paint
	b.do("PaintTimings", func(ctx context.Context) error {
		m, err := chromedp.Run(ctx, chromedp.Poll[map[string]float64](js,
			chromedp.WithPollingInterval(20*time.Millisecond),
			chromedp.WithPollingTimeout(b.timeout)))
		if err != nil {
			return fmt.Errorf("no first-contentful-paint entry: %w", err)
		}
		ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
		p = Paint{FirstPaint: ms(m["first-paint"]), FirstContentfulPaint: ms(m["first-contentful-paint"])}
		return nil
	})
	return p
}

// Screenshot writes a PNG of the viewport (412×915 CSS pixels at the device
// scale) to path, creating its folder.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	b.do("Screenshot", func(ctx context.Context) error {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, png, 0o644)
	})
}

// Close closes the browser and waits for its process to exit. The test's
// cleanup calls it; calling it again does nothing.
func (b *Browser) Close() {
	b.closeOnce.Do(func() {
		b.cancelTab()   // closes the browser (its first tab owns it)
		b.cancelAlloc() // waits for the process to exit
		b.wg.Wait()     // the event goroutines end with the tab's context
	})
}

// Context returns the tab's chromedp context, for what the helpers do not
// cover: chromedp.Run(b.Context(), action). It ends when the browser closes.
func (b *Browser) Context() context.Context { return b.ctx }

// chrome67 is a function expression that deletes what Chromium 67 lacks
// from a global object; shared with web/app/proto_vectors.mjs.
//
//go:embed chrome67.js
var chrome67 string
