package testutil

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// Mail is one message an SMTPServer received.
type Mail struct {
	From string
	To   []string
	Data string
	// TLS and User say how the client sent it: over STARTTLS, and the
	// user it authenticated as ("" for none).
	TLS  bool
	User string
}

// SMTPServer is a real SMTP server (github.com/emersion/go-smtp) on
// loopback that offers STARTTLS with a certificate of a test CA and AUTH
// PLAIN (only over TLS), and keeps what it receives.
type SMTPServer struct {
	Addr string
	// CAFile verifies the server's certificate (for 127.0.0.1 and
	// localhost).
	CAFile   string
	User     string
	Password string
	mu       sync.Mutex
	mails    []Mail
}

// StartSMTP starts an SMTPServer in dir for the test's lifetime.
func StartSMTP(t testing.TB, dir string) *SMTPServer {
	t.Helper()
	caFile, certFile, keyFile := TLSFiles(t, dir, "smtp", "SMTP test CA")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &SMTPServer{Addr: ln.Addr().String(), CAFile: caFile, User: "acmebridge", Password: "smtp-password"}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{srv: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Mails returns the messages received so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// smtpSession is one client's session.
type smtpSession struct {
	srv  *SMTPServer
	conn *smtp.Conn
	user string
	mail Mail
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.User || pass != s.srv.Password {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.mail = Mail{From: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mail.To = append(s.mail.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.mail.Data, s.mail.TLS, s.mail.User = strings.ReplaceAll(string(b), "\r\n", "\n"), isTLS, s.user
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.mail)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.mail = Mail{} }
func (s *smtpSession) Logout() error { return nil }
