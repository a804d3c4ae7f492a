package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDebVersion: releases and development builds get versions dpkg
// accepts and orders as people expect (dpkg --compare-versions, when it is
// there, is the judge).
func TestDebVersion(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 30, 44, 0, time.UTC)
	for _, c := range []struct{ release, revision, want string }{
		{"0.3.0", "1a2b3c4d5e6f", "0.3.0"},
		{"v0.3.0", "1a2b3c4d5e6f", "0.3.0"},
		{"0.3.0-rc1", "1a2b3c4d5e6f", "0.3.0~rc1"},
		{"", "1a2b3c4d5e6f", "0.0.0~git20261207213044.1a2b3c4d5e6f"},
		{"", "1a2b3c4d5e6f-modified", "0.0.0~git20261207213044.1a2b3c4d5e6f+modified"},
	} {
		if got, err := debVersion(c.release, c.revision, at); err != nil || got != c.want {
			t.Errorf("debVersion(%q, %q) = %q, %v; want %q", c.release, c.revision, got, err, c.want)
		}
	}
	for _, bad := range []string{"latest", "0.3 beta", "0.3.0_1", "-1"} {
		if v, err := debVersion(bad, "r", at); err == nil {
			t.Errorf("debVersion(%q) = %q: accepted", bad, v)
		}
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		return // the ordering below is dpkg's; make test-deb requires it
	}
	later := at.Add(time.Second)
	older, _ := debVersion("", "ffffffffffff", at)
	newer, _ := debVersion("", "000000000000", later)
	for _, order := range [][2]string{
		{older, newer},   // later commits upgrade earlier ones, whatever their hashes
		{newer, "0.1.0"}, // every release upgrades a development build
		{"0.3.0~rc1", "0.3.0"},
		{"0.3.0", "0.3.1"},
	} {
		if err := exec.Command("dpkg", "--compare-versions", order[0], "lt", order[1]).Run(); err != nil {
			t.Errorf("dpkg does not order %s before %s", order[0], order[1])
		}
	}
}

// TestNodeDoesNotLinkNfpm: the packaging library stays out of the node's
// binary, which goes onto small boards.
func TestNodeDoesNotLinkNfpm(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "lifeline/cmd/node").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := string(out)
	if !strings.Contains(deps, "lifeline/api\n") {
		t.Fatalf("go list -deps printed no lifeline/api: %s", deps)
	}
	for _, p := range []string{"github.com/goreleaser/", "lifeline/packaging"} {
		if strings.Contains(deps, p) {
			t.Errorf("the node's binary links %s", p)
		}
	}
}
