package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lifeline"
)

// adminToken prints the admin token of the node whose data directory it
// is given (or finds, as the client subcommands do): what an operator types
// into the app's operator page, or sets as $LIFELINE_TOKEN on another
// machine. It never makes a token. The node makes its own at its first
// start and uses that one; a token made here would be a file of the
// caller's (root's, under sudo) that the service's user could not read, and
// the node would not start. It never asks the API either: a token comes
// only from the data directory of the node it belongs to, read by someone
// the file system lets read it (root or the node's user).
func (c *cli) adminToken(_ context.Context, args []string) error {
	fs := c.flags("admin-token", "[--data DIR]")
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
	path := filepath.Join(data, lifeline.AdminTokenFile)
	tok, err := lifeline.LoadAdminToken(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no admin token in %s yet: the node makes it when it first starts (sudo systemctl start lifeline, or lifeline run --data %s)", data, data)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot read %s: only root and the node's user may (sudo lifeline admin-token)", path)
	case err != nil:
		return err
	}
	fmt.Fprintln(c.stdout, tok)
	return nil
}
