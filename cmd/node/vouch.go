package main

import (
	"context"
	"fmt"

	"lifeline/message"
)

// vouch has the running node vouch that a person's new key replaces their
// old one: for someone who lost the phone that held their key, whom the
// operator knows. People's pages show that this node vouched and follow
// the change only when their person accepts it.
func (c *cli) vouch(ctx context.Context, args []string) error {
	fs := c.flags("vouch", "[--api URL] OLD NEW")
	apiURL := fs.String("api", "", apiFlagUsage)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("give the old key and the new key: lifeline vouch OLD NEW")
	}
	// Checked here too: a clear error without a round trip.
	for i, what := range []string{"old", "new"} {
		if _, err := message.ParsePublicKey(pos[i]); err != nil {
			return usagef("the %s key %q: %v", what, pos[i], err)
		}
	}
	cl, err := c.client(*apiURL)
	if err != nil {
		return err
	}
	id, err := cl.Vouch(ctx, pos[0], pos[1])
	if err != nil {
		return fmt.Errorf("vouching: %w", err)
	}
	fmt.Fprintf(c.stdout, "vouched: %s replaces %s (message %s)\n", pos[1], pos[0], id)
	return nil
}
