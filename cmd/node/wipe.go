package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"lifeline"
	"lifeline/api"
)

// errNotThisNode: no node of the data directory to wipe answered.
var errNotThisNode = errors.New("the node there is not the one of this data directory")

// wipe destroys a node's keys and messages: a running node does it itself
// (and stops), through its API; otherwise, or if it does not answer, the
// files are destroyed here. On a kit about to be seized, destroying the
// keys on disk matters more than anything else, so a node that does not
// answer does not stop the wipe.
func (c *cli) wipe(ctx context.Context, args []string) error {
	fs := c.flags("wipe", "[--data DIR] [--config FILE] [--mesh-key FILE] [--api URL] [--yes]")
	data := fs.String("data", lifeline.DefaultDataDir, "data `directory` of the node")
	cfgFile := fs.String("config", "", "the node's config `file`: its data directory, mesh key and API address (default without --data: $LIFELINE_CONFIG or "+systemConfig+" if there is one)")
	meshKey := fs.String("mesh-key", "", "the private mesh's key `file`, destroyed too")
	apiURL := fs.String("api", "", apiFlagUsage)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *cfgFile == "" && !given["data"] {
		// The node installed here, if there is one.
		if _, *cfgFile, err = c.nodeConfig(); err != nil {
			return err
		}
	}
	if *cfgFile != "" {
		cfg, err := lifeline.LoadConfig(*cfgFile)
		if err != nil {
			return err
		}
		if !given["data"] {
			*data = cfg.DataDir
		}
		if !given["mesh-key"] {
			*meshKey = cfg.MeshKeyFile
		}
		if !given["api"] {
			*apiURL = cfg.APIAddr
			if a, err := dialAddr(cfg.APIAddr); err == nil {
				*apiURL = a // 0.0.0.0 is reached on loopback
			}
		}
	}
	if !*yes {
		fmt.Fprintf(c.stderr, "This destroys, for good, the keys and every message of the node in %s", *data)
		if *meshKey != "" {
			fmt.Fprintf(c.stderr, ", and the mesh key %s", *meshKey)
		}
		fmt.Fprint(c.stderr, ".\nType wipe to go on: ")
		line, _ := bufio.NewReader(c.stdin).ReadString('\n')
		if strings.TrimSpace(line) != "wipe" {
			return fmt.Errorf("not wiped")
		}
	}
	cl, err := c.client(*apiURL)
	if err != nil {
		// Nothing says where the node is: the files are wiped here all
		// the same.
		cl = &api.Client{}
		fmt.Fprintf(c.stderr, "lifeline wipe: %v\n", err)
	}
	// Only the node of this data directory is asked, and only once it
	// has shown it is that node is it given the admin token: another
	// node may answer at that address.
	err = errNotThisNode
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	var res api.WipeResponse
	if id, ierr := lifeline.LoadIdentity(filepath.Join(*data, lifeline.IdentityFile)); ierr == nil {
		if st, serr := (&api.Client{BaseURL: cl.BaseURL}).Status(actx); serr != nil {
			err = serr
		} else if st.ID == id.Public().String() {
			if cl.Token == "" {
				if tok, terr := os.ReadFile(filepath.Join(*data, lifeline.AdminTokenFile)); terr == nil {
					cl.Token = strings.TrimSpace(string(tok))
				}
			}
			res, err = cl.Wipe(actx)
		}
	}
	cancel()
	if err == nil {
		fmt.Fprintf(c.stdout, "wiped: the node at %s destroyed its keys and messages in %.3f s and stopped\n", cl.BaseURL, res.TookS)
		// The node wiped the data directory and mesh key of its config;
		// these may be other copies. What is gone already is skipped.
		return lifeline.Wipe(*data, *meshKey)
	}
	start := time.Now()
	if werr := lifeline.Wipe(*data, *meshKey); werr != nil {
		return fmt.Errorf("wiping %s: %w", *data, werr)
	}
	fmt.Fprintf(c.stdout, "wiped %s in %.3f s (no node answered at %s: %v)\n", *data, time.Since(start).Seconds(), cl.BaseURL, err)
	fmt.Fprintln(c.stdout, "a node still running on it keeps what it holds in memory until it stops: stop it now")
	return nil
}
