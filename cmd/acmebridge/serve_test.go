package main

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
)

// TestWarnPrivateValidation: serve warns when validations may reach private
// addresses and the ACME listener is reachable from other hosts; not for
// the quickstart (loopback) nor when private addresses are denied.
func TestWarnPrivateValidation(t *testing.T) {
	for _, tc := range []struct {
		listen string
		allow  bool
		warn   bool
	}{
		{"127.0.0.1:8555", true, false},
		{"[::1]:8555", true, false},
		{"localhost:8555", true, false},
		{"0.0.0.0:8555", true, true},
		{":8555", true, true},
		{"10.1.2.3:8555", true, true},
		{"acme.example.com:443", true, true},
		{"0.0.0.0:8555", false, false},
	} {
		cfg := configs.Default()
		cfg.Server.Listen = tc.listen
		cfg.Validation.AllowPrivateAddresses = tc.allow
		var buf bytes.Buffer
		warnPrivateValidation(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if tc.warn {
			require.Contains(t, buf.String(), "level=WARN", tc)
			require.Contains(t, buf.String(), "validation.allow_private_addresses is true", tc)
			require.Contains(t, buf.String(), "listen="+tc.listen, tc)
		} else {
			require.Empty(t, buf.String(), tc)
		}
	}
}
