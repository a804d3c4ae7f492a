package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"lifeline/api"
)

// TestHolePunchThroughNATs: two field nodes, each behind its own NAT,
// reach the same hub. One is given the other only by its address through
// the hub (a relay circuit); they end up connected directly, through both
// NATs, and reconcile over that connection.
//
// The network is made by the test, in namespaces that exist only for it:
//
//	a 192.168.1.2 ── natA (masquerade, 11.10.0.2) ─┐
//	                                                inet (router; hub at 11.0.0.1)
//	b 192.168.2.2 ── natB (masquerade, 11.20.0.2) ─┘
//
// The NATs drop unsolicited inbound traffic, as home routers and carrier
// NAT do. The "public" side uses 11.0.0.0/8 because libp2p hole-punches
// only to addresses it takes for public (not private or documentation
// ranges); none of it is routed anywhere but between these namespaces.
// Needs root, ip(8) and nft(8) (Debian: iproute2, nftables); skips
// without them.
func TestHolePunchThroughNATs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ns := natTopology(t)
	bin := buildBinary(t)
	node := func(n string, args ...string) *daemon {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns[n], bin, "run", "-v", "--data", t.TempDir(),
			"--api", "127.0.0.1:0", "--no-mdns"}, args...)...)
		d := launch(t, cmd, " in "+n)
		waitFor(t, 30*time.Second, "the node in "+n+" answers", func() bool {
			return runCLI(t, "ip", nil, "netns", "exec", ns[n], bin, "status", "--api", d.url).code == 0
		})
		return d
	}
	status := func(n string, d *daemon) api.Status {
		var st api.Status
		out := ok(t, "ip", "netns", "exec", ns[n], bin, "status", "--api", d.url, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status == nil {
			t.Fatalf("status --json in %s printed %q: %v", n, out, err)
		}
		return st
	}
	hub := node("inet", "--role", "hub", "--listen", "/ip4/11.0.0.1/tcp/7778")
	hubAddr := "/ip4/11.0.0.1/tcp/7778/p2p/" + status("inet", hub).PeerID
	field := []string{"--listen", "/ip4/0.0.0.0/tcp/7778", "--hub", hubAddr, "--probe", "1s"}
	b := node("b", field...)
	bID := status("b", b).PeerID
	a := node("a", append(field, "--peer", hubAddr+"/p2p-circuit/p2p/"+bID)...)
	defer func() {
		if t.Failed() {
			t.Logf("=== a\n%s\n=== b\n%s\n=== hub\n%s", a.stderr.String(), b.stderr.String(), hub.stderr.String())
		}
	}()

	start := time.Now()
	waitFor(t, 60*time.Second, "A connected directly to B's NAT, and reconciled with B", func() bool {
		for _, p := range status("a", a).PeerList {
			if p.ID != bID || p.LastReconcile.IsZero() {
				continue
			}
			for _, addr := range p.Addrs {
				if strings.HasPrefix(addr, "/ip4/11.20.0.2/") && !strings.Contains(addr, "p2p-circuit") {
					return true
				}
			}
		}
		return false
	})
	t.Logf("direct through both NATs after %v", time.Since(start).Round(time.Millisecond))
}

// natTopology makes the namespaces of TestHolePunchThroughNATs and returns
// their names by role: inet, natA, natB, a, b. t.Cleanup deletes them.
func natTopology(t *testing.T) map[string]string {
	t.Helper()
	needNamespaces(t, "ip", "nft")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	base := fmt.Sprintf("lifeline-nat-%d-%d", os.Getpid(), netnsSeq.Add(1))
	ns := map[string]string{}
	for _, role := range []string{"inet", "natA", "natB", "a", "b"} {
		ns[role] = base + "-" + role
		if out, err := exec.Command("ip", "netns", "add", ns[role]).CombinedOutput(); err != nil {
			t.Skipf("cannot make a network namespace here: %v: %s", err, out)
		}
		name := ns[role]
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
		run("ip", "-n", name, "link", "set", "lo", "up")
	}
	in := func(role string, args ...string) {
		t.Helper()
		run(append([]string{"ip", "netns", "exec", ns[role]}, args...)...)
	}
	rules := t.TempDir() + "/nat.nft"
	if err := os.WriteFile(rules, []byte(natRules), 0o600); err != nil {
		t.Fatal(err)
	}
	run("ip", "-n", ns["inet"], "addr", "add", "11.0.0.1/32", "dev", "lo") // the hub
	in("inet", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, side := range []struct{ nat, host, k string }{{"natA", "a", "1"}, {"natB", "b", "2"}} {
		nat, host := ns[side.nat], ns[side.host]
		wan, lan := "11."+side.k+"0.0.", "192.168."+side.k+"."
		// Links are made inside a namespace and their far end moved
		// straight into the other: nothing appears in the host's.
		run("ip", "-n", ns["inet"], "link", "add", "to"+side.host, "type", "veth", "peer", "name", "wan", "netns", nat)
		run("ip", "-n", ns["inet"], "addr", "add", wan+"1/24", "dev", "to"+side.host)
		run("ip", "-n", ns["inet"], "link", "set", "to"+side.host, "up")
		run("ip", "-n", nat, "addr", "add", wan+"2/24", "dev", "wan")
		run("ip", "-n", nat, "link", "set", "wan", "up")
		run("ip", "-n", nat, "route", "add", "default", "via", wan+"1")
		run("ip", "-n", nat, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", host)
		run("ip", "-n", nat, "addr", "add", lan+"1/24", "dev", "lan")
		run("ip", "-n", nat, "link", "set", "lan", "up")
		run("ip", "-n", host, "addr", "add", lan+"2/24", "dev", "eth0")
		run("ip", "-n", host, "link", "set", "eth0", "up")
		run("ip", "-n", host, "route", "add", "default", "via", lan+"1")
		in(side.nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		in(side.nat, "nft", "-f", rules)
	}
	return ns
}

// natRules masquerade what leaves by "wan" and drop what comes in by it
// unasked: a NAT router.
const natRules = `table ip nat {
	chain post { type nat hook postrouting priority 100; oifname "wan" masquerade; }
}
table ip filter {
	chain input { type filter hook input priority 0; policy accept; iifname "wan" ct state new drop; }
	chain forward { type filter hook forward priority 0; policy accept; iifname "wan" ct state new drop; }
}
`
