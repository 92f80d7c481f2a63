// Command gen writes the configuration reference (docs/configuration.md)
// from the configuration types in configs/:
//
//	go run ./internal/configref/gen -o docs/configuration.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/acmebridge/acmebridge/internal/configref"
)

func main() {
	dir := flag.String("configs", "configs", "the configs package directory")
	out := flag.String("o", "docs/configuration.md", "the file to write")
	flag.Parse()
	keys, err := configref.Keys(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A documentation file of the repository: world-readable like the rest.
	if err := os.WriteFile(*out, []byte(configref.Markdown(keys)), 0o644); err != nil { //nolint:gosec // G306: see above
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
