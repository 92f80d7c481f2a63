package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
)

// Revoke asks the CA to revoke a certificate this upstream obtained,
// signed with acmebridge's account key (RFC 8555 §7.6: "The server MUST
// consider at least the following accounts authorized for a given
// certificate: the account that issued the certificate"), with the
// RFC 5280 reason code. The CA's alreadyRevoked is AlreadyRevoked; an
// unreachable CA is Unavailable (the client may try again).
func (u *Upstream) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	if cert == nil || len(cert.Raw) == 0 {
		return u.errorf(acmeerr.Malformed, nil, "no certificate to revoke")
	}
	// RFC 5280 §5.3.1 reason codes; 7 is unused.
	if reason < 0 || reason > 10 || reason == 7 {
		return u.errorf(acmeerr.BadRevocationReason, nil, "revocation reason %d is not supported", reason)
	}
	s, err := u.session(ctx)
	if err != nil {
		return revokeKind(err)
	}
	r := uint(reason)
	// §7.6: "certificate (required, string): The certificate to be
	// revoked, in the base64url-encoded version of the DER format."
	msg := legoacme.RevokeCertMessage{Certificate: base64.RawURLEncoding.EncodeToString(cert.Raw), Reason: &r}
	if err := s.core.Certificates.Revoke(ctx, msg); err != nil {
		return revokeKind(u.mapError("revoking the certificate", err))
	}
	u.log.Info("acme certificate revoked", "serial", core.SerialHex(cert), "reason", reason)
	return nil
}

// revokeKind makes a transport failure during a revocation Unavailable: the
// client is answered at once, and "connection" would read as its fault.
func revokeKind(err error) error {
	var e *acmeerr.Error
	if acmeerr.Is(err, acmeerr.Connection) && errors.As(err, &e) {
		c := *e
		c.Kind = acmeerr.Unavailable
		c.RetryAfter = unavailableRetry
		return &c
	}
	return err
}

// Check reports whether the CA's directory answers, and what it says of
// EAB and profiles, without touching the account (which lives in the
// store of a running server). It returns a one-line summary.
func (u *Upstream) Check(ctx context.Context) (string, error) {
	type result struct {
		dir legoacme.Directory
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// api.New fetches the directory; the key is never used.
		core, err := api.New(u.httpClient(), userAgent, u.directory, "", nil)
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{dir: core.GetDirectory()}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return "", u.mapError("fetching the directory", ctx.Err())
	}
	if r.err != nil {
		return "", u.mapError("fetching the directory", r.err)
	}
	meta := r.dir.Meta
	if meta.ExternalAccountRequired && u.eabKeyID == "" {
		return "", u.errorf(acmeerr.Internal, nil, "the CA at %s requires an external account binding and none is configured", u.host)
	}
	var profiles []string
	for p := range meta.Profiles {
		profiles = append(profiles, p)
	}
	sort.Strings(profiles)
	if u.profile != "" && len(profiles) > 0 && !slices.Contains(profiles, u.profile) {
		return "", u.errorf(acmeerr.Internal, nil, "the CA at %s does not offer the profile %q (it offers %s)",
			u.host, u.profile, strings.Join(profiles, ", "))
	}
	s := fmt.Sprintf("directory reachable at %s; EAB %s", u.directory, map[bool]string{true: "required", false: "not required"}[meta.ExternalAccountRequired])
	if len(profiles) > 0 {
		s += "; profiles " + strings.Join(profiles, ", ")
	}
	if meta.TermsOfService != "" {
		s += "; terms of service " + meta.TermsOfService + " (agreed to on registration)"
	}
	return s + "; solver " + u.solver.Type, nil
}
