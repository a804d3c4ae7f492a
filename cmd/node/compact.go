package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"lifeline"
	"lifeline/store"
)

// compact rewrites a stopped node's store into a fresh file holding the
// same messages: the file shrinks to what they take, after a flood was
// evicted or old messages expired.
func (c *cli) compact(_ context.Context, args []string) error {
	fs := c.flags("compact", "[--data DIR]")
	dataFlag := fs.String("data", "", dataFlagUsage)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	data, err := c.dataDir(*dataFlag)
	if err != nil {
		return err
	}
	path := filepath.Join(data, lifeline.StoreFile)
	res, err := store.Compact(path)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("a node is using %s: stop the node first: systemctl stop lifeline (or Ctrl-C the lifeline run)", path)
	}
	if err != nil {
		return err
	}
	saved := ""
	if res.Before > 0 {
		saved = fmt.Sprintf(" (%.0f%% smaller)", 100*float64(res.Before-res.After)/float64(res.Before))
	}
	fmt.Fprintf(c.stdout, "compacted %s: %d messages, %s -> %s%s\n", path, res.Messages, mib(res.Before), mib(res.After), saved)
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
