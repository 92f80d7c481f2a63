package va

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/acmeerr"
)

// certSpec describes a challenge certificate to generate.
type certSpec struct {
	dnsNames []string
	ips      []net.IP
	rawSAN   []byte // replaces dnsNames/ips when set
	noExt    bool
	critical bool
	extValue []byte // replaces the DER OCTET STRING of the digest when set
	keyAuth  string
}

// challengeCert returns the RFC 8737 certificate for keyAuth on the names of
// spec, self-signed.
func challengeCert(t *testing.T, spec certSpec) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "acme challenge"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     spec.dnsNames,
		IPAddresses:  spec.ips,
	}
	if spec.rawSAN != nil {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: idCeSubjectAltName, Value: spec.rawSAN})
	}
	if !spec.noExt {
		val := spec.extValue
		if val == nil {
			d := keyAuthDigest(spec.keyAuth)
			val, err = asn1.Marshal(d[:])
			require.NoError(t, err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: idPeACMEIdentifier, Critical: spec.critical, Value: val})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// alpnServer is a TLS server on 127.0.0.1 that presents cert and records the
// SNI of every handshake.
type alpnServer struct {
	port int
	mu   sync.Mutex
	snis []string
}

func newALPNServer(t *testing.T, cert tls.Certificate, protos []string) *alpnServer {
	t.Helper()
	s := &alpnServer{}
	cfg := &tls.Config{
		NextProtos: protos,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			s.snis = append(s.snis, hello.ServerName)
			s.mu.Unlock()
			return &cert, nil
		},
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	s.port = l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				// acme-tls/1 carries no data: wait for the client to close.
				_, _ = c.Read(make([]byte, 1))
			}()
		}
	}()
	return s
}

func (s *alpnServer) lastSNI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.snis) == 0 {
		return ""
	}
	return s.snis[len(s.snis)-1]
}

var acmeProtos = []string{ACMETLS1Protocol}

func withALPNPort(p int) func(*Options) { return func(o *Options) { o.TLSALPNPort = p } }

func TestTLSALPN01Success(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")

	t.Run("dns identifier", func(t *testing.T) {
		srv := newALPNServer(t, challengeCert(t, certSpec{dnsNames: []string{"OK.test"}, critical: true, keyAuth: testKeyAuth}), acmeProtos)
		v := newTestValidator(t, z, withALPNPort(srv.port))
		require.NoError(t, v.Validate(ctxT(t), IdentDNS, "ok.test", TypeTLSALPN01, testToken, testKeyAuth))
		require.Equal(t, "ok.test", srv.lastSNI())
	})
	t.Run("ip identifier", func(t *testing.T) {
		srv := newALPNServer(t, challengeCert(t, certSpec{ips: []net.IP{net.IPv4(127, 0, 0, 1)}, critical: true, keyAuth: testKeyAuth}), acmeProtos)
		v := newTestValidator(t, z, withALPNPort(srv.port))
		require.NoError(t, v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeTLSALPN01, testToken, testKeyAuth))
		// RFC 8738 §6: the SNI is the reverse mapping of the address.
		require.Equal(t, "1.0.0.127.in-addr.arpa", srv.lastSNI())
	})
}

func TestTLSALPN01CertificateRefused(t *testing.T) {
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")
	ip := []net.IP{net.IPv4(127, 0, 0, 1)}
	digest := keyAuthDigest(testKeyAuth)
	shortExt, _ := asn1.Marshal(digest[:16])
	intExt, _ := asn1.Marshal(42)
	// A SAN with the right dNSName and a registeredID, a GeneralName that
	// crypto/x509 drops silently.
	hiddenSAN, err := asn1.Marshal([]asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: tagDNSName, Bytes: []byte("ok.test")},
		{Class: asn1.ClassContextSpecific, Tag: 8, Bytes: []byte{0x2a, 0x03}},
	})
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		ident  string
		spec   certSpec
		kind   acmeerr.Kind
		detail string
	}{
		{"wrong SAN", "ok.test", certSpec{dnsNames: []string{"other.test"}, critical: true}, acmeerr.TLS, "is not the dNSName ok.test"},
		{"two SANs", "ok.test", certSpec{dnsNames: []string{"ok.test", "other.test"}, critical: true}, acmeerr.TLS, "exactly one subjectAltName, it names 2"},
		{"SAN hidden from crypto/x509", "ok.test", certSpec{rawSAN: hiddenSAN, critical: true}, acmeerr.TLS, "exactly one subjectAltName, it names 2"},
		{"dNSName and iPAddress", "ok.test", certSpec{dnsNames: []string{"ok.test"}, ips: ip, critical: true}, acmeerr.TLS, "exactly one subjectAltName"},
		{"no SAN", "ok.test", certSpec{critical: true}, acmeerr.TLS, "no subjectAltName"},
		{"dNSName for an ip identifier", "127.0.0.1", certSpec{dnsNames: []string{"127.0.0.1"}, critical: true}, acmeerr.TLS, "is not the iPAddress 127.0.0.1"},
		{"wrong iPAddress", "127.0.0.1", certSpec{ips: []net.IP{net.IPv4(127, 0, 0, 2)}, critical: true}, acmeerr.TLS, "is not the iPAddress 127.0.0.1"},
		{"missing extension", "ok.test", certSpec{dnsNames: []string{"ok.test"}, noExt: true}, acmeerr.TLS, "no acmeIdentifier extension"},
		{"non-critical extension", "ok.test", certSpec{dnsNames: []string{"ok.test"}}, acmeerr.TLS, "is not critical"},
		{"short digest", "ok.test", certSpec{dnsNames: []string{"ok.test"}, critical: true, extValue: shortExt}, acmeerr.TLS, "32-byte OCTET STRING"},
		{"not an OCTET STRING", "ok.test", certSpec{dnsNames: []string{"ok.test"}, critical: true, extValue: intExt}, acmeerr.TLS, "32-byte OCTET STRING"},
		{"raw digest without DER", "ok.test", certSpec{dnsNames: []string{"ok.test"}, critical: true, extValue: digest[:]}, acmeerr.TLS, "32-byte OCTET STRING"},
		{"wrong key authorization", "ok.test", certSpec{dnsNames: []string{"ok.test"}, critical: true, keyAuth: testToken + ".other"}, acmeerr.IncorrectResponse, "does not hold the expected key authorization digest"},
		{"wrong key authorization, ip", "127.0.0.1", certSpec{ips: ip, critical: true, keyAuth: "x"}, acmeerr.IncorrectResponse, "expected key authorization digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.spec.keyAuth == "" {
				tc.spec.keyAuth = testKeyAuth
			}
			srv := newALPNServer(t, challengeCert(t, tc.spec), acmeProtos)
			v := newTestValidator(t, z, withALPNPort(srv.port))
			identType := IdentDNS
			if net.ParseIP(tc.ident) != nil {
				identType = IdentIP
			}
			err := v.Validate(ctxT(t), identType, tc.ident, TypeTLSALPN01, testToken, testKeyAuth)
			requireKind(t, err, tc.kind, "tls-alpn-01: ", tc.detail)
		})
	}
}

func TestTLSALPN01WrongProtocol(t *testing.T) {
	cert := challengeCert(t, certSpec{dnsNames: []string{"ok.test"}, critical: true, keyAuth: testKeyAuth})
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")

	t.Run("server without ALPN", func(t *testing.T) {
		srv := newALPNServer(t, cert, nil)
		v := newTestValidator(t, z, withALPNPort(srv.port))
		err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeTLSALPN01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.TLS, "did not negotiate the acme-tls/1 protocol")
	})
	t.Run("server speaking only http/1.1", func(t *testing.T) {
		srv := newALPNServer(t, cert, []string{"http/1.1"})
		v := newTestValidator(t, z, withALPNPort(srv.port))
		err := v.Validate(ctxT(t), IdentDNS, "ok.test", TypeTLSALPN01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.TLS, "TLS handshake with ok.test failed")
	})
	t.Run("not TLS at all", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.1 400 SECRET-PLAINTEXT\r\n\r\n"))
				_ = c.Close()
			}
		}()
		v := newTestValidator(t, z, withALPNPort(l.Addr().(*net.TCPAddr).Port))
		err = v.Validate(ctxT(t), IdentDNS, "ok.test", TypeTLSALPN01, testToken, testKeyAuth)
		ae := requireKind(t, err, acmeerr.TLS, "TLS handshake with ok.test failed")
		require.NotContains(t, ae.Detail, "SECRET")
	})
}

func TestTLSALPN01ChainRefused(t *testing.T) {
	cert := challengeCert(t, certSpec{dnsNames: []string{"ok.test"}, critical: true, keyAuth: testKeyAuth})
	extra := challengeCert(t, certSpec{dnsNames: []string{"ca.test"}, noExt: true})
	cert.Certificate = append(cert.Certificate, extra.Certificate[0])
	srv := newALPNServer(t, cert, acmeProtos)
	v := newTestValidator(t, nil, withALPNPort(srv.port))
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeTLSALPN01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.TLS, "presented 2 certificates")
}

func TestTLSALPN01Connection(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		v := newTestValidator(t, nil, withALPNPort(freePort(t)))
		err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeTLSALPN01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.Connection, "connection refused")
	})
	t.Run("silent server times out", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		var conns sync.WaitGroup
		var held atomic.Pointer[net.Conn]
		conns.Go(func() {
			c, err := l.Accept()
			if err == nil {
				held.Store(&c) // never answers the ClientHello
			}
		})
		t.Cleanup(func() {
			_ = l.Close()
			conns.Wait()
			if c := held.Load(); c != nil {
				_ = (*c).Close()
			}
		})
		v := newTestValidator(t, nil, withALPNPort(l.Addr().(*net.TCPAddr).Port), func(o *Options) { o.Timeout = 200 * time.Millisecond })
		err = v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeTLSALPN01, testToken, testKeyAuth)
		requireKind(t, err, acmeerr.Connection, "timed out")
	})
}

func TestTLSALPN01PrivateAddressRefused(t *testing.T) {
	srv := newALPNServer(t, challengeCert(t, certSpec{ips: []net.IP{net.IPv4(127, 0, 0, 1)}, critical: true, keyAuth: testKeyAuth}), acmeProtos)
	z := newTestDNS(t)
	z.add(t, "ok.test. 60 IN A 127.0.0.1")
	v := newTestValidator(t, z, withALPNPort(srv.port), func(o *Options) { o.AllowPrivate = false })
	err := v.Validate(ctxT(t), IdentIP, "127.0.0.1", TypeTLSALPN01, testToken, testKeyAuth)
	requireKind(t, err, acmeerr.Connection, "address 127.0.0.1 is not publicly routable")
	err = v.Validate(ctxT(t), IdentDNS, "ok.test", TypeTLSALPN01, testToken, testKeyAuth)
	ae := requireKind(t, err, acmeerr.Connection, "tls-alpn-01: ok.test: ok.test has no publicly routable address")
	require.NotContains(t, ae.Detail, "127.0.0.1", "the resolved address is not told")
	require.Empty(t, srv.lastSNI(), "no handshake reached the server")
}
