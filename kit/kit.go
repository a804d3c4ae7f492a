// Package kit makes a node a kit: phones that join the kit's Wi-Fi find
// the app by themselves, with nothing typed. It holds the two parts that do
// it, each usable and tested on its own:
//
//   - a captive-portal DNS responder (dns.go): every name resolves to the
//     kit's address, so whatever a phone looks up leads to the node;
//   - the HTTP answers for host names that are not the node's (portal.go):
//     the operating systems' connectivity probes, answered so that a phone
//     joining the Wi-Fi opens the portal page by itself, and a redirect to
//     the app for anything else.
//
// Kit.Run binds both to the kit's address (the Wi-Fi interface's, read
// when it has one) on ports 53 and 80. The API and the app stay behind the
// API's own host check: this package answers only the names the API would
// refuse, and never serves the API under them. See docs/KIT.md.
package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// DefaultName is the host name of the app on a kit. Every kit should keep
// it: the browser keeps a person's key and outbox per origin, so the same
// name on every kit lets a phone carry them from kit to kit.
const DefaultName = "lifeline.kit"

// Ports the kit serves on its address.
const (
	DNSPort  = 53
	HTTPPort = 80
)

// Options configure a Kit.
type Options struct {
	// Address is where phones reach the kit: an IPv4 address, or the name
	// of the Wi-Fi interface (e.g. "wlan0"), whose IPv4 address Run reads
	// once the interface has one.
	Address string
	// Name is the app's host name, http://Name/; DefaultName if empty.
	Name string
	// Logger receives what the kit does; nothing is logged if nil.
	Logger *slog.Logger
	// Now is the clock of the released table; time.Now if nil.
	Now func() time.Time
}

// Kit is a node's kit mode. Create it with New; Run serves it.
type Kit struct {
	opts  Options
	iface string                     // the interface Address names, or ""
	addr  atomic.Pointer[netip.Addr] // set once known
	log   *slog.Logger

	released *releases
	// dnsLimits bounds each source's queries, dnsTotal all of them: the
	// DNS port is open to anyone on the Wi-Fi.
	dnsLimits *sourceLimits
	dnsTotal  *rate.Limiter

	answered, limited atomic.Uint64
}

// New checks opts and returns a kit that serves nothing until Run.
func New(opts Options) (*Kit, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if err := CheckName(opts.Name); err != nil {
		return nil, err
	}
	opts.Name = strings.ToLower(strings.TrimSuffix(opts.Name, "."))
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	k := &Kit{
		opts:      opts,
		log:       opts.Logger,
		released:  newReleases(maxReleased, releaseFor),
		dnsLimits: newSourceLimits(dnsRate, dnsBurst, maxSources),
		dnsTotal:  rate.NewLimiter(dnsTotalRate, dnsTotalBurst),
	}
	a, isIP, err := ParseAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	if isIP {
		k.addr.Store(&a)
	} else {
		k.iface = opts.Address
	}
	return k, nil
}

// ParseAddress reads a kit address setting: an IPv4 address (isIP true),
// or a network interface's name, whose address is read later.
func ParseAddress(s string) (addr netip.Addr, isIP bool, err error) {
	if s == "" {
		return netip.Addr{}, false, errors.New("kit: no address: give the Wi-Fi interface (e.g. wlan0) or its IPv4 address (e.g. 10.42.0.1)")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		switch {
		case !a.Is4() && !a.Is4In6():
			return netip.Addr{}, false, fmt.Errorf("kit: address %s: the kit needs an IPv4 address (phones look it up with A queries)", s)
		case a.Unmap().IsUnspecified() || a.Unmap().IsMulticast():
			return netip.Addr{}, false, fmt.Errorf("kit: address %s: give the Wi-Fi interface's own address, which the DNS hands out as the address of every name", s)
		}
		return a.Unmap(), true, nil
	}
	// Linux interface names: at most 15 bytes, no slash or white space;
	// digits and dots only is a mistyped address.
	if len(s) > 15 || strings.ContainsAny(s, "/: \t\n") || strings.Trim(s, "0123456789.") == "" {
		return netip.Addr{}, false, fmt.Errorf("kit: address %q is neither an IPv4 address nor an interface name such as wlan0", s)
	}
	return netip.Addr{}, false, nil
}

// CheckName reports whether name can be the app's host name.
func CheckName(name string) error {
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	if _, err := netip.ParseAddr(n); err == nil {
		return fmt.Errorf("kit: name %q is an address: give a host name such as %s", name, DefaultName)
	}
	if len(n) == 0 || len(n) > 253 || !strings.Contains(n, ".") {
		return fmt.Errorf("kit: name %q: want a host name with a dot, such as %s", name, DefaultName)
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("kit: name %q: %q is not a DNS label", name, label)
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("kit: name %q: only letters, digits, dots and hyphens", name)
			}
		}
	}
	if strings.HasSuffix(n, ".local") {
		// iOS and Android resolve .local names by multicast DNS only,
		// never by asking the kit's DNS.
		return fmt.Errorf("kit: name %q: phones look up .local names by multicast DNS, not by asking the kit; use a name such as %s", name, DefaultName)
	}
	return nil
}

// Name returns the app's host name.
func (k *Kit) Name() string { return k.opts.Name }

// Addr returns the kit's address, or the zero Addr while the interface has
// none yet.
func (k *Kit) Addr() netip.Addr {
	if a := k.addr.Load(); a != nil {
		return *a
	}
	return netip.Addr{}
}

// Stats is what the kit did since it started.
type Stats struct {
	// Address is the kit's address, "" while it waits for the
	// interface's; Interface the interface it is read from, if any.
	Address   string
	Interface string
	Name      string
	// DNSAnswered counts the queries answered, DNSLimited those dropped
	// over a rate limit.
	DNSAnswered, DNSLimited uint64
	// Released is how many phones' probes are answered "online" now
	// (see portal.go).
	Released int
}

// Stats returns the kit's figures now.
func (k *Kit) Stats() Stats {
	s := Stats{Interface: k.iface, Name: k.opts.Name, DNSAnswered: k.answered.Load(), DNSLimited: k.limited.Load(),
		Released: k.released.count(k.opts.Now())}
	if a := k.Addr(); a.IsValid() {
		s.Address = a.String()
	}
	return s
}

// addressPoll is how often Run looks for the interface's address.
const addressPoll = time.Second

// Run waits for the kit's address (an interface may get its address after
// the node starts: NetworkManager brings the access point up when it is
// ready), then answers DNS on its port 53 (UDP and TCP) and hands a
// listener on its port 80 to serveHTTP, which must serve Handler on it
// until ctx ends. A nil serveHTTP opens no port 80: the node serves
// Handler on a listener of its own that takes it (every interface's port
// 80). Run returns nil once ctx ends, or the first error: a port already
// taken (say, by another DNS server) is an error.
func (k *Kit) Run(ctx context.Context, serveHTTP func(context.Context, net.Listener) error) error {
	addr, err := k.waitAddress(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	host := addr.String()
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(host, fmt.Sprint(DNSPort)))
	if err != nil {
		return fmt.Errorf("kit: DNS on %s port %d: %w (is another DNS server, such as dnsmasq, answering there? see docs/KIT.md)", host, DNSPort, err)
	}
	tcp, err := net.Listen("tcp4", net.JoinHostPort(host, fmt.Sprint(DNSPort)))
	if err != nil {
		pc.Close()
		return fmt.Errorf("kit: DNS over TCP on %s port %d: %w", host, DNSPort, err)
	}
	var web net.Listener
	if serveHTTP != nil {
		if web, err = net.Listen("tcp4", net.JoinHostPort(host, fmt.Sprint(HTTPPort))); err != nil {
			pc.Close()
			tcp.Close()
			return fmt.Errorf("kit: the app on %s port %d: %w", host, HTTPPort, err)
		}
	}
	k.log.Info("kit mode on: phones on the Wi-Fi find the app", "address", host, "app", "http://"+k.opts.Name+"/", "dns", net.JoinHostPort(host, fmt.Sprint(DNSPort)))

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{}, 2)
	parts := 1
	go func() {
		defer func() { done <- struct{}{} }()
		if err := k.ServeDNS(ctx, pc, tcp); err != nil {
			cancel(err)
		}
	}()
	if web != nil {
		parts++
		go func() {
			defer func() { done <- struct{}{} }()
			if err := serveHTTP(ctx, web); err != nil {
				cancel(err)
			}
		}()
	}
	<-done
	cancel(nil)
	for range parts - 1 {
		<-done
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitAddress returns the kit's address, polling the interface until it
// has an IPv4 address or ctx ends.
func (k *Kit) waitAddress(ctx context.Context) (netip.Addr, error) {
	if a := k.Addr(); a.IsValid() {
		return a, nil
	}
	logged := false
	t := time.NewTicker(addressPoll)
	defer t.Stop()
	for {
		a, err := InterfaceAddress(k.iface)
		if err == nil {
			k.addr.Store(&a)
			return a, nil
		}
		if !logged {
			k.log.Warn("kit mode waits for the Wi-Fi interface's address", "interface", k.iface, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, nil
		case <-t.C:
		}
	}
}

// InterfaceAddress returns the first IPv4 address of the named interface.
func InterfaceAddress(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("kit: interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("kit: interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("kit: interface %s has no IPv4 address yet", name)
}

// clientAddr is the address a request came from, or the zero Addr.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
