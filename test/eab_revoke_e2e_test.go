package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// eabRevokeYAML requires EAB and issues only to accounts of EAB group
// "printers" (the default denies everything else).
const eabRevokeYAML = `accounts:
  eab: required
upstreams:
  - name: internal
    type: local
policy:
  rules:
    - name: printers
      match: {groups: [printers]}
      upstreams: [internal]
  default: {action: deny}
`

// TestEABRevokeEndsGrants: an account bound with an EAB key of group
// printers is issued through a `groups: [printers]` rule; after
// `acmebridge eab revoke KID` (with accounts.eab required) its next newOrder
// and the finalize of an order it made before the revocation are refused
// with unauthorized, nothing more is issued, and the refusals are audited.
func TestEABRevokeEndsGrants(t *testing.T) {
	s := startServer(t, eabRevokeYAML)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	k := s.createEAB(t, "--group", "printers", "--note", "revoke-e2e")
	mac, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-eab-revoke"}
	acct, err := c.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.ID, Key: mac}}, acme.AcceptTOS)
	require.NoError(t, err)
	acctID := accountID(acct.URI)

	// ready runs an order for name up to ready (dns-01 on the test DNS).
	ready := func(name string) *acme.Order { return readyByDNS01(ctx, t, c, s.DNS, name) }
	requireUnauthorized := func(err error, what string) {
		t.Helper()
		var ae *acme.Error
		require.True(t, errors.As(err, &ae), "%s: want an ACME problem, got %v", what, err)
		require.Equal(t, http.StatusForbidden, ae.StatusCode, "%s: %v", what, err)
		require.Equal(t, "urn:ietf:params:acme:error:unauthorized", ae.ProblemType, "%s: %v", what, err)
		require.Contains(t, ae.Detail, k.ID, what)
		require.Contains(t, ae.Detail, "revoked", what)
	}

	// The group rule routes and permits the bound account.
	first := ready("one.printers.e2e.test")
	der, _, err := c.CreateOrderCert(ctx, first.FinalizeURL, matrixCSR(t, "one.printers.e2e.test"), true)
	require.NoError(t, err, "issuance through the printers rule")
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	roots, rootsName := rootPool(t, s, "internal")
	verifyChainPool(t, roots, rootsName, chain, []string{"one.printers.e2e.test"})
	var orders listing[orderRec]
	s.adminJSON(t, &orders, "order", "list", "--identifier", "one.printers.e2e.test")
	require.Len(t, orders.Items, 1)
	require.Equal(t, "printers", orders.Items[0].Rule)

	// An order made and validated before the revocation.
	before := ready("two.printers.e2e.test")

	var revoked eabKey
	s.adminJSON(t, &revoked, "eab", "revoke", k.ID)
	require.Equal(t, "revoked", revoked.Status)

	_, err = c.AuthorizeOrder(ctx, acme.DomainIDs("three.printers.e2e.test"))
	requireUnauthorized(err, "newOrder after the revocation")
	_, _, err = c.CreateOrderCert(ctx, before.FinalizeURL, matrixCSR(t, "two.printers.e2e.test"), true)
	requireUnauthorized(err, "finalize of an order made before the revocation")

	// Nothing was issued for it: the order is still ready, with no
	// certificate, and the account holds one certificate.
	o, err := c.GetOrder(ctx, before.URI)
	require.NoError(t, err)
	require.Equal(t, acme.StatusReady, o.Status)
	require.Empty(t, o.CertURL)
	var certs listing[struct {
		Account string `json:"account"`
	}]
	s.adminJSON(t, &certs, "cert", "list", "--account", acctID)
	require.Len(t, certs.Items, 1, "one certificate, issued before the revocation")

	// Both refusals are in the audit log, with the reason.
	lines := readAudit(t, s.AuditFile())
	for _, ev := range []string{"order.refused", "finalize.refused"} {
		i := findAudit(lines, 0, func(e auditEvent) bool {
			return e.Event == ev && e.Account == acctID && strings.Contains(e.Detail, "revoked")
		})
		require.NotEqual(t, -1, i, "no %s event for the revoked key:\n%s", ev, dumpAudit(lines))
	}
}
