package lifeline

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"lifeline/api"
	"lifeline/kit"
)

// validate reports what in a kit setting cannot work; a nil setting (no
// kit) is fine.
func (k *KitConfig) validate(c Config) error {
	if k == nil {
		return nil
	}
	if c.Role == RoleHub {
		return fmt.Errorf("config: kit is for a field node serving phones on its Wi-Fi, not a hub")
	}
	addr, isIP, err := kit.ParseAddress(k.Address)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if k.Name != "" {
		if err := kit.CheckName(k.Name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	// The kit serves the app on its port 80, or the API listener does when
	// it takes that port (apiServesKit); an api_addr on port 80 of another
	// address would leave the kit's unserved.
	if host, port, err := net.SplitHostPort(c.APIAddr); err == nil && port == strconv.Itoa(kit.HTTPPort) && !apiServesKit(c) {
		if a, err := netip.ParseAddr(host); err == nil && !a.IsLoopback() && (!isIP || a.Unmap() != addr) {
			return fmt.Errorf("config: api_addr %s takes port %d of another address than the kit's (%s): use 0.0.0.0:%d, or keep api_addr on another port (e.g. %s)", c.APIAddr, kit.HTTPPort, k.Address, kit.HTTPPort, DefaultAPIAddr)
		}
	}
	return nil
}

// apiServesKit reports whether the API's own listener takes the kit's port
// 80 (api_addr 0.0.0.0:80, as the package's config has it, or the kit's
// own address): then the kit's handler, the captive portal in front of the
// API, is served there, and the kit opens no port 80 of its own.
func apiServesKit(c Config) bool {
	if c.Kit == nil {
		return false
	}
	host, port, err := net.SplitHostPort(c.APIAddr)
	if err != nil || port != strconv.Itoa(kit.HTTPPort) {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	if a.IsUnspecified() {
		return true
	}
	k, isIP, err := kit.ParseAddress(c.Kit.Address)
	return err == nil && isIP && a.Unmap() == k
}

// newKit returns the node's kit mode, or nil when it is not a kit.
func newKit(c Config, log *slog.Logger) (*kit.Kit, error) {
	if c.Kit == nil {
		return nil, nil
	}
	return kit.New(kit.Options{Address: c.Kit.Address, Name: c.Kit.Name, Logger: log.With("part", "kit"), Now: c.Now})
}

// kitStatus reports k for the API; nil when the node is not a kit.
func kitStatus(k *kit.Kit) func() api.KitStatus {
	if k == nil {
		return nil
	}
	return func() api.KitStatus {
		s := k.Stats()
		return api.KitStatus{Address: s.Address, Interface: s.Interface, Name: s.Name,
			DNSAnswered: s.DNSAnswered, DNSLimited: s.DNSLimited, Released: s.Released}
	}
}
