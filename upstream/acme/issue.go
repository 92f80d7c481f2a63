package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/upstream"
)

// Polling of an order the CA is processing (RFC 8555 §7.4: "the client
// SHOULD ... poll the order, ... the server MAY include a Retry-After").
const (
	pollFirst = 500 * time.Millisecond
	pollMax   = 10 * time.Second
	// pendingPolls bounds the polls of an order still pending after its
	// authorizations were solved (a CA updating it lazily).
	pendingPolls = 20
)

// ref is what Issue stores through setRef, as JSON: the upstream order's
// URL, with the upstream's name so that another upstream of the same
// order never mistakes it for its own.
type ref struct {
	Upstream string `json:"upstream"`
	Order    string `json:"order"`
}

func (r ref) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// parseRef decodes req.Ref; ok is false for an empty reference or one left
// by another upstream.
func (u *Upstream) parseRef(s string) (r ref, ok bool) {
	if s == "" || json.Unmarshal([]byte(s), &r) != nil {
		return ref{}, false
	}
	return r, r.Upstream == u.name && strings.HasPrefix(r.Order, "https://")
}

// Issue obtains a certificate for req's CSR from the CA:
//
//   - with req.Ref naming an order of this upstream, that order is fetched
//     and carried on from its state; a valid one is downloaded again;
//   - otherwise a new order is placed (RFC 8555 §7.4) and its URL recorded
//     through setRef at once, before any challenge is solved or the order
//     finalized, so a crash at any later point resumes this order;
//   - pending authorizations are solved with the configured solver, valid
//     ones reused;
//   - the order is finalized with the client's CSR, as-is, polled while
//     processing, and the certificate chain downloaded.
//
// The chain is checked to be for the CSR's key before it is returned.
func (u *Upstream) Issue(ctx context.Context, req *upstream.Request, setRef func(ref string) error) (*upstream.Result, error) {
	if req == nil {
		return nil, u.errorf(acmeerr.Malformed, nil, "no request")
	}
	if setRef == nil {
		setRef = func(string) error { return nil }
	}
	csr, err := u.csrOf(req)
	if err != nil {
		return nil, err
	}
	names := identifiers(req)
	if len(names) == 0 {
		return nil, u.errorf(acmeerr.Malformed, nil, "the request names no identifier")
	}
	// RFC 8738 §7: "The "dns-01" challenge ... MUST NOT be used to
	// validate IP identifiers."
	if u.solver.Type == SolverDNS01 && len(req.IPAddresses) > 0 {
		return nil, u.errorf(acmeerr.UnsupportedIdentifier, nil,
			"IP address identifiers cannot be validated with this upstream's dns-01 solver")
	}
	s, err := u.session(ctx)
	if err != nil {
		return nil, err
	}
	var order legoacme.ExtendedOrder
	if r, ok := u.parseRef(req.Ref); ok {
		if order, err = u.resume(ctx, s, r.Order, names); err != nil {
			return nil, err
		}
	}
	if order.Location == "" {
		order, err = u.placeOrder(ctx, s, names, req, setRef)
		if err != nil && u.conn.Load() == nil {
			// The CA no longer knows acmebridge's account (a CA that lost
			// its state, an account deactivated out of band): register
			// again with the same key and try once more.
			if s, err = u.session(ctx); err != nil {
				return nil, err
			}
			order, err = u.placeOrder(ctx, s, names, req, setRef)
		}
		if err != nil {
			return nil, err
		}
	}
	start := time.Now()
	res, err := u.complete(ctx, s, order, req, csr)
	if err != nil {
		return nil, err
	}
	u.log.Info("acme certificate issued", "order", req.OrderID, "upstream_order", order.Location,
		"serial", core.SerialHex(res.Leaf), "names", names, "not_after", res.Leaf.NotAfter, "took_ms", time.Since(start).Milliseconds())
	return res, nil
}

// csrOf returns the request's parsed CSR (its Raw is the DER sent).
func (u *Upstream) csrOf(req *upstream.Request) (*x509.CertificateRequest, error) {
	if req.CSR != nil {
		return req.CSR, nil
	}
	if len(req.CSRDER) == 0 {
		return nil, u.errorf(acmeerr.BadCSR, nil, "the request has no CSR")
	}
	csr, err := x509.ParseCertificateRequest(req.CSRDER)
	if err != nil {
		return nil, u.errorf(acmeerr.BadCSR, err, "the CSR cannot be parsed")
	}
	return csr, nil
}

// identifiers are the order's names as lego takes them (IP addresses in
// text form become "ip" identifiers, RFC 8738 §3).
func identifiers(req *upstream.Request) []string {
	names := slices.Clone(req.DNSNames)
	for _, ip := range req.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// placeOrder creates a new order at the CA and records its URL.
func (u *Upstream) placeOrder(ctx context.Context, s *session, names []string, req *upstream.Request,
	setRef func(string) error) (legoacme.ExtendedOrder, error) {
	// RFC 9773 §5: "replaces" names the certificate this order renews
	// (lego sends it only when the CA's directory has renewalInfo).
	opts := &api.OrderOptions{Profile: cmpOr(req.Profile, u.profile), ReplacesCertID: u.replacesID(req)}
	if u.forwardValidity {
		opts.NotBefore, opts.NotAfter = req.NotBefore, req.NotAfter
	}
	order, err := s.core.Orders.New(ctx, names, opts)
	var pd *legoacme.ProblemDetails
	if err != nil && opts.ReplacesCertID != "" && errors.As(err, &pd) && pd.Type != errNS+"rateLimited" {
		// The CA refused the replacement (a certificate it no longer
		// knows, another account): "replaces" is a courtesy, not a
		// condition of the order, so order without it.
		u.log.Warn("acme CA refused replaces; ordering without it", "order", req.OrderID, "err", err)
		opts.ReplacesCertID = ""
		order, err = s.core.Orders.New(ctx, names, opts)
	}
	if err != nil {
		return order, u.mapError("placing the order", err)
	}
	// §7.4: "the server ... returns a 201 (Created) response ... with the
	// order object ... [and] a Location header field".
	if order.Location == "" {
		return order, u.errorf(acmeerr.Internal, nil, "the CA returned no URL for the new order")
	}
	if err := setRef(ref{Upstream: u.name, Order: order.Location}.String()); err != nil {
		// The order exists at the CA but nothing remembers it: give up
		// this attempt rather than risk a second order later.
		return order, u.unavailable(err, "recording the upstream order %s", order.Location)
	}
	u.log.Info("acme order placed", "order", req.OrderID, "upstream_order", order.Location, "status", order.Status, "names", names)
	return order, nil
}

// resume fetches the order an earlier attempt placed. It returns an order
// without Location when a new one must be placed: the CA no longer knows
// it, or it went invalid for a reason a new order may not meet.
func (u *Upstream) resume(ctx context.Context, s *session, orderURL string, names []string) (legoacme.ExtendedOrder, error) {
	order, err := s.core.Orders.Get(ctx, orderURL)
	if err != nil {
		var pd *legoacme.ProblemDetails
		if errors.As(err, &pd) && (pd.HTTPStatus == 404 || pd.Type == errNS+"malformed" || pd.Type == errNS+"unauthorized") {
			u.log.Warn("acme order to resume is gone; placing a new one", "upstream_order", orderURL, "err", err)
			return legoacme.ExtendedOrder{}, nil
		}
		return order, u.mapError("fetching the order", err)
	}
	order.Location = orderURL
	if !sameIdentifiers(order.Identifiers, names) {
		u.log.Warn("acme order to resume is for other names; placing a new one", "upstream_order", orderURL)
		return legoacme.ExtendedOrder{}, nil
	}
	if order.Status == legoacme.StatusInvalid {
		e := u.invalidOrder(ctx, s, order)
		if k := acmeerr.KindOf(e); k != acmeerr.Unavailable && k != acmeerr.Internal {
			return order, e
		}
		u.log.Warn("acme order to resume is invalid; placing a new one", "upstream_order", orderURL, "err", e)
		return legoacme.ExtendedOrder{}, nil
	}
	u.log.Info("acme order resumed", "upstream_order", orderURL, "status", order.Status)
	return order, nil
}

// sameIdentifiers reports whether an order is for exactly names.
func sameIdentifiers(ids []legoacme.Identifier, names []string) bool {
	got := make([]string, 0, len(ids))
	for _, id := range ids {
		got = append(got, strings.ToLower(id.Value))
	}
	want := make([]string, 0, len(names))
	for _, n := range names {
		want = append(want, strings.ToLower(n))
	}
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(slices.Compact(got), slices.Compact(want))
}

// complete takes the order through its states (RFC 8555 §7.1.6:
// pending → ready → processing → valid, or invalid) to the certificate.
func (u *Upstream) complete(ctx context.Context, s *session, order legoacme.ExtendedOrder, req *upstream.Request,
	csr *x509.CertificateRequest) (*upstream.Result, error) {
	location := order.Location
	wait, pendings := pollFirst, 0
	refetch := func() error {
		o, err := s.core.Orders.Get(ctx, location)
		if err != nil {
			return u.mapError("polling the order", err)
		}
		order, order.Location = o, location
		return nil
	}
	for {
		switch order.Status {
		case legoacme.StatusPending:
			if pendings > 0 {
				if err := u.pause(ctx, &wait); err != nil {
					return nil, err
				}
			} else if err := u.authorize(ctx, s, order, req); err != nil {
				return nil, err
			}
			if pendings++; pendings > pendingPolls {
				return nil, u.unavailable(nil, "the order at %s stays pending although its authorizations were solved", u.host)
			}
		case legoacme.StatusReady:
			// §7.4: "Once the client believes it has fulfilled the
			// server's requirements, it should send a POST request to the
			// order resource's finalize URL. The POST body MUST include a
			// CSR". The client's CSR goes as it came.
			o, err := s.core.Orders.UpdateForCSR(ctx, order.Finalize, csr.Raw)
			var pd *legoacme.ProblemDetails
			switch {
			case err == nil:
				order, order.Location = o, location
				continue
			case isProblem(err, "orderNotReady"):
				// An earlier attempt's finalize got there first: §7.4
				// "orderNotReady" when the order is no longer ready.
			case errors.As(err, &pd):
				return nil, u.mapError("finalizing the order", err)
			case !strings.HasPrefix(err.Error(), "invalid order"):
				return nil, u.mapError("finalizing the order", err)
			}
			// Refetching gives the order's state, and its error if the
			// finalize made it invalid.
		case legoacme.StatusProcessing:
			// §7.4: "the order will be in the "processing" state ... The
			// client SHOULD then send a POST-as-GET request to the order
			// resource to obtain its current state."
			if err := u.pause(ctx, &wait); err != nil {
				return nil, err
			}
		case legoacme.StatusValid:
			return u.download(ctx, s, order, csr, req)
		case legoacme.StatusInvalid:
			return nil, u.invalidOrder(ctx, s, order)
		default:
			return nil, u.errorf(acmeerr.Internal, nil, "the order at %s has the unknown status %q", u.host, order.Status)
		}
		if err := refetch(); err != nil {
			return nil, err
		}
	}
}

// pause waits before the next poll, backing off; it fails (transient: the
// next attempt resumes) when ctx ends.
func (u *Upstream) pause(ctx context.Context, wait *time.Duration) error {
	if err := sleepCtx(ctx, *wait); err != nil {
		return u.mapError("waiting for the CA", err)
	}
	*wait = min(*wait*2, pollMax)
	return nil
}

// isProblem reports whether err is the CA's problem of type typ.
func isProblem(err error, typ string) bool {
	var pd *legoacme.ProblemDetails
	return errors.As(err, &pd) && pd.Type == errNS+typ
}

// authorize solves the order's pending authorizations. Valid ones (the
// CA reusing an earlier validation, RFC 8555 §7.1.3) are not solved again.
func (u *Upstream) authorize(ctx context.Context, s *session, order legoacme.ExtendedOrder, req *upstream.Request) error {
	var pending []legoacme.Authorization
	reused := 0
	for _, az := range order.Authorizations {
		a, err := s.core.Authorizations.Get(ctx, az)
		if err != nil {
			return u.mapError("fetching an authorization", err)
		}
		switch a.Status {
		case legoacme.StatusValid:
			reused++
		case legoacme.StatusPending:
			pending = append(pending, a)
		case legoacme.StatusInvalid:
			return u.authzError(a)
		default:
			// deactivated, expired, revoked: the order cannot complete;
			// the next attempt finds it invalid and places a new one.
			return u.unavailable(nil, "the authorization for %s at %s is %s", a.Identifier.Value, u.host, a.Status)
		}
	}
	u.log.Info("acme authorizations", "order", req.OrderID, "upstream_order", order.Location,
		"to_solve", len(pending), "reused", reused, "solver", u.solver.Type)
	if len(pending) == 0 {
		return nil
	}
	if u.solver.Type == SolverNone {
		a := pending[0]
		var types []string
		for _, ch := range a.Challenges {
			types = append(types, ch.Type)
		}
		return u.errorf(acmeerr.Unauthorized, nil,
			"the CA at %s asks for a challenge (%s) to validate %s, and this upstream has no solver (upstreams[].acme.solver): it relies on the CA handing back valid authorizations",
			u.host, strings.Join(types, ", "), a.Identifier.Value)
	}
	if err := s.prober.Solve(ctx, pending); err != nil {
		return u.mapError("solving challenges", err)
	}
	return nil
}

// authzError is the error of an invalid authorization: its failed
// challenge's problem.
func (u *Upstream) authzError(a legoacme.Authorization) error {
	for _, ch := range a.Challenges {
		if ch.Status == legoacme.StatusInvalid && ch.Error != nil {
			return u.mapError("solving challenges", ch.Error)
		}
	}
	return u.unavailable(nil, "the CA at %s could not validate %s", u.host, a.Identifier.Value)
}

// invalidOrder is the error of an order the CA made invalid: the order's
// error, else that of its first invalid authorization.
func (u *Upstream) invalidOrder(ctx context.Context, s *session, order legoacme.ExtendedOrder) error {
	if order.Error != nil {
		return u.mapError("solving challenges", order.Error)
	}
	for _, az := range order.Authorizations {
		a, err := s.core.Authorizations.Get(ctx, az)
		if err == nil && a.Status == legoacme.StatusInvalid {
			return u.authzError(a)
		}
	}
	return u.unavailable(nil, "the CA at %s made the order invalid", u.host)
}

// download fetches the certificate chain of a valid order, choosing the
// preferred chain when the CA offers alternates (RFC 8555 §7.4.2), and
// checks it is for the CSR's key and names.
func (u *Upstream) download(ctx context.Context, s *session, order legoacme.ExtendedOrder, csr *x509.CertificateRequest,
	req *upstream.Request) (*upstream.Result, error) {
	// §7.4.2: "The server MAY provide one or more link relation header
	// fields [RFC8288] with relation "alternate". Each such field SHOULD
	// express an alternative certificate chain".
	chains, err := s.core.Certificates.GetAll(ctx, order.Certificate, true)
	if err != nil {
		return nil, u.mapError("downloading the certificate", err)
	}
	chosen := chains[order.Certificate]
	if chosen == nil {
		return nil, u.errorf(acmeerr.Internal, nil, "the CA served no certificate at %s", order.Certificate)
	}
	if u.preferredChain != "" {
		for link, c := range chains {
			if topIssuerCN(c.Cert) == u.preferredChain {
				chosen = c
				u.log.Debug("acme preferred chain chosen", "link", link, "issuer", u.preferredChain)
				break
			}
		}
	}
	if len(chains) > 1 {
		u.log.Info("acme CA offered alternate chains", "count", len(chains)-1, "preferred_chain", u.preferredChain)
	}
	certs, chainPEM, err := parseChain(chosen.Cert)
	if err != nil {
		return nil, u.errorf(acmeerr.Internal, err, "the certificate the CA served cannot be parsed")
	}
	leaf := certs[0]
	if !publicKeyEqual(leaf, csr) {
		return nil, u.errorf(acmeerr.Internal, nil, "the certificate the CA served is not for the CSR's key")
	}
	if !sameNames(leaf, req) {
		return nil, u.errorf(acmeerr.Internal, nil, "the certificate the CA served does not name exactly the order's identifiers")
	}
	res := &upstream.Result{Leaf: leaf, Chain: certs[1:], ChainPEM: chainPEM}
	// The other chains, in a stable order, for clients that want them.
	links := make([]string, 0, len(chains))
	for link := range chains {
		links = append(links, link)
	}
	sort.Strings(links)
	for _, link := range links {
		if c := chains[link]; c != chosen {
			if alt, altPEM, err := parseChain(c.Cert); err == nil && bytes.Equal(alt[0].Raw, leaf.Raw) {
				res.Alternates = append(res.Alternates, altPEM)
			}
		}
	}
	return res, nil
}

// topIssuerCN is the issuer Common Name of the last certificate of a PEM
// chain (lego's preferred-chain rule: the root the chain leads to).
func topIssuerCN(chainPEM []byte) string {
	certs, _, err := parseChain(chainPEM)
	if err != nil {
		return ""
	}
	return certs[len(certs)-1].Issuer.CommonName
}

// parseChain parses the PEM certificates of a chain, leaf first, and
// encodes them again (dropping anything else).
func parseChain(b []byte) ([]*x509.Certificate, []byte, error) {
	var certs []*x509.Certificate
	var out bytes.Buffer
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no certificate")
	}
	return certs, out.Bytes(), nil
}

// publicKeyEqual reports whether the certificate is for the CSR's key.
func publicKeyEqual(c *x509.Certificate, csr *x509.CertificateRequest) bool {
	return bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo)
}

// sameNames reports whether the certificate's SANs are the order's
// identifiers.
func sameNames(c *x509.Certificate, req *upstream.Request) bool {
	var got []string
	for _, n := range c.DNSNames {
		got = append(got, strings.ToLower(n))
	}
	for _, ip := range c.IPAddresses {
		got = append(got, ip.String())
	}
	var want []string
	for _, n := range req.DNSNames {
		want = append(want, strings.ToLower(n))
	}
	for _, ip := range req.IPAddresses {
		want = append(want, ip.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(slices.Compact(got), slices.Compact(want))
}

// cmpOr returns the first non-empty string.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
