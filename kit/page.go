package kit

import (
	"html/template"
	"strings"
)

// portalText is the portal page in one language. The page is small and
// has no script: the captive windows of phones are minimal browsers.
type portalText struct {
	Lang, Dir string
	// Lead says what this is; Go says where to open it; Why says why the
	// browser and not the captive window; Button opens the app here.
	Lead, Go, Why, Button string
}

// portalTexts are the languages of the phone app (web/app/i18n), by code.
var portalTexts = map[string]portalText{
	"en": {Lang: "en", Dir: "ltr",
		Lead:   "Messages without the internet, on this Wi-Fi.",
		Go:     "Open your web browser (Chrome, Safari, Firefox…) and go to:",
		Why:    "Use your browser, not this small window: your key and your messages are kept in the browser you use, and this window forgets them when it closes.",
		Button: "Open Lifeline"},
	"ar": {Lang: "ar", Dir: "rtl",
		Lead:   "رسائل بلا إنترنت، على شبكة الواي فاي هذه.",
		Go:     "افتح متصفحك (Chrome أو Safari أو Firefox…) واذهب إلى:",
		Why:    "استعمل متصفحك لا هذه النافذة الصغيرة: مفتاحك ورسائلك تُحفظ في المتصفح الذي تستعمله، وهذه النافذة تنساها عند إغلاقها.",
		Button: "افتح Lifeline"},
	"fa": {Lang: "fa", Dir: "rtl",
		Lead:   "پیام‌رسانی بدون اینترنت، روی همین وای‌فای.",
		Go:     "مرورگر خود را باز کنید (Chrome، Safari، Firefox…) و به این نشانی بروید:",
		Why:    "از مرورگر خود استفاده کنید، نه از این پنجرهٔ کوچک: کلید و پیام‌های شما در مرورگری که استفاده می‌کنید نگه داشته می‌شوند و این پنجره با بسته شدن آن‌ها را فراموش می‌کند.",
		Button: "Lifeline را باز کنید"},
	"es": {Lang: "es", Dir: "ltr",
		Lead:   "Mensajes sin internet, en esta red Wi-Fi.",
		Go:     "Abre tu navegador (Chrome, Safari, Firefox…) y ve a:",
		Why:    "Usa tu navegador, no esta ventana pequeña: tu clave y tus mensajes se guardan en el navegador que usas, y esta ventana los olvida al cerrarse.",
		Button: "Abrir Lifeline"},
	"fr": {Lang: "fr", Dir: "ltr",
		Lead:   "Des messages sans internet, sur ce Wi-Fi.",
		Go:     "Ouvrez votre navigateur (Chrome, Safari, Firefox…) et allez à :",
		Why:    "Utilisez votre navigateur, pas cette petite fenêtre : votre clé et vos messages sont gardés dans le navigateur que vous utilisez, et cette fenêtre les oublie quand elle se ferme.",
		Button: "Ouvrir Lifeline"},
}

// portalStrings picks the page's language from an Accept-Language header:
// the first language listed that the page has (quality values aside:
// browsers list languages in the order of preference), else English.
func portalStrings(acceptLanguage string) portalText {
	for _, part := range strings.Split(acceptLanguage, ",") {
		tag, _, _ := strings.Cut(part, ";")
		primary, _, _ := strings.Cut(strings.TrimSpace(tag), "-")
		if t, ok := portalTexts[strings.ToLower(primary)]; ok {
			return t
		}
	}
	return portalTexts["en"]
}

type portalData struct {
	portalText
	Name, Addr, Action string
}

// portalPage shows the address big, so it can be read out, written on a
// wall and typed; with its scheme, because browsers take a name under an
// unknown top-level domain typed alone ("lifeline.kit") for a search. The
// kit's IP address is there for browsers that do not ask the kit's DNS.
var portalPage = template.Must(template.New("portal").Parse(`<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lifeline</title>
<style>
body { font-family: sans-serif; margin: 0; padding: 1.5rem; max-inline-size: 34rem; margin-inline: auto; line-height: 1.4; color: #111; background: #fff; }
h1 { font-size: 1.6rem; margin-block: 0 .5rem; }
.addr { font-size: 2.2rem; font-weight: bold; margin-block: .75rem; overflow-wrap: anywhere; direction: ltr; text-align: start; unicode-bidi: isolate; }
.ip { font-size: 1.1rem; color: #444; direction: ltr; unicode-bidi: isolate; }
button { font-size: 1.2rem; padding: .8rem 1.4rem; margin-block-start: 1rem; border: 0; border-radius: .4rem; background: #0a5; color: #fff; }
</style>
</head>
<body>
<h1>Lifeline</h1>
<p>{{.Lead}}</p>
<p>{{.Go}}</p>
<p class="addr" id="address">http://{{.Name}}</p>
{{if .Addr}}<p class="ip" id="ip">http://{{.Addr}}/</p>{{end}}
<p>{{.Why}}</p>
<form method="post" action="{{.Action}}"><button type="submit" id="open">{{.Button}}</button></form>
</body>
</html>
`))
