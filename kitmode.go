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
	// The kit serves the app on its port 80 itself.
	if host, port, err := net.SplitHostPort(c.APIAddr); err == nil && port == strconv.Itoa(kit.HTTPPort) {
		if a, err := netip.ParseAddr(host); err == nil && (a.IsUnspecified() || isIP && a.Unmap() == addr) {
			return fmt.Errorf("config: api_addr %s takes port %d, where the kit serves the app: keep api_addr on another port (e.g. %s)", c.APIAddr, kit.HTTPPort, DefaultAPIAddr)
		}
	}
	return nil
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
