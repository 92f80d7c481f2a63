package configs

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Directory is one more ACME directory (a tenant) served at
// /{name}/directory, with every URL of its accounts, orders,
// authorizations and certificates under /{name}/. The top-level settings
// are the directory at /directory, which a file without directories
// serves alone. A key a directory leaves out is the top level's: only
// what differs needs writing. A directory that writes policy replaces the
// top level's policy whole (without a default of its own, what no rule
// matches is denied, as at the top level); upstreams are shared.
//
// An account belongs to the directory it was made in: its kid, orders,
// authorizations, challenges and certificates are refused through any
// other directory's URLs, and an EAB key binds only in its directory.
type Directory struct {
	// Name is the directory's path segment: lowercase letters, digits
	// and '-', not one of the server's own paths (acme, directory, api).
	Name string `yaml:"name"`
	// Accounts is the directory's sign-up: eab required, optional or
	// disabled; contact and terms agreement.
	Accounts Accounts `yaml:"accounts"`
	// TermsOfService, Website and CAAIdentities are the directory's meta
	// (RFC 8555 §7.1.1); CAAIdentities is also the CAA identity of its
	// upstreams that name none.
	TermsOfService string   `yaml:"terms_of_service"`
	Website        string   `yaml:"website"`
	CAAIdentities  []string `yaml:"caa_identities"`
	// Profiles are the profiles the directory offers (name →
	// description), as orders.profiles.
	Profiles map[string]string `yaml:"profiles"`
	// Policy routes the directory's orders over the shared upstreams.
	Policy Policy `yaml:"policy"`
	// RateLimits are the directory's limits; its buckets are its own.
	RateLimits RateLimits `yaml:"rate_limits"`
	// Validation is what differs in the directory's challenge validation.
	Validation DirectoryValidation `yaml:"validation"`
}

// DirectoryValidation is a directory's own validation settings.
type DirectoryValidation struct {
	// AllowPrivateAddresses lets the directory's validations reach
	// loopback, private and other non-public addresses (a LAN tenant),
	// as validation.allow_private_addresses does for the top level.
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
}

// directoryName is a directory's path segment.
var directoryName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// reservedDirectoryNames are the server's own first path segments.
var reservedDirectoryNames = []string{"acme", "directory", "api", "metrics", "healthz", "readyz", "dashboard", "static"}

// DirectoryNames are the names of every directory the server serves: ""
// (the top level, at /directory) first, then the configured ones in order.
func (c *Config) DirectoryNames() []string {
	names := []string{""}
	for _, d := range c.Directories {
		names = append(names, d.Name)
	}
	return names
}

// HasDirectory reports whether name is served ("" always is).
func (c *Config) HasDirectory(name string) bool {
	return slices.Contains(c.DirectoryNames(), name)
}

// ForDirectory is the configuration one directory runs with: c itself for
// "" (the top level), otherwise a copy whose tenant settings (accounts,
// meta, profiles, policy, rate limits, private addresses) are the
// directory's. It is nil for a name c does not serve.
func (c *Config) ForDirectory(name string) *Config {
	if name == "" {
		return c
	}
	for _, d := range c.Directories {
		if d.Name != name {
			continue
		}
		e := *c
		e.Accounts = d.Accounts
		e.Server.TermsOfService, e.Server.Website, e.Server.CAAIdentities = d.TermsOfService, d.Website, d.CAAIdentities
		e.Orders.Profiles = d.Profiles
		e.Policy = d.Policy
		e.RateLimits = d.RateLimits
		e.Validation.AllowPrivateAddresses = d.Validation.AllowPrivateAddresses
		return &e
	}
	return nil
}

// inherited is a directory holding the top level's tenant settings, over
// which the directory's own keys are decoded.
func (c *Config) inherited() Directory {
	return Directory{
		Accounts:       c.Accounts,
		TermsOfService: c.Server.TermsOfService, Website: c.Server.Website,
		CAAIdentities: slices.Clone(c.Server.CAAIdentities),
		Profiles:      clone(c.Orders.Profiles),
		Policy:        c.Policy,
		RateLimits:    c.RateLimits,
		Validation:    DirectoryValidation{AllowPrivateAddresses: c.Validation.AllowPrivateAddresses},
	}
}

func clone(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// decodeDirectories decodes each directory again over the top level's
// settings (the strict decode has already refused unknown keys), so what a
// directory leaves out is inherited.
func (c *Config) decodeDirectories(n *yaml.Node) error {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	dirs := make([]Directory, 0, len(n.Content))
	for i, item := range n.Content {
		d := c.inherited()
		if child(item, "policy") != nil {
			d.Policy = Policy{Default: Rule{Name: "default", Action: "deny"}}
			if child(child(item, "policy"), "default") != nil {
				d.Policy.Default = Rule{Name: "default"}
			}
		}
		if child(item, "profiles") != nil {
			d.Profiles = nil
		}
		if err := item.Decode(&d); err != nil {
			return fmt.Errorf("directories[%d]: %w", i, err)
		}
		if p := child(item, "policy"); p != nil {
			if err := d.Policy.toALabels(p); err != nil {
				return fmt.Errorf("directories[%d].%w", i, err)
			}
		}
		dirs = append(dirs, d)
	}
	c.Directories = dirs
	return nil
}

// validateDirectories checks the directories' names and each one's
// settings as the top level's are checked.
func (c *Config) validateDirectories(upstreams map[string]bool, bad func(field, format string, args ...any)) []error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range c.Directories {
		f := fmt.Sprintf("directories[%d]", i)
		switch {
		case !directoryName.MatchString(d.Name):
			bad(f+".name", "%q must be lowercase letters, digits and '-' (at most 63)", d.Name)
		case slices.Contains(reservedDirectoryNames, d.Name):
			bad(f+".name", "%q is one of the server's own paths (%v)", d.Name, reservedDirectoryNames)
		case seen[d.Name]:
			bad(f+".name", "%q is used twice", d.Name)
		}
		seen[d.Name] = true
		sub := func(field, format string, args ...any) { bad(f+"."+field, format, args...) }
		switch d.Accounts.EAB {
		case "required", "optional", "disabled":
		default:
			sub("accounts.eab", "%q must be required, optional or disabled", d.Accounts.EAB)
		}
		for name := range d.Profiles {
			if !profileName(name) {
				sub("profiles", "%q is not a profile name", name)
			}
		}
		for j, id := range d.CAAIdentities {
			if !caaIdentity(id) {
				sub(fmt.Sprintf("caa_identities[%d]", j), "%q is not a domain name as CAA records name a CA (e.g. ca.example.com)", id)
			}
		}
		validateRateLimits(d.RateLimits, sub)
		for _, err := range d.Policy.validate(upstreams) {
			errs = append(errs, fmt.Errorf("%s.%w", f, err))
		}
	}
	return errs
}

// validateDirectoryTokens checks admin.directory_tokens: each names a
// served directory and a token file of its own.
func (c *Config) validateDirectoryTokens(bad func(field, format string, args ...any)) {
	files := map[string]string{filepath.Clean(c.Admin.TokenFile): "admin.token_file"}
	for i, t := range c.Admin.DirectoryTokens {
		f := fmt.Sprintf("admin.directory_tokens[%d]", i)
		if t.Directory == "" || (t.Directory != "/" && !c.HasDirectory(t.Directory)) {
			bad(f+".directory", "%q is not a configured directory (name one of directories, or \"/\" for the top level)", t.Directory)
		}
		if t.TokenFile == "" {
			bad(f+".token_file", "is required")
			continue
		}
		if other, ok := files[filepath.Clean(t.TokenFile)]; ok {
			bad(f+".token_file", "%q is also %s: each token has its own file", t.TokenFile, other)
		}
		files[filepath.Clean(t.TokenFile)] = f
	}
}

// ScopedDirectory is the directory a scoped admin token names: "" for the
// top level ("/").
func (t DirectoryToken) ScopedDirectory() string {
	if t.Directory == "/" {
		return ""
	}
	return t.Directory
}
