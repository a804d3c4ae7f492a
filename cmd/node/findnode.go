package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"lifeline"
	"lifeline/api"
)

// systemConfig is where the Debian package installs the node's config
// (packaging/lifeline.toml); the service runs with it.
const systemConfig = "/etc/lifeline/lifeline.toml"

// apiFlagUsage describes every client subcommand's --api flag.
const apiFlagUsage = "node API `URL` (default: $LIFELINE_API, else the api_addr of $LIFELINE_CONFIG or " + systemConfig + ", else " + lifeline.DefaultAPIAddr + ")"

// dataFlagUsage describes the --data flag of the subcommands that read a
// node's data directory.
const dataFlagUsage = "data `directory` of the node (default: the data_dir of $LIFELINE_CONFIG or " + systemConfig + ", else " + lifeline.DefaultDataDir + ")"

// nodeConfig returns the config of the node installed on this machine:
// the file $LIFELINE_CONFIG names, else c.systemConfig if it exists. path
// is "" when there is none. A config that is there but cannot be read is
// an error, not a silent fallback to another node.
func (c *cli) nodeConfig() (cfg lifeline.Config, path string, err error) {
	path = os.Getenv("LIFELINE_CONFIG")
	if path == "" {
		if c.systemConfig == "" {
			return lifeline.Config{}, "", nil
		}
		if _, err := os.Stat(c.systemConfig); errors.Is(err, fs.ErrNotExist) {
			return lifeline.Config{}, "", nil
		}
		path = c.systemConfig
	}
	cfg, err = lifeline.LoadConfig(path)
	if err != nil {
		return lifeline.Config{}, "", fmt.Errorf("finding the node: %w (fix the file, or say where the node is: --api, --data)", err)
	}
	return cfg, path, nil
}

// client returns an API client for the node the client subcommands talk
// to: apiFlag (--api) if given, else $LIFELINE_API, else the installed
// node's (nodeConfig), else http://127.0.0.1:7777. The admin token is
// $LIFELINE_TOKEN, else, for the installed node only, its data directory's
// admin.token when the caller may read it (root or the node's user); a
// caller who may not needs none on the node's own machine (loopback). The
// token is never taken from a data directory for an address given by hand:
// whoever answers there would receive proofs made with this node's token.
func (c *cli) client(apiFlag string) (*api.Client, error) {
	cl := &api.Client{Token: os.Getenv("LIFELINE_TOKEN")}
	raw := apiFlag
	if raw == "" {
		raw = os.Getenv("LIFELINE_API")
	}
	if raw == "" {
		cfg, path, err := c.nodeConfig()
		if err != nil {
			return nil, err
		}
		raw = lifeline.DefaultAPIAddr
		if path != "" {
			if raw, err = dialAddr(cfg.APIAddr); err != nil {
				return nil, fmt.Errorf("finding the node: config %s: %w (give --api)", path, err)
			}
			if cl.Token == "" {
				// Unreadable (not root, not the node's user) or not made
				// yet: go without, as loopback needs none.
				cl.Token, _ = lifeline.LoadAdminToken(filepath.Join(cfg.DataDir, lifeline.AdminTokenFile))
			}
		}
	}
	cl.BaseURL = strings.TrimRight(raw, "/")
	if !strings.Contains(cl.BaseURL, "://") {
		cl.BaseURL = "http://" + cl.BaseURL // "127.0.0.1:7777" is what people type
	}
	return cl, nil
}

// dialAddr turns a listening address into one to connect to: a node
// listening on every interface (0.0.0.0, [::] or no host) is reached on
// loopback, where the node trusts its operator without a token.
func dialAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("api_addr %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("api_addr %q: port 0 is any free port, so the node cannot be found by its config", listen)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || ip != nil && ip.Equal(net.IPv4zero):
		host = "127.0.0.1"
	case ip != nil && ip.Equal(net.IPv6unspecified):
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// dataDir returns the data directory a subcommand works on: dataFlag
// (--data) if given, else the installed node's (nodeConfig), else
// lifeline.DefaultDataDir.
func (c *cli) dataDir(dataFlag string) (string, error) {
	if dataFlag != "" {
		return dataFlag, nil
	}
	cfg, path, err := c.nodeConfig()
	if err != nil {
		return "", err
	}
	if path == "" {
		return lifeline.DefaultDataDir, nil
	}
	return cfg.DataDir, nil
}
