// Command build makes the Debian packages of lifeline (make deb): one per
// architecture a kit may have, each holding the binary built for it, the
// systemd unit, the commented config as a conffile, the man page, the
// copyright and changelog, and the maintainer scripts (all in packaging/).
// Packages are assembled by nfpm used as a library, so no Debian tooling
// is needed to build them, only to check them (make test-deb).
//
//	go run ./packaging/build [--release 0.3.0] [--revision REV] [--out dist] [--arch amd64,arm64,armhf,armel]
//
// This program is not part of the node: the node's binary must not link
// nfpm (a test checks `go list -deps ./cmd/node`).
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// target is one Debian architecture and the Go build for it.
type target struct {
	deb, goarch, goarm string
}

// targets are the packages make deb builds. The 32-bit ARM ones are
// built for the oldest CPU each Debian architecture name is installed on
// (docs/DECISIONS.md, "Debian packages"): armhf for ARMv6 with VFP,
// because Raspberry Pi OS 32-bit calls itself armhf and runs on the ARMv6
// Pi Zero and Pi 1, where an ARMv7 binary dies of an illegal instruction;
// armel for ARMv5 (soft float), Debian armel's baseline.
var targets = []target{
	{deb: "amd64", goarch: "amd64"},
	{deb: "arm64", goarch: "arm64"},
	{deb: "armhf", goarch: "arm", goarm: "6"},
	{deb: "armel", goarch: "arm", goarm: "5"},
}

// maintainer is the package's Maintainer field.
const maintainer = "Lifeline maintainers <maintainers@lifeline.invalid>"

const description = `offline-first mesh messaging node for crisis areas
 Lifeline keeps people in touch where the internet is shut down or
 destroyed. A node on a small board (Raspberry Pi class) keeps every
 signed message in a local store, meets other nodes over Wi-Fi, cable and
 LoRa radios, carries messages across gaps in the network, and reaches
 internet hubs whenever any path exists. People use it from the browser of
 any phone on the node's Wi-Fi, with nothing to install.
 .
 This package runs the node as the system service lifeline, with its
 settings in /etc/lifeline/lifeline.toml and its data in /var/lib/lifeline.`

// options is what one run builds.
type options struct {
	root     string // the repository's top directory
	out      string // where the packages are written
	release  string // e.g. 0.3.0; empty for a development build
	revision string // git revision, "-modified" for a changed checkout
	at       time.Time
	arches   []string
	log      *slog.Logger
}

func main() {
	o := options{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	flag.StringVar(&o.root, "root", ".", "the repository's top `directory`")
	flag.StringVar(&o.out, "out", "dist", "`directory` the packages are written to")
	flag.StringVar(&o.release, "release", "", "the `release` (e.g. 0.3.0); empty: a development build, versioned 0.0.0~git<time>.<revision>")
	flag.StringVar(&o.revision, "revision", "", "the git `revision` built (default: asked of git)")
	arches := flag.String("arch", "amd64,arm64,armhf,armel", "comma-separated Debian `architectures`")
	flag.Parse()
	o.arches = strings.Split(*arches, ",")
	paths, err := build(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging/build:", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

// build builds the binaries and packages o asks for and returns the
// packages' paths.
func build(ctx context.Context, o options) ([]string, error) {
	if o.revision == "" || o.at.IsZero() {
		rev, at, err := gitRevision(ctx, o.root)
		if err != nil {
			return nil, err
		}
		if o.revision == "" {
			o.revision = rev
		}
		if o.at.IsZero() {
			o.at = at
		}
	}
	version, err := debVersion(o.release, o.revision, o.at)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp("", "lifeline-deb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	docs, err := writeDocs(o, version, stage)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, arch := range o.arches {
		i := slices.IndexFunc(targets, func(t target) bool { return t.deb == arch })
		if i < 0 {
			return nil, fmt.Errorf("architecture %q: want one of amd64, arm64, armhf, armel", arch)
		}
		t := targets[i]
		bin := filepath.Join(stage, t.deb, "lifeline")
		start := time.Now()
		if err := goBuild(ctx, o, t, bin); err != nil {
			return nil, err
		}
		path := filepath.Join(o.out, fmt.Sprintf("lifeline_%s_%s.deb", version, t.deb))
		if err := writeDeb(o, version, t, bin, docs, path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		o.log.Info("package built", "path", path, "took", time.Since(start).Round(time.Millisecond))
		paths = append(paths, path)
	}
	return paths, nil
}

// gitRevision returns the checked-out revision (12 digits, "-modified" if
// the checkout has changes, as the Makefile's REVISION) and its commit
// time, which stamps the packages' files so that a build is reproducible.
func gitRevision(ctx context.Context, root string) (string, time.Time, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "-1", "--format=%h %ct", "--abbrev=12").Output()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log: %w (outside a git checkout, give --revision)", err)
	}
	rev, ct, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	sec, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log said %q", out)
	}
	if exec.CommandContext(ctx, "git", "-C", root, "diff", "--quiet", "HEAD").Run() != nil {
		rev += "-modified"
	}
	return rev, time.Unix(sec, 0).UTC(), nil
}

// debianVersion is what dpkg accepts as an upstream version without a
// Debian revision (these packages are native: no hyphen).
var debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// debVersion is the package version: the release (its "-rc1" written
// "~rc1", which dpkg orders before the release itself), or for a
// development build 0.0.0~git<commit time>.<revision>, which every release
// upgrades and later commits order after earlier ones.
func debVersion(release, revision string, at time.Time) (string, error) {
	v := strings.TrimPrefix(release, "v")
	if v == "" {
		rev := strings.ReplaceAll(revision, "-", "+")
		v = "0.0.0~git" + at.UTC().Format("20060102150405") + "." + rev
	} else {
		v = strings.Replace(v, "-", "~", 1)
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("release %q makes the Debian version %q: want digits first, then letters, digits, '.', '+' or '~' (e.g. 0.3.0 or 0.3.0-rc1)", release, v)
	}
	return v, nil
}

// goBuild builds the node for t, static (no cgo: one binary runs on every
// libc), stripped (lintian asks it; Go's panics still name functions),
// with the release and revision lifeline version says.
func goBuild(ctx context.Context, o options, t target, out string) error {
	ldflags := "-s -w -X lifeline.revision=" + o.revision
	if o.release != "" {
		ldflags += " -X lifeline.release=" + o.release
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/node")
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch, "GOARM="+t.goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", t.deb, err, b)
	}
	return nil
}

// docs are the files written for the packages rather than taken from
// packaging/ as they are.
type docs struct {
	changelog, manPage string
}

// writeDocs writes the compressed man page and the changelog into dir.
func writeDocs(o options, version, dir string) (docs, error) {
	man, err := os.ReadFile(filepath.Join(o.root, "packaging", "lifeline.1"))
	if err != nil {
		return docs{}, err
	}
	d := docs{changelog: filepath.Join(dir, "changelog.gz"), manPage: filepath.Join(dir, "lifeline.1.gz")}
	// The packages are built from the repository, not from a Debian source
	// package: the changelog names the release and the commit, and the
	// history is git's.
	what := "Development build of commit " + o.revision + "."
	if o.release != "" {
		what = "Release " + o.release + ", commit " + o.revision + "."
	}
	changelog := fmt.Sprintf("lifeline (%s) unstable; urgency=medium\n\n  * %s\n    The changes are in the git history and docs/DECISIONS.md.\n\n -- %s  %s\n",
		version, what, maintainer, o.at.UTC().Format(time.RFC1123Z))
	if err := writeGzip(d.changelog, []byte(changelog)); err != nil {
		return docs{}, err
	}
	if err := writeGzip(d.manPage, man); err != nil {
		return docs{}, err
	}
	return d, nil
}

// writeGzip writes b compressed as Debian wants it: best compression, and
// no name or time in the header, so the bytes depend on b alone.
func writeGzip(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err == nil {
		_, err = zw.Write(b)
	}
	if err == nil {
		err = zw.Close()
	}
	return errors.Join(err, f.Close())
}

// writeDeb writes the package of t to path.
func writeDeb(o options, version string, t target, bin string, d docs, path string) error {
	pkg := filepath.Join(o.root, "packaging")
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	conffile := file(filepath.Join(pkg, "lifeline.toml"), "/etc/lifeline/lifeline.toml", 0o644)
	conffile.Type = files.TypeConfig
	info := &nfpm.Info{
		Name:          "lifeline",
		Arch:          t.deb,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none", // a Debian version already: nfpm must not re-read it as semver
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		MTime:         o.at,
		Overridables: nfpm.Overridables{
			Depends: []string{"adduser"},
			Contents: files.Contents{
				file(bin, "/usr/bin/lifeline", 0o755),
				file(filepath.Join(pkg, "lifeline.service"), "/lib/systemd/system/lifeline.service", 0o644),
				conffile,
				file(d.manPage, "/usr/share/man/man1/lifeline.1.gz", 0o644),
				file(filepath.Join(pkg, "copyright"), "/usr/share/doc/lifeline/copyright", 0o644),
				file(d.changelog, "/usr/share/doc/lifeline/changelog.gz", 0o644),
				file(filepath.Join(pkg, "lintian-overrides"), "/usr/share/lintian/overrides/lifeline", 0o644),
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(pkg, "postinst"),
				PreRemove:   filepath.Join(pkg, "prerm"),
				PostRemove:  filepath.Join(pkg, "postrm"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	packager, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lifeline-deb-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = packager.Package(info, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
