package lifeline

import (
	"runtime/debug"
	"strings"
)

// release is the release a binary is, given when it is built for one
// (make build RELEASE=...); a plain go build is a development build.
// revision is the git revision it was built from, which make build gives
// (-ldflags -X), for builds where Go does not record it itself
// (-buildvcs=false). Only the linker sets them.
var (
	release  = "0.1.0-dev"
	revision = ""
)

// Version is the node software's version, reported by the API and by
// `lifeline version`: the release, and the source revision it was built
// from when the build knows it (go build in a git checkout records it),
// marked "modified" if the checkout had changes: "0.1.0 (rev 1a2b3c4d5e6f,
// 2026-12-07)".
var Version = versionOf(release, revision)

func versionOf(rel, rev string) string {
	var at string
	modified := strings.HasSuffix(rev, "-modified")
	rev = strings.TrimSuffix(rev, "-modified")
	if info, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at, _, _ = strings.Cut(s.Value, "T")
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" {
		return rel
	}
	v := rel + " (rev " + rev[:min(12, len(rev))]
	if at != "" {
		v += ", " + at
	}
	if modified {
		v += ", modified"
	}
	return v + ")"
}
