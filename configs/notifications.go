package configs

import (
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"time"
)

// Notification event types: what webhooks and e-mail can be sent for.
const (
	EventApprovalRequested   = "approval.requested"
	EventApprovalApproved    = "approval.approved"
	EventApprovalDenied      = "approval.denied"
	EventApprovalExpired     = "approval.expired"
	EventCertificateIssued   = "certificate.issued"
	EventCertificateRevoked  = "certificate.revoked"
	EventCertificateExpiring = "certificate.expiring"
	EventOrderFailed         = "order.failed"
	EventUpstreamDown        = "upstream.down"
	EventUpstreamRecovered   = "upstream.recovered"
	EventConfigReloadFailed  = "config.reload_failed"
)

// NotificationEvents are every event type, in the order the docs list
// them.
var NotificationEvents = []string{
	EventApprovalRequested, EventApprovalApproved, EventApprovalDenied, EventApprovalExpired,
	EventCertificateIssued, EventCertificateRevoked, EventCertificateExpiring,
	EventOrderFailed, EventUpstreamDown, EventUpstreamRecovered, EventConfigReloadFailed,
}

// AccountMailEvents are the events whose mail also goes to the account's
// mailto: contacts (unless the account opted out); the others reach the
// administrators only.
var AccountMailEvents = []string{EventApprovalApproved, EventApprovalDenied, EventCertificateExpiring}

// Notifications are webhooks and e-mail sent when something happens that
// people should hear of. Every message is queued in the store first (the
// outbox) and delivered at least once, retried with exponential backoff,
// by whichever replica claims it; receivers de-duplicate on the event ID.
type Notifications struct {
	// Webhooks receive signed JSON POSTs.
	Webhooks []Webhook `yaml:"webhooks"`
	// Email sends mail through an SMTP server.
	Email Email `yaml:"email"`
	// Retry says how failed deliveries are retried.
	Retry NotifyRetry `yaml:"retry"`
	// ExpiryScan is how often the certificates are scanned for those
	// expiring without a renewal (certificate.expiring: 7 days and 2 days
	// left, the definition of acmebridge_certificates_expiring_unrenewed).
	ExpiryScan Duration `yaml:"expiry_scan"`
}

// Webhook is one receiver of signed JSON POSTs.
type Webhook struct {
	// Name names the webhook in logs and metrics; unique.
	Name string `yaml:"name"`
	// URL is where events are POSTed: http or https.
	URL string `yaml:"url"`
	// Events are the event types sent; empty: every one.
	Events []string `yaml:"events"`
	// SecretFile or SecretEnv (exactly one) holds the HMAC-SHA256 key the
	// Acmebridge-Signature header is made with.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
}

// Email is e-mail through one SMTP server.
type Email struct {
	SMTP SMTP `yaml:"smtp"`
	// From is the sender address.
	From string `yaml:"from"`
	// Admins are the administrators' addresses: they get every event of
	// Events.
	Admins []string `yaml:"admins"`
	// Events are the event types mailed; empty: approval.approved,
	// approval.denied and certificate.expiring. The account's contacts get
	// only these three (AccountMailEvents).
	Events []string `yaml:"events"`
}

// On reports whether e-mail is configured.
func (e Email) On() bool { return e.SMTP.Addr != "" }

// SMTP is the mail server acmebridge submits to.
type SMTP struct {
	// Addr is host:port (587 for submission).
	Addr string `yaml:"addr"`
	// Username and PasswordFile authenticate with AUTH PLAIN, only over
	// TLS; empty: no authentication.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// StartTLS is required (the default: refuse a server without it),
	// opportunistic (use it when offered) or off.
	StartTLS string `yaml:"starttls"`
	// CAFile is a PEM bundle to verify the server's certificate with;
	// empty: the system's roots.
	CAFile string `yaml:"ca_file"`
}

// NotifyRetry bounds the retries of a delivery.
type NotifyRetry struct {
	// Initial is the first backoff; each further one doubles, up to Max.
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
	// MaxAge is how long a notification is retried before it is given
	// up (counted failed and logged).
	MaxAge Duration `yaml:"max_age"`
	// Timeout bounds one attempt.
	Timeout Duration `yaml:"timeout"`
}

// defaultNotifications are the defaults of the notifications section.
func defaultNotifications() Notifications {
	return Notifications{
		Retry: NotifyRetry{Initial: Duration(10 * time.Second), Max: Duration(time.Hour),
			MaxAge: Duration(72 * time.Hour), Timeout: Duration(10 * time.Second)},
		Email:      Email{SMTP: SMTP{StartTLS: "required"}},
		ExpiryScan: Duration(time.Hour),
	}
}

// On reports whether any notification is configured.
func (n Notifications) On() bool { return len(n.Webhooks) > 0 || n.Email.On() }

// MailEvents are the event types mailed.
func (e Email) MailEvents() []string {
	if len(e.Events) == 0 {
		return AccountMailEvents
	}
	return e.Events
}

// validateNotifications checks the notifications section.
func (c *Config) validateNotifications(bad func(field, format string, args ...any)) {
	n := c.Notifications
	events := func(f string, evs []string) {
		for i, e := range evs {
			if !slices.Contains(NotificationEvents, e) {
				bad(fmt.Sprintf("%s[%d]", f, i), "%q is not an event (%v)", e, NotificationEvents)
			}
		}
	}
	names := map[string]bool{}
	for i, w := range n.Webhooks {
		f := fmt.Sprintf("notifications.webhooks[%d]", i)
		if w.Name == "" || names[w.Name] {
			bad(f+".name", "%q must be set and unique", w.Name)
		}
		names[w.Name] = true
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			bad(f+".url", "%q must be an http or https URL without credentials", w.URL)
		}
		if (w.SecretFile == "") == (w.SecretEnv == "") {
			bad(f, "needs exactly one of secret_file and secret_env")
		}
		events(f+".events", w.Events)
	}
	e := n.Email
	if e.On() {
		if _, err := mail.ParseAddress(e.From); err != nil {
			bad("notifications.email.from", "%q is not an address", e.From)
		}
		for i, a := range e.Admins {
			if _, err := mail.ParseAddress(a); err != nil {
				bad(fmt.Sprintf("notifications.email.admins[%d]", i), "%q is not an address", a)
			}
		}
		switch e.SMTP.StartTLS {
		case "required", "opportunistic":
		case "off":
			if e.SMTP.Username != "" {
				bad("notifications.email.smtp.starttls", "off would send the password in the clear: authentication needs TLS")
			}
		default:
			bad("notifications.email.smtp.starttls", "%q must be required, opportunistic or off", e.SMTP.StartTLS)
		}
		if (e.SMTP.Username == "") != (e.SMTP.PasswordFile == "") {
			bad("notifications.email.smtp", "username and password_file go together")
		}
		events("notifications.email.events", e.Events)
	} else if e.From != "" || len(e.Admins) > 0 || len(e.Events) > 0 {
		bad("notifications.email.smtp.addr", "must be set for e-mail")
	}
	r := n.Retry
	if r.Initial < Duration(100*time.Millisecond) || r.Max < r.Initial {
		bad("notifications.retry", "initial must be at least 100ms and max at least initial")
	}
	if r.MaxAge < r.Initial || r.Timeout <= 0 {
		bad("notifications.retry", "max_age must be at least initial and timeout positive")
	}
	if n.ExpiryScan < Duration(time.Second) {
		bad("notifications.expiry_scan", "must be at least 1s")
	}
}
