// Command build builds the phone web app: it bundles and minifies web/app
// into web/dist, which the node embeds. Run it from the repository's root
// after changing anything in web/app (make web does):
//
//	go run ./web/build
//
// It then runs the checks that the tests of web/build/webbuild run on the
// committed dist (target syntax, no other hosts, size budget) and exits 1 if
// one fails, after writing dist so that the output can be inspected.
package main

import (
	"flag"
	"fmt"
	"os"

	"lifeline/web/build/webbuild"
)

func main() {
	app := flag.String("app", "web/app", "the app's source folder")
	dist := flag.String("dist", "web/dist", "the folder to build into")
	flag.Parse()
	if err := run(*app, *dist); err != nil {
		fmt.Fprintln(os.Stderr, "web build:", err)
		os.Exit(1)
	}
}

func run(app, dist string) error {
	files, err := webbuild.Build(app)
	if err != nil {
		return err
	}
	if err := webbuild.Write(dist, files); err != nil {
		return err
	}
	for _, name := range files.Names() {
		fmt.Printf("%8d  %s/%s\n", len(files[name]), dist, name)
	}
	fmt.Printf("%8d  total (budget %d)\n", files.Size(), webbuild.Budget)
	if problems := webbuild.Check(files); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		return fmt.Errorf("%d problem(s) in %s", len(problems), dist)
	}
	return nil
}
