package configs

import (
	"os"
	"path/filepath"
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
	require.Empty(t, RestartKeys(base, &c), "reloadable keys")

	c = *base
	c.Server.Listen = "127.0.0.1:1"
	c.Store.Redis.Addrs = []string{"redis:6379"}
	c.Orders.Workers = 3
	c.Log.Format = "json"
	c.Admin.TokenFile = "/elsewhere"
	require.Equal(t, []string{"server.listen", "admin", "store", "orders.workers", "log.format"}, RestartKeys(base, &c))
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
