package configs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRetentionDefaultsAndValidation: retention is on in the quickstart
// and in a file that omits the section; 0 keeps a kind for good; a
// negative retention, an unknown key or a sweep interval out of range is
// refused naming its key.
func TestRetentionDefaultsAndValidation(t *testing.T) {
	want := Retention{Orders: Duration(720 * time.Hour), Certificates: Duration(2160 * time.Hour), SweepInterval: Duration(5 * time.Minute)}
	require.Equal(t, want, Default().Retention, "quickstart")
	c, err := Load(write(t, "log: {level: info}\n"))
	require.NoError(t, err)
	require.Equal(t, want, c.Retention, "a file without the section")

	c, err = Load(write(t, "retention: {orders: 0s, certificates: 240h, sweep_interval: 1m}\n"))
	require.NoError(t, err)
	require.Equal(t, Retention{Orders: 0, Certificates: Duration(240 * time.Hour), SweepInterval: Duration(time.Minute)}, c.Retention)

	for _, tc := range []struct{ yaml, want string }{
		{"retention: {orders: -1h}\n", "retention.orders"},
		{"retention: {certificates: -1h}\n", "retention.certificates"},
		{"retention: {sweep_interval: 0s}\n", "retention.sweep_interval"},
		{"retention: {sweep_interval: 48h}\n", "retention.sweep_interval"},
		{"retention: {orders: 30d}\n", "not a duration"},
		{"retention: {keep: forever}\n", "keep"},
	} {
		_, err := Load(write(t, tc.yaml))
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
}
