package lifeline_test

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lifeline"
	"lifeline/api"
	"lifeline/message"
	"lifeline/web/browsertest"
)

// phoneNode starts a node that serves phones: the page at / of its API,
// reached by the name browsertest.KitHost (not a secure context, as on a
// kit).
func phoneNode(t *testing.T, edit func(*lifeline.Config)) (*started, string) {
	t.Helper()
	n := startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
		c.APIHosts = []string{browsertest.KitHost}
		if edit != nil {
			edit(c)
		}
	})
	return n, browsertest.KitURL("http://" + n.node.APIAddr() + "/")
}

// phone starts a browser that may reach only n, as a phone on n's Wi-Fi,
// in language lang ("" for Chromium's default, en-US), with only the
// built-ins of the app's oldest target browser (Chromium 67).
func phone(t *testing.T, n *started, lang string) *browsertest.Browser {
	t.Helper()
	return browsertest.Start(t, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, Lang: lang, OldPhone: true})
}

// TestPhoneFirstVisit: a first-time visitor lands in the kit's default
// channel and can read and write at once, as themselves.
func TestPhoneFirstVisit(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	if _, err := n.client.Send(ctx, api.SendRequest{Channel: "general", Text: "welcome to the camp"}); err != nil {
		t.Fatal(err)
	}
	b := phone(t, n, "")
	b.Navigate(url)
	b.WaitText("#title", "#general")
	b.WaitText("ol.msgs", "welcome to the camp")
	write(b, "hello from a phone")
	b.WaitText(".msg.mine .state", "On this node")
	var got []api.Message
	waitFor(t, "the phone's message on the node", func() bool {
		got, _ = n.client.List(ctx, api.ListQuery{Channel: "general"})
		return len(got) == 2
	})
	if got[1].Text != "hello from a phone" || got[1].Author == n.node.ID().String() || got[1].Own {
		t.Fatalf("the phone's message on the node: %+v", got[1])
	}
	if bl := b.Blocked(); len(bl) != 0 {
		t.Fatalf("the page asked for something outside the node: %v", bl)
	}
	screenshot(b, "first-visit-en.png")

	// A first visit in Persian, right to left, on another phone.
	fa := phone(t, n, "fa")
	fa.Navigate(url)
	fa.WaitText("ol.msgs", "hello from a phone")
	var dir string
	fa.Eval(`document.documentElement.dir`, &dir)
	if dir != "rtl" {
		t.Fatalf("a Persian phone's page is %q", dir)
	}
	if bl := fa.Blocked(); len(bl) != 0 {
		t.Fatalf("the page asked for something outside the node: %v", bl)
	}
	screenshot(fa, "first-visit-fa.png")
}

// screenshotDir, when set (make screenshots), is where the browser tests
// save the main screens.
var screenshotDir = flag.String("screenshots", "", "save screenshots of the phone app's screens in this `directory`")

func screenshot(b *browsertest.Browser, name string) {
	if *screenshotDir == "" {
		return
	}
	// A conversation as a person sees it: once its history has loaded.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var busy bool
		b.Eval(`!!document.querySelector('ol.msgs[aria-busy]')`, &busy)
		if !busy {
			break
		}
	}
	b.Screenshot(filepath.Join(*screenshotDir, name))
}

func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return u.Host
}

// recordStates makes the page remember every delivery state its messages
// show, in order, in window.__states, so that a test sees states that
// last less than a poll.
const recordStates = `(() => {
	window.__states = [];
	const seen = (e) => { if (e.classList && e.classList.contains('state')) window.__states.push(e.dataset.state); };
	new MutationObserver((ms) => {
		for (const m of ms) {
			if (m.type === 'attributes') seen(m.target);
			for (const n of m.addedNodes) if (n.querySelectorAll) n.querySelectorAll('.state').forEach(seen);
		}
	}).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
})()`

// TestPhonesOnTwoNodes, the main path: two people, each with a phone on
// their own kit, the kits meshed. A channel message and a direct message
// appear live on the other side, and the sender watches the direct
// message go from "on this node" to "left this node" to "delivered" (the
// recipient's page signs the receipt when it has the message and its
// person answers: a page acknowledges only correspondents).
func TestPhonesOnTwoNodes(t *testing.T) {
	a, urlA := phoneNode(t, nil)
	b, urlB := phoneNode(t, func(c *lifeline.Config) { c.Peers = []string{meshAddr(t, a)} })
	waitFor(t, "the kits meshed", func() bool {
		st, err := a.client.Status(ctxT(t))
		return err == nil && st.Summary.Peers == 1
	})

	// Bashir, on kit B, names himself; then puts his phone away.
	pb := phone(t, b, "")
	bashir := myKey(pb, urlB)
	pb.SetValue("#name", "Bashir")
	pb.Click("form.stack button[type=submit]")
	pb.WaitText(".saved", "Saved")
	pb.Navigate(urlB + "#/c/general")
	pb.WaitText("#title", "#general")

	// Amal, on kit A, sees his name arrive, and writes in #general.
	pa := phone(t, a, "")
	amal := myKey(pa, urlA)
	pa.Navigate(urlA + "#/c/general")
	pa.WaitText("#title", "#general")
	write(pa, "Water at the school")
	pb.WaitText("ol.msgs", "Water at the school") // live, on the other kit

	pa.Navigate(urlA + "#/people")
	pa.WaitText("ul.people", "Bashir")
	pb.Navigate(urlB + "api/v1/status") // Bashir leaves the app

	pa.Click(`ul.people a[href="#/d/` + bashir + `"]`)
	pa.WaitText("#title", "Bashir")
	pa.Eval(recordStates, nil)
	write(pa, "Are you safe?")
	pa.WaitText(".msg.mine .state", "Left this node") // kit B took it; nobody opened it yet
	if got := b.node.ID(); got.String() == bashir {
		t.Fatal("Bashir's key is his kit's")
	}
	// The direct message is on kit B, sealed: the kit cannot read it.
	ms, err := b.client.List(ctxT(t), api.ListQuery{To: bashir})
	if err != nil || len(ms) != 1 || ms[0].Text != "" || ms[0].Kind != "direct" {
		t.Fatalf("the DM on kit B: %+v, %v", ms, err)
	}

	// Bashir opens his page: the message is there. Amal sees it
	// delivered once he answers: until then she is a stranger to his page.
	pb.Navigate(urlB + "#/d/" + amal)
	pb.WaitText("ol.msgs", "Are you safe?")
	write(pb, "Yes, at the clinic")
	pa.WaitText("ol.msgs", "Yes, at the clinic")
	pa.WaitText(".msg.mine .state", "Delivered")
	var states []string
	pa.Eval(`window.__states`, &states)
	if !inOrder(states, "queued", "stored", "left", "delivered") {
		t.Fatalf("the DM's states, in order: %v; want queued, stored, left, delivered", states)
	}
	for _, p := range []*browsertest.Browser{pa, pb} {
		if bl := p.Blocked(); len(bl) != 0 {
			t.Fatalf("a page asked for something outside its node: %v", bl)
		}
	}
}

// write sends text in the conversation open on p, as a person types it
// and presses Send.
func write(p *browsertest.Browser, text string) {
	// Once the conversation has loaded: until then its history arrives
	// above the form and moves the send button under the pointer.
	p.WaitVisible("ol.msgs:not([aria-busy])")
	p.SetValue("#compose", text)
	p.Click("form.compose button[type=submit]")
}

// myKey opens the page's settings and returns the person's key.
func myKey(p *browsertest.Browser, url string) string {
	p.Navigate(url + "#/settings")
	p.WaitVisible("#my-key")
	var key string
	p.Eval(`document.getElementById('my-key').textContent`, &key)
	return key
}

// inOrder reports whether want appear in got in that order (got's
// consecutive repeats and other states allowed between).
func inOrder(got []string, want ...string) bool {
	for _, g := range got {
		if len(want) > 0 && g == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// TestPhoneAlert: the alert button asks first, then sends at alert
// priority; other phones show it above everything and vibrate.
func TestPhoneAlert(t *testing.T) {
	n, url := phoneNode(t, nil)
	pa, pb := phone(t, n, ""), phone(t, n, "")
	pb.Navigate(url + "#/c/general")
	pb.WaitText("#title", "#general")
	pb.Eval(`(navigator.vibrate = (p) => { window.__vibrated = p; return true; }, 0)`, nil)
	pa.Navigate(url + "#/c/general")
	pa.WaitText("#title", "#general")
	pa.WaitVisible("ol.msgs:not([aria-busy])") // the form stays where it is
	pa.SetValue("#compose", "Fire near the north gate")
	pa.Click(".compose .alert-btn")
	pa.WaitText(".dialog", "Fire near the north gate") // the confirmation step
	screenshot(pa, "alert-confirm-en.png")
	var sent int
	pa.Eval(`document.querySelectorAll('.msg').length`, &sent)
	if sent != 0 {
		t.Fatal("the alert went before it was confirmed")
	}
	pa.Click("#alert-send")
	pb.WaitText("#alert", "Fire near the north gate")
	pb.WaitText(".msg.alert", "Fire near the north gate")
	var vibrated []int
	pb.Eval(`window.__vibrated || []`, &vibrated)
	if len(vibrated) == 0 {
		t.Error("the receiving phone did not vibrate")
	}
	ms, err := n.client.List(ctxT(t), api.ListQuery{Channel: "general"})
	if err != nil || len(ms) != 1 || ms[0].Kind != "alert" || ms[0].Priority != "alert" {
		t.Fatalf("on the node: %+v, %v", ms, err)
	}
	screenshot(pb, "alert-received-en.png")
}

// TestPhoneOfflineFirst: the person's key and history survive a reload;
// what is written while the node is away waits on the phone and is sent
// once, with the same id, when the node is back.
func TestPhoneOfflineFirst(t *testing.T) {
	dir := t.TempDir()
	n, url := phoneNode(t, func(c *lifeline.Config) { c.DataDir = dir })
	addr := n.node.APIAddr()
	p := phone(t, n, "")
	key := myKey(p, url)
	p.Navigate(url + "#/c/general")
	write(p, "first, while the node is up")
	p.WaitText(".msg.mine .state", "On this node")

	p.Reload()
	p.WaitText("ol.msgs", "first, while the node is up")
	if again := myKey(p, url); again != key {
		t.Fatalf("the key changed on reload: %s, then %s", key, again)
	}

	if err := n.shutdown(); err != nil {
		t.Fatal(err)
	}
	p.Navigate(url + "#/c/general")
	p.WaitText("ol.msgs", "first, while the node is up") // history from the phone
	p.WaitText("#net", "out of reach")
	write(p, "written while the node was away")
	p.WaitText("ol.msgs li:last-child .state", "Waiting on this phone")
	var queued string
	p.Eval(`document.querySelector('ol.msgs li:last-child').dataset.id`, &queued)

	// The node comes back at the same address, with the same store.
	back := startNodeWith(t, dir, func(c *lifeline.Config) {
		c.APIAddr, c.APIHosts = addr, []string{browsertest.KitHost}
	})
	p.WaitText("ol.msgs li:last-child .state", "On this node")
	var ms []api.Message
	waitFor(t, "the queued message on the node", func() bool {
		ms, _ = back.client.List(ctxT(t), api.ListQuery{Channel: "general"})
		return len(ms) == 2
	})
	if ms[1].ID != queued || ms[1].Text != "written while the node was away" || ms[1].Author != key {
		t.Fatalf("on the node: %+v; the phone queued %s", ms[1], queued)
	}
	if bl := p.Blocked(); len(bl) != 0 {
		t.Fatalf("the page asked for something outside the node: %v", bl)
	}
}

// TestPhoneTeam: a team channel made on one phone, joined on another by
// its invite link, is readable by its members only; the node carries it
// sealed.
func TestPhoneTeam(t *testing.T) {
	n, url := phoneNode(t, nil)
	pa, pb, pc := phone(t, n, ""), phone(t, n, ""), phone(t, n, "")
	pa.Navigate(url + "#/chats")
	pa.SetValue("#team-name", "medics")
	pa.Click("#team-name + button")
	pa.WaitVisible("#invite-link")
	var invite string
	pa.Eval(`document.getElementById('invite-link').textContent`, &invite)
	screenshot(pa, "team-invite-en.png")
	pa.Click(".dialog button")
	pa.WaitText("#title", "medics")
	var teamHash string
	pa.Eval(`location.hash`, &teamHash)

	pb.Navigate(browsertest.KitURL(strings.Replace(invite, browsertest.KitHost, "127.0.0.1", 1)))
	pb.WaitText("#title", "medics")
	pc.Navigate(url + teamHash) // knows where, not the secret
	pc.WaitText("#main", "not in this team")

	write(pa, "bring the blue bag")
	pb.WaitText("ol.msgs", "bring the blue bag")
	// The non-member's phone carries the message, and cannot read it.
	waitFor(t, "the non-member's phone holding the team message", func() bool {
		var held []string
		pc.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => { const q = r.result.transaction('msgs').objectStore('msgs').getAll(); q.onsuccess = () => ok(q.result.filter((m) => m.kind === 2).map((m) => m.text)); }; })`, &held)
		if len(held) == 1 && held[0] != "" {
			t.Fatalf("a phone without the team's secret reads its message: %q", held[0])
		}
		return len(held) == 1
	})
	var text string
	pc.Eval(`document.body.textContent`, &text)
	if strings.Contains(text, "blue bag") {
		t.Fatal("a phone without the team's secret shows its message")
	}
	var unread string
	pc.Eval(`document.getElementById('unread').textContent`, &unread)
	if unread != "" {
		t.Fatalf("a team the person is not in counts as unread: %q", unread)
	}
	ms, err := n.client.List(ctxT(t), api.ListQuery{ChannelID: strings.TrimPrefix(teamHash, "#/t/")})
	if err != nil || len(ms) != 1 || ms[0].Kind != "team" || ms[0].Text != "" {
		t.Fatalf("the team message on the node: %+v, %v", ms, err)
	}
}

// TestPhoneKeyBackup: a person restores their key from its backup text on
// another phone at another kit, and finds the direct messages written to
// them there.
func TestPhoneKeyBackup(t *testing.T) {
	n, url := phoneNode(t, nil)
	p := phone(t, n, "")
	key := myKey(p, url)
	p.Click("#show-backup")
	p.WaitVisible("#backup-text")
	p.WaitVisible("img.qr")
	var backup string
	p.Eval(`document.getElementById('backup-text').textContent`, &backup)
	if !strings.HasPrefix(backup, "llk1-") || strings.Contains(backup, key) {
		t.Fatalf("backup text %q", backup)
	}
	screenshot(p, "settings-backup-en.png")
	// The QR code on the screen reads back as the backup text (zbarimg, an
	// independent decoder, on a screenshot of the page).
	shot := filepath.Join(t.TempDir(), "backup.png")
	p.Eval(`document.querySelector('img.qr').scrollIntoView({block: 'center'}), 0`, nil) // clear of the fixed header
	p.Screenshot(shot)
	out, err := exec.Command("zbarimg", "-q", "--raw", shot).Output()
	if err != nil {
		t.Fatalf("zbarimg (Debian's zbar-tools, installed by .ci/run): %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != backup {
		t.Fatalf("the QR code reads %q, the backup text is %q", got, backup)
	}

	// Someone writes to that key on another kit.
	other, otherURL := phoneNode(t, nil)
	if _, err := other.client.Send(ctxT(t), api.SendRequest{To: key, Text: "your sister is at camp 3"}); err != nil {
		t.Fatal(err)
	}
	q := phone(t, other, "")
	q.Navigate(otherURL + "#/settings")
	q.SetValue("#restore", "  "+strings.ToUpper(backup)+"\n") // as typed
	q.Eval(`(window.confirm = () => true, 0)`, nil)
	q.Click("#restore-btn")
	q.WaitVisible("#my-key")
	waitFor(t, "the restored key", func() bool {
		var k string
		q.Eval(`(document.getElementById('my-key') || {}).textContent || ''`, &k)
		return k == key
	})
	q.Navigate(otherURL + "#/d/" + other.node.ID().String())
	q.WaitText("ol.msgs", "your sister is at camp 3")

	// A mistyped backup is refused with the reason, and nothing changes.
	bad := []byte(backup)
	bad[10] ^= 1
	q.Navigate(otherURL + "#/settings")
	q.SetValue("#restore", string(bad))
	q.Click("#restore-btn")
	q.WaitText(".err", "not a key backup")
}

// TestPhoneCourier: a phone that was at kit A walks to kit B, which has
// no link to A and answers at the same address (kits are set up alike).
// B gets what the phone carried from A, sealed direct messages included
// and still sealed, and the phone gets what B holds.
func TestPhoneCourier(t *testing.T) {
	a, url := phoneNode(t, nil)
	addr := a.node.APIAddr()
	ctx := ctxT(t)
	stranger, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fromA := []string{}
	for _, req := range []api.SendRequest{
		{Channel: "general", Text: "camp A: the bridge is passable"},
		{Channel: "general", Text: "camp A: food at noon"},
		{To: stranger.Public().String(), Text: "sealed, for someone at camp B"},
	} {
		id, err := a.client.Send(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		fromA = append(fromA, id)
	}
	p := phone(t, a, "")
	p.Navigate(url + "#/c/general")
	p.WaitText("ol.msgs", "food at noon")
	waitFor(t, "the phone holding what A holds", func() bool {
		var n int
		p.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => { const q = r.result.transaction('msgs').objectStore('msgs').count(); q.onsuccess = () => ok(q.result); }; })`, &n)
		return n >= 3
	})

	if err := a.shutdown(); err != nil {
		t.Fatal(err)
	}
	p.WaitText("#net", "out of reach")
	b := startNodeWith(t, t.TempDir(), func(c *lifeline.Config) {
		c.APIAddr, c.APIHosts = addr, []string{browsertest.KitHost}
	})
	if _, err := b.client.Send(ctx, api.SendRequest{Channel: "general", Text: "camp B: clinic open"}); err != nil {
		t.Fatal(err)
	}
	// The page, still open, finds a kit at the same address: kit B.
	p.WaitText("ol.msgs", "camp B: clinic open")
	waitFor(t, "kit B holding what the phone carried from A", func() bool {
		for _, id := range fromA {
			if _, err := b.client.Message(ctx, id); err != nil {
				return false
			}
		}
		return true
	})
	dm, err := b.client.Message(ctx, fromA[2])
	if err != nil || dm.Kind != "direct" || dm.Text != "" || dm.To != stranger.Public().String() {
		t.Fatalf("the carried DM on B: %+v, %v", dm, err)
	}
	if bl := p.Blocked(); len(bl) != 0 {
		t.Fatalf("the page asked for something outside the node: %v", bl)
	}
}

// unnamedControls lists the page's visible controls that have no
// accessible name (a screen reader would say only "button").
const unnamedControls = `[...document.querySelectorAll('button, a[href], input, select, textarea')]
	.filter((e) => e.offsetParent !== null)
	.filter((e) => !((e.getAttribute('aria-label') || '').trim() || (e.labels && e.labels.length && e.labels[0].textContent.trim()) ||
		e.textContent.trim() || (e.querySelector('img') || {}).alt))
	.map((e) => e.outerHTML.slice(0, 80))`

// overflows reports whether the page is wider than the phone's screen.
const overflows = `document.documentElement.scrollWidth > window.innerWidth + 1`

// TestPhoneScreens walks the main screens in English and in Arabic: the
// Arabic layout is mirrored (right to left), every control has an
// accessible name, nothing overflows the screen even with the phone's
// largest font, and the page asks for nothing outside the node. With
// -screenshots DIR it saves each screen.
func TestPhoneScreens(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	for _, req := range []api.SendRequest{
		{Channel: "general", Text: "Water point open at the school until 18:00."},
		{Channel: "general", Text: "Road to the clinic blocked at the bridge; use the hill track.", Priority: "alert"},
	} {
		if _, err := n.client.Send(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	// People who named themselves, each signed with their own key.
	for _, who := range []message.Profile{{Name: "Bashir", Status: "at the clinic until 18:00"}, {Name: "Nour"}, {Name: "Dr. Haddad", Status: "medical tent B"}} {
		id, err := message.NewIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		e, err := id.NewProfile(who, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.client.PostEnvelope(ctx, e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	for _, lang := range []string{"en", "ar"} {
		p := phone(t, n, lang)
		p.Navigate(url + "#/settings")
		p.SetValue("#name", map[string]string{"en": "Amal", "ar": "أمل"}[lang])
		p.Click("form.stack button[type=submit]")
		p.WaitVisible(".saved")
		var dir, htmlLang string
		p.Eval(`document.documentElement.dir`, &dir)
		p.Eval(`document.documentElement.lang`, &htmlLang)
		wantDir := map[string]string{"en": "ltr", "ar": "rtl"}[lang]
		if dir != wantDir || htmlLang != lang {
			t.Fatalf("%s: html dir=%q lang=%q, want %q %q", lang, dir, htmlLang, wantDir, lang)
		}
		p.Navigate(url + "#/c/general")
		p.WaitText("ol.msgs", "Water point")
		write(p, map[string]string{"en": "I can bring two jerrycans.", "ar": "أستطيع إحضار غالونين."}[lang])
		p.WaitVisible(".msg.mine .state")
		// Mirrored: the first tab sits at the start of the line, which is
		// the right in Arabic; one's own messages at the end.
		var firstTab, lastTab, mine, theirs float64
		p.Eval(`document.querySelector('nav a:first-child').getBoundingClientRect().left`, &firstTab)
		p.Eval(`document.querySelector('nav a:last-child').getBoundingClientRect().left`, &lastTab)
		p.Eval(`document.querySelector('.msg.mine').getBoundingClientRect().left`, &mine)
		p.Eval(`document.querySelector('.msg:not(.mine)').getBoundingClientRect().left`, &theirs)
		if rtl := lang == "ar"; (firstTab > lastTab) != rtl || (mine < theirs) != rtl {
			t.Errorf("%s: tabs at %v…%v, own message at %v, others' at %v: the layout is not %s", lang, firstTab, lastTab, mine, theirs, wantDir)
		}
		for _, screen := range []string{"c/general", "chats", "people", "status", "settings"} {
			p.Navigate(url + "#/" + screen)
			p.WaitVisible("#main > *:not(.loading)")
			if screen == "status" {
				p.WaitVisible("dl.status dd")
			}
			var unnamed []string
			p.Eval(unnamedControls, &unnamed)
			if len(unnamed) > 0 {
				t.Errorf("%s, %s: controls without an accessible name: %q", lang, screen, unnamed)
			}
			screenshot(p, strings.ReplaceAll(screen, "c/", "channel-")+"-"+lang+".png")
			// The phone's largest font (Android: 200 %).
			p.Eval(`(document.documentElement.style.fontSize = '200%', 0)`, nil)
			var wide bool
			p.Eval(overflows, &wide)
			if wide {
				t.Errorf("%s, %s: wider than the screen at 200 %% font size", lang, screen)
			}
			p.Eval(`(document.documentElement.style.fontSize = '', 0)`, nil)
		}
		if bl := p.Blocked(); len(bl) != 0 {
			t.Fatalf("%s: the page asked for something outside the node: %v", lang, bl)
		}
	}
}

// TestPhoneChannelHistory: a channel pages back to its first message; the
// compose box says when a text needs more than one LoRa frame and refuses,
// without cutting, what is over the limit; the language is switched in
// the settings.
func TestPhoneChannelHistory(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	for i := range 120 {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: "history", Text: fmt.Sprintf("history %03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	p := phone(t, n, "")
	p.Navigate(url + "#/c/history")
	p.WaitText("ol.msgs", "history 119")
	var shown int
	p.Eval(`document.querySelectorAll('ol.msgs li').length`, &shown)
	if shown >= 120 { // first screen
		t.Fatalf("the first screen shows %d messages: all of them, not a page", shown)
	}
	// Page back, as a person scrolling up presses "Earlier messages",
	// until the page says it is the first message.
	pages := 0
	defer func() {
		if t.Failed() {
			var html string
			p.Eval(`document.body.innerHTML.slice(0, 300) + ' … ' + document.querySelectorAll('ol.msgs li').length`, &html)
			t.Logf("after %d presses: %s; console %q", pages, html, p.Console())
		}
	}()
	waitFor(t, "paging back to the first message", func() bool {
		var state string
		p.Eval(`(() => {
			if (document.querySelector('.first')) return 'first';
			const b = document.querySelector('button.more');
			if (b.disabled) return 'loading';
			b.click();
			return 'pressed';
		})()`, &state)
		if state == "pressed" {
			pages++
		}
		return state == "first"
	})
	if pages < 2 || pages > 5 {
		t.Errorf("%d presses of Earlier messages for 120 messages in pages of 50", pages)
	}
	p.WaitText(".first", "first message")
	var bodies []string
	p.Eval(`[...document.querySelectorAll('ol.msgs li .body')].map((e) => e.textContent)`, &bodies)
	seen := map[string]bool{}
	for _, b := range bodies {
		seen[b] = true
	}
	if len(bodies) != 120 || len(seen) != 120 || !seen["history 000"] {
		t.Fatalf("paged back to %d messages (%d different), the first %q; console: %q", len(bodies), len(seen), bodies[0], p.Console())
	}

	p.SetValue("#compose", strings.Repeat("a", 100))
	p.WaitText("#size", "one radio frame")
	p.SetValue("#compose", strings.Repeat("a", 600))
	p.WaitText("#size", "3 radio frames")
	long := strings.Repeat("b", 4097)
	p.SetValue("#compose", long)
	p.WaitText("#size", "too long")
	p.Click("form.compose button[type=submit]")
	var kept string
	p.Eval(`document.getElementById('compose').value`, &kept)
	if kept != long {
		t.Fatalf("the compose box holds %d bytes after a refused send, want the %d written", len(kept), len(long))
	}

	p.Navigate(url + "#/settings")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		p.Eval(`!!document.querySelector('#lang option[value="fr"]')`, &ok)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var html string
			p.Eval(`document.getElementById('main').innerHTML.slice(0, 600)`, &html)
			t.Fatalf("the languages are not listed: %s; console %q", html, p.Console())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.SetValue("#lang", "fr")
	p.WaitText("nav", "Réglages")
	p.Reload()
	p.WaitText("nav", "Réglages") // remembered
}

// TestPhoneChats: a channel joined by name; unread counts for
// conversations not open; a direct message started from a pasted key.
func TestPhoneChats(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	p := phone(t, n, "")
	p.Navigate(url + "#/chats")
	p.SetValue("#join-name", " #Water ")
	p.Click("#join-name + button")
	p.WaitText("#title", "#water")
	p.Navigate(url + "#/chats")
	p.WaitText("ul.list", "#water")
	// Half-way through typing a team's name when messages arrive: the
	// lists change under the form, the form stays as it is.
	p.SetValue("#team-name", "medi")
	p.Eval(`document.getElementById('team-name').dataset.typing = 'yes'`, nil)
	for _, text := range []string{"tanker at 3", "tanker late"} {
		if _, err := n.client.Send(ctx, api.SendRequest{Channel: "water", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	p.WaitText(`a[href="#/c/water"] .badge`, "2")
	p.WaitText("#unread", "2")
	var typing string
	p.Eval(`(() => { const e = document.getElementById('team-name'); return e.dataset.typing + ':' + e.value; })()`, &typing)
	if typing != "yes:medi" {
		t.Fatalf("new messages redrew the form being typed in: %q", typing)
	}
	p.Click(`a[href="#/c/water"]`)
	p.WaitText("ol.msgs", "tanker late")
	p.Navigate(url + "#/chats")
	waitFor(t, "the unread count cleared", func() bool {
		var badge bool
		p.Eval(`!!document.querySelector('a[href="#/c/water"] .badge')`, &badge)
		return !badge
	})

	// The operator wrote to this person first: a node acknowledges only
	// its correspondents (receipts.go).
	if _, err := n.client.Send(ctx, api.SendRequest{To: myKey(p, url), Text: "this kit is here for you"}); err != nil {
		t.Fatal(err)
	}
	p.Navigate(url + "#/chats")
	// A key pasted with spaces and in capitals, as copied from a screen.
	key := strings.ToUpper(n.node.ID().String())
	p.SetValue("#dm-key", key[:32]+" "+key[32:])
	p.Click("#dm-key + button")
	p.WaitText("#title", "This kit")
	write(p, "hello, operator")
	p.WaitText(".msg.mine .state", "Delivered") // the node's own receipt
	ms, err := n.client.List(ctx, api.ListQuery{To: n.node.ID().String()})
	if err != nil || len(ms) != 1 || ms[0].Text != "hello, operator" {
		t.Fatalf("the operator reads: %+v, %v", ms, err)
	}
	p.Navigate(url + "#/chats")
	p.SetValue("#dm-key", "not a key")
	p.Click("#dm-key + button")
	p.WaitText(".err", "64 letters")
}

// TestPhoneWrongClock: a phone whose clock is two hours fast (or reset to
// a default date) still writes: it dates what it signs by the node's
// clock, which is synchronised, and says so in the status.
func TestPhoneWrongClock(t *testing.T) {
	for _, skew := range []string{"2 * 3600e3", "-400 * 24 * 3600e3"} {
		n, url := phoneNode(t, func(c *lifeline.Config) { c.ClockSynced = func() bool { return true } })
		p := browsertest.Start(t, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, OldPhone: true,
			Init: `Date.now = ((real) => () => real() + ` + skew + `)(Date.now);`})
		p.Navigate(url + "#/c/general")
		write(p, "my clock is wrong")
		p.WaitText(".msg.mine .state", "On this node")
		p.Navigate(url + "#/status")
		p.WaitText("dl.status", "far from the node")
	}
}

// TestPhoneSetsNodeClock: a kit booted three days behind, with no hub or
// peer to ask, learns the time from the first phone that opens the app
// (phones take theirs from the cell network), says so on the status
// screen, and the phone's messages are dated right. A phone reset to a
// default date does not move it: the node ran before, and never believes
// a time earlier than the one it saved then.
func TestPhoneSetsNodeClock(t *testing.T) {
	n, url := phoneNode(t, func(c *lifeline.Config) {
		c.Now = func() time.Time { return time.Now().Add(-72 * time.Hour) }
		saved := fmt.Sprintf(`{"saved": %d, "last_stamp": 0}`, time.Now().Add(-73*time.Hour).UnixMilli())
		if err := os.WriteFile(filepath.Join(c.DataDir, lifeline.ClockFile), []byte(saved), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	status := func() *api.Status {
		t.Helper()
		st, err := n.client.Status(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.Clock.Source != "system" {
		t.Fatalf("before any phone: %+v", st.Clock)
	}
	reset := browsertest.Start(t, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, OldPhone: true,
		Init: `Date.now = () => Date.UTC(2000, 0, 1);`})
	reset.Navigate(url + "#/status")
	reset.WaitText("dl.status", "not confirmed by any source yet")
	reset.WaitText("dl.status", "far from the node") // told the node, and was not believed

	p := phone(t, n, "")
	p.Navigate(url + "#/c/general")
	waitFor(t, "the node follows the phone's clock", func() bool {
		st := status()
		return st.Clock.Source == "phone" && time.Since(time.UnixMilli(st.Time)).Abs() < 5*time.Second
	})
	if st := status(); st.Clock.Sources != 1 {
		t.Fatalf("the reset phone counts as a source: %+v", st.Clock)
	}
	write(p, "what time is it")
	p.WaitText(".msg.mine .state", "On this node")
	ms, err := n.client.List(ctxT(t), api.ListQuery{Channel: "general"})
	if err != nil || len(ms) != 1 || time.Since(time.UnixMilli(ms[0].Created)).Abs() > time.Minute {
		t.Fatalf("the phone's message: %+v, %v", ms, err)
	}
	p.Navigate(url + "#/status")
	p.WaitText("dl.status", "set by phones")
}

// idbKV reads a key of the page's IndexedDB kv store, as JSON.
func idbKV(p *browsertest.Browser, key string, out any) {
	p.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => {
		const q = r.result.transaction('kv').objectStore('kv').get(`+"'"+key+"'"+`); q.onsuccess = () => ok(q.result === undefined ? null : q.result); }; })`, out)
}

// delivered reports whether the node marks message id delivered.
func delivered(t *testing.T, n *started, id string) bool {
	m, err := n.client.Message(ctxT(t), id)
	return err == nil && m.Delivered
}

// TestPhoneReceiptsOnlyForCorrespondents: a page signs receipts only for
// direct messages from keys its person wrote to, so a throwaway key
// learns nothing of when the person is online. A message from someone
// the person then answers is acknowledged at once; from a stranger,
// never. The status screen says "100+" outages when the node has more
// than its first page.
func TestPhoneReceiptsOnlyForCorrespondents(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	p := phone(t, n, "")
	amal, err := message.ParsePublicKey(myKey(p, url))
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := message.NewIdentity(rand.Reader)
	bashir, _ := message.NewIdentity(rand.Reader)
	dm := func(from *message.Identity, text string) string {
		t.Helper()
		e, err := from.NewDirect(rand.Reader, amal, text, message.PriorityNormal, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := n.client.PostEnvelope(ctx, e.Raw())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	probe := dm(stranger, "are you there?")
	first := dm(bashir, "it is Bashir, from the school")
	p.Navigate(url + "#/d/" + stranger.Public().String())
	p.WaitText("ol.msgs", "are you there?") // shown, read, and not acknowledged
	p.Navigate(url + "#/d/" + bashir.Public().String())
	p.WaitText("ol.msgs", "it is Bashir")
	if delivered(t, n, first) {
		t.Fatal("a message from someone the person never wrote to was acknowledged")
	}
	write(p, "good to hear from you")
	waitFor(t, "Bashir's message delivered once Amal answered", func() bool { return delivered(t, n, first) })

	// Live: a correspondent's next message is acknowledged as it
	// arrives; the stranger's are not. The stranger's went first, so when
	// Bashir's is delivered the page has had both.
	probe2 := dm(stranger, "still there?")
	second := dm(bashir, "see you at noon")
	waitFor(t, "Bashir's second message delivered", func() bool { return delivered(t, n, second) })
	p.WaitText("ol.msgs", "see you at noon")
	// Receipts made together are sent together: once the outbox is
	// empty, any receipt the page made for the stranger is on the node.
	waitFor(t, "the page's outbox empty", func() bool {
		var queued int
		p.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => {
			const q = r.result.transaction('msgs').objectStore('msgs').index('state').count('queued'); q.onsuccess = () => ok(q.result); }; })`, &queued)
		return queued == 0
	})
	for _, id := range []string{probe, probe2} {
		if delivered(t, n, id) {
			t.Errorf("the stranger's message %s is delivered: the page answered a throwaway key", id)
		}
	}
	if ms, err := n.client.List(ctx, api.ListQuery{To: stranger.Public().String()}); err != nil || len(ms) != 0 {
		t.Errorf("messages to the stranger's key: %+v, %v; want none", ms, err)
	}

	// More outages than the node's first page: each of 101 nodes lost its
	// uplink once.
	for i := range 101 {
		id, _ := message.NewIdentity(rand.Reader)
		at := time.Now().Add(-time.Duration(i+1) * time.Minute)
		e, err := id.NewReport(message.Report{Event: message.EventUplinkLost, At: at.UnixMilli(), LastUp: at.Add(-time.Minute).UnixMilli(), Radio: "none"}, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := n.client.PostEnvelope(ctx, e.Raw()); err != nil {
			t.Fatal(err)
		}
	}
	p.Navigate(url + "#/status")
	p.WaitText("#outages", "100+")
}

// keyChanges returns the key changes a page follows or offers.
func keyChanges(p *browsertest.Browser) []struct {
	Old, New, Voucher string
	Merged            bool
} {
	var kc []struct {
		Old, New, Voucher string
		Merged            bool
	}
	idbKV(p, "kc", &kc)
	return kc
}

// hashIs waits until the page's location.hash is want.
func hashIs(t *testing.T, p *browsertest.Browser, want string) {
	t.Helper()
	waitFor(t, "the page at "+want, func() bool {
		var h string
		p.Eval(`location.hash`, &h)
		return h == want
	})
}

// TestPhoneKeyChange: Amal loses her phone but kept her key backup. On a
// new phone, with a new key, she publishes from the settings that the new
// key replaces the old, signed by both. Bashir's page follows at once:
// their conversation continues under the new key, and what he writes goes
// to it. Before that, a forged change (an old signature that does not
// verify) is stored by the node and ignored by his page.
func TestPhoneKeyChange(t *testing.T) {
	n, url := phoneNode(t, nil)
	pa, pb := phone(t, n, ""), phone(t, n, "")
	oldKey := myKey(pa, url)
	pa.Click("#show-backup")
	pa.WaitVisible("#backup-text")
	var backup string
	pa.Eval(`document.getElementById('backup-text').textContent`, &backup)
	bashir := myKey(pb, url)

	pa.Navigate(url + "#/d/" + bashir)
	write(pa, "my old phone is failing")
	pb.Navigate(url + "#/d/" + oldKey)
	pb.WaitText("ol.msgs", "my old phone is failing")
	write(pb, "write down your key backup")
	pa.WaitText("ol.msgs", "write down your key backup")
	pa.Close() // the phone is lost

	// A forged change: someone's fresh key claims to replace Amal's, with
	// an old signature that is not hers.
	thief, _ := message.NewIdentity(rand.Reader)
	o, _ := message.ParsePublicKey(oldKey)
	tp := thief.Public()
	body := append(append(append([]byte{message.KeyChangeVersion}, o[:]...), tp[:]...), make([]byte, 64)...)
	keys, _ := message.Channel(message.KeysChannel)
	forged, err := thief.Sign(message.Draft{Kind: message.KindKeyChange, Priority: message.PriorityNormal, Created: time.Now().UnixMilli(), Channel: keys, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.client.PostEnvelope(ctxT(t), forged.Raw()); err != nil {
		t.Fatalf("the node refused a well-signed envelope with a forged statement: %v", err)
	}
	waitFor(t, "Bashir's phone holding the forged change", func() bool {
		var held bool
		pb.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => {
			const q = r.result.transaction('msgs').objectStore('msgs').get('`+forged.ID().String()+`'); q.onsuccess = () => ok(!!q.result); }; })`, &held)
		return held
	})

	// Amal's new phone: a new key, and the old one's backup.
	pn := phone(t, n, "")
	newKey := myKey(pn, url)
	pn.SetValue("#restore", backup)
	pn.Eval(`(window.confirm = () => true, 0)`, nil)
	pn.Click("#kc-publish")
	pn.WaitText(".err", "will continue with this one")
	if again := myKey(pn, url); again != newKey {
		t.Fatalf("publishing the change replaced the phone's key: %s, then %s", newKey, again)
	}

	// Bashir's page follows: the old conversation is the new key's.
	pb.Navigate(url + "#/d/" + oldKey)
	hashIs(t, pb, "#/d/"+newKey)
	pb.WaitText("ol.msgs", "my old phone is failing")
	pb.WaitText(".kc", "both keys signed")
	write(pb, "welcome back")
	var ms []api.Message
	waitFor(t, "Bashir's message to the new key", func() bool {
		ms, _ = n.client.List(ctxT(t), api.ListQuery{To: newKey})
		return len(ms) == 1
	})
	if ms[0].Author != bashir || ms[0].Kind != "direct" {
		t.Fatalf("to the new key: %+v", ms[0])
	}
	pn.Navigate(url + "#/d/" + bashir)
	pn.WaitText("ol.msgs", "welcome back")

	kc := keyChanges(pb)
	if len(kc) != 1 || kc[0].Old != oldKey || kc[0].New != newKey || !kc[0].Merged || kc[0].Voucher != "" {
		t.Fatalf("Bashir's page follows %+v; want only %s → %s (the forged change to %s ignored)", kc, oldKey, newKey, thief.Public())
	}
}

// TestPhoneKeyChangeVouched: a person lost their phone and its key; the
// kit's operator, who knows them, vouches for their new key. The other
// person's page shows who vouched (name and fingerprint) and moves the
// conversation only when its person accepts.
func TestPhoneKeyChangeVouched(t *testing.T) {
	n, url := phoneNode(t, nil)
	ctx := ctxT(t)
	pb := phone(t, n, "")
	bashir, err := message.ParsePublicKey(myKey(pb, url))
	if err != nil {
		t.Fatal(err)
	}
	lost, _ := message.NewIdentity(rand.Reader)
	found, _ := message.NewIdentity(rand.Reader)
	e, err := lost.NewDirect(rand.Reader, bashir, "see you at the well", message.PriorityNormal, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.client.PostEnvelope(ctx, e.Raw()); err != nil {
		t.Fatal(err)
	}
	oldKey, newKey := lost.Public().String(), found.Public().String()
	pb.Navigate(url + "#/d/" + oldKey)
	pb.WaitText("ol.msgs", "see you at the well")

	if _, err := n.client.Vouch(ctx, oldKey, newKey); err != nil {
		t.Fatal(err)
	}
	node := n.node.ID().String()
	fp := func(k string) string { return k[0:4] + " " + k[4:8] }
	pb.WaitText(".kc.pending", "This kit · "+fp(node))
	pb.WaitText(".kc.pending", fp(newKey))
	screenshot(pb, "keychange-vouched-en.png")
	var unnamed []string
	pb.Eval(unnamedControls, &unnamed)
	if len(unnamed) > 0 {
		t.Errorf("controls without an accessible name: %q", unnamed)
	}
	// Not followed before the person says so.
	pb.Navigate(url + "#/chats")
	pb.WaitText(`a[href="#/d/`+oldKey+`"]`, "new key?")
	pb.Navigate(url + "#/d/" + oldKey)
	pb.WaitText(".kc.pending", "This kit")
	var hash string
	pb.Eval(`location.hash`, &hash)
	if kc := keyChanges(pb); hash != "#/d/"+oldKey || len(kc) != 1 || kc[0].Merged || kc[0].Voucher != node {
		t.Fatalf("before accepting: at %s, following %+v", hash, kc)
	}

	pb.Click(".kc-accept")
	hashIs(t, pb, "#/d/"+newKey)
	pb.WaitText("ol.msgs", "see you at the well")
	pb.WaitText(".kc", "on the word of This kit")
	write(pb, "glad you are safe")
	waitFor(t, "Bashir's message to the vouched key", func() bool {
		ms, _ := n.client.List(ctx, api.ListQuery{To: newKey})
		return len(ms) == 1 && ms[0].Author == bashir.String()
	})
}

// TestPhoneOperatorWipe: the operator's section of the settings is shown
// to the operator only: a phone on the Wi-Fi sees none until its person
// enters the admin token (kept for the tab only, never in IndexedDB); then
// the wipe, once its phrase is typed, destroys the kit's keys and
// messages, and the node stops.
func TestPhoneOperatorWipe(t *testing.T) {
	dir := t.TempDir()
	n, url := phoneNode(t, func(c *lifeline.Config) { c.DataDir = dir })
	token := adminToken(t, dir)

	// The node's own machine is its operator's.
	local := phone(t, n, "")
	local.Navigate(url + "#/settings")
	local.WaitVisible("#operator #wipe-btn")
	local.Close()

	// A phone on the kit's Wi-Fi: behind the kit's address, as a proxy
	// would say it.
	p := browsertest.Start(t, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, OldPhone: true,
		Headers: map[string]string{"X-Forwarded-For": "10.42.0.23"}})
	p.Navigate(url + "#/settings")
	p.WaitVisible("#my-key")
	var shown bool
	p.Eval(`!!document.getElementById('operator')`, &shown)
	if shown {
		t.Fatal("a phone that is not the operator's sees the operator's section")
	}

	p.Navigate(url + "#/operator")
	p.SetValue("#admin-token", strings.Repeat("0", len(token)))
	p.Click("form.stack button[type=submit]")
	p.WaitText(".err", "does not accept")
	p.SetValue("#admin-token", token)
	p.Click("form.stack button[type=submit]")
	p.WaitVisible("#operator #wipe-btn")
	var inDB bool
	p.Eval(`new Promise((ok) => { const r = indexedDB.open('lifeline'); r.onsuccess = () => {
		const q = r.result.transaction('kv').objectStore('kv').getAll(); q.onsuccess = () => ok(JSON.stringify(q.result).indexOf('`+token+`') >= 0); }; })`, &inDB)
	if inDB {
		t.Fatal("the admin token is in IndexedDB")
	}

	// Not without the phrase.
	p.SetValue("#wipe-confirm", "wipe")
	p.Click("#wipe-btn")
	p.WaitText("#wipe-result", "To confirm, type: wipe this kit")
	if _, err := os.Stat(filepath.Join(dir, lifeline.IdentityFile)); err != nil {
		t.Fatalf("the kit's key is gone without the phrase: %v", err)
	}
	screenshot(p, "operator-wipe-en.png")
	p.SetValue("#wipe-confirm", "Wipe this kit ")
	p.Click("#wipe-btn")
	p.WaitText("#wipe-result", "Wiped in")
	select {
	case err := <-n.done:
		if !errors.Is(err, lifeline.ErrWiped) {
			t.Fatalf("the node stopped with %v, want ErrWiped", err)
		}
		close(n.done) // for the cleanup's shutdown
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not stop after wiping itself")
	}
	for _, f := range []string{lifeline.IdentityFile, lifeline.AdminTokenFile, "lifeline.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the wipe: %v", f, err)
		}
	}
}

// TestPhoneOperatorSettings: the operator, on a phone on the kit's Wi-Fi,
// enters the admin token, changes the kit's name and radio region on the
// kit settings form and saves; the form says the kit restarts, then that
// the settings apply, and the status screen shows the new name. The same
// form in Arabic runs right to left, with the addresses left to right.
func TestPhoneOperatorSettings(t *testing.T) {
	dir := t.TempDir()
	n, url := phoneNode(t, func(c *lifeline.Config) { c.DataDir = dir })
	token := adminToken(t, dir)
	signIn := func(lang string) *browsertest.Browser {
		p := browsertest.Start(t, browsertest.Options{AllowHosts: []string{n.node.APIAddr()}, OldPhone: true, Lang: lang,
			Headers: map[string]string{"X-Forwarded-For": "10.42.0.23"}})
		p.Navigate(url + "#/operator")
		p.SetValue("#admin-token", token)
		p.Click("form.stack button[type=submit]")
		p.WaitVisible("#kit-settings #kit-name")
		return p
	}
	p := signIn("")
	var region string
	p.Eval(`document.getElementById('kit-region').value`, &region)
	if region != "EU868" {
		t.Fatalf("the region shown: %q, want the default EU868", region)
	}
	const name = "Camp B, school"
	p.SetValue("#kit-name", name)
	p.SetValue("#kit-region", "IN865")
	p.SetValue("#kit-hubs", "\n"+fakeHub(t)+"\n")
	p.Eval(`document.querySelector('#operator h3').scrollIntoView()`, nil)
	screenshot(p, "operator-settings-en.png")
	p.Click("#kit-save")
	p.WaitText("#kit-result", "the kit restarts")
	p.WaitText("#kit-result", "Applied")
	p.Eval(`document.getElementById('kit-region').value`, &region)
	if region != "IN865" {
		t.Fatalf("the region after saving: %q", region)
	}
	p.Click(`nav a[href="#/status"]`)
	p.WaitText("#kit-name-shown", name)

	ctx := ctxT(t)
	st, err := n.client.Status(ctx)
	if err != nil || st.Name != name || st.ID != n.node.ID().String() || !slices.Contains(st.Settings, "radio_region") || st.Status.Uplink.Hubs != 1 {
		t.Fatalf("the node's status: %+v, %v", st, err)
	}
	v, err := n.client.Settings(ctx)
	if err != nil || v.RadioRegion != "IN865" || v.Name != name {
		t.Fatalf("the node's settings: %+v, %v", v, err)
	}

	// A phone that is not the operator's sees the name, not the form.
	other := phone(t, n, "")
	other.Navigate(url + "#/status")
	other.WaitText("#kit-name-shown", name)

	ar := signIn("ar")
	var dirs []string
	ar.Eval(`[document.documentElement.dir, document.getElementById('kit-hubs').dir, getComputedStyle(document.querySelector('label[for=kit-name]')).direction, document.getElementById('kit-name').dir]`, &dirs)
	if !slices.Equal(dirs, []string{"rtl", "ltr", "rtl", "auto"}) {
		t.Fatalf("Arabic: page, hubs, label and name directions %v, want rtl, ltr, rtl, auto (the name in its own script's)", dirs)
	}
	ar.WaitText("#kit-settings", "حفظ وإعادة تشغيل العُدّة")
	ar.Eval(`document.querySelector('#operator h3').scrollIntoView()`, nil)
	screenshot(ar, "operator-settings-ar.png")
}

// adminToken reads the admin token a node made in its data directory dir.
func adminToken(t *testing.T, dir string) string {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dir, lifeline.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}
