package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/radio"
	"lifeline/radio/link"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		channel string
		pos     []string
	}{
		{[]string{"--channel", "x", "hello", "world"}, "x", []string{"hello", "world"}},
		{[]string{"hello", "--channel", "x", "world"}, "x", []string{"hello", "world"}},
		{[]string{"--channel=x", "--", "-dash", "--channel"}, "x", []string{"-dash", "--channel"}},
		{[]string{"hi"}, "", []string{"hi"}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		ch := fs.String("channel", "", "")
		pos, err := parse(fs, tc.args)
		if err != nil || *ch != tc.channel || !reflect.DeepEqual(pos, tc.pos) {
			t.Errorf("parse(%q) = %q, %q, %v", tc.args, *ch, pos, err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, exitUsage, "Usage"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"version"}, exitOK, ""},
		{[]string{"nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"send", "-h"}, exitOK, "Usage: lifeline send"},
		{[]string{"send", "--to", "x", "--channel", "y", "hi"}, exitUsage, "not both"},
		{[]string{"read", "stray"}, exitUsage, `unexpected argument "stray"`},
		{[]string{"keygen"}, exitUsage, "missing --out"},
		{[]string{"radios", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"radios", "--json"}, exitOK, "["},
		{[]string{"export", "--api", "127.0.0.1:1", "abc"}, exitUsage, "message id"},
		{[]string{"status", "--api", "127.0.0.1:1"}, exitError, "cannot reach the node"},
		{[]string{"run", "--quota", "5", "--data", t.TempDir()}, exitError, "quota"},
		{[]string{"run", "--log", "xml", "--data", t.TempDir()}, exitUsage, "want text or json"},
		{[]string{"run", "--kit", "fd00::1", "--data", t.TempDir()}, exitError, "IPv4"},
		{[]string{"run", "--kit", "10.42.0.1", "--api", "10.0.0.9:80", "--data", t.TempDir()}, exitError, "another address"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.says) {
			t.Errorf("lifeline %q: exit %d, output %q%q; want %d saying %q", tc.args, code, out.String(), errb.String(), tc.code, tc.says)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	for _, tc := range []struct {
		m    api.Message
		want []string
	}{
		{api.Message{Channel: "general", Author: "0123456789ab", Text: "two\nlines", Priority: "alert"}, []string{"#general", "01234567", "ALERT two\\nlines"}},
		{api.Message{Kind: "direct", To: "abcdef0123", Author: "99", Own: true, Status: "delivered"}, []string{"@abcdef01", "[sealed", "(delivered)"}},
		{api.Message{Kind: "receipt", To: "ab", Acks: []string{"x", "y"}}, []string{"[receipt for 2 message(s)]"}},
	} {
		got := formatMessage(tc.m)
		for _, w := range tc.want {
			if !strings.Contains(got, w) || strings.Contains(got, "\n") {
				t.Errorf("formatMessage(%+v) = %q, want it to contain %q on one line", tc.m, got, w)
			}
		}
	}
}

// TestIDMakesNoKey: `lifeline id` in a directory without an identity asks
// the running node, and says plainly when there is none; it never makes a
// key (a key printed from the wrong directory would be given out as the
// node's, and nothing would reach it).
func TestIDMakesNoKey(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"id", "--data", dir, "--api", "127.0.0.1:1"}, strings.NewReader(""), &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "no node identity in "+dir) {
		t.Fatalf("id with no identity and no node: exit %d, %q", code, errb.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("id left %d files in the data directory", len(entries))
	}
}

// TestJSONLogs: with --log json every line the node logs is one JSON
// object, for journald and log collectors.
func TestJSONLogs(t *testing.T) {
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "--log", "json", "--data", t.TempDir(), "--api", "127.0.0.1:0",
			"--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"}, strings.NewReader(""), &out, &errb)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not start: %s", errb.String())
		}
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["msg"] == nil || v["level"] == nil {
			t.Fatalf("a log line that is not a JSON record: %q (%v)", l, err)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("only %d log lines: %q", len(lines), errb.String())
	}
}

// TestBackupCommands: lifeline backup writes a running node's backup to a
// private file, never over an existing one; lifeline restore makes an
// empty directory that node again, and refuses a directory with a node.
func TestBackupCommands(t *testing.T) {
	var out, errb lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	// Stopped before the data directory is removed: a node stopping
	// writes its clock there.
	defer func() { cancel(); <-stopped }()
	go func() {
		defer close(stopped)
		run(ctx, []string{"run", "--data", t.TempDir(), "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"},
			strings.NewReader(""), &out, &errb)
	}()
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if _, after, ok := strings.Cut(out.String(), "listening on "); ok {
			url = strings.TrimSpace(after)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not start: %s", errb.String())
		}
	}
	cli := func(args ...string) (int, string) {
		var o, e bytes.Buffer
		code := run(t.Context(), args, strings.NewReader(""), &o, &e)
		return code, o.String() + e.String()
	}
	if code, said := cli("send", "--api", url, "--channel", "general", "kept in the backup"); code != exitOK {
		t.Fatalf("send: %d %s", code, said)
	}
	file := filepath.Join(t.TempDir(), "kit.tar")
	if code, said := cli("backup", "--api", url, "--out", file); code != exitOK || !strings.Contains(said, "keep it as private") {
		t.Fatalf("backup: %d %s", code, said)
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the backup file: %v, %v; want mode 0600", info, err)
	}
	if code, said := cli("backup", "--api", url, "--out", file); code == exitOK || !strings.Contains(said, "not replacing") {
		t.Fatalf("a backup over an existing file: %d %s", code, said)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if code, said := cli("restore", "--data", dir, file); code != exitOK || !strings.Contains(said, "restored 1 messages") {
		t.Fatalf("restore: %d %s", code, said)
	}
	if code, said := cli("restore", "--data", dir, file); code == exitOK || !strings.Contains(said, "already holds a node") {
		t.Fatalf("a restore over a node: %d %s", code, said)
	}
}

// TestTestbedHints: lifeline testbed says, board by board, what a node on
// each needs beyond --radio (a Meshtastic device: its driver and preset),
// and that Meshtastic devices and RNodes on one line do not hear each
// other.
func TestTestbedHints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"testbed", "--boards", "3", "--devices", "rnode,meshtastic:ShortFast", "--dir", t.TempDir()}, strings.NewReader(""), &out, &errb)
	}()
	// The hints are printed before the testbed runs; it runs until
	// cancelled.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "start a node on each") {
		if time.Now().After(deadline) {
			t.Fatal("no hint printed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK && !strings.Contains(errb.String(), "no pseudo-terminals") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 5 || strings.Contains(lines[0], "--radio-driver") ||
		!strings.HasSuffix(lines[1], "(its node: --radio-driver meshtastic --radio-preset ShortFast)") ||
		!strings.HasSuffix(lines[2], "(its node: --radio-driver meshtastic --radio-preset ShortFast)") ||
		!strings.Contains(lines[3], "do not understand each other's frames") {
		t.Fatalf("testbed said:\n%s", out.String())
	}
}

// TestPrintRadio: lifeline status shows what a technician needs of a
// radio: the setup to fix, the device's errors by meaning, and the
// board's own airtime account with its windows named.
func TestPrintRadio(t *testing.T) {
	var b bytes.Buffer
	printRadio(&b, radio.StationStatus{Status: link.Status{Driver: "rnode", Device: "/dev/ttyUSB0", State: "ready", Firmware: "1.86",
		Warning: "firmware 1.40 is older than 1.52: update the board", Errors: map[string]int{"queue full": 2, "transmission failed": 1},
		Board: &link.BoardStats{AirtimeShort: 0.125, AirtimeLong: 0.0375, ChannelShort: 0.4, ChannelLong: 0.2}},
		Region: "EU868", Preset: "LongFast"})
	for _, want := range []string{
		"radio     /dev/ttyUSB0 ready since",
		"(rnode, firmware 1.86), EU868 LongFast",
		"  setup   firmware 1.40 is older than 1.52: update the board\n",
		"  errors  queue full 2, transmission failed 1\n",
		"  board   says 12.5% airtime in the last 15 s, 3.8% over the hour; channel busy 40.0% (20.0% over the hour)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
