package va

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/acmebridge/acmebridge/acmeerr"
)

const (
	// maxRedirects is how many redirects http-01 follows (design §5).
	maxRedirects = 10
	// maxBody is how much of a challenge response is read. A key
	// authorization is under 200 bytes; the rest is headroom for trailing
	// whitespace.
	maxBody = 8 << 10
	// maxHeaderBytes bounds the response headers.
	maxHeaderBytes = 16 << 10
	// wellKnownPrefix is the path of http-01 resources (RFC 8555 §8.3).
	wellKnownPrefix = "/.well-known/acme-challenge/"
)

// validateHTTP01 performs RFC 8555 §8.3 (and RFC 8738 §5 for IP addresses).
func (v *Validator) validateHTTP01(ctx context.Context, t identTarget, token, keyAuth string) error {
	// RFC 8555 §8.3: "1. Construct a URL by populating the URL template
	// [RFC6570] "http://{domain}/.well-known/acme-challenge/{token}"".
	// The port is explicit so that tests and closed networks can move it.
	host := t.String()
	hostHeader := host
	if t.isIP() && t.ip.Is6() {
		hostHeader = "[" + host + "]"
	}
	u := &url.URL{
		Scheme: "http",
		Host:   net.JoinHostPort(host, strconv.Itoa(v.httpPort)),
		Path:   wellKnownPrefix + token,
	}
	// The detail shows the URL as RFC 8555 writes it, without our port.
	shown := "http://" + hostHeader + wellKnownPrefix + token

	// RFC 8555 §8.3: "2. Verify that the resulting URL is well-formed."
	// The name was checked by normalizeName and the token by checkToken.

	dialer := newPinnedDialer(v)
	// Resolve once, check, and pin (design §5). RFC 8738 §4: for IP
	// identifiers "their initial DNS resolution step MUST be skipped".
	if err := dialer.pin(ctx, host); err != nil {
		return prefixed("http-01", shown, err)
	}

	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		DialTLSContext:         v.tlsDialer(dialer),
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
		ForceAttemptHTTP2:      false,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		// RFC 8555 §8.3: "The server SHOULD follow redirects when
		// dereferencing the URL."
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return v.checkRedirect(req, via, dialer)
		},
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return acmeerr.Wrap(acmeerr.Malformed, err, "http-01: %s is not a valid URL", sanitize(shown))
	}
	// RFC 8738 §5: "For the "http-01" challenge, the Host header field MUST
	// be set to the IP address being used for validation per [RFC7230]."
	// For a name, the Host is the name being validated (RFC 8555 §8.3).
	req.Host = hostHeader
	req.Header.Set("User-Agent", "acmebridge-va")
	req.Header.Set("Accept", "*/*")

	// RFC 8555 §8.3: "3. Dereference the URL using an HTTP GET request."
	resp, err := client.Do(req)
	if err != nil {
		// Refusals from checkRedirect and the dialer come back wrapped.
		var ae *acmeerr.Error
		if errors.As(err, &ae) {
			return prefixed("http-01", shown, ae)
		}
		return netError(ctx, "http-01", "fetching "+shown, err)
	}
	defer func() { _ = resp.Body.Close() }()
	final := shown
	if resp.Request != nil && resp.Request.URL.String() != u.String() {
		final = resp.Request.URL.Redacted()
	}

	// RFC 8555 §8.3: "If the request fails, or the body does not pass these
	// checks, then it has failed." A request that answers other than 200
	// has failed; only the status is reported (RFC 8555 §10.4 warns that
	// echoing responses lets an attacker read internal services).
	if resp.StatusCode != http.StatusOK {
		return acmeerr.New(acmeerr.IncorrectResponse, "http-01: %s answered %d", sanitize(final), resp.StatusCode)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return netError(ctx, "http-01", "reading "+final, err)
	}
	if len(body) > maxBody {
		return acmeerr.New(acmeerr.IncorrectResponse, "http-01: %s answered with more than %d bytes", sanitize(final), maxBody)
	}
	if !matchHTTPBody(body, keyAuth) {
		return acmeerr.New(acmeerr.IncorrectResponse,
			"http-01: %s answered 200 but the body is not the expected key authorization", sanitize(final))
	}
	return nil
}

// matchHTTPBody reports whether body is keyAuth, ignoring trailing
// whitespace. RFC 8555 §8.3: "4. Verify that the body of the response is a
// well-formed key authorization. The server SHOULD ignore whitespace
// characters at the end of the body. 5. Verify that key authorization
// provided by the HTTP server matches the key authorization stored by the
// server."
func matchHTTPBody(body []byte, keyAuth string) bool {
	return strings.TrimRight(string(body), " \t\r\n") == keyAuth
}

// checkRedirect vets one redirect before it is followed: count, scheme, port
// and the new host's addresses, which are resolved, checked and pinned here
// so that the dialer never connects to an address that was not checked.
//
// RFC 8555 §10.4: "if the attacker first sets the domain to one they
// control, then they can send the server an HTTP redirect (e.g., a 302
// response) which will cause the server to query an arbitrary URL."
func (v *Validator) checkRedirect(req *http.Request, via []*http.Request, dialer *pinnedDialer) error {
	// via holds the original request and every redirect followed so far.
	if len(via) > maxRedirects {
		return acmeerr.New(acmeerr.Connection, "too many redirects (more than %d)", maxRedirects)
	}
	u := req.URL
	target := sanitize(u.Scheme + "://" + u.Host)
	var port int
	switch u.Scheme {
	case "http":
		port = 80
	case "https":
		port = 443
	default:
		return acmeerr.New(acmeerr.Connection, "redirect to %s refused: only http and https are followed", target)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return acmeerr.New(acmeerr.Connection, "redirect to %s refused: bad port", target)
		}
		port = n
	}
	if port != 80 && port != 443 && port != v.httpPort && port != v.tlsALPNPort {
		return acmeerr.New(acmeerr.Connection, "redirect to %s refused: only ports 80 and 443 are followed", target)
	}
	host := u.Hostname()
	if host == "" {
		return acmeerr.New(acmeerr.Connection, "redirect to %s refused: no host", target)
	}
	if err := dialer.pin(req.Context(), host); err != nil {
		return &acmeerr.Error{Kind: err.Kind, Detail: fmt.Sprintf("redirect to %s refused: %s", target, err.Detail), Err: err.Err}
	}
	return nil
}

// tlsDialer returns the DialTLSContext for https redirects. Certificates are
// not verified, as Let's Encrypt does not: control of the name is proven by
// the key authorization, not by the certificate.
func (v *Validator) tlsDialer(dialer *pinnedDialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // see above
			MinVersion:         tls.VersionTLS12,
			NextProtos:         []string{"http/1.1"},
		}
		if !isIPLiteral(host) {
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, acmeerr.Wrap(acmeerr.TLS, err, "TLS handshake with %s failed", sanitize(addr))
		}
		return tc, nil
	}
}

func isIPLiteral(host string) bool {
	return net.ParseIP(host) != nil
}

// prefixed returns err with its detail prefixed by the challenge type and,
// unless empty, what was being fetched.
func prefixed(typ, shown string, err *acmeerr.Error) *acmeerr.Error {
	d := typ + ": "
	if shown != "" {
		d += sanitize(shown) + ": "
	}
	return &acmeerr.Error{Kind: err.Kind, Detail: d + err.Detail, Err: err.Err}
}
