package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/miekg/dns"

	"lifeline/api"
	"lifeline/web/browsertest"
)

// kitPhoneEnv, when set (to the kit's address), makes TestKitCaptivePortal
// play the phone: the test runs itself again inside the phone's network
// namespace, where the kit is the DNS server.
const kitPhoneEnv = "LIFELINE_TEST_KIT_PHONE"

// TestKitCaptivePortal: a node in kit mode on the Wi-Fi side of a veth
// pair (its address read from the interface, as with --kit wlan0), and a
// phone in the other namespace whose only DNS server is the kit, as DHCP
// would hand it out. The phone resolves any name to the kit; each
// operating system's connectivity probe sees a portal, then, once the
// phone's person has opened the app, "online"; and headless Chromium in
// the phone's namespace, opening http://example.com/, lands on the portal
// page and from its button on the app.
func TestKitCaptivePortal(t *testing.T) {
	if addr := os.Getenv(kitPhoneEnv); addr != "" {
		playPhone(t, addr)
		return
	}
	if testing.Short() {
		t.Skip("builds and runs the binary, and a browser")
	}
	const kitIP, phoneIP = "10.233.0.1", "10.233.0.2"
	nsKit, nsPhone := vethPair(t, kitIP, phoneIP)
	// ip netns exec bind-mounts the files of /etc/netns/<ns>/ over /etc:
	// in the phone's namespace, /etc/resolv.conf names the kit.
	etc := filepath.Join("/etc/netns", nsPhone)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+kitIP+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	bin := buildBinary(t)
	d := launch(t, exec.Command("ip", "netns", "exec", nsKit, bin, "run", "-v", "--data", t.TempDir(),
		"--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--kit", "veth0"), " in "+nsKit)
	defer func() {
		if t.Failed() {
			t.Logf("=== the kit (%s)\n%s", nsKit, d.stderr.String())
		}
	}()
	kitStatus := func() *api.KitStatus {
		var st api.Status
		out := ok(t, "ip", "netns", "exec", nsKit, bin, "status", "--api", d.url, "--json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json printed %q: %v", out, err)
		}
		return st.Kit
	}
	waitFor(t, 30*time.Second, "the kit on veth0's address", func() bool {
		k := kitStatus()
		return k != nil && k.Address == kitIP && k.Interface == "veth0"
	})
	if out := ok(t, "ip", "netns", "exec", nsKit, bin, "status", "--api", d.url); !strings.Contains(out, "kit       on "+kitIP+": the app is http://lifeline.kit/") {
		t.Fatalf("status does not say the kit is on:\n%s", out)
	}

	// The phone: this test again, inside the phone's namespace.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	phone := exec.CommandContext(ctx, "ip", "netns", "exec", nsPhone, exe, "-test.run", "^TestKitCaptivePortal$", "-test.v", "-test.count=1")
	phone.Env = append(os.Environ(), kitPhoneEnv+"="+kitIP)
	out, err := phone.CombinedOutput()
	if err != nil {
		t.Fatalf("the phone's side failed: %v\n%s", err, out)
	}
	t.Logf("the phone's side:\n%s", out)

	k := kitStatus()
	if k.DNSAnswered == 0 || k.Released != 1 {
		t.Fatalf("the kit counted %d DNS answers and %d phones in; want some and 1", k.DNSAnswered, k.Released)
	}
	t.Logf("the kit answered %d DNS queries", k.DNSAnswered)
}

// probeURL is an operating system's connectivity check and what it
// expects when the network is online.
type probeURL struct {
	os, url string
	status  int
	body    string
}

var probeURLs = []probeURL{
	{"Android", "http://connectivitycheck.gstatic.com/generate_204", 204, ""},
	{"Android (old)", "http://clients3.google.com/generate_204", 204, ""},
	{"Android (fallback)", "http://www.google.com/gen_204", 204, ""},
	{"iOS and macOS", "http://captive.apple.com/hotspot-detect.html", 200, "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"},
	{"Windows", "http://www.msftconnecttest.com/connecttest.txt", 200, "Microsoft Connect Test"},
	{"Windows 8", "http://www.msftncsi.com/ncsi.txt", 200, "Microsoft NCSI"},
	{"Firefox", "http://detectportal.firefox.com/canonical.html", 200, `<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>`},
	{"Firefox (connectivity)", "http://detectportal.firefox.com/success.txt", 200, "success\n"},
}

// playPhone is the phone's side of TestKitCaptivePortal, run in the
// phone's namespace.
func playPhone(t *testing.T, kitIP string) {
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil || !strings.Contains(string(resolv), "nameserver "+kitIP) {
		t.Fatalf("the phone's /etc/resolv.conf does not name the kit: %q (%v)", resolv, err)
	}

	// Any name resolves to the kit: asked directly over UDP and TCP, and
	// through the system's resolver (resolv.conf).
	random := make([]byte, 6)
	rand.Read(random)
	names := []string{"example.com", "lifeline.kit", "connectivitycheck.gstatic.com", "captive.apple.com",
		"www.msftconnecttest.com", "detectportal.firefox.com", hex.EncodeToString(random) + ".example.org", "x" + hex.EncodeToString(random)}
	for _, name := range names {
		for _, network := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: network, Timeout: 5 * time.Second}
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeA)
			r, _, err := c.Exchange(m, net.JoinHostPort(kitIP, "53"))
			if err != nil {
				t.Fatalf("%s over %s: %v", name, network, err)
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != kitIP {
				t.Fatalf("%s over %s: %v, want %s", name, network, r.Answer, kitIP)
			}
		}
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), name)
		if err != nil || !slices.Equal(addrs, []string{kitIP}) {
			t.Fatalf("the system resolves %s to %v (%v), want %s", name, addrs, err, kitIP)
		}
	}
	if addrs, err := net.DefaultResolver.LookupHost(context.Background(), "dns.msftncsi.com"); err != nil || !slices.Contains(addrs, "131.107.255.255") {
		t.Fatalf("dns.msftncsi.com resolves to %v (%v): Windows will say offline", addrs, err)
	}
	t.Logf("%d names resolve to the kit, over UDP, TCP and the system's resolver", len(names))

	// Before anyone on this phone has opened the app, every probe sees
	// the portal.
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(url string) (int, string, http.Header) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b), res.Header
	}
	for _, p := range probeURLs {
		status, _, h := get(p.url)
		if status != http.StatusFound || h.Get("Location") != "http://lifeline.kit/portal" {
			t.Fatalf("%s's probe %s before the portal: %d to %q, want 302 to the portal", p.os, p.url, status, h.Get("Location"))
		}
	}

	// A phone's browser opening any site lands on the portal page; its
	// button opens the app.
	// Chromium tries https://example.com first (HTTPS upgrades): the kit
	// refuses port 443 at once, and Chromium falls back to http.
	b := browsertest.Start(t, browsertest.Options{SystemDNS: true, AllowHosts: []string{"example.com:80", "example.com:443", "lifeline.kit:80"}})
	b.Navigate("http://example.com/")
	b.WaitText("#address", "lifeline.kit")
	var where string
	b.Eval(`location.href`, &where)
	if where != "http://lifeline.kit/portal" {
		t.Fatalf("example.com led to %s, want the portal", where)
	}
	// The button's form leaves the page: wait for the app's answer before
	// looking into it.
	cctx, ccancel := context.WithTimeout(b.Context(), 15*time.Second)
	res, err := chromedp.RunResponse(cctx, chromedp.Click("#open"))
	ccancel()
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("pressing the portal's button: %v, %v", res, err)
	}
	b.WaitText("#title", "#general")
	b.Eval(`location.origin + location.pathname`, &where)
	if where != "http://lifeline.kit/" {
		t.Fatalf("the portal's button led to %s, want the app", where)
	}
	if bl := b.Blocked(); len(bl) != 0 {
		t.Fatalf("the browser asked for other hosts: %v", bl)
	}
	t.Log("Chromium: http://example.com/ → the portal → the app")

	// Now each probe from this phone says online, as its system expects,
	// and other sites lead to the app.
	for _, p := range probeURLs {
		status, body, h := get(p.url)
		if status != p.status || body != p.body || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s's probe %s after the portal: %d %q (Cache-Control %q), want %d %q", p.os, p.url, status, body, h.Get("Cache-Control"), p.status, p.body)
		}
	}
	if status, _, h := get("http://example.com/"); status != http.StatusFound || h.Get("Location") != "http://lifeline.kit/" {
		t.Fatalf("example.com after the portal: %d to %q, want the app", status, h.Get("Location"))
	}
	// The API answers under the kit's name, never under another.
	if status, body, _ := get("http://lifeline.kit/api/v1/status"); status != http.StatusOK || !strings.Contains(body, `"kit":{"address":"`+kitIP+`"`) {
		t.Fatalf("the API under the kit's name: %d %s", status, body)
	}
	if status, body, _ := get("http://example.com/api/v1/status"); status != http.StatusFound || strings.Contains(body, `"id"`) {
		t.Fatalf("the API under a foreign name: %d %s", status, body)
	}
}

// kitDocBlock returns the fenced block of docs/KIT.md whose first line is
// the comment "# <file>": the config files the recipes tell people to
// write.
func kitDocBlock(t *testing.T, file string) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/KIT.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(doc), "```")[1:] {
		_, body, _ := strings.Cut(block, "\n") // the info string, e.g. conf
		if strings.HasPrefix(body, "# "+file+"\n") {
			return body
		}
	}
	t.Fatalf("docs/KIT.md has no block starting with # %s", file)
	return ""
}

// TestKitDHCPRecipes: the dnsmasq files of docs/KIT.md's access-point
// recipes leave port 53 to the node and make DHCP hand out the kit as DNS
// server and gateway. The Wi-Fi is a veth pair between two namespaces;
// the kit's side runs the node (--kit veth0) and dnsmasq with each file,
// the phone's side busybox's DHCP client. The node runs as the package's
// config has it, the API on every interface's port 80, which then serves
// the captive portal in front of the API.
func TestKitDHCPRecipes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range []string{"dnsmasq", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s (Debian: dnsmasq-base, busybox; .ci/run installs them)", tool)
		}
	}
	const kitIP = "10.42.0.1"
	nsKit, nsPhone := vethPair(t, kitIP, "10.42.0.200")
	// The phone has no address until DHCP gives it one.
	ok(t, "ip", "-n", nsPhone, "addr", "flush", "dev", "veth0")

	bin := buildBinary(t)
	d := launch(t, exec.Command("ip", "netns", "exec", nsKit, bin, "run", "--data", t.TempDir(),
		"--api", "0.0.0.0:80", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--kit", "veth0"), " in "+nsKit)
	waitFor(t, 30*time.Second, "the kit's DNS on port 53", func() bool {
		return strings.Contains(ok(t, "ip", "netns", "exec", nsKit, bin, "status", "--api", d.url), "kit       on "+kitIP)
	})
	// Port 80 on the Wi-Fi: the API under the kit's address, the portal
	// for any other name.
	if out := ok(t, "ip", "netns", "exec", nsKit, bin, "status", "--api", "http://"+kitIP); !strings.Contains(out, "kit       on "+kitIP) {
		t.Fatalf("status through the kit's port 80:\n%s", out)
	}
	if r := runCLI(t, "ip", []byte("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"), "netns", "exec", nsKit, "busybox", "nc", "-w", "5", kitIP, "80"); !strings.HasPrefix(r.stdout, "HTTP/1.0 302") {
		t.Fatalf("a foreign name on the kit's port 80 got:\n%s%s", r.stdout, r.stderr)
	}

	dir := t.TempDir()
	etc := filepath.Join("/etc/netns", nsPhone)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	// udhcpc calls this script with the lease in its environment.
	script := filepath.Join(dir, "udhcpc.sh")
	lease := filepath.Join(dir, "lease")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $dns $router\" > "+lease+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, recipe := range []struct {
		name, file string
		args       func(conf string) []string
	}{
		{"NetworkManager", "/etc/NetworkManager/dnsmasq-shared.d/lifeline.conf", func(conf string) []string {
			// As NetworkManager starts dnsmasq for a shared connection,
			// with the recipe's file in its --conf-dir.
			confDir := filepath.Join(dir, "dnsmasq-shared.d")
			os.MkdirAll(confDir, 0o755)
			if err := os.WriteFile(filepath.Join(confDir, "lifeline.conf"), []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"--conf-file=/dev/null", "--no-hosts", "--bind-interfaces", "--except-interface=lo",
				"--clear-on-reload", "--strict-order", "--listen-address=" + kitIP,
				"--dhcp-range=10.42.0.10,10.42.0.254,60m", "--dhcp-lease-max=50", "--conf-dir=" + confDir}
		}},
		{"hostapd", "/etc/dnsmasq.d/lifeline.conf", func(conf string) []string {
			f := filepath.Join(dir, "dnsmasq.conf")
			if err := os.WriteFile(f, []byte(strings.ReplaceAll(conf, "wlan0", "veth0")), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"--conf-file=" + f}
		}},
	} {
		t.Run(recipe.name, func(t *testing.T) {
			os.Remove(lease)
			args := append([]string{"netns", "exec", nsKit, "dnsmasq", "--keep-in-foreground", "--user=root", "--log-facility=-",
				"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"), "--dhcp-leasefile=" + filepath.Join(dir, recipe.name+".leases")},
				recipe.args(kitDocBlock(t, recipe.file))...)
			dnsmasq := exec.Command("ip", args...)
			var log lockedBuffer
			dnsmasq.Stdout, dnsmasq.Stderr = &log, &log
			if err := dnsmasq.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				dnsmasq.Process.Kill()
				dnsmasq.Wait()
				if t.Failed() {
					t.Logf("dnsmasq:\n%s", log.String())
				}
			}()
			waitFor(t, 10*time.Second, "dnsmasq serving DHCP", func() bool { return strings.Contains(log.String(), "DHCP, IP range") })

			ok(t, "ip", "netns", "exec", nsPhone, "busybox", "udhcpc", "-i", "veth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script)
			b, err := os.ReadFile(lease)
			if err != nil {
				t.Fatalf("no lease: %v", err)
			}
			f := strings.Fields(string(b))
			if len(f) != 3 || !strings.HasPrefix(f[0], "10.42.0.") || f[1] != kitIP || f[2] != kitIP {
				t.Fatalf("the lease is %q: want an address in 10.42.0.0/24, DNS %s, gateway %s", b, kitIP, kitIP)
			}
			t.Logf("DHCP gave the phone %s, DNS %s, gateway %s", f[0], f[1], f[2])

			// The phone takes the lease; a name looked up through its DNS
			// server is the kit.
			ok(t, "ip", "-n", nsPhone, "addr", "add", f[0]+"/24", "dev", "veth0")
			defer ok(t, "ip", "-n", nsPhone, "addr", "flush", "dev", "veth0")
			if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+f[1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out := ok(t, "ip", "netns", "exec", nsPhone, "getent", "hosts", "news.example.org"); !strings.HasPrefix(out, kitIP+" ") {
				t.Fatalf("news.example.org resolves to %q, want the kit", out)
			}
		})
	}
}
