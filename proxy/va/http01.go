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
		return prefixed(TypeHTTP01, shown, err)
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
	redirects := 0
	client := &http.Client{
		Transport: transport,
		// RFC 8555 §8.3: "The server SHOULD follow redirects when
		// dereferencing the URL."
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			redirects = len(via)
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

	// What the client is told. RFC 8555 §10.4: "the server SHOULD NOT return
	// the content of the response to the client"; neither is its status
	// code, nor anything learnt past a redirect (the hosts a redirect chain
	// went through, how their connections failed): with a redirect, an
	// attacker points the validator at the server operator's network, and
	// the problem detail must not tell them what answered there. Every
	// response that is not the key authorization, and every failure after a
	// redirect, gets the same detail; the cause goes to Err, for the logs.
	notKeyAuth := func(cause error) error {
		return acmeerr.Wrap(acmeerr.IncorrectResponse, cause,
			"http-01: the response to %s was not the key authorization", sanitize(shown))
	}

	// RFC 8555 §8.3: "3. Dereference the URL using an HTTP GET request."
	resp, err := client.Do(req)
	if err != nil {
		// Refusals from checkRedirect and the dialer come back wrapped;
		// their details are our own decisions (redirectRefusal).
		var ae *acmeerr.Error
		if errors.As(err, &ae) && (redirects == 0 || ae.Kind == acmeerr.Connection && strings.HasPrefix(ae.Detail, redirectRefused)) {
			return prefixed(TypeHTTP01, shown, ae)
		}
		if redirects > 0 {
			return notKeyAuth(fmt.Errorf("after %d redirects: %w", redirects, err))
		}
		return netError(ctx, TypeHTTP01, "fetching "+shown, err)
	}
	defer func() { _ = resp.Body.Close() }()
	final := resp.Request.URL.Redacted()

	// RFC 8555 §8.3: "If the request fails, or the body does not pass these
	// checks, then it has failed." A request that answers other than 200
	// has failed.
	if resp.StatusCode != http.StatusOK {
		return notKeyAuth(fmt.Errorf("%s answered %d", final, resp.StatusCode))
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		if redirects > 0 {
			return notKeyAuth(fmt.Errorf("reading %s: %w", final, err))
		}
		return netError(ctx, TypeHTTP01, "reading "+shown, err)
	}
	if len(body) > maxBody {
		return notKeyAuth(fmt.Errorf("%s answered with more than %d bytes", final, maxBody))
	}
	if !matchHTTPBody(body, keyAuth) {
		return notKeyAuth(fmt.Errorf("%s answered 200 with another body", final))
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
		return redirectRefusal(nil, "more than %d redirects", maxRedirects)
	}
	// The redirect's target is not named in the detail: past the first
	// hop, a Location may come from a server in the operator's network.
	u := req.URL
	target := sanitize(u.Redacted())
	var port int
	switch u.Scheme {
	case "http":
		port = 80
	case "https":
		port = 443
	default:
		return redirectRefusal(fmt.Errorf("to %s", target), "only http and https are followed")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return redirectRefusal(fmt.Errorf("to %s", target), "bad port")
		}
		port = n
	}
	if port != 80 && port != 443 && port != v.httpPort && port != v.tlsALPNPort {
		return redirectRefusal(fmt.Errorf("to %s", target), "only ports 80 and 443 are followed")
	}
	host := u.Hostname()
	if host == "" {
		return redirectRefusal(fmt.Errorf("to %s", target), "no host")
	}
	if err := dialer.pin(req.Context(), host); err != nil {
		// Whether the host did not resolve, or resolved (through the
		// operator's resolvers) to a private address, is not told apart.
		return redirectRefusal(fmt.Errorf("to %s: %w", target, err), "its host has no publicly routable address")
	}
	return nil
}

// redirectRefused starts the detail of every refused redirect.
const redirectRefused = "a redirect was refused: "

// redirectRefusal is the Connection error of a redirect checkRedirect
// refuses: the reason in words of our own; the target and cause in Err.
func redirectRefusal(cause error, format string, args ...any) *acmeerr.Error {
	return acmeerr.Wrap(acmeerr.Connection, cause, redirectRefused+format, args...)
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
