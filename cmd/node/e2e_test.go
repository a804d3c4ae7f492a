package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lifeline/api"
)

// The end-to-end test drives the real binary the way people do: separate
// processes, flags, exit codes, signals.

// lockedBuffer is a bytes.Buffer safe to write from a process's output
// copier and read from the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// buildBinary compiles cmd/node into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lifeline")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is a `lifeline run` process.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited and been waited for
}

// loopbackMesh keeps a test node's mesh on loopback, off the LAN.
var loopbackMesh = []string{"--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"}

// startDaemon runs `lifeline run` on free loopback ports and waits until its
// API answers. extra are more flags for run (e.g. --peer).
func startDaemon(t *testing.T, bin, dataDir string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"run", "--data", dataDir, "--api", "127.0.0.1:0"}, loopbackMesh...)
	d := launch(t, exec.Command(bin, append(args, extra...)...), "")
	// Ready means answering, not merely listening.
	c := &api.Client{BaseURL: d.url}
	waitFor(t, 30*time.Second, "the node at "+d.url+" answers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Status(ctx)
		return err == nil
	})
	return d
}

// launch starts cmd, a `lifeline run` (where says where, for messages),
// and returns once it has printed its API address. t.Cleanup kills it.
func launch(t *testing.T, cmd *exec.Cmd, where string) *daemon {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first stdout line says where the API listens. Wait may only run
	// once the pipe has been read to the end, hence readDone.
	lines := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br)
	}()
	go func() {
		<-readDone
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = cmd.Process.Kill()
			<-d.exited
		}
	})
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("lifeline run%s printed no address within 30s; stderr:\n%s", where, d.stderr.String())
	}
	// A node on every interface (0.0.0.0:80, as the package's config has
	// it) is reached on loopback.
	m := regexp.MustCompile(`listening on http://(127\.0\.0\.1|0\.0\.0\.0|\[::\]):(\d+)`).FindStringSubmatch(line)
	if m == nil {
		_ = cmd.Process.Kill()
		<-d.exited
		t.Fatalf("lifeline run%s said %q; stderr:\n%s", where, line, d.stderr.String())
	}
	d.url = "http://127.0.0.1:" + m[2]
	return d
}

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop(t *testing.T) int {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("lifeline run did not exit within 30s of SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

// result is what one CLI invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary with args and optional stdin, bounded in time.
func runCLI(t *testing.T, bin string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("lifeline %v: %v", args, err)
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// ok runs the binary and fails the test unless it exits 0.
func ok(t *testing.T, bin string, args ...string) string {
	t.Helper()
	r := runCLI(t, bin, nil, args...)
	if r.code != 0 {
		t.Fatalf("lifeline %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs the binary, expects a non-zero exit, and checks that stderr
// explains.
func fails(t *testing.T, bin string, stdin []byte, says string, args ...string) {
	t.Helper()
	r := runCLI(t, bin, stdin, args...)
	if r.code == 0 || !strings.Contains(r.stderr, says) {
		t.Fatalf("lifeline %v: exit %d, stderr %q; want failure saying %q", args, r.code, r.stderr, says)
	}
}

func readJSON(t *testing.T, bin string, args ...string) []api.Message {
	t.Helper()
	out := ok(t, bin, append([]string{"read", "--json"}, args...)...)
	var ms []api.Message
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("read --json printed %q: %v", out, err)
	}
	return ms
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := startDaemon(t, bin, dirA)
	b := startDaemon(t, bin, dirB)

	t.Run("channel", func(t *testing.T) {
		out := ok(t, bin, "send", "--api", a.url, "--channel", "general", "water", "at", "the", "school")
		if !hexID.MatchString(out) {
			t.Fatalf("send printed %q, want an id", out)
		}
		id := strings.TrimSpace(out)
		ms := readJSON(t, bin, "--api", a.url, "--channel", "#General")
		if len(ms) != 1 || ms[0].ID != id || ms[0].Text != "water at the school" || ms[0].Channel != "general" || !ms[0].Own {
			t.Fatalf("read --json = %+v", ms)
		}
		if out := ok(t, bin, "read", "--api", a.url, "--channel", "general"); !strings.Contains(out, "#general") || !strings.Contains(out, "water at the school") {
			t.Fatalf("read = %q", out)
		}
		alert := strings.TrimSpace(ok(t, bin, "send", "--api", a.url, "--channel", "general", "--alert", "--ttl", "2h", "flood warning"))
		ms = readJSON(t, bin, "--api", a.url, "--channel", "general", "--since", "1")
		if len(ms) != 2 || ms[1].ID != alert || ms[1].Kind != "alert" || ms[1].Priority != "alert" {
			t.Fatalf("after alert: %+v", ms)
		}
	})

	t.Run("direct message", func(t *testing.T) {
		// id works offline, on the data directory of a running node.
		bKey := strings.TrimSpace(ok(t, bin, "id", "--data", dirB))
		var st api.Status
		if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", b.url, "--json")), &st); err != nil || st.ID != bKey {
			t.Fatalf("status id %q vs id %q: %v", st.ID, bKey, err)
		}
		aKey := strings.TrimSpace(ok(t, bin, "id", "--data", dirA))
		// B wrote to A first: a node acknowledges only its correspondents.
		ok(t, bin, "send", "--api", b.url, "--to", aKey, "where are you?")
		id := strings.TrimSpace(ok(t, bin, "send", "--api", a.url, "--to", bKey, "meet at the bridge"))

		// No mesh yet: carry the signed envelope by hand, as over HTTP.
		env := httpGet(t, a.url+"/api/v1/envelopes/"+id)
		code, body := httpPost(t, b.url+"/api/v1/envelopes", "application/octet-stream", env)
		if code != http.StatusCreated || !strings.Contains(body, id) {
			t.Fatalf("POST to B: %d %s", code, body)
		}
		ms := readJSON(t, bin, "--api", b.url, "--to", bKey)
		if len(ms) != 1 || ms[0].Text != "meet at the bridge" || ms[0].Author != aKey {
			t.Fatalf("B reads %+v", ms)
		}
		out := ok(t, bin, "read", "--api", a.url, "--to", bKey, "--json")
		if strings.Contains(out, "meet at the bridge") {
			t.Fatalf("A's listing shows the plaintext: %s", out)
		}

		// B acknowledged it by itself; carried back with export/import,
		// the receipt makes A's copy delivered.
		var receipt string
		deadline := time.Now().Add(20 * time.Second)
		for receipt == "" {
			for _, m := range readJSON(t, bin, "--api", b.url, "--to", aKey) {
				if m.Kind == "receipt" && len(m.Acks) == 1 && m.Acks[0] == id {
					receipt = m.ID
				}
			}
			if receipt == "" && time.Now().After(deadline) {
				t.Fatal("B sent no receipt")
			}
		}
		file := filepath.Join(t.TempDir(), "receipt.bin")
		ok(t, bin, "export", "--api", b.url, "--out", file, receipt)
		if out := ok(t, bin, "import", "--api", a.url, file); !strings.Contains(out, receipt+" new") {
			t.Fatalf("import said %q", out)
		}
		if out := ok(t, bin, "read", "--api", a.url, "--to", bKey); !strings.Contains(out, "(delivered)") {
			t.Fatalf("A's read after the receipt: %q", out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		fails(t, bin, nil, "public key", "send", "--api", a.url, "--to", "not-a-key", "hello")
		fails(t, bin, nil, "public key", "read", "--api", a.url, "--to", "abcd")
		fails(t, bin, nil, "missing the message text", "send", "--api", a.url, "--channel", "general")
		fails(t, bin, nil, "empty", "send", "--api", a.url, "--channel", "general", "")
		fails(t, bin, nil, "--channel NAME or --to KEY", "send", "--api", a.url, "hello")
		fails(t, bin, []byte("this is not an envelope"), "unknown envelope version", "import", "--api", a.url)
		fails(t, bin, nil, "unknown command", "frobnicate")
		fails(t, bin, nil, "flag provided but not defined", "read", "--chanel", "general")
		fails(t, bin, nil, "cannot reach the node at http://127.0.0.1:1: is `lifeline run` running?", "status", "--api", "127.0.0.1:1")
		code, body := httpPost(t, a.url+"/api/v1/envelopes", "application/octet-stream", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, `"error"`) {
			t.Fatalf("garbage envelope: %d %s", code, body)
		}
		// Nothing of that was stored: A holds its two channel messages,
		// its DM and B's receipt.
		var st api.Status
		if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", a.url, "--json")), &st); err != nil || st.Messages != 4 {
			t.Fatalf("A's status after bad input: %+v %v", st, err)
		}
	})

	t.Run("data directory in use", func(t *testing.T) {
		fails(t, bin, nil, "data directory "+dirA+" is in use by another lifeline process", "run", "--data", dirA, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns")
	})

	t.Run("config file", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "lifeline.json")
		if err := os.WriteFile(cfg, []byte(`{"version": 1, "data_dir": "`+dirA+`", "quota": 1}`), 0o600); err != nil {
			t.Fatal(err)
		}
		fails(t, bin, nil, "quota", "run", "--config", cfg)
		// An explicit flag overrides the file (and then the directory is
		// the one in use).
		fails(t, bin, nil, "in use", "run", "--config", cfg, "--quota", "1000000", "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns")
		if err := os.WriteFile(cfg, []byte(`{"data_dir": "x"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		fails(t, bin, nil, "version", "run", "--config", cfg)
	})

	t.Run("keygen", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "me.pem")
		key := ok(t, bin, "keygen", "--out", file)
		if !hexID.MatchString(key) {
			t.Fatalf("keygen printed %q", key)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v", fi.Mode(), err)
		}
		fails(t, bin, nil, "already exists", "keygen", "--out", file)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		for name, d := range map[string]*daemon{"a": a, "b": b} {
			if code := d.stop(t); code != 0 {
				t.Errorf("node %s exited %d after SIGTERM; stderr:\n%s", name, code, d.stderr.String())
			}
			if !strings.Contains(d.stderr.String(), "lifeline node stopped") {
				t.Errorf("node %s did not log a clean stop:\n%s", name, d.stderr.String())
			}
		}
	})
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

func httpPost(t *testing.T, url, ct string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestThreeProcessesConverge starts three `lifeline run` processes in a line
// on loopback (C knows B, B knows A) and checks, through the CLI alone, that
// messages sent at either end reach every node, and that status shows the
// mesh.
func TestThreeProcessesConverge(t *testing.T) {
	bin := buildBinary(t)
	meshAddr := func(d *daemon) string {
		var st api.Status
		if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", d.url, "--json")), &st); err != nil || st.Status == nil || len(st.Addrs) == 0 {
			t.Fatalf("status --json has no mesh addrs: %v", err)
		}
		return st.Addrs[0]
	}
	// Debug logs, printed if the test fails: convergence bugs are timing.
	a := startDaemon(t, bin, t.TempDir(), "-v")
	b := startDaemon(t, bin, t.TempDir(), "-v", "--peer", meshAddr(a))
	c := startDaemon(t, bin, t.TempDir(), "-v", "--peer", meshAddr(b))
	defer func() {
		if t.Failed() {
			for i, d := range []*daemon{a, b, c} {
				t.Logf("=== node %c\n%s", 'A'+i, d.stderr.String())
			}
		}
	}()

	// One message before the line is known to be up (reconciliation carries
	// it), one from each end later (gossip or reconciliation).
	early := strings.TrimSpace(ok(t, bin, "send", "--api", a.url, "--channel", "general", "early", "news"))
	statusOf := func(d *daemon) api.Status {
		var st api.Status
		if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", d.url, "--json")), &st); err != nil || st.Status == nil {
			t.Fatalf("status --json: %v", err)
		}
		return st
	}
	waitFor(t, 30*time.Second, "B connected to A and C", func() bool { return statusOf(b).Peers == 2 })
	fromA := strings.TrimSpace(ok(t, bin, "send", "--api", a.url, "--channel", "general", "from", "A"))
	fromC := strings.TrimSpace(ok(t, bin, "send", "--api", c.url, "--channel", "general", "--alert", "from", "C"))
	want := []string{early, fromA, fromC}
	for _, d := range []*daemon{a, b, c} {
		waitFor(t, 30*time.Second, "every node reads all three messages", func() bool {
			var msgs []api.Message
			if err := json.Unmarshal([]byte(ok(t, bin, "read", "--api", d.url, "--channel", "general", "--json")), &msgs); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, m := range msgs {
				got[m.ID] = true
			}
			for _, id := range want {
				if !got[id] {
					return false
				}
			}
			return len(msgs) == len(want)
		})
	}
	st := statusOf(b)
	if st.PeerID == "" || st.Peers != 2 || len(st.PeerList) != 2 {
		t.Fatalf("B's status: %+v", st.Status)
	}
	waitFor(t, 30*time.Second, "B has reconciled with both peers", func() bool {
		for _, p := range statusOf(b).PeerList {
			if p.LastReconcile.IsZero() {
				return false
			}
		}
		return true
	})
	// Polling in arrival order sees the same three, whatever order they came in.
	var arrived []api.Message
	if err := json.Unmarshal([]byte(ok(t, bin, "read", "--api", c.url, "--channel", "general", "--after", "0", "--json")), &arrived); err != nil || len(arrived) != 3 {
		t.Fatalf("read --after 0: %d messages, %v", len(arrived), err)
	}
	if arrived[0].Seq >= arrived[1].Seq || arrived[1].Seq >= arrived[2].Seq {
		t.Fatalf("read --after is not in arrival order: %d %d %d", arrived[0].Seq, arrived[1].Seq, arrived[2].Seq)
	}
	if out := ok(t, bin, "status", "--api", b.url); !strings.Contains(out, "mesh      2 peers") {
		t.Fatalf("human status lacks the mesh line:\n%s", out)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHubProcesses: a hub and a field node as processes. The field node's
// uplink goes down when the hub stops and up when it is back, and the hub
// then lists the outage, from the field node's signed reports, through
// `lifeline outages`.
func TestHubProcesses(t *testing.T) {
	bin := buildBinary(t)
	hubDir := t.TempDir()
	hub := startDaemon(t, bin, hubDir, "--role", "hub")
	var st api.Status
	if err := json.Unmarshal([]byte(ok(t, bin, "status", "--api", hub.url, "--json")), &st); err != nil || st.Status == nil || !st.Relay {
		t.Fatalf("hub status: %+v %v", st.Status, err)
	}
	hubAddr := st.Addrs[0]
	field := startDaemon(t, bin, t.TempDir(), "--hub", hubAddr, "--probe", "300ms")
	fieldKey := strings.Fields(ok(t, bin, "status", "--api", field.url))[1] // "node  <key>"
	waitFor(t, 30*time.Second, "uplink up", func() bool {
		return strings.Contains(ok(t, bin, "status", "--api", field.url), "uplink    up since")
	})
	hub.stop(t)
	waitFor(t, 30*time.Second, "uplink down", func() bool {
		return strings.Contains(ok(t, bin, "status", "--api", field.url), "uplink    down since")
	})
	hub = startDaemon(t, bin, hubDir, "--role", "hub", "--listen", hubAddr[:strings.Index(hubAddr, "/p2p/")])
	var rows [][]string
	waitFor(t, 30*time.Second, "the outage listed on the hub", func() bool {
		var err error
		rows, err = csv.NewReader(strings.NewReader(ok(t, bin, "outages", "--api", hub.url, "--csv"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return len(rows) == 2 && rows[1][4] == "false"
	})
	if rows[0][0] != "node" || rows[1][0] != fieldKey || rows[1][3] == "" || len(strings.Fields(rows[1][7])) != 2 {
		t.Fatalf("outages --csv:\n%v", rows)
	}
	if out := ok(t, bin, "outages", "--api", hub.url); !strings.Contains(out, " -> ") {
		t.Fatalf("outages:\n%s", out)
	}
}
