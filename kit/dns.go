package kit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// TTL is the lifetime, in seconds, of every answer: short, so that a phone
// that leaves the kit for the internet forgets the kit's answers at once.
const TTL = 10

// maxUDPReply is the largest UDP answer sent to a client that announces a
// larger buffer (EDNS0): the size that avoids IP fragmentation (DNS flag
// day 2020). The answers are a few hundred bytes anyway.
const maxUDPReply = 1232

// nxdomain are the names the kit says do not exist, because their
// existence is a signal:
//
//   - use-application-dns.net: Firefox's canary; if it does not resolve,
//     Firefox keeps to the network's DNS instead of DNS over HTTPS, which
//     cannot work without the internet.
//   - mask.icloud.com, mask-h2.icloud.com: Apple's; if they do not
//     resolve, iCloud Private Relay is off for this network, so Safari
//     does not send the kit's pages through relays it cannot reach.
var nxdomain = map[string]bool{
	"use-application-dns.net.": true,
	"mask.icloud.com.":         true,
	"mask-h2.icloud.com.":      true,
}

// fixed are names answered with the addresses their owners publish, in
// every state: Windows checks that dns.msftncsi.com resolves to these
// before it says it is online (docs/KIT.md).
var fixed = map[string]struct{ a, aaaa netip.Addr }{
	"dns.msftncsi.com.": {netip.MustParseAddr("131.107.255.255"), netip.MustParseAddr("fd3e:4f5a:5b81::1")},
}

// Answer returns the kit's reply to the query req: every name resolves to
// addr. It is the whole of the responder's policy, pure and total: any
// message miekg/dns parses gets a reply that packs, except a response,
// which gets none (nil: a reply to a reply could loop).
//
//   - A (and ANY): one A record, addr, TTL seconds;
//   - AAAA and every other type: no records (NOERROR): the kit serves
//     IPv4 only, and an empty answer makes a phone use the A record at
//     once instead of waiting for an IPv6 address that does not exist;
//   - the names in nxdomain: NXDOMAIN; those in fixed: their addresses;
//     names whose first label is "wpad": NXDOMAIN (no proxy here);
//   - an opcode other than QUERY: NOTIMP; not exactly one question:
//     FORMERR; a class other than IN (or ANY): REFUSED; EDNS version
//     above 0: BADVERS.
//
// The reply echoes the question and the query's EDNS0 (buffer size capped
// at maxUDPReply), and sets AA and RA: it is authoritative for everything,
// and stub resolvers that want recursion see it available.
func Answer(req *dns.Msg, addr netip.Addr) *dns.Msg {
	if req.Response {
		return nil
	}
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.RecursionAvailable = true
	opt := req.IsEdns0()
	if opt != nil {
		m.SetEdns0(min(max(opt.UDPSize(), dns.MinMsgSize), maxUDPReply), false)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m
		}
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	m.Question = []dns.Question{q}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	name := strings.ToLower(dns.Fqdn(q.Name))
	if nxdomain[name] || strings.HasPrefix(name, "wpad.") {
		m.Rcode = dns.RcodeNameError
		return m
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
	}
	a, aaaa := addr, netip.Addr{}
	if f, ok := fixed[name]; ok {
		a, aaaa = f.a, f.aaaa
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		if a.Is4() {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		}
	case dns.TypeAAAA:
		if aaaa.Is6() {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: aaaa.AsSlice()})
		}
	}
	return m
}

// replyLimit is the largest reply a client takes: 512 bytes over UDP
// unless its EDNS0 says more (capped by Answer), 64 KiB over TCP.
func replyLimit(req *dns.Msg, tcp bool) int {
	if tcp {
		return dns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		return min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPReply)
	}
	return dns.MinMsgSize
}

// ServeDNS answers queries on pc (UDP) and ln (TCP) until ctx ends, and
// closes both. Each source may send dnsRate queries a second (burst
// dnsBurst), all together dnsTotalRate; over that, queries are dropped
// (UDP) or the connection closed (TCP). At most maxDNSConns TCP
// connections are served at once, each for a few seconds.
func (k *Kit) ServeDNS(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	h := dns.HandlerFunc(k.serveQuery)
	udp := &dns.Server{PacketConn: pc, Handler: h, UDPSize: maxUDPReply}
	tcp := &dns.Server{Listener: netutil.LimitListener(ln, maxDNSConns), Handler: h,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		IdleTimeout: func() time.Duration { return 3 * time.Second }, MaxTCPQueries: 64}
	errc := make(chan error, 2)
	for _, s := range []*dns.Server{udp, tcp} {
		go func() { errc <- s.ActivateAndServe() }()
	}
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("kit: DNS: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range []*dns.Server{udp, tcp} {
		// A server that failed to start says it is not started: that
		// is no news.
		if serr := s.ShutdownContext(sctx); serr != nil && err == nil && !strings.Contains(serr.Error(), "not started") {
			err = fmt.Errorf("kit: DNS shutdown: %w", serr)
		}
	}
	pc.Close()
	ln.Close()
	if errors.Is(err, net.ErrClosed) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// serveQuery answers one query, within the rate limits.
func (k *Kit) serveQuery(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.LocalAddr().(*net.TCPAddr)
	src := remoteAddr(w.RemoteAddr())
	now := k.opts.Now()
	if !k.dnsLimits.allow(src, now) || !k.dnsTotal.AllowN(now, 1) {
		k.limited.Add(1)
		if tcp {
			w.Close()
		}
		return
	}
	m := Answer(req, k.Addr())
	if m == nil {
		return
	}
	m.Truncate(replyLimit(req, tcp))
	m.Compress = true
	if err := w.WriteMsg(m); err != nil {
		k.log.Debug("kit: DNS answer not sent", "to", src, "err", err)
		return
	}
	k.answered.Add(1)
}

// remoteAddr is the address of a DNS client, or the zero Addr.
func remoteAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
