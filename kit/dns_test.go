package kit

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var kitAddr = netip.MustParseAddr("10.42.0.1")

func query(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	return m
}

// TestAnswer: every name resolves to the kit, over A only; the signals
// and errors are as documented on Answer.
func TestAnswer(t *testing.T) {
	edns := query("example.com.", dns.TypeA)
	edns.SetEdns0(4096, false)
	ednsV1 := query("example.com.", dns.TypeA)
	ednsV1.SetEdns0(4096, false)
	ednsV1.IsEdns0().SetVersion(1)
	notify := query("example.com.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	two := query("example.com.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	none := query("example.com.", dns.TypeA)
	none.Question = nil
	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for _, c := range []struct {
		name  string
		req   *dns.Msg
		rcode int
		want  string // the answer's address; "" for none
	}{
		{"A", query("example.com.", dns.TypeA), dns.RcodeSuccess, "10.42.0.1"},
		{"A, upper case", query("ConnectivityCheck.GSTATIC.com.", dns.TypeA), dns.RcodeSuccess, "10.42.0.1"},
		{"A, the kit's name", query("lifeline.kit.", dns.TypeA), dns.RcodeSuccess, "10.42.0.1"},
		{"A, a single label", query("printer.", dns.TypeA), dns.RcodeSuccess, "10.42.0.1"},
		{"ANY", query("example.com.", dns.TypeANY), dns.RcodeSuccess, "10.42.0.1"},
		{"AAAA: no IPv6 here", query("example.com.", dns.TypeAAAA), dns.RcodeSuccess, ""},
		{"HTTPS record", query("example.com.", dns.TypeHTTPS), dns.RcodeSuccess, ""},
		{"MX", query("example.com.", dns.TypeMX), dns.RcodeSuccess, ""},
		{"EDNS0", edns, dns.RcodeSuccess, "10.42.0.1"},
		{"Windows's check, A", query("dns.msftncsi.com.", dns.TypeA), dns.RcodeSuccess, "131.107.255.255"},
		{"Windows's check, AAAA", query("dns.msftncsi.com.", dns.TypeAAAA), dns.RcodeSuccess, "fd3e:4f5a:5b81::1"},
		{"Firefox's DoH canary", query("use-application-dns.net.", dns.TypeA), dns.RcodeNameError, ""},
		{"Apple's Private Relay canary", query("mask.icloud.com.", dns.TypeA), dns.RcodeNameError, ""},
		{"Apple's Private Relay canary, h2", query("MASK-H2.icloud.com.", dns.TypeAAAA), dns.RcodeNameError, ""},
		{"proxy auto-discovery", query("wpad.home.", dns.TypeA), dns.RcodeNameError, ""},
		{"NOTIFY", notify, dns.RcodeNotImplemented, ""},
		{"two questions", two, dns.RcodeFormatError, ""},
		{"no question", none, dns.RcodeFormatError, ""},
		{"CHAOS class", chaos, dns.RcodeRefused, ""},
		{"EDNS version 1", ednsV1, dns.RcodeBadVers, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.req.Id = 4242
			m := Answer(c.req, kitAddr)
			if m == nil {
				t.Fatal("no reply")
			}
			if m.Id != 4242 || !m.Response || m.Rcode != c.rcode {
				t.Fatalf("reply id %d response %v rcode %s; want id 4242, a response, %s", m.Id, m.Response, dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
			}
			// The reply packs and reads back as the client would see it.
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := new(dns.Msg)
			if err := got.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if (c.req.IsEdns0() != nil) != (got.IsEdns0() != nil) {
				t.Fatalf("EDNS0 in the query: %v, in the reply: %v", c.req.IsEdns0() != nil, got.IsEdns0() != nil)
			}
			if got.Rcode != c.rcode {
				t.Fatalf("rcode read back: %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[c.rcode])
			}
			if c.want == "" {
				if len(got.Answer) != 0 {
					t.Fatalf("answers %v, want none", got.Answer)
				}
				return
			}
			if len(got.Answer) != 1 {
				t.Fatalf("answers %v, want one", got.Answer)
			}
			var ip net.IP
			switch rr := got.Answer[0].(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if ip.String() != c.want || got.Answer[0].Header().Ttl != TTL || got.Answer[0].Header().Name != c.req.Question[0].Name {
				t.Fatalf("answer %v, want %s for %s with TTL %d", got.Answer[0], c.want, c.req.Question[0].Name, TTL)
			}
			if !got.Authoritative || !got.RecursionAvailable {
				t.Fatalf("AA %v RA %v, want both", got.Authoritative, got.RecursionAvailable)
			}
		})
	}
	resp := query("example.com.", dns.TypeA)
	resp.Response = true
	if m := Answer(resp, kitAddr); m != nil {
		t.Fatalf("a response was answered: %v", m)
	}
}

// FuzzAnswer: whatever message miekg/dns parses, the kit's reply (none to
// a response) packs, carries the query's id, and fits what the client
// takes over UDP.
func FuzzAnswer(f *testing.F) {
	for _, m := range []*dns.Msg{
		query("example.com.", dns.TypeA),
		query("connectivitycheck.gstatic.com.", dns.TypeAAAA),
		query("dns.msftncsi.com.", dns.TypeA),
		query("use-application-dns.net.", dns.TypeA),
		query("wpad.", dns.TypeA),
		query(".", dns.TypeNS),
		query("a.very.long.name.with.many.labels.example.org.", dns.TypeANY),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		m.SetEdns0(65535, true)
		if b, err = m.Pack(); err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		m := Answer(req, kitAddr)
		if req.Response {
			if m != nil {
				t.Fatal("a response was answered")
			}
			return
		}
		if m == nil {
			t.Fatal("a query had no reply")
		}
		limit := replyLimit(req, false)
		m.Truncate(limit)
		out, err := m.Pack()
		if err != nil {
			t.Fatalf("the reply does not pack: %v\n%v", err, m)
		}
		if len(out) > limit {
			t.Fatalf("the reply is %d bytes, the client takes %d", len(out), limit)
		}
		back := new(dns.Msg)
		if err := back.Unpack(out); err != nil || back.Id != req.Id || !back.Response {
			t.Fatalf("the reply reads back as %v (%v)", back, err)
		}
	})
}

// serveDNS runs k's DNS on loopback and returns its UDP and TCP addresses.
func serveDNS(t *testing.T, k *Kit) (udp, tcp string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- k.ServeDNS(ctx, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("ServeDNS: %v", err)
		}
	})
	return pc.LocalAddr().String(), ln.Addr().String()
}

func newKit(t *testing.T, now func() time.Time) *Kit {
	t.Helper()
	k, err := New(Options{Address: kitAddr.String(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeDNS: a real server over UDP and TCP answers like Answer.
func TestServeDNS(t *testing.T) {
	k := newKit(t, nil)
	udp, tcp := serveDNS(t, k)
	for _, c := range []struct{ net, addr string }{{"udp", udp}, {"tcp", tcp}} {
		cl := &dns.Client{Net: c.net, Timeout: 5 * time.Second}
		r, _, err := cl.Exchange(query("anything.example.", dns.TypeA), c.addr)
		if err != nil {
			t.Fatalf("%s: %v", c.net, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.42.0.1" {
			t.Fatalf("%s: answer %v", c.net, r.Answer)
		}
	}
	// The count follows the answer's write, which the client may see first.
	waitFor(t, 5*time.Second, "both answers counted", func() bool { return k.Stats().DNSAnswered == 2 })
	if s := k.Stats(); s.Address != "10.42.0.1" || s.Name != DefaultName {
		t.Fatalf("stats %+v", s)
	}
}

// TestDNSRateLimit: one source gets its burst, then nothing while its
// bucket is empty (the clock stands still here); another source is not
// affected.
func TestDNSRateLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	k := newKit(t, func() time.Time { return now })
	udp, _ := serveDNS(t, k)
	conn, err := net.Dial("udp4", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = dnsBurst + 50
	var wg sync.WaitGroup
	answers := make(chan uint16, sent)
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) == nil {
				answers <- m.Id
			}
		}
	})
	for i := range sent {
		q := query("flood.example.", dns.TypeA)
		q.Id = uint16(i)
		b, _ := q.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "every query answered or dropped", func() bool {
		s := k.Stats()
		return s.DNSAnswered+s.DNSLimited == sent
	})
	if s := k.Stats(); s.DNSAnswered != dnsBurst || s.DNSLimited != sent-dnsBurst {
		t.Fatalf("answered %d, dropped %d; want %d and %d", s.DNSAnswered, s.DNSLimited, dnsBurst, sent-dnsBurst)
	}
	waitFor(t, 10*time.Second, "the answers read", func() bool { return len(answers) == dnsBurst })
	conn.Close()
	wg.Wait()

	// Another address (127.0.0.2 is loopback too) has its own bucket.
	other, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(udp)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cl := &dns.Client{Timeout: 5 * time.Second}
	if r, _, err := cl.ExchangeWithConn(query("other.example.", dns.TypeA), &dns.Conn{Conn: other}); err != nil || len(r.Answer) != 1 {
		t.Fatalf("another source: %v, %v", r, err)
	}
}

// TestDNSTCPBounded: connections that send nothing hold a slot only for
// the read timeout; while all slots are held, a new connection waits.
func TestDNSTCPBounded(t *testing.T) {
	k := newKit(t, nil)
	_, tcp := serveDNS(t, k)
	start := time.Now()
	for range maxDNSConns {
		c, err := net.Dial("tcp4", tcp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	cl := &dns.Client{Net: "tcp", Timeout: 15 * time.Second}
	r, _, err := cl.Exchange(query("late.example.", dns.TypeA), tcp)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("a query behind %d silent connections: %v, %v", maxDNSConns, r, err)
	}
	// The silent connections are dropped after the 2 s read timeout,
	// not before: only then is a slot free.
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Fatalf("answered after %v, while %d silent connections should hold every slot for 2s", took, maxDNSConns)
	}
}

// TestRunWaitsForTheInterface: a kit on an interface that has no address
// (here: none by that name) says it waits, serves nothing, and stops
// cleanly.
func TestRunWaitsForTheInterface(t *testing.T) {
	k, err := New(Options{Address: "nosuchwifi0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- k.Run(ctx, func(context.Context, net.Listener) error { served <- struct{}{}; return nil })
	}()
	if s := k.Stats(); s.Address != "" || s.Interface != "nosuchwifi0" {
		t.Fatalf("stats while waiting: %+v", s)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(served) != 0 {
		t.Fatal("the app was served without an address")
	}
}

// BenchmarkAnswer: the work of one query, parsed, answered and packed as
// ServeDNS does it.
func BenchmarkAnswer(b *testing.B) {
	q, err := query("connectivitycheck.gstatic.com.", dns.TypeA).Pack()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		req := new(dns.Msg)
		if err := req.Unpack(q); err != nil {
			b.Fatal(err)
		}
		m := Answer(req, kitAddr)
		m.Truncate(replyLimit(req, false))
		m.Compress = true
		if _, err := m.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}
