package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
)

func cmdConfigCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "config check: --config FILE is required")
		return 2
	}
	c, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	names := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		names[i] = u.Name + " (" + u.Type + ")"
	}
	fmt.Fprintf(stdout, "%s: ok\n  listen %s, external URL %s\n  store %s\n  upstreams: %s\n  policy: %d rules and a default\n",
		*path, c.Server.Listen, c.Server.ExternalURL, c.Store.Driver, strings.Join(names, ", "), len(c.Policy.Rules))
	for _, name := range c.DirectoryNames()[1:] {
		d := c.ForDirectory(name)
		fmt.Fprintf(stdout, "  directory /%s/: eab %s, %d policy rules and a default, private addresses %s\n",
			name, d.Accounts.EAB, len(d.Policy.Rules), map[bool]string{true: "allowed", false: "refused"}[d.Validation.AllowPrivateAddresses])
	}
	return 0
}

func cmdPolicyExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: the quickstart)")
	asJSON := fs.Bool("json", false, "print JSON")
	group := fs.String("group", "", "as an account of this EAB group")
	eabKey := fs.String("eab-key", "", "as an account bound with this EAB key ID")
	profile := fs.String("profile", "", "as an order asking for this profile")
	directory := fs.String("directory", "", `with the policy of this directory (a configured one; "/" or none: the top level)`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "policy explain: name at least one identifier")
		return 2
	}
	c, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	name := *directory
	if name == "/" {
		name = ""
	}
	dc := c.ForDirectory(name)
	if dc == nil {
		fmt.Fprintf(stderr, "policy explain: no directory %q in %s\n", *directory, cmp.Or(*path, "the quickstart"))
		return 1
	}
	eng := policy.New(dc.Policy)
	var out []policy.Explanation
	for _, n := range fs.Args() {
		out = append(out, eng.Explain(n, policy.Request{Group: *group, EABKey: *eabKey, Profile: *profile}))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return 0
	}
	for _, e := range out {
		name := e.Name
		if e.ALabel != "" {
			name += " (" + e.ALabel + ")"
		}
		if e.Rule == "" {
			fmt.Fprintf(stdout, "%s: %s (%s)\n", name, e.Action, e.Reason)
			continue
		}
		fmt.Fprintf(stdout, "%s: rule %s, %s", name, e.Rule, e.Action)
		if len(e.Upstreams) > 0 {
			fmt.Fprintf(stdout, " via %s", strings.Join(e.Upstreams, " then "))
		}
		if e.Reason != "" {
			fmt.Fprintf(stdout, " (%s)", e.Reason)
		}
		if e.Delegated {
			fmt.Fprint(stdout, ", delegated validation (no challenge)")
		}
		if e.Approval != "" {
			fmt.Fprintf(stdout, ", approval %s", e.Approval)
		}
		fmt.Fprintln(stdout)
		if e.ConflictingRule != "" {
			fmt.Fprintf(stdout, "  refused by rule %s (%s)\n", e.ConflictingRule, e.ConflictingPattern)
		}
		for _, s := range e.Skipped {
			fmt.Fprintf(stdout, "  skipped %s\n", s)
		}
	}
	return 0
}
