package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"lifeline"
)

// backup writes a backup of the running node to --out: a consistent copy
// of its store, with the keys to read it and to be the node again. The
// file is 0600 and written whole or not at all.
func (c *cli) backup(ctx context.Context, args []string) error {
	fs := c.flags("backup", "[--api URL] --out FILE")
	apiURL := fs.String("api", "", apiFlagUsage)
	out := fs.String("out", "", "the backup `file` to write (it holds the node's keys: keep it private)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *out == "" {
		return usagef("missing --out FILE")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists: not replacing it", *out)
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".lifeline-backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	cl, err := c.client(*apiURL)
	if err == nil {
		err = cl.Backup(ctx, tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), *out) // fails, rather than replace, if out appeared meanwhile
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, _ := os.Stat(*out)
	fmt.Fprintf(c.stdout, "backup written to %s (%d bytes); it holds the node's keys: keep it as private as the node\n", *out, info.Size())
	return nil
}

// restore makes a data directory the node a backup was taken of.
func (c *cli) restore(_ context.Context, args []string) error {
	fs := c.flags("restore", "--data DIR FILE")
	data := fs.String("data", lifeline.DefaultDataDir, "data `directory` to restore into (must not hold a node)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want the backup FILE")
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := lifeline.Restore(*data, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "restored %d messages into %s: start the node with lifeline run --data %s\n", st.Messages, *data, *data)
	return nil
}
