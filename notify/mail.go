package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/configs"
)

// message is a mail's subject and text, as queued (store.Notification.Body).
type message struct {
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// clean keeps a value on one header or text line.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r < 0x20 {
			return ' '
		}
		return r
	}, s)
}

// compose writes the mail of an event: plain and short.
func compose(ev Event) message {
	d := ev.Data
	names := clean(strings.Join(d.Names, ", "))
	var subj, text string
	switch ev.Type {
	case configs.EventApprovalApproved:
		subj = "Approved: " + names
		text = fmt.Sprintf("Your request for a certificate for %s was approved.\nYour ACME client gets it at its next run.\n", names)
	case configs.EventApprovalDenied:
		subj = "Denied: " + names
		text = fmt.Sprintf("Your request for a certificate for %s was denied.\n", names)
	case configs.EventCertificateExpiring:
		subj = fmt.Sprintf("Certificate for %s expires within %s", names, d.Within)
		text = fmt.Sprintf("The certificate for %s (serial %s) expires at %s and has not been renewed.\nCheck that its ACME client still runs.\n",
			names, d.Serial, d.NotAfter.UTC().Format(time.RFC1123))
	default:
		subj = ev.Type
		if names != "" {
			subj += ": " + names
		}
		text = "Event " + ev.Type + ".\n"
		if d.Upstream != "" {
			text += "Upstream: " + clean(d.Upstream) + "\n"
		}
	}
	if why := clean(strings.TrimSpace(d.Reason + " " + d.Detail)); why != "" {
		text += "Reason: " + why + "\n"
	}
	if ev.Directory != "" {
		text += "ACME directory: " + clean(ev.Directory) + "\n"
	}
	if d.Account != "" {
		text += "Account: " + clean(d.Account) + "\n"
	}
	text += "\n-- \nacmebridge (event " + ev.ID + ")\n"
	return message{Subject: "[acmebridge] " + clean(subj), Text: text}
}

// mailer submits mail to the configured SMTP server.
type mailer struct {
	cfg      configs.Email
	host     string
	password string
	roots    *x509.CertPool
	timeout  time.Duration
}

// newMailer reads the password and the CA bundle.
func newMailer(c configs.Email, timeout time.Duration) (*mailer, error) {
	host, _, err := net.SplitHostPort(c.SMTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("notify: smtp.addr: %w", err)
	}
	m := &mailer{cfg: c, host: host, timeout: timeout}
	if c.SMTP.PasswordFile != "" {
		b, err := os.ReadFile(c.SMTP.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("notify: smtp: %w", err)
		}
		m.password = strings.TrimSpace(string(b))
	}
	if c.SMTP.CAFile != "" {
		pem, err := os.ReadFile(c.SMTP.CAFile)
		if err != nil {
			return nil, fmt.Errorf("notify: smtp: %w", err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("notify: smtp.ca_file holds no certificate")
		}
	}
	return m, nil
}

// send delivers one queued mail to one address.
func (m *mailer) send(ctx context.Context, to, eventID string, body []byte) error {
	var msg message
	if err := json.Unmarshal(body, &msg); err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.SMTP.Addr)
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(m.timeout)
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		_ = conn.Close()
		return err
	}
	defer func() { _ = c.Close() }() // after Quit, or on an error already returned
	if err := c.Hello("acmebridge"); err != nil {
		return err
	}
	mode := m.cfg.SMTP.StartTLS
	if ok, _ := c.Extension("STARTTLS"); ok && mode != "off" {
		if err := c.StartTLS(&tls.Config{ServerName: m.host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}); err != nil {
			return err
		}
	} else if mode == "required" {
		return errors.New("the SMTP server does not offer STARTTLS (notifications.email.smtp.starttls: required)")
	}
	if m.cfg.SMTP.Username != "" {
		// net/smtp's PlainAuth refuses to send the password unless the
		// connection is TLS (or to localhost).
		if err := c.Auth(smtp.PlainAuth("", m.cfg.SMTP.Username, m.password, m.host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.cfg.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%s@acmebridge>\r\n",
		m.cfg.From, clean(to), msg.Subject, time.Now().Format(time.RFC1123Z), clean(eventID), strings.ReplaceAll(clean(to), "@", "."))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(msg.Text, "\n", "\r\n"))
	if _, err := w.Write([]byte(b.String())); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
