package webbuild

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// CheckSyntax reports syntax in the script code (named name in messages)
// that a target browser lacks.
//
// esbuild knows, for every syntax feature, which engine version has it. The
// script is printed twice, once for the targets and once for the newest
// JavaScript, with the same options and no minification: where the two
// differ, esbuild had to lower something for the targets, so the script uses
// syntax they lack. Syntax that cannot be lowered at all (top-level await,
// BigInt literals for engines without BigInt) is an error of the first print.
//
// Regular expressions need a second look. esbuild "lowers" a literal with a
// feature the targets lack (named groups and lookbehind before Firefox 78,
// lookbehind before Safari 16.4, the d and v flags) into new RegExp("…"),
// which builds but throws a SyntaxError on the old phone when it runs, so a
// built bundle holds no such literal any more. Each new RegExp with a
// constant pattern is therefore checked as if it were a literal.
//
// Built-in functions (Array.prototype.at, structuredClone) are library, not
// syntax, and are not seen here.
func CheckSyntax(name string, code []byte) error {
	if err := checkLowering(name, string(code)); err != nil {
		return err
	}
	if m := ArrayRest(code); m != "" {
		return fmt.Errorf("%s has a rest element in an array pattern (%s), which Safari 14.0 gets wrong: "+
			"use slice() instead", name, m)
	}
	for _, m := range regexpCall.FindAllStringSubmatch(string(code), -1) {
		pattern, err := unquoteJS(m[1])
		if err != nil {
			continue // not a plain constant: nothing to check here
		}
		flags := ""
		if m[2] != "" {
			if flags, err = unquoteJS(m[2]); err != nil {
				continue
			}
		}
		literal := regexpLiteral(pattern, flags)
		if checkLowering(name, "export default "+literal) != nil {
			return fmt.Errorf("%s builds a regular expression the target browsers (Chrome 67, Safari 14, Firefox 68, Edge 79) "+
				"cannot compile, which throws a SyntaxError there when it runs: %s (from %.200s)", name, literal, m[0])
		}
	}
	return nil
}

// ArrayRest returns the first rest element in an array pattern in code (a
// declaration or assignment, a for-of head, a parameter list, as esbuild
// prints them), or "". Destructuring is declared supported (see Supported),
// so esbuild does not see the one case Safari 14.0 gets wrong; both builds
// (the app's and web/vendor-src's) look for it with this.
func ArrayRest(code []byte) string { return string(arrayRest.Find(code)) }

var arrayRest = regexp.MustCompile(`\.\.\.[\w$]+\]\s*(=[^=>]|of\b|\)\s*(=>|\{))`)

// regexpCall is new RegExp (or RegExp) with a constant pattern and
// optional constant flags, in any of the quotes esbuild may print.
var regexpCall = regexp.MustCompile("\\bRegExp\\(\\s*(" + jsString + ")\\s*(?:,\\s*(" + jsString + ")\\s*)?\\)")

// jsString is a string constant: double, single or back quotes (a template
// with no substitution).
const jsString = `"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\x60(?:[^\x60\\$]|\\.)*\x60`

// unquoteJS decodes a JavaScript string constant.
func unquoteJS(q string) (string, error) {
	if len(q) < 2 {
		return "", fmt.Errorf("not a string: %s", q)
	}
	s := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("bad escape in %s", q)
		}
		switch c := s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0':
			b.WriteByte(0)
		case '\n':
			// A line continuation adds nothing.
		case 'x', 'u':
			digits := 2
			if c == 'u' {
				digits = 4
				if i+1 < len(s) && s[i+1] == '{' {
					end := strings.IndexByte(s[i:], '}')
					if end < 0 {
						return "", fmt.Errorf("bad escape in %s", q)
					}
					r, err := strconv.ParseUint(s[i+2:i+end], 16, 32)
					if err != nil {
						return "", err
					}
					b.WriteRune(rune(r))
					i += end
					continue
				}
			}
			if i+1+digits > len(s) {
				return "", fmt.Errorf("bad escape in %s", q)
			}
			r, err := strconv.ParseUint(s[i+1:i+1+digits], 16, 32)
			if err != nil {
				return "", err
			}
			b.WriteRune(rune(r))
			i += digits
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// regexpLiteral writes pattern and flags as a regular expression literal:
// each unescaped / escaped, and line terminators as \u escapes.
func regexpLiteral(pattern, flags string) string {
	var b strings.Builder
	b.WriteByte('/')
	escaped := false
	for _, r := range pattern {
		switch {
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			if escaped {
				// A \ before a line terminator: the escape becomes \\uXXXX.
				b.WriteString("u")
			} else {
				b.WriteString("\\u")
			}
			fmt.Fprintf(&b, "%04x", r)
			escaped = false
			continue
		case r == '/' && !escaped:
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		escaped = r == '\\' && !escaped
	}
	b.WriteByte('/')
	b.WriteString(flags)
	return b.String()
}

// checkLowering fails if esbuild prints code differently for the target
// browsers than for the newest JavaScript.
func checkLowering(name, code string) error {
	transform := func(target api.Target, engines []api.Engine) api.TransformResult {
		return api.Transform(code, api.TransformOptions{
			Loader:     api.LoaderJS,
			Target:     target,
			Engines:    engines,
			Supported:  Supported(),
			Charset:    api.CharsetUTF8,
			Sourcefile: name,
			LogLevel:   api.LogLevelSilent,
		})
	}
	next := transform(api.ESNext, nil)
	if len(next.Errors) > 0 {
		return buildError("parsing "+name, next.Errors)
	}
	old := transform(api.DefaultTarget, Engines())
	if len(old.Errors) > 0 {
		return fmt.Errorf("%s uses syntax the target browsers lack, which cannot be lowered: %w",
			name, buildError("lowering", old.Errors))
	}
	if bytes.Equal(old.Code, next.Code) {
		return nil
	}
	a := strings.Split(string(next.Code), "\n")
	b := strings.Split(string(old.Code), "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := func(lines []string, i int) string {
		if i >= len(lines) {
			return "(end)"
		}
		if s := lines[i]; len(s) <= 300 {
			return s
		}
		return lines[i][:300] + "…"
	}
	return fmt.Errorf("%s uses syntax the target browsers (Chrome 67, Safari 14, Firefox 68, Edge 79) lack: "+
		"esbuild lowers it for them; first difference (line %d of esbuild's printing):\n  as written: %s\n  lowered:    %s",
		name, i+1, line(a, i), line(b, i))
}

// allowedURL matches absolute URLs that name something without fetching
// it: XML namespaces, which createElementNS and the like need verbatim.
var allowedURL = regexp.MustCompile(`^http://www\.w3\.org/`)

var (
	// absoluteURL is a URL with a network scheme.
	absoluteURL = regexp.MustCompile(`(?i)\b(?:https?|wss?|ftp)://[a-z0-9\[%][^\s"'<>()\x60\\]*`)
	// schemeRelative is a URL that starts with // right after a quote, an
	// opening parenthesis (CSS url(), import(), fetch()) or = (an unquoted
	// HTML attribute): the page's scheme with another host.
	schemeRelative = regexp.MustCompile(`(?i)["'\x60(=]\s*//[a-z0-9\[%][^\s"'<>()\x60\\]*`)
	// htmlComment and cssComment are comments, where URLs are only text.
	htmlComment = regexp.MustCompile(`(?s)<!--.*?-->`)
	cssComment  = regexp.MustCompile(`(?s)/\*.*?\*/`)
)

// ExternalRefs returns the references to other hosts in the file name of the
// built app (contents b): absolute http(s)/ws(s) URLs and scheme-relative
// //host ones, outside comments. The page runs on a kit with no internet: a
// request to another host hangs or fails on a phone, and where the internet
// does work it leaks who uses the kit. Licence banners and comments may
// hold URLs; XML namespaces (http://www.w3.org/…) are allowed.
func ExternalRefs(name string, b []byte) []string {
	text := string(b)
	switch path.Ext(name) {
	case ".js", ".mjs":
		// esbuild's printer drops every comment when told to, and keeps
		// strings, template literals and regular expressions as they are.
		res := api.Transform(text, api.TransformOptions{
			Loader:           api.LoaderJS,
			MinifyWhitespace: true,
			LegalComments:    api.LegalCommentsNone,
			Charset:          api.CharsetUTF8,
			LogLevel:         api.LogLevelSilent,
		})
		if len(res.Errors) > 0 {
			return []string{buildError("parsing "+name, res.Errors).Error()}
		}
		text = string(res.Code)
	case ".css":
		text = cssComment.ReplaceAllString(text, "")
	case ".html", ".htm", ".svg":
		text = htmlComment.ReplaceAllString(text, "")
	}
	var refs []string
	for _, m := range absoluteURL.FindAllString(text, -1) {
		if !allowedURL.MatchString(m) {
			refs = append(refs, m)
		}
	}
	for _, m := range schemeRelative.FindAllString(text, -1) {
		refs = append(refs, strings.TrimLeft(m[1:], " \t\r\n"))
	}
	return refs
}

// localRef matches the src and href attributes of HTML and url() in CSS.
var localRef = regexp.MustCompile(`(?i)(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?)([^"'\s>)]+)`)

// MissingRefs returns the local files that index.html and the style sheets
// of files refer to (src, href, url()) and that files lack: a file the page
// needs that the build did not copy.
func MissingRefs(files Files) []string {
	var missing []string
	for _, name := range files.Names() {
		ext := path.Ext(name)
		if ext != ".html" && ext != ".css" {
			continue
		}
		text := string(files[name])
		if ext == ".html" {
			text = htmlComment.ReplaceAllString(text, "")
		} else {
			text = cssComment.ReplaceAllString(text, "")
		}
		for _, m := range localRef.FindAllStringSubmatch(text, -1) {
			ref := m[1]
			if i := strings.IndexAny(ref, "?#"); i >= 0 {
				ref = ref[:i]
			}
			if ref == "" || strings.HasPrefix(ref, "//") || strings.Contains(ref, ":") {
				continue // a fragment, a data: or an absolute URL (ExternalRefs)
			}
			target := ref
			if !strings.HasPrefix(ref, "/") {
				target = path.Join(path.Dir(name), ref)
			}
			target = strings.TrimPrefix(path.Clean("/"+target), "/")
			if target == "" {
				target = "index.html"
			}
			if _, ok := files[target]; !ok {
				missing = append(missing, name+" → "+m[1])
			}
		}
	}
	return missing
}

// Check runs every check on a built app, as the tests do, so that `make web`
// shows the same problems at once.
func Check(files Files) []string {
	var problems []string
	for _, name := range files.Names() {
		if ext := path.Ext(name); ext == ".js" || ext == ".mjs" {
			if err := CheckSyntax(name, files[name]); err != nil {
				problems = append(problems, err.Error())
			}
		}
		for _, ref := range ExternalRefs(name, files[name]) {
			problems = append(problems, fmt.Sprintf("%s refers to another host: %s", name, ref))
		}
	}
	for _, m := range MissingRefs(files) {
		problems = append(problems, "missing from dist: "+m)
	}
	if n := files.Size(); n > Budget {
		problems = append(problems, fmt.Sprintf("the app takes %d bytes (%.1f KiB), over the budget of %d (%d KiB)",
			n, float64(n)/1024, Budget, Budget/1024))
	}
	return problems
}
