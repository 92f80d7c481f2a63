package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/go-acme/lego/v5/acme/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// Upstream asks its CA for renewal windows.
var _ upstream.RenewalInfoer = (*Upstream)(nil)

// RenewalInfo asks the CA for a certificate's suggested renewal window
// (RFC 9773 §4.2): upstream.ErrNoRenewalInfo when its directory has no
// renewalInfo or it serves an unusable window (§4.2: "clients MUST treat
// one as though they failed to receive any response").
func (u *Upstream) RenewalInfo(ctx context.Context, cert *x509.Certificate) (time.Time, time.Time, time.Duration, error) {
	s, err := u.session(ctx)
	if err != nil {
		return time.Time{}, time.Time{}, 0, err
	}
	if s.core.GetDirectory().RenewalInfo == "" {
		return time.Time{}, time.Time{}, 0, upstream.ErrNoRenewalInfo
	}
	id, err := api.MakeARICertID(cert)
	if err != nil {
		return time.Time{}, time.Time{}, 0, u.errorf(acmeerr.Internal, err, "making the ARI certificate identifier")
	}
	info, err := s.core.Certificates.GetRenewalInfo(ctx, id)
	if errors.Is(err, api.ErrNoARI) {
		return time.Time{}, time.Time{}, 0, upstream.ErrNoRenewalInfo
	}
	if err != nil {
		return time.Time{}, time.Time{}, 0, u.mapError("fetching renewal information", err)
	}
	return info.SuggestedWindow.Start, info.SuggestedWindow.End, info.RetryAfter, nil
}

// replacesID is the RFC 9773 §4.1 identifier of the certificate req
// replaces, "" when none.
func (u *Upstream) replacesID(req *upstream.Request) string {
	if req.Replaces == nil {
		return ""
	}
	id, err := api.MakeARICertID(req.Replaces)
	if err != nil {
		u.log.Warn("acme replaced certificate has no ARI identifier", "order", req.OrderID, "err", err)
		return ""
	}
	return id
}
