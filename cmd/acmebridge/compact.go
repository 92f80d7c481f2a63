package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// cmdStoreCompact is `acmebridge store compact`: offline compaction of the
// bolt file (bbolt's Compact), which a running server refuses by holding
// the file's lock.
func cmdStoreCompact(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (its store.bolt.path)")
	dataDir := fs.String("data-dir", "", "data directory (its acmebridge.db)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*cfgPath != "" && *dataDir != "") {
		fmt.Fprintln(stderr, "usage: acmebridge store compact [--config FILE | --data-dir DIR]")
		return 2
	}
	cfg, err := configs.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	path := cfg.Store.Bolt.Path
	if *dataDir != "" {
		path = filepath.Join(*dataDir, "acmebridge.db")
	} else if cfg.Store.Driver != "bolt" {
		fmt.Fprintf(stderr, "store compact: the store is %s; only a bolt file is compacted (Redis frees memory itself)\n", cfg.Store.Driver)
		return 2
	}
	before, after, err := bolt.Compact(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d bytes before, %d after\n", path, before, after)
	return 0
}
