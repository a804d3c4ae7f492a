//go:build deb

// The Debian packages, built and checked as a technician's machine takes
// them: their contents, lintian, systemd-analyze, and install → run →
// upgrade → remove → purge in a Debian bookworm root made by debootstrap.
// Slow (minutes) and root only, so it is its own target, make test-deb,
// which CI runs after make test; hence the build tag, which keeps it out of
// go test ./... A missing tool fails the test with the package to install:
// nothing is skipped.

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tools are the commands the test runs, with the Debian package of each.
var tools = map[string]string{
	"dpkg-deb":        "dpkg",
	"lintian":         "lintian",
	"debootstrap":     "debootstrap",
	"systemd-analyze": "systemd",
	"systemd-nspawn":  "systemd-container",
	"nsenter":         "util-linux",
	"tar":             "tar",
	"chroot":          "coreutils",
	"mount":           "mount",
}

func needTools(t *testing.T) {
	t.Helper()
	var missing []string
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Fatalf("make test-deb needs: apt-get install %s", strings.Join(missing, " "))
	}
	if os.Geteuid() != 0 {
		t.Fatal("make test-deb needs root: it makes a Debian root with debootstrap, chroots into it, and makes a network namespace")
	}
}

// The two releases of the upgrade: what a kit has, and what it gets.
const (
	releaseA, revisionA = "0.9.0", "aaaaaaaaaaaa"
	releaseB, revisionB = "0.9.1", "bbbbbbbbbbbb"
)

func TestDebianPackages(t *testing.T) {
	needTools(t)
	ctx := t.Context()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // the container's /
		t.Fatal(err)
	}
	rootReady, rootDone := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(rootDone)
		rootReady <- debianRoot(t, root)
	}()
	t.Cleanup(func() { <-rootDone }) // before the directories are removed

	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	pkgsB, err := build(ctx, options{root: repo, out: out, release: releaseB, revision: revisionB, at: at,
		arches: []string{"amd64", "arm64", "armhf", "armel"}, log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pkgsA, err := build(ctx, options{root: repo, out: out, release: releaseA, revision: revisionA, at: at.Add(-time.Hour),
		arches: []string{"amd64"}, log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5 packages built in %s", time.Since(start).Round(time.Second))

	t.Run("contents", func(t *testing.T) {
		for _, p := range pkgsB {
			checkContents(t, repo, p)
		}
	})
	t.Run("lintian", func(t *testing.T) {
		start := time.Now()
		checkLintian(t, pkgsB)
		t.Logf("lintian: %s", time.Since(start).Round(time.Second))
	})
	t.Run("install-run-upgrade-purge", func(t *testing.T) {
		if err := <-rootReady; err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		lifecycle(t, root, pkgsA[0], pkgsB[0])
		t.Logf("install, run, upgrade, purge: %s", time.Since(start).Round(time.Second))
	})
}

// testLogger sends build's log lines to t.Log.
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// debArches are, for each Debian architecture, the ELF machine and class
// its binary must have and the GOARM it must be built with.
var debArches = map[string]struct {
	machine elf.Machine
	class   elf.Class
	goarm   string
}{
	"amd64": {elf.EM_X86_64, elf.ELFCLASS64, ""},
	"arm64": {elf.EM_AARCH64, elf.ELFCLASS64, ""},
	"armhf": {elf.EM_ARM, elf.ELFCLASS32, "6"},
	"armel": {elf.EM_ARM, elf.ELFCLASS32, "5"},
}

// checkContents checks one package: its control fields, maintainer
// scripts and conffiles, every file with its owner and mode, the files
// taken from packaging/ unchanged, and the binary's architecture.
func checkContents(t *testing.T, repo, deb string) {
	t.Helper()
	arch := strings.TrimSuffix(deb[strings.LastIndex(deb, "_")+1:], ".deb")
	want, ok := debArches[arch]
	if !ok {
		t.Fatalf("%s: unexpected architecture %q", deb, arch)
	}
	fields := run(t, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends", "Section", "Maintainer")
	for _, f := range []string{"Package: lifeline\n", "Version: " + releaseB + "\n", "Architecture: " + arch + "\n", "Depends: adduser\n", "Section: net\n"} {
		if !strings.Contains(fields, f) {
			t.Errorf("%s: control has no %q:\n%s", deb, f, fields)
		}
	}

	control := tarEntries(t, deb, "--ctrl-tarfile")
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		h, ok := control["./"+script]
		if !ok || h.Mode&0o777 != 0o755 {
			t.Errorf("%s: maintainer script %s missing or not 0755: %+v", deb, script, h)
		}
	}
	if got := string(control["./conffiles"].body); got != "/etc/lifeline/lifeline.toml\n" {
		t.Errorf("%s: conffiles %q; want the config alone", deb, got)
	}

	files := tarEntries(t, deb, "--fsys-tarfile")
	wantFiles := map[string]struct {
		mode int64
		from string // the file in packaging/ it must equal, if any
	}{
		"./usr/bin/lifeline":                     {0o755, ""},
		"./lib/systemd/system/lifeline.service":  {0o644, "lifeline.service"},
		"./etc/lifeline/lifeline.toml":           {0o644, "lifeline.toml"},
		"./usr/share/man/man1/lifeline.1.gz":     {0o644, ""},
		"./usr/share/doc/lifeline/copyright":     {0o644, "copyright"},
		"./usr/share/doc/lifeline/changelog.gz":  {0o644, ""},
		"./usr/share/lintian/overrides/lifeline": {0o644, "lintian-overrides"},
	}
	for name, h := range files {
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s owned by %d:%d; want root", deb, name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeDir {
			if h.Mode&0o777 != 0o755 {
				t.Errorf("%s: directory %s mode %o", deb, name, h.Mode&0o777)
			}
			continue
		}
		w, ok := wantFiles[name]
		switch {
		case !ok:
			t.Errorf("%s: unexpected file %s", deb, name)
		case h.Typeflag != tar.TypeReg || h.Mode&0o7777 != w.mode:
			t.Errorf("%s: %s is type %c mode %o; want a file of mode %o", deb, name, h.Typeflag, h.Mode&0o7777, w.mode)
		case w.from != "":
			if src, err := os.ReadFile(filepath.Join(repo, "packaging", w.from)); err != nil || !bytes.Equal(src, h.body) {
				t.Errorf("%s: %s differs from packaging/%s (%v)", deb, name, w.from, err)
			}
		}
	}
	for name := range wantFiles {
		if _, ok := files[name]; !ok {
			t.Errorf("%s: %s missing", deb, name)
		}
	}

	// The binary: for the package's architecture, static, with the release.
	bin := filepath.Join(t.TempDir(), "lifeline")
	if err := os.WriteFile(bin, files["./usr/bin/lifeline"].body, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: the binary is not ELF: %v", deb, err)
	}
	defer f.Close()
	if f.Machine != want.machine || f.Class != want.class {
		t.Errorf("%s: binary for %v %v; want %v %v", deb, f.Machine, f.Class, want.machine, want.class)
	}
	if interp := f.Section(".interp"); interp != nil {
		t.Errorf("%s: the binary is dynamically linked", deb)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: the binary is not stripped", deb)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("%s: no Go build info: %v", deb, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOARM"] != want.goarm || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("%s: built with GOARM=%q CGO_ENABLED=%q -trimpath=%q; want GOARM=%q, no cgo, -trimpath",
			deb, settings["GOARM"], settings["CGO_ENABLED"], settings["-trimpath"], want.goarm)
	}
	// -trimpath keeps -ldflags out of the build info; the strings the
	// linker set (lifeline version prints them) are in the binary.
	if body := files["./usr/bin/lifeline"].body; !bytes.Contains(body, []byte(releaseB)) || !bytes.Contains(body, []byte(revisionB)) {
		t.Errorf("%s: the binary does not hold its release %s and revision %s", deb, releaseB, revisionB)
	}
	if bi.Main.Path != "lifeline" || bi.Path != "lifeline/cmd/node" {
		t.Errorf("%s: the binary is %s of %s", deb, bi.Path, bi.Main.Path)
	}

	// The unit: what the issue asks of the service, setting by setting.
	unit := parseUnit(string(files["./lib/systemd/system/lifeline.service"].body))
	for key, want := range map[string]string{
		"ExecStart":               "/usr/bin/lifeline run --config /etc/lifeline/lifeline.toml --log json",
		"User":                    "lifeline",
		"SupplementaryGroups":     "dialout",
		"StateDirectory":          "lifeline",
		"StateDirectoryMode":      "0700",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
		"Restart":                 "on-failure",
		"WantedBy":                "multi-user.target",
	} {
		if got := unit[key]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s: the unit's %s is %q; want %q", deb, key, got, want)
		}
	}
}

// parseUnit returns a unit file's settings, each with its values in order.
func parseUnit(text string) map[string][]string {
	settings := map[string][]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		settings[k] = append(settings[k], v)
	}
	return settings
}

// tarEntry is a file of a package's archive, read whole.
type tarEntry struct {
	*tar.Header
	body []byte
}

// tarEntries reads one of a package's archives (dpkg-deb --ctrl-tarfile
// or --fsys-tarfile) by name.
func tarEntries(t *testing.T, deb, which string) map[string]tarEntry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", which, deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s %s: %v", which, deb, err)
	}
	entries := map[string]tarEntry{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatalf("%s of %s: %v", which, deb, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = tarEntry{h, body}
	}
}

// checkLintian runs lintian as strictly as it goes; every tag it prints is
// a failure (the reasoned exceptions are in packaging/lintian-overrides,
// and an override that no longer matches is itself reported).
func checkLintian(t *testing.T, debs []string) {
	t.Helper()
	args := append([]string{"--pedantic", "--display-info", "--display-experimental", "--tag-display-limit", "0"}, debs...)
	cmd := exec.Command("lintian", args...)
	b, _ := cmd.CombinedOutput() // lintian's exit status depends on its --fail-on; the tags decide here
	tag := regexp.MustCompile(`(?m)^[EWIPX]: .*$`)
	if tags := tag.FindAllString(string(b), -1); len(tags) > 0 {
		t.Errorf("lintian found:\n%s", strings.Join(tags, "\n"))
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Exited() {
		t.Fatalf("lintian did not run: %s", b)
	}
}

// run runs a command on the host and returns its stdout, failing the test
// if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// rootTarball is the cached Debian root: bookworm minbase, plus what the
// test needs that a kit's Debian or Raspberry Pi OS has: adduser (the
// package's dependency, here so that installing needs no network), systemd
// (booted by systemd-nspawn, it runs the unit) and man-db (systemd-analyze
// verify opens the unit's Documentation=man:lifeline(1) with it). The
// file's name says what it holds, so a change here makes a new one.
const (
	rootSuite   = "bookworm"
	rootInclude = "adduser,systemd,man-db"
	rootMirror  = "http://deb.debian.org/debian"
	rootTarball = "debootstrap-" + rootSuite + "-amd64-minbase+" + rootInclude + ".tar.gz"
	cacheEnv    = "LIFELINE_DEB_CACHE"
)

// debianRoot unpacks a fresh Debian root into dir from the cached
// tarball, which debootstrap makes the first time (from deb.debian.org:
// the only network the test uses). It runs while the packages build (it
// waits on the network and the disk, the build on the CPU), so it returns
// errors rather than failing the test.
func debianRoot(t *testing.T, dir string) error {
	cache := os.Getenv(cacheEnv)
	if cache == "" {
		return fmt.Errorf("$%s is not set: make test-deb names the cache directory for the Debian root", cacheEnv)
	}
	tarball := filepath.Join(cache, rootTarball)
	if _, err := os.Stat(tarball); os.IsNotExist(err) {
		start := time.Now()
		if err := makeRootTarball(cache, tarball); err != nil {
			return err
		}
		t.Logf("debootstrap %s (minbase + %s) cached in %s: %s", rootSuite, rootInclude, tarball, time.Since(start).Round(time.Second))
	}
	start := time.Now()
	if out, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-xzf", tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("unpacking %s: %v\n%s", tarball, err, out)
	}
	t.Logf("Debian root unpacked in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func makeRootTarball(cache, tarball string) error {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(cache, "debootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "root")
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+rootInclude, rootSuite, dir, rootMirror).CombinedOutput()
	// debootstrap mounts /proc and /sys in the root while it works; an
	// interrupted run may leave them.
	for _, m := range []string{"proc", "sys"} {
		_ = syscall.Unmount(filepath.Join(dir, m), syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("debootstrap: %v\n%s", err, tail(out, 40))
	}
	// Downloaded packages are not needed again.
	debs, _ := filepath.Glob(filepath.Join(dir, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		os.Remove(d)
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-czf", tmp, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v\n%s", err, out)
	}
	return os.Rename(tmp, tarball)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kit is a Debian root booted by systemd-nspawn: systemd is its PID 1
// and runs the package's unit as it would on a kit, with its user, its
// capability and its confinement; its network is its own (loopback only),
// so the node binds port 80 and meets no one, whatever else runs here.
type kit struct {
	t       *testing.T
	root    string
	nspawn  *exec.Cmd
	console *syncBuffer
	exited  chan struct{}
	init    int // the container's PID 1, as the host sees it
}

// boot boots a fresh Debian root and returns once its systemd has
// finished starting the system.
func boot(t *testing.T, root string) *kit {
	t.Helper()
	k := &kit{t: t, root: root, console: &syncBuffer{}, exited: make(chan struct{})}
	// --register=no and --keep-unit: no machined or D-Bus needed on the
	// host. Unified cgroups inside whatever the host has (a hybrid host
	// has controllers nspawn cannot mount for a legacy guest).
	k.nspawn = exec.Command("systemd-nspawn", "--quiet", "--directory", k.root, "--register=no", "--keep-unit",
		"--private-network", "--boot")
	k.nspawn.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	k.nspawn.Stdout, k.nspawn.Stderr = k.console, k.console
	if err := k.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.nspawn.Wait(); close(k.exited) }()
	t.Cleanup(k.shutdown)
	// systemd-nspawn's first child forks the container's init and exits;
	// the init is the child that runs systemd.
	for deadline := time.Now().Add(2 * time.Minute); k.init == 0; time.Sleep(100 * time.Millisecond) {
		select {
		case <-k.exited:
			t.Fatalf("systemd-nspawn exited: %v\n%s", k.nspawn.ProcessState, k.console.String())
		default:
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", k.nspawn.Process.Pid, k.nspawn.Process.Pid))
		for _, f := range strings.Fields(string(children)) {
			if comm, _ := os.ReadFile("/proc/" + f + "/comm"); string(comm) == "systemd\n" {
				k.init, _ = strconv.Atoi(f)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not start within 2 min:\n%s", k.console.String())
		}
	}
	// "degraded" is fine: some of Debian's units have nothing to do in a
	// container; the test looks at lifeline's.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		state := strings.TrimSpace(k.try("systemctl", "is-system-running").out)
		if state == "running" || state == "degraded" {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's systemd is %q after 2 min:\n%s", state, k.console.String())
		}
	}
}

// shutdown powers the container off as systemd-nspawn does on SIGTERM, and
// kills it if that takes over 30 s.
func (k *kit) shutdown() {
	select {
	case <-k.exited:
		return
	default:
	}
	k.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(30 * time.Second):
		k.nspawn.Process.Kill()
		<-k.exited
	}
}

// command returns a command run in the container: in all its namespaces
// (nsenter), as root, with a clean environment.
func (k *kit) command(ctx context.Context, args ...string) *exec.Cmd {
	nsenter := []string{"--target", strconv.Itoa(k.init), "--mount", "--uts", "--ipc", "--net", "--pid", "--",
		"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", "HOME=/root"}
	return exec.CommandContext(ctx, "nsenter", append(nsenter, args...)...)
}

// result is what one command in the kit did.
type result struct {
	out  string // stdout and stderr
	code int
}

// try runs args in the kit, bounded in time, and returns what it did.
func (k *kit) try(args ...string) result {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := k.command(ctx, args...)
	b, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		k.t.Fatalf("in the kit, %q: %v", args, err)
	}
	return result{string(b), cmd.ProcessState.ExitCode()}
}

// must runs args in the kit and fails the test unless they succeed.
func (k *kit) must(args ...string) string {
	k.t.Helper()
	r := k.try(args...)
	if r.code != 0 {
		k.t.Fatalf("in the kit, %q: exit %d\n%s", args, r.code, r.out)
	}
	return r.out
}

// exists reports whether path (in the kit) exists.
func (k *kit) exists(path string) bool {
	_, err := os.Lstat(filepath.Join(k.root, path))
	return err == nil
}

// waitNode waits until the service answers `lifeline status` (which finds
// it through the installed config) as the given release, and returns the
// service's main PID.
func (k *kit) waitNode(release string) int {
	k.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := k.try("lifeline", "status")
		if r.code == 0 && strings.Contains(r.out, "version   "+release) {
			pid, _ := strconv.Atoi(strings.TrimSpace(k.must("systemctl", "show", "--value", "--property", "MainPID", "lifeline")))
			if pid != 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("the service did not answer as %s within 60 s: %s\n%s\n%s", release, r.out,
				k.try("systemctl", "status", "--no-pager", "lifeline").out, k.try("journalctl", "--no-pager", "-u", "lifeline").out)
		}
	}
}

// procStatus returns the fields of /proc/PID/status of a process in the kit.
func (k *kit) procStatus(pid int) map[string]string {
	k.t.Helper()
	st := map[string]string{}
	for line := range strings.Lines(k.must("cat", fmt.Sprintf("/proc/%d/status", pid))) {
		key, v, _ := strings.Cut(line, ":")
		st[key] = strings.TrimSpace(v)
	}
	return st
}

// lifecycle installs package a in a booted Debian as a technician would,
// checks the service runs confined as the unit says, posts a message,
// upgrades to b, and checks that the message, the node's key, its token
// and the technician's settings survived; that systemd restarts the node
// when it dies; that remove keeps the data and purge removes it and the
// user.
func lifecycle(t *testing.T, root, a, b string) {
	k := boot(t, root)
	for _, deb := range []string{a, b} {
		data, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		// Not /tmp: the container has its own.
		if err := os.WriteFile(filepath.Join(k.root, "var/tmp", filepath.Base(deb)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inKit := func(deb string) string { return "/var/tmp/" + filepath.Base(deb) }

	// Install: the command the README gives, with no network (the
	// container has none) and no questions (no stdin).
	out := k.must("apt-get", "install", "-y", inKit(a))
	if !strings.Contains(out, "sudo lifeline admin-token") {
		t.Errorf("the install did not tell how to see the admin token:\n%s", out)
	}
	if !strings.Contains(k.must("getent", "passwd", "lifeline"), ":/var/lib/lifeline:/usr/sbin/nologin") {
		t.Error("the user lifeline is not a system user at home in /var/lib/lifeline")
	}
	if r := k.try("systemctl", "is-enabled", "lifeline"); strings.TrimSpace(r.out) != "enabled" {
		t.Errorf("systemctl is-enabled lifeline: %q", r.out)
	}
	// The unit, by the systemd it runs under (Debian's), with the binary
	// and the man page it names installed.
	if r := k.try("systemd-analyze", "verify", "lifeline.service"); r.code != 0 || r.out != "" {
		t.Errorf("systemd-analyze verify lifeline.service: exit %d\n%s", r.code, r.out)
	}
	pid := k.waitNode(releaseA)
	if fi, err := os.Stat(filepath.Join(k.root, "var/lib/lifeline")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("/var/lib/lifeline: %v, %v; want mode 0700", fi, err)
	}
	// The service as the kernel sees it: its user, dialout, one capability.
	st := k.procStatus(pid)
	uid := strings.Split(k.must("getent", "passwd", "lifeline"), ":")[2]
	dialout := strings.Split(k.must("getent", "group", "dialout"), ":")[2]
	if strings.Fields(st["Uid"])[0] != uid || !slices.Contains(strings.Fields(st["Groups"]), dialout) ||
		st["CapEff"] != "0000000000000400" || st["CapBnd"] != "0000000000000400" || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
		t.Errorf("the service runs as uid %s, groups %s, capabilities %s (bounding %s), no_new_privs %s, seccomp %s; want uid %s, dialout (%s), CAP_NET_BIND_SERVICE (0x400) alone, 1, 2",
			st["Uid"], st["Groups"], st["CapEff"], st["CapBnd"], st["NoNewPrivs"], st["Seccomp"], uid, dialout)
	}
	sec := k.try("systemd-analyze", "security", "--no-pager", "lifeline")
	t.Logf("systemd-analyze security lifeline: %s", regexp.MustCompile(`Overall exposure level.*`).FindString(sec.out))

	// The client commands find the node by the installed config: no --api.
	const text = "water at the school: kept across the upgrade"
	k.must("lifeline", "send", "--channel", "general", text)
	if got := k.must("lifeline", "read", "--channel", "general"); !strings.Contains(got, text) {
		t.Fatalf("read after send: %q", got)
	}
	id := strings.TrimSpace(k.must("lifeline", "id"))
	token := strings.TrimSpace(k.must("lifeline", "admin-token"))
	if saved, err := os.ReadFile(filepath.Join(k.root, "var/lib/lifeline/admin.token")); err != nil || token != strings.TrimSpace(string(saved)) || len(token) != 64 {
		t.Errorf("lifeline admin-token as root printed %q; the node's is %q (%v)", token, saved, err)
	}
	// Someone else on the kit sees the node's key (asked of the node) but
	// not its token.
	nobody := []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"}
	if got := strings.TrimSpace(k.must(append(nobody, "lifeline", "id")...)); got != id {
		t.Errorf("lifeline id as nobody: %q; want %s", got, id)
	}
	if r := k.try(append(nobody, "lifeline", "admin-token")...); r.code == 0 || !strings.Contains(r.out, "only root and the node's user") {
		t.Errorf("lifeline admin-token as nobody: exit %d, %q", r.code, r.out)
	}

	// Restart=on-failure: a node killed is started again.
	k.must("sh", "-c", "kill -KILL "+strconv.Itoa(pid))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if p, _ := strconv.Atoi(strings.TrimSpace(k.must("systemctl", "show", "--value", "--property", "MainPID", "lifeline"))); p != 0 && p != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd did not restart the killed node within 60 s:\n%s", k.try("systemctl", "status", "--no-pager", "lifeline").out)
		}
	}
	k.waitNode(releaseA)

	// The technician's own setting, which the upgrade must keep.
	conf := filepath.Join(k.root, "etc/lifeline/lifeline.toml")
	b0, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b0), `default_channel = "general"`, `default_channel = "kit-7"`, 1)
	if edited == string(b0) || os.WriteFile(conf, []byte(edited), 0o644) != nil {
		t.Fatal("could not edit the config")
	}

	// Upgrade: the same command with the new package; the service is
	// restarted on the new binary.
	k.must("apt-get", "install", "-y", inKit(b))
	k.waitNode(releaseB)
	if got, _ := os.ReadFile(conf); string(got) != edited {
		t.Error("the upgrade did not keep the edited config")
	}
	if got := k.must("lifeline", "read", "--channel", "general"); !strings.Contains(got, text) {
		t.Errorf("after the upgrade, the message is gone: %q", got)
	}
	if got := strings.TrimSpace(k.must("lifeline", "id")); got != id {
		t.Errorf("after the upgrade the node is %s; it was %s", got, id)
	}
	if got := strings.TrimSpace(k.must("lifeline", "admin-token")); got != token {
		t.Error("the upgrade changed the admin token")
	}

	// Remove stops the service and keeps the data, the settings and the
	// user; purge removes them.
	k.must("apt-get", "remove", "-y", "lifeline")
	if r := k.try("systemctl", "is-active", "lifeline"); strings.TrimSpace(r.out) == "active" {
		t.Error("apt remove left the service running")
	}
	if k.exists("usr/bin/lifeline") || !k.exists("var/lib/lifeline/identity.pem") || !k.exists("etc/lifeline/lifeline.toml") ||
		k.try("getent", "passwd", "lifeline").code != 0 {
		t.Error("apt remove: want the binary gone and the data, the config and the user kept")
	}
	k.must("apt-get", "purge", "-y", "lifeline")
	for _, p := range []string{"var/lib/lifeline", "etc/lifeline", "etc/systemd/system/multi-user.target.wants/lifeline.service"} {
		if k.exists(p) {
			t.Errorf("apt purge left %s", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if k.try("getent", db, "lifeline").code == 0 {
			t.Errorf("apt purge left lifeline in %s", db)
		}
	}
}

// syncBuffer is a bytes.Buffer that a process and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
