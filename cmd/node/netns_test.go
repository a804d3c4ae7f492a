package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lifeline/api"
)

// TestMDNSAcrossNamespaces proves mDNS discovery between two `lifeline run`
// processes that share nothing but a link: each runs in a network namespace
// of its own, joined by a veth pair, with mDNS on and no --peer. The
// namespaces, the veth pair and its addresses are made by the test and exist
// only inside those namespaces; the host's interfaces are never touched.
// Without root, ip(8) or namespace support the test skips and says why.
func TestMDNSAcrossNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	nsA, nsB := vethPair(t, "10.231.0.1", "10.231.0.2")
	bin := buildBinary(t)
	a := startInNamespace(t, bin, nsA)
	b := startInNamespace(t, bin, nsB)
	defer func() {
		if t.Failed() {
			t.Logf("=== node A (%s)\n%s", nsA, a.stderr.String())
			t.Logf("=== node B (%s)\n%s", nsB, b.stderr.String())
		}
	}()

	// The nodes know nothing of each other but what mDNS tells them, so a
	// peer on each side, connected over the veth, is discovery at work.
	statusOf := func(ns string, d *daemon) api.Status {
		var st api.Status
		out := ok(t, "ip", "netns", "exec", ns, bin, "status", "--api", d.url, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status == nil {
			t.Fatalf("status --json in %s printed %q: %v", ns, out, err)
		}
		return st
	}
	idA, idB := statusOf(nsA, a).PeerID, statusOf(nsB, b).PeerID
	connected := func(ns string, d *daemon, want, via string) func() bool {
		return func() bool {
			for _, p := range statusOf(ns, d).PeerList {
				for _, addr := range p.Addrs {
					if p.ID == want && strings.HasPrefix(addr, "/ip4/"+via+"/") {
						return true
					}
				}
			}
			return false
		}
	}
	start := time.Now()
	waitFor(t, 30*time.Second, "A connected to B over the veth", connected(nsA, a, idB, "10.231.0.2"))
	waitFor(t, 30*time.Second, "B connected to A over the veth", connected(nsB, b, idA, "10.231.0.1"))
	t.Logf("nodes found each other by mDNS within %v", time.Since(start).Round(time.Millisecond))

	// And the connection carries messages.
	id := strings.TrimSpace(ok(t, "ip", "netns", "exec", nsA, bin, "send", "--api", a.url, "--channel", "general", "found", "you", "by", "mdns"))
	start = time.Now()
	waitFor(t, 30*time.Second, "B reads A's message", func() bool {
		var ms []api.Message
		out := ok(t, "ip", "netns", "exec", nsB, bin, "read", "--api", b.url, "--channel", "general", "--json")
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			t.Fatalf("read --json in %s printed %q: %v", nsB, out, err)
		}
		for _, m := range ms {
			if m.ID == id {
				if m.Text != "found you by mdns" || m.Own {
					t.Fatalf("B holds %+v", m)
				}
				return true
			}
		}
		return false
	})
	t.Logf("the message crossed within %v", time.Since(start).Round(time.Millisecond))
}

// needNamespaces skips the test, saying why, unless this process can make
// network namespaces and finds the given tools (ip, nft) in PATH.
func needNamespaces(t *testing.T, tools ...string) {
	t.Helper()
	switch {
	case runtime.GOOS != "linux":
		t.Skip("network namespaces are Linux only")
	case os.Geteuid() != 0:
		t.Skip("making network namespaces needs root (run the tests as root to include this one)")
	}
	debian := map[string]string{"ip": "iproute2", "nft": "nftables"}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("this test needs %s (Debian: %s), not found in PATH", tool, debian[tool])
		}
	}
}

// netnsSeq tells apart the namespaces of repeated runs (-count) in one
// process; the pid tells apart concurrent test processes.
var netnsSeq atomic.Int64

// vethPair makes two network namespaces joined by a veth pair, addrA/24 on
// one end and addrB/24 on the other, loopback and both ends up, and returns
// their names. t.Cleanup deletes them (and with them the veth pair). It
// skips the test, saying why, where namespaces cannot be made.
func vethPair(t *testing.T, addrA, addrB string) (nsA, nsB string) {
	t.Helper()
	needNamespaces(t, "ip")
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	base := fmt.Sprintf("lifeline-test-%d-%d", os.Getpid(), netnsSeq.Add(1))
	nsA, nsB = base+"-a", base+"-b"
	for _, ns := range []string{nsA, nsB} {
		if err := ip("netns", "add", ns); err != nil {
			t.Skipf("cannot make a network namespace here: %v", err)
		}
		t.Cleanup(func() {
			if err := ip("netns", "delete", ns); err != nil {
				t.Errorf("removing the test's namespace: %v", err)
			}
		})
	}
	// The pair is created inside nsA, its peer end moved straight to nsB:
	// it never exists in the host's namespace, so no name can clash there.
	if err := ip("-n", nsA, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", nsB); err != nil {
		t.Skipf("cannot make a veth pair here: %v", err)
	}
	for _, end := range []struct{ ns, addr string }{{nsA, addrA}, {nsB, addrB}} {
		for _, args := range [][]string{
			{"-n", end.ns, "link", "set", "lo", "up"}, // the node's API listens there
			{"-n", end.ns, "addr", "add", end.addr + "/24", "dev", "veth0"},
			// veth has multicast on by default; say so, since mDNS needs it.
			{"-n", end.ns, "link", "set", "veth0", "multicast", "on", "up"},
		} {
			if err := ip(args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return nsA, nsB
}

// startInNamespace runs `lifeline run` (mDNS on, mesh on every address of
// the namespace, API on its loopback) inside the network namespace ns and
// waits until its API answers. The API can only be reached from inside ns:
// use `ip netns exec ns bin ...`. t.Cleanup kills the process.
func startInNamespace(t *testing.T, bin, ns string) *daemon {
	t.Helper()
	// ip netns exec execs bin, so the process is the node itself and
	// killing it kills the node. -v: the mdns and connect lines are what
	// to read when the test fails.
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "run", "-v", "--data", t.TempDir(),
		"--api", "127.0.0.1:0", "--listen", "/ip4/0.0.0.0/tcp/0")
	d := launch(t, cmd, " in "+ns)
	waitFor(t, 30*time.Second, "the node in "+ns+" answers", func() bool {
		return runCLI(t, "ip", nil, "netns", "exec", ns, bin, "status", "--api", d.url).code == 0
	})
	return d
}
