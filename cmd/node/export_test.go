package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lifeline/api"
	"lifeline/bundle"
	"lifeline/message"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"2026-12-01":                time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		"2026-12-01T08:30:00Z":      time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC),
		"2026-12-01T08:30:00+03:00": time.Date(2026, 12, 1, 5, 30, 0, 0, time.UTC),
		"72h":                       now.Add(-72 * time.Hour),
		"3d":                        now.Add(-72 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
	} {
		got, err := parseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-3h", "2026-13-01", "3 days", "-1d"} {
		if _, err := parseTime(bad, now); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}

// bundleIDs reads a bundle file: its envelopes' ids, and how the reader
// ended.
func bundleIDs(t *testing.T, b []byte) ([]string, error) {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		raw, err := r.Next()
		if err != nil {
			return ids, err
		}
		e, err := message.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID().String())
	}
}

func statusOf(t *testing.T, bin, url string) api.Status {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", url, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestExportImportProcesses carries a node's messages to another by file,
// as a technician with a USB stick would, with real processes: everything,
// a channel of the last three days, a copy cut short, a bundle with a
// forged, an expired and a damaged entry; then an export of a stopped
// node's data directory, and the compaction of a stopped node's store.
func TestExportImportProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startDaemon(t, bin, dirA)
	b := startDaemon(t, bin, dirB)
	tmp := t.TempDir()

	// 600 messages on A: 400 on general, 200 on water; a quarter of
	// them created four days ago.
	alice, err := message.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var envs [][]byte
	recentWater := 0
	for i := range 600 {
		channel, at := "general", now.Add(-time.Duration(i)*time.Second)
		if i%3 == 0 {
			channel = "water"
		}
		if i%4 == 0 {
			at = at.Add(-96 * time.Hour)
		} else if channel == "water" {
			recentWater++
		}
		e, err := alice.NewText(channel, fmt.Sprint("message ", i), at, 0)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e.Raw())
	}
	ca := &api.Client{BaseURL: a.url}
	for i := 0; i < len(envs); i += api.MaxBatchEnvelopes {
		if _, err := ca.PostBatch(t.Context(), envs[i:min(i+api.MaxBatchEnvelopes, len(envs))]); err != nil {
			t.Fatal(err)
		}
	}
	held := statusOf(t, bin, a.url).Messages

	all := filepath.Join(tmp, "all.llb")
	if r := runCLI(t, bin, nil, "export", "--api", a.url, "--out", all); r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("exported %d envelopes", held)) {
		t.Fatalf("export: %+v", r)
	}
	if fi, err := os.Stat(all); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the export file: %v %v", fi, err)
	}
	fails(t, bin, nil, "exists", "export", "--api", a.url, "--out", all)
	water := filepath.Join(tmp, "water.llb")
	ok(t, bin, "export", "--api", a.url, "--channel", "water", "--since", "72h", "--out", water)
	wb, _ := os.ReadFile(water)
	if ids, err := bundleIDs(t, wb); !errors.Is(err, io.EOF) || len(ids) != recentWater {
		t.Fatalf("water of the last 72h: %d envelopes (%v), want %d", len(ids), err, recentWater)
	}

	out := ok(t, bin, "import", "--api", b.url, all)
	if !strings.Contains(out, fmt.Sprintf("%d envelopes read", held)) || !strings.Contains(out, fmt.Sprintf("%d new, 0 already stored, 0 refused", held)) {
		t.Fatalf("import into B: %q", out)
	}
	if got := statusOf(t, bin, b.url).Messages; got < held {
		t.Fatalf("B holds %d messages after the import, want %d", got, held)
	}
	if out := ok(t, bin, "import", "--api", b.url, water); !strings.Contains(out, fmt.Sprintf("0 new, %d already stored, 0 refused", recentWater)) {
		t.Fatalf("importing again: %q", out)
	}

	c := startDaemon(t, bin, t.TempDir())
	t.Run("cut short", func(t *testing.T) {
		full, _ := os.ReadFile(all)
		cut := full[:len(full)*2/3]
		whole, _ := bundleIDs(t, cut)
		part := filepath.Join(t.TempDir(), "cut.llb")
		os.WriteFile(part, cut, 0o600)
		r := runCLI(t, bin, nil, "import", "--api", c.url, part)
		if r.code != exitError || !strings.Contains(r.stderr, "cut short") || !strings.Contains(r.stdout, fmt.Sprintf("%d new, 0 already stored", len(whole))) {
			t.Fatalf("importing a copy cut short (%d whole envelopes): %+v", len(whole), r)
		}
		out := ok(t, bin, "import", "--api", c.url, all)
		if !strings.Contains(out, fmt.Sprintf("%d new, %d already stored, 0 refused", int(held)-len(whole), len(whole))) {
			t.Fatalf("then the whole file: %q", out)
		}
	})

	t.Run("bad entries", func(t *testing.T) {
		var buf bytes.Buffer
		w, err := bundle.NewWriter(&buf, now)
		if err != nil {
			t.Fatal(err)
		}
		good := func(text string) []byte {
			e, err := alice.NewText("general", text, time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			return e.Raw()
		}
		forged := good("forged")
		forged[len(forged)-1] ^= 1
		old, err := alice.NewText("general", "long gone", now.Add(-40*24*time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		damaged := good("damaged on the stick")
		for _, e := range [][]byte{good("one"), forged, good("two"), old.Raw(), damaged, good("three")} {
			if err := w.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		file := buf.Bytes()
		at := bytes.Index(file, damaged)
		file[at+20] ^= 0x55 // a flipped bit on the stick: the entry's checksum no longer matches
		path := filepath.Join(t.TempDir(), "bad.llb")
		os.WriteFile(path, file, 0o600)
		r := runCLI(t, bin, nil, "import", "--api", c.url, path)
		for _, want := range []string{"5 envelopes read", "3 new, 0 already stored, 2 refused", "1 refused: bad signature", "1 refused: expired"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("import of bad entries: stdout lacks %q:\n%s", want, r.stdout)
			}
		}
		if r.code != exitError || !strings.Contains(r.stderr, "damaged") || !strings.Contains(r.stderr, "1 envelopes lost") {
			t.Errorf("import of bad entries: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("stopped node", func(t *testing.T) {
		fails(t, bin, nil, "a node is running on "+dirB, "export", "--data", dirB, "--out", filepath.Join(tmp, "never.llb"))
		if code := a.stop(t); code != 0 {
			t.Fatalf("A exited %d", code)
		}
		off := filepath.Join(tmp, "offline.llb")
		r := runCLI(t, bin, nil, "export", "--data", dirA, "--out", off)
		if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("exported %d envelopes from %s", held, dirA)) {
			t.Fatalf("export of a stopped node: %+v", r)
		}
		ob, _ := os.ReadFile(off)
		fb, _ := os.ReadFile(all)
		oids, _ := bundleIDs(t, ob)
		fids, _ := bundleIDs(t, fb)
		if strings.Join(oids, ",") != strings.Join(fids, ",") {
			t.Fatal("the stopped node's export differs from the running node's")
		}
		ok(t, bin, "export", "--data", dirA, "--channel", "water", "--since", "72h", "--out", filepath.Join(tmp, "offline-water.llb"))
		wb2, _ := os.ReadFile(filepath.Join(tmp, "offline-water.llb"))
		if !bytes.Equal(wb2[17:], wb[17:]) { // the header's time aside
			t.Fatal("the stopped node's channel export differs from the running node's")
		}
		fails(t, bin, nil, "not both", "export", "--data", dirA, "--api", b.url)
		fails(t, bin, nil, "no such file", "export", "--data", filepath.Join(tmp, "nothing"), "--out", filepath.Join(tmp, "x.llb"))
	})

	t.Run("compact", func(t *testing.T) {
		fails(t, bin, nil, "stop the node first", "compact", "--data", dirB)
		before := statusOf(t, bin, b.url)
		if code := b.stop(t); code != 0 {
			t.Fatalf("B exited %d", code)
		}
		out := ok(t, bin, "compact", "--data", dirB)
		if !strings.Contains(out, fmt.Sprintf("%d messages", before.Messages)) || !strings.Contains(out, "MiB ->") {
			t.Fatalf("compact: %q", out)
		}
		b2 := startDaemon(t, bin, dirB)
		if after := statusOf(t, bin, b2.url); after.Messages != before.Messages || after.LastSeq != before.LastSeq {
			t.Fatalf("after compacting: %d messages (seq %d), before %d (seq %d)", after.Messages, after.LastSeq, before.Messages, before.LastSeq)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		msgs, err := (&api.Client{BaseURL: b2.url}).List(ctx, api.ListQuery{Channel: "water", Limit: api.MaxLimit})
		if err != nil || len(msgs) != 200 {
			t.Fatalf("B's water after compacting: %d, %v", len(msgs), err)
		}
	})
}
