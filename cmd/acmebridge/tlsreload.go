package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// keyPairCheckEvery is how often, at most, a handshake looks whether the
// certificate files changed.
const keyPairCheckEvery = time.Second

// keyPair serves a certificate and key read from files and reads them
// again when either file changes (a renewal by certbot, cert-manager or
// acmebridge itself; a Kubernetes Secret's symlink swap), so a rotated
// certificate is served from the next handshake on, without a restart.
// A pair that fails to load, or whose key does not match, leaves the
// previous one in service and is logged: a half-written renewal never
// takes the listener down.
type keyPair struct {
	name              string // the config section, for logs and errors
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string    // the files' digest at the last load
	checked time.Time // when the files were last looked at
}

// loadKeyPair reads the pair once; an error here stops the server from
// starting, as any configuration error does.
func loadKeyPair(name, certFile, keyFile string, log *slog.Logger) (*keyPair, error) {
	k := &keyPair{name: name, certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := k.filesStamp()
	if err == nil {
		k.cert, err = k.load()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	k.stamp, k.checked = stamp, k.now()
	return k, nil
}

// tlsConfig is a server configuration that serves the pair.
func (k *keyPair) tlsConfig() *tls.Config {
	return &tls.Config{GetCertificate: k.getCertificate, MinVersion: tls.VersionTLS12}
}

// getCertificate is tls.Config.GetCertificate: the current pair, read
// again first when the files changed since the last look.
func (k *keyPair) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := k.now(); now.Sub(k.checked) >= keyPairCheckEvery {
		k.checked = now
		k.refresh()
	}
	return k.cert, nil
}

// refresh reloads the pair when the files' stamp moved. The stamp is
// recorded only after a successful load, so a renewal caught half-written
// (new certificate, old key) is retried at the next look.
func (k *keyPair) refresh() {
	stamp, err := k.filesStamp()
	if err != nil || stamp == k.stamp {
		return
	}
	cert, err := k.load()
	if err != nil {
		k.log.Warn("TLS certificate files changed but cannot be loaded; still serving the previous certificate",
			"config", k.name, "cert_file", k.certFile, "err", err)
		return
	}
	k.cert, k.stamp = cert, stamp
	k.log.Info("TLS certificate reloaded", "config", k.name, "cert_file", k.certFile,
		"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
}

// load reads and parses the pair (tls.LoadX509KeyPair checks that the key
// matches the certificate).
func (k *keyPair) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &cert, nil
}

// filesStamp identifies the files' current contents: a digest of both.
// They are a few kilobytes read at most once a second; size and
// modification time would miss a same-size rewrite within one tick of the
// kernel's file clock.
func (k *keyPair) filesStamp() (string, error) {
	h := sha256.New()
	for _, f := range []string{k.certFile, k.keyFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return string(h.Sum(nil)), nil
}

// serverCertIssuer is what selfIssued needs of a local CA.
type serverCertIssuer interface {
	ServerCertificate(hosts []string) (*tls.Certificate, error)
}

// selfIssued serves the listener's certificate issued by a local CA (no
// server.tls files) and issues a new one once two thirds of its validity
// have passed, so a server left running never serves an expired
// certificate. A failed renewal keeps the current one and is retried at a
// later handshake.
type selfIssued struct {
	ca    serverCertIssuer
	hosts []string
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
	retryAt time.Time
}

// newSelfIssued issues the first certificate.
func newSelfIssued(ca serverCertIssuer, hosts []string, log *slog.Logger, now func() time.Time) (*selfIssued, error) {
	s := &selfIssued{ca: ca, hosts: hosts, log: log, now: now}
	if err := s.issue(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *selfIssued) issue() error {
	cert, err := s.ca.ServerCertificate(s.hosts)
	if err != nil {
		return err
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return err
		}
	}
	s.cert = cert
	s.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (s *selfIssued) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); !now.Before(s.renewAt) && !now.Before(s.retryAt) {
		if err := s.issue(); err != nil {
			s.retryAt = now.Add(time.Minute)
			s.log.Warn("renewing the listener's local-CA certificate failed; serving the current one", "err", err)
		} else {
			s.log.Info("listener certificate renewed by the local CA", "hosts", s.hosts, "renew_at", s.renewAt)
		}
	}
	return s.cert, nil
}
