package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"

	"github.com/acmebridge/acmebridge/ra/ratest"
)

// TestVaultSignVerbatimCSRContent: issue 14's first hole, end to end. With
// vault.mode sign-verbatim, Vault copies a CSR's subject and extensions into
// the certificate. The CSR of the issue (O and OU, two common names, a UPN
// otherName and a directoryName, codeSigning and smartcardLogon, cA TRUE,
// certificatePolicies) and the other hostile CSRs are refused at finalize
// with a badCSR naming what they ask for, and none reaches Vault; a CSR as
// lego makes it is signed, and the certificate holds exactly the order's
// name, a subject of that one CN, and serverAuth+clientAuth — acmebridge
// passes Vault the usages it decided, where Vault's sign-verbatim would
// otherwise add DigitalSignature, KeyAgreement and KeyEncipherment and no
// extended usage.
func TestVaultSignVerbatimCSRContent(t *testing.T) {
	b := startVaultBridgeMode(t, authRootToken, false, "sign-verbatim")
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	c, serve := xcryptoClient(t, b.s)
	name := "verbatim." + vaultDomain
	finalizeURL := xcryptoReadyOrder(ctx, t, c, serve, name)

	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	hostile := append([]ratest.Case{{Name: "the issue's CSR", DER: ratest.IssueCSR(t, certKey, []string{name}), Detail: "organizationName"},
		// Vault's sign-verbatim would leave a name in the common name alone
		// out of the subjectAltName (upstream/vault TestSignVerbatimContent).
		{Name: "the name in the common name only", DER: ratest.CSR(t, certKey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}),
			Detail: "list every name in the CSR's subjectAltName"}},
		ratest.Hostile(t, certKey, []string{name})...)
	for _, tc := range hostile {
		_, _, err := c.CreateOrderCert(ctx, finalizeURL, tc.DER, true)
		var ae *acme.Error
		require.True(t, errors.As(err, &ae), "%s: %v", tc.Name, err)
		require.Equal(t, http.StatusBadRequest, ae.StatusCode, tc.Name)
		require.Equal(t, "urn:ietf:params:acme:error:badCSR", ae.ProblemType, tc.Name)
		require.Contains(t, ae.Detail, tc.Detail, tc.Name)
	}
	require.Empty(t, b.vaultLeaves(t), "no hostile CSR reached Vault")

	der, _, err := c.CreateOrderCert(ctx, finalizeURL, ratest.Clients(t, certKey, []string{name}, nil)[0].DER, true)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der[0])
	require.NoError(t, err)
	require.Equal(t, []string{name}, leaf.DNSNames)
	require.Empty(t, leaf.IPAddresses)
	require.Empty(t, leaf.EmailAddresses)
	require.Empty(t, leaf.URIs)
	require.Equal(t, "CN="+name, leaf.Subject.String(), "no O, no OU, one CN")
	require.False(t, leaf.IsCA)
	require.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage, "the usage decided for an ECDSA key, not Vault's default")
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	require.Empty(t, leaf.UnknownExtKeyUsage)
	require.Empty(t, leaf.Policies)
	leaves := b.vaultLeaves(t)
	require.Len(t, leaves, 1, "Vault signed the one good CSR")
	require.True(t, leaves[0].Equal(leaf))
}

// xcryptoClient is a registered golang.org/x/crypto/acme client for s,
// with the http-01 answers it serves on s's validation port.
func xcryptoClient(t *testing.T, s *server) (*acme.Client, func(path, body string)) {
	t.Helper()
	serve := serveHTTP01(t, s.HTTPPort)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-test"}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	_, err = c.Register(ctx, &acme.Account{Contact: []string{"mailto:csr@example.com"}}, acme.AcceptTOS)
	require.NoError(t, err)
	return c, serve
}

// xcryptoReadyOrder orders name, answers its http-01 challenge and returns
// the ready order's finalize URL.
func xcryptoReadyOrder(ctx context.Context, t *testing.T, c *acme.Client, serve func(path, body string), name string) string {
	t.Helper()
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	require.NoError(t, err)
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		require.NoError(t, err)
		var ch *acme.Challenge
		for _, x := range z.Challenges {
			if x.Type == "http-01" {
				ch = x
			}
		}
		require.NotNil(t, ch, "no http-01 challenge offered")
		body, err := c.HTTP01ChallengeResponse(ch.Token)
		require.NoError(t, err)
		serve(c.HTTP01ChallengePath(ch.Token), body)
		_, err = c.Accept(ctx, ch)
		require.NoError(t, err)
		_, err = c.WaitAuthorization(ctx, z.URI)
		require.NoError(t, err)
	}
	o, err = c.WaitOrder(ctx, o.URI)
	require.NoError(t, err)
	require.Equal(t, acme.StatusReady, o.Status)
	return o.FinalizeURL
}
