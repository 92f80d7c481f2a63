package vault

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/upstream"
)

// Validity limits.
const (
	// maxCNLength is the ub-common-name of RFC 5280 Appendix A.
	maxCNLength = 64
	// notBeforeSlack is how far in the future a requested notBefore may
	// lie: Vault signs from now (backdated by the role's
	// not_before_duration), it cannot postdate.
	notBeforeSlack = 5 * time.Minute
	// minTTL is the shortest validity worth asking for.
	minTTL = time.Minute
)

// ref is what Issue stores through setRef, as JSON. Vault has no order
// object to resume, so the reference records how far the last attempt got:
// Signing (a Unix time) while a sign request may be in flight, Serial once
// Vault signed.
type ref struct {
	Upstream string `json:"vault"`
	Signing  int64  `json:"signing,omitempty"`
	Serial   string `json:"serial,omitempty"`
}

// parseRef decodes req.Ref; ok is false for an empty reference or one left
// by another upstream.
func (u *Upstream) parseRef(s string) (r ref, ok bool) {
	if s == "" || json.Unmarshal([]byte(s), &r) != nil || r.Upstream != u.name {
		return ref{}, false
	}
	return r, r.Signing != 0 || r.Serial != ""
}

// String encodes the reference as setRef stores it.
func (r ref) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// Issue sends the client's CSR to Vault and returns the certificate with
// its chain, leaf first. It never signs twice for one order:
//
//   - before the sign request, setRef records that one is in flight;
//   - a request that certainly never reached Vault (no byte written) or that
//     Vault answered with an error clears the mark and is reported as is
//     (Unavailable and Internal are retried by the worker, the rest fail the
//     order);
//   - a request whose answer was lost keeps the mark; the next attempt
//     (req.Ref set) looks for the certificate in Vault before signing again
//     (recover.go);
//   - after Vault signed, setRef records the serial, and a later attempt
//     (say, the store failed to record the result) fetches that certificate
//     instead of signing anew.
func (u *Upstream) Issue(ctx context.Context, req *upstream.Request, setRef func(ref string) error) (*upstream.Result, error) {
	if req == nil {
		return nil, acmeerr.New(acmeerr.Malformed, "vault: no request")
	}
	csr, err := requestCSR(req)
	if err != nil {
		return nil, err
	}
	if setRef == nil {
		setRef = func(string) error { return nil }
	}
	ttl, err := u.ttlFor(req)
	if err != nil {
		return nil, err
	}

	if r, ok := u.parseRef(req.Ref); ok {
		if r.Serial != "" {
			return u.fetchIssued(ctx, r.Serial, csr, req)
		}
		res, err := u.recover(ctx, req, csr, time.Unix(r.Signing, 0))
		if res != nil || err != nil {
			if res != nil {
				u.recordSerial(setRef, res.Leaf, req.OrderID)
			}
			return res, err
		}
		// recover proved Vault did not sign: sign now.
	}

	data := map[string]any{
		"csr":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})),
		"format": "pem",
		// Vault: "Whether or not to remove self-signed CA certificates in
		// the output of the ca_chain field." Roots are the relying
		// parties' trust anchors, not part of the served chain.
		"remove_roots_from_chain": true,
	}
	if ttl > 0 {
		data["ttl"] = fmt.Sprintf("%ds", int64(ttl/time.Second))
	}
	for k, v := range u.contentParams(req) {
		data[k] = v
	}

	start := u.clock()
	if err := setRef(ref{Upstream: u.name, Signing: start.Unix()}.String()); err != nil {
		return nil, acmeerr.Wrap(acmeerr.Unavailable, err, "vault: could not record the signing attempt; not sent")
	}
	secret, sent, err := u.sign(ctx, data)
	if err != nil {
		if !sent || statusOf(err) != 0 {
			// Certain: Vault never saw the request, or answered it with an
			// error and so signed nothing.
			if cerr := setRef(""); cerr != nil {
				u.log.Warn("vault: clearing the signing mark failed; the next attempt searches Vault first",
					"order", req.OrderID, "err", cerr)
			}
			return nil, u.signError(err, req)
		}
		u.log.Warn("vault: the answer to a signing request was lost; the next attempt looks for its certificate before signing again",
			"order", req.OrderID, "err", err)
		return nil, acmeerr.Wrap(acmeerr.Unavailable, err,
			"vault: no answer from Vault; the order is retried once Vault's outcome is known")
	}
	res, err := u.result(ctx, secret, csr)
	if err != nil {
		// Vault signed but the answer is unusable: the mark stays, so a
		// retry looks the certificate up rather than signing again.
		return nil, err
	}
	u.recordSerial(setRef, res.Leaf, req.OrderID)
	u.log.Info("vault certificate issued", "order", req.OrderID, "serial", vaultSerial(res.Leaf.SerialNumber),
		"dns_names", res.Leaf.DNSNames, "ip_addresses", res.Leaf.IPAddresses, "not_after", res.Leaf.NotAfter,
		"took_ms", u.clock().Sub(start).Milliseconds())
	return res, nil
}

// contentParams are the signing request's parameters that carry the
// request's content (ra decided it; the CSR was checked to ask for nothing
// else).
//
// sign: the role decides what Vault copies from the CSR (use_csr_common_name,
// use_csr_sans, both true by default) and takes common_name, alt_names and
// ip_sans otherwise — "If set, when used with a signing profile, the common
// name in the CSR will be used" — so those three parameters are exactly
// the content, whichever way the role is set; when it uses the CSR's
// values, they are the same names. Vault falls back to common_name when
// the CSR has none (certbot's CSRs carry SANs only). Key usages are the
// role's (key_usage, ext_key_usage), not the request's.
//
// sign-verbatim: Vault copies the CSR's subject and requested extensions
// ("Values will be taken verbatim from the CSR, except for basic
// constraints"), and adds key_usage — by default "DigitalSignature,
// KeyAgreement, KeyEncipherment" — and ext_key_usage where the CSR asks
// for none. Both are set to the content's usages, so the certificate holds
// those, whether the CSR asked for them or not.
func (u *Upstream) contentParams(req *upstream.Request) map[string]any {
	out := map[string]any{}
	switch u.mode {
	case ModeSignVerbatim:
		if names := keyUsageNames(req.KeyUsage); len(names) > 0 {
			out["key_usage"] = names
		}
		if names := extKeyUsageNames(req.ExtKeyUsage); len(names) > 0 {
			out["ext_key_usage"] = names
		}
	default:
		if req.CommonName != "" && len(req.CommonName) <= maxCNLength {
			out["common_name"] = req.CommonName
		}
		if len(req.DNSNames) > 0 {
			out["alt_names"] = strings.Join(req.DNSNames, ",")
		}
		if len(req.IPAddresses) > 0 {
			ips := make([]string, len(req.IPAddresses))
			for i, ip := range req.IPAddresses {
				ips[i] = ip.String()
			}
			out["ip_sans"] = strings.Join(ips, ",")
		}
	}
	return out
}

// keyUsageNames are Vault's names of the key usages (those of Go's
// x509.KeyUsage without the prefix, which Vault's key_usage parameter
// takes).
func keyUsageNames(ku x509.KeyUsage) []string {
	names := []string{"DigitalSignature", "ContentCommitment", "KeyEncipherment", "DataEncipherment", "KeyAgreement",
		"CertSign", "CRLSign", "EncipherOnly", "DecipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// extKeyUsageNames are Vault's names of the extended key usages acmebridge
// issues.
func extKeyUsageNames(ekus []x509.ExtKeyUsage) []string {
	var out []string
	for _, e := range ekus {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "ServerAuth")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "ClientAuth")
		}
	}
	return out
}

// recordSerial stores the serial of what Vault signed, so a retry of the
// order fetches it instead of signing again.
func (u *Upstream) recordSerial(setRef func(string) error, leaf *x509.Certificate, orderID string) {
	if err := setRef(ref{Upstream: u.name, Serial: vaultSerial(leaf.SerialNumber)}.String()); err != nil {
		u.log.Warn("vault: recording the serial failed; a retry would search Vault for it", "order", orderID, "err", err)
	}
}

// requestCSR returns the request's parsed CSR.
func requestCSR(req *upstream.Request) (*x509.CertificateRequest, error) {
	if req.CSR != nil {
		return req.CSR, nil
	}
	if len(req.CSRDER) == 0 {
		return nil, acmeerr.New(acmeerr.BadCSR, "vault: request has no CSR")
	}
	csr, err := x509.ParseCertificateRequest(req.CSRDER)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.BadCSR, err, "vault: CSR cannot be parsed")
	}
	return csr, nil
}

// ttlFor is the validity to ask for: the configured cap, shortened by the
// order's notAfter. Zero leaves it to the role.
func (u *Upstream) ttlFor(req *upstream.Request) (time.Duration, error) {
	now := u.clock()
	if !req.NotBefore.IsZero() && req.NotBefore.After(now.Add(notBeforeSlack)) {
		return 0, acmeerr.New(acmeerr.Malformed, "vault: Vault signs from the time of issuance; a notBefore in the future cannot be honoured")
	}
	ttl := u.ttl
	if !req.NotAfter.IsZero() {
		d := req.NotAfter.Sub(now)
		if d < minTTL {
			return 0, acmeerr.New(acmeerr.Malformed, "vault: requested notAfter %s is already past or too close", req.NotAfter.UTC().Format(time.RFC3339))
		}
		if ttl == 0 || d < ttl {
			ttl = d
		}
	}
	return ttl.Truncate(time.Second), nil
}

// sign posts the CSR. sent is false only when no byte of the request was
// written, so Vault cannot have acted on it; a 403 is retried once with a
// new token (Vault signed nothing).
func (u *Upstream) sign(ctx context.Context, data map[string]any) (*api.Secret, bool, error) {
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		// net/http resends a request on a fresh connection only when
		// nothing of it reached the stale one (nothingWrittenError): a
		// new connection starts the question afresh.
		GetConn: func(string) { wrote.Store(false) },
		// The whole request is in the kernel's hands: from here on it
		// may reach Vault. A write that failed left Vault an incomplete
		// request, which it cannot act on.
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	}
	var secret *api.Secret
	err := u.call(ctx, func(ctx context.Context) error {
		wrote.Store(false) // per attempt: a 403 answered before did nothing
		var err error
		secret, err = u.client.Logical().WriteWithContext(httptrace.WithClientTrace(ctx, trace), u.signPath(), data)
		return err
	})
	if err == nil && secret == nil {
		// vault/api returns no secret for an empty 404 answer: Vault
		// answered, and signed nothing.
		return nil, false, acmeerr.New(acmeerr.Internal, "vault: the signing endpoint %s does not exist (mount or role missing?)", u.signPath())
	}
	return secret, wrote.Load(), err
}

// result turns Vault's answer into an upstream.Result: the leaf, checked
// to certify the CSR's key, then the issuers in order.
func (u *Upstream) result(ctx context.Context, s *api.Secret, csr *x509.CertificateRequest) (*upstream.Result, error) {
	certPEM, _ := s.Data["certificate"].(string)
	leaf, err := parseOneCert(certPEM)
	if err != nil {
		return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: Vault's answer holds no usable certificate")
	}
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo) {
		return nil, acmeerr.New(acmeerr.Internal, "vault: Vault returned a certificate for another key than the CSR's")
	}
	if serial, _ := s.Data["serial_number"].(string); serial != "" && !strings.EqualFold(serial, vaultSerial(leaf.SerialNumber)) {
		return nil, acmeerr.New(acmeerr.Internal, "vault: Vault's serial_number does not match its certificate")
	}
	var pool []*x509.Certificate
	for _, p := range append(stringList(s.Data["ca_chain"]), stringOf(s.Data["issuing_ca"])) {
		certs, err := upstream.ParsePEMCertificates([]byte(p))
		if err != nil {
			return nil, acmeerr.Wrap(acmeerr.Internal, err, "vault: Vault's ca_chain cannot be parsed")
		}
		pool = append(pool, certs...)
	}
	chain := orderChain(leaf, pool)
	if len(chain) == 0 && !issuedByRoot(leaf, pool) {
		// Vault's answer lacks the issuer; ask for the issuers' chains.
		if chain, err = u.chainFor(ctx, leaf); err != nil {
			return nil, err
		}
	}
	return newResult(leaf, chain), nil
}

// newResult assembles the PEM chain. RFC 8555 §9.1 (application/
// pem-certificate-chain): "the first certificate MUST be an end-entity
// certificate. Each following certificate SHOULD directly certify the one
// preceding it."
func newResult(leaf *x509.Certificate, chain []*x509.Certificate) *upstream.Result {
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	for _, c := range chain {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return &upstream.Result{Leaf: leaf, Chain: chain, ChainPEM: buf.Bytes()}
}

// orderChain walks from leaf up through pool, each certificate followed by
// its issuer, and stops before a self-signed root (a trust anchor, not
// part of the served chain) or when no issuer is found.
func orderChain(leaf *x509.Certificate, pool []*x509.Certificate) []*x509.Certificate {
	var chain []*x509.Certificate
	used := map[*x509.Certificate]bool{}
	for cur := leaf; ; {
		var next *x509.Certificate
		for _, c := range pool {
			if !used[c] && c.IsCA && bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil || selfSigned(next) {
			return chain
		}
		used[next] = true
		chain = append(chain, next)
		cur = next
	}
}

// issuedByRoot reports whether leaf's issuer in pool is a self-signed root
// (then the served chain is the leaf alone).
func issuedByRoot(leaf *x509.Certificate, pool []*x509.Certificate) bool {
	for _, c := range pool {
		if selfSigned(c) && bytes.Equal(c.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(c) == nil {
			return true
		}
	}
	return false
}

// selfSigned reports whether c is a self-signed certificate.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// vaultSerial formats a serial the way Vault names certificates: lower-case
// hex bytes joined by colons (certutil.GetHexFormatted).
func vaultSerial(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// parseOneCert parses a PEM text holding exactly one certificate.
func parseOneCert(s string) (*x509.Certificate, error) {
	certs, err := upstream.ParsePEMCertificates([]byte(s))
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%d certificates where one was expected", len(certs))
	}
	return certs[0], nil
}

// stringList reads a JSON array of strings.
func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// stringOf reads a JSON string.
func stringOf(v any) string {
	s, _ := v.(string)
	return s
}
