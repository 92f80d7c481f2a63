package configs

import (
	"reflect"
	"time"
)

// Reload configures how a running server takes up a changed file. A
// reload (SIGHUP, `acmebridge reload`, POST /api/v1/reload, or the watcher
// below) re-reads the file given at start and applies it whole: policy,
// directories, upstreams, rate limits, validation, log level, profiles.
// A file that fails validation, or that changes a key only a restart can
// (RestartKeys), is refused whole and the running configuration stays.
type Reload struct {
	// WatchInterval is how often the config file is read to see whether
	// its contents changed (a hash, not the modification time); a change
	// reloads it. 0 turns the watcher off (the default: an editor saving a
	// file half-written could otherwise apply half a policy). Set it where
	// files are replaced whole, as a Kubernetes ConfigMap mount is.
	WatchInterval Duration `yaml:"watch_interval"`
}

// validateReload checks the reload section.
func (c *Config) validateReload(bad func(field, format string, args ...any)) {
	if w := c.Reload.WatchInterval.D(); w < 0 || (w > 0 && w < 100*time.Millisecond) {
		bad("reload.watch_interval", "%s must be 0 (off) or at least 100ms", w)
	}
}

// restartKeys are the keys a running server cannot change: its listeners,
// its store, its files, and what it started a fixed number of.
var restartKeys = []struct {
	key string
	get func(c *Config) any
}{
	{"data_dir", func(c *Config) any { return c.DataDir }},
	{"server.listen", func(c *Config) any { return c.Server.Listen }},
	{"server.external_url", func(c *Config) any { return c.Server.ExternalURL }},
	{"server.tls", func(c *Config) any { return c.Server.TLS }},
	{"admin.listen", func(c *Config) any { return c.Admin.Listen }},
	{"admin.token_file", func(c *Config) any { return c.Admin.TokenFile }},
	{"admin.tls", func(c *Config) any { return c.Admin.TLS }},
	{"store", func(c *Config) any { return c.Store }},
	{"audit.file", func(c *Config) any { return c.Audit.File }},
	{"orders.workers", func(c *Config) any { return c.Orders.Workers }},
	{"notifications", func(c *Config) any { return c.Notifications }},
	{"log.format", func(c *Config) any { return c.Log.Format }},
}

// RestartKeys names the keys whose values differ between old and next and
// that only a restart can change: the listeners (server.listen,
// server.external_url, server.tls, admin.listen, admin.token_file,
// admin.tls; admin.directory_tokens are reloaded), the store and data_dir, the
// audit log's file, the number of issuance workers, the log format and
// the notifications.
// Every other key is reloaded.
func RestartKeys(old, next *Config) []string {
	var keys []string
	for _, k := range restartKeys {
		if !reflect.DeepEqual(k.get(old), k.get(next)) {
			keys = append(keys, k.key)
		}
	}
	return keys
}
