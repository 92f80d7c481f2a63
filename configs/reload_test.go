package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRestartKeys: the keys only a restart can change are named, the
// others are not.
func TestRestartKeys(t *testing.T) {
	base := Default()
	base.fill()
	require.Empty(t, RestartKeys(base, base))

	c := *base
	c.Policy.Default = Rule{Name: "default", Action: "deny"}
	c.Log.Level = "debug"
	c.RateLimits.UnknownKeyRequestsPerIP.Count = 7
	c.Server.TrustedProxies = []string{"10.0.0.0/8"}
	c.Orders.PreAuthorization = true
	c.Validation.DNSResolvers = []string{"127.0.0.1:53"}
	c.Admin.DirectoryTokens = []DirectoryToken{{Directory: "devices", TokenFile: "/run/devices.token"}}
	require.Empty(t, RestartKeys(base, &c), "reloadable keys")

	c = *base
	c.Server.Listen = "127.0.0.1:1"
	c.Store.Redis.Addrs = []string{"redis:6379"}
	c.Orders.Workers = 3
	c.Log.Format = "json"
	c.Admin.TokenFile = "/elsewhere"
	require.Equal(t, []string{"server.listen", "admin.token_file", "store", "orders.workers", "log.format"}, RestartKeys(base, &c))

	// Every admin key but directory_tokens is the listener's: a new one
	// must be named here and in restartKeys.
	var admin []string
	for f := range reflect.TypeFor[Admin]().Fields() {
		admin = append(admin, f.Tag.Get("yaml"))
	}
	require.Equal(t, []string{"listen", "token_file", "tls", "directory_tokens"}, admin)
	c = *base
	c.Admin.Listen, c.Admin.TLS.CertFile = "127.0.0.1:2", "/x.pem"
	require.Equal(t, []string{"admin.listen", "admin.tls"}, RestartKeys(base, &c))
}

// TestReloadWatchInterval: the watcher is off by default; a file may turn
// it on, but not to a busy loop.
func TestReloadWatchInterval(t *testing.T) {
	require.Zero(t, Default().Reload.WatchInterval)
	dir := t.TempDir()
	load := func(v string) (*Config, error) {
		p := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte("reload: {watch_interval: "+v+"}\n"), 0o600))
		return Load(p)
	}
	c, err := load("5s")
	require.NoError(t, err)
	require.Equal(t, "5s", c.Reload.WatchInterval.D().String())
	_, err = load("1ms")
	require.ErrorContains(t, err, "reload.watch_interval")
	_, err = load("-1s")
	require.ErrorContains(t, err, "reload.watch_interval")
}
