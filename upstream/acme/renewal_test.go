package acme

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestRenewalInfoAndReplaces against Pebble: RenewalInfo returns Pebble's
// window for a certificate it issued (its default, then one its
// management API sets), and an order replacing that certificate carries
// "replaces", which Pebble checks and accepts.
func TestRenewalInfoAndReplaces(t *testing.T) {
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: 100})
	u := newUpstream(t, dnsOptions(t, p, newStore(t)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	req := newRequest(t, "ari.pebble.test")
	res := issue(t, u, req, nil)
	leaf := res.Leaf

	// Pebble's default window (core.RenewalInfoSimple): a day either side
	// of two thirds of the validity.
	start, end, retry, err := u.RenewalInfo(ctx, leaf)
	require.NoError(t, err)
	ideal := leaf.NotAfter.Add(-leaf.NotAfter.Add(time.Second).Sub(leaf.NotBefore) / 3)
	require.WithinDuration(t, ideal.Add(-24*time.Hour), start, 2*time.Second)
	require.WithinDuration(t, ideal.Add(24*time.Hour), end, 2*time.Second)
	require.Equal(t, 6*time.Hour, retry, "Pebble's Retry-After")

	// A window the CA's operator set (Pebble's management API).
	wantStart := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	wantEnd := wantStart.Add(time.Hour)
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]string{
		"start": wantStart.Format(time.RFC3339), "end": wantEnd.Format(time.RFC3339)}})
	body, _ := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})), "ARIResponse": string(ari)})
	resp, err := p.HTTPClient().Post(p.ManagementURL+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	start, end, _, err = u.RenewalInfo(ctx, leaf)
	require.NoError(t, err)
	require.True(t, wantStart.Equal(start), "start %s", start)
	require.True(t, wantEnd.Equal(end), "end %s", end)

	// RFC 9773 §5: the renewal names the certificate it replaces; Pebble
	// checks it (known serial, same account, a shared identifier).
	req2 := newRequest(t, "ari.pebble.test")
	req2.Replaces = leaf
	res2 := issue(t, u, req2, nil)
	verifyResult(t, p, res2, req2)
	require.Contains(t, p.Logs(), "is a replacement of", "Pebble took the order as a replacement")

	// Replacing it again is alreadyReplaced at the CA: the order goes on
	// without "replaces".
	req3 := newRequest(t, "ari.pebble.test")
	req3.Replaces = leaf
	res3 := issue(t, u, req3, nil)
	verifyResult(t, p, res3, req3)
}
