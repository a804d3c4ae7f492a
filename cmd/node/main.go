// Command lifeline runs a Lifeline node and talks to one.
//
//	lifeline run     [--data DIR] [--api ADDR] [--config FILE] [--quota BYTES]
//	lifeline send    [--api URL] (--channel NAME | --to KEY) [--alert] [--ttl DUR] TEXT...
//	lifeline read    [--api URL] [--channel NAME | --to KEY] [--json] [--since MS | --after SEQ] [--limit N]
//	lifeline status  [--api URL] [--json]
//	lifeline id      [--data DIR]
//	lifeline keygen  --out FILE
//	lifeline meshkey --out FILE
//
// run starts a node; send, read and status are clients of a running node's
// HTTP API; id and keygen work offline. The command is thin: the node is
// package lifeline, the client is package api.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
