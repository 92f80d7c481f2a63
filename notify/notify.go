// Package notify tells people what happened: signed JSON webhooks and
// e-mail, for the events of configs.NotificationEvents. Every message is
// queued in the store's outbox first (store.EnqueueNotifications, one
// record per destination, all with the event's ID) and delivered at least
// once by whichever replica claims it (Run), retried with exponential
// backoff until notifications.retry.max_age: a restart or a replica that
// dies loses nothing, and receivers de-duplicate on the event ID.
//
// Events come from the audit log (Tee wraps the ra.Auditor the server
// uses), from the expiry scan (ScanExpiring), and from their sources in
// cmd/acmebridge (an upstream's breaker, a failed reload: Publish).
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// Channels of a notification (store.Notification.Channel).
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Event is one thing to tell: the webhook's JSON body, and what the mail
// is written from.
type Event struct {
	// ID is what receivers de-duplicate on.
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Directory is the ACME directory (tenant) the event belongs to: its
	// name, "/" for the top level; empty for server-wide events.
	Directory string `json:"directory,omitempty"`
	Data      Data   `json:"data"`
}

// Data are an event's details; each type fills what it has.
type Data struct {
	Account    string    `json:"account,omitempty"`
	Order      string    `json:"order,omitempty"`
	Names      []string  `json:"names,omitempty"`
	Serial     string    `json:"serial,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	Upstream   string    `json:"upstream,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Problem    string    `json:"problem,omitempty"`
	Detail     string    `json:"detail,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Actor      string    `json:"actor,omitempty"`
	EABKey     string    `json:"eab_key,omitempty"`
	Group      string    `json:"group,omitempty"`
	Remote     string    `json:"remote,omitempty"`
	Within     string    `json:"within,omitempty"`
	Replica    string    `json:"replica,omitempty"`
	Generation int64     `json:"generation,omitempty"`
}

// fromAudit maps the audit events that are notifications to their type:
// the approval events are the approvals feature's (same names).
var fromAudit = map[string]string{
	audit.ApprovalRequested: configs.EventApprovalRequested,
	audit.ApprovalApproved:  configs.EventApprovalApproved,
	audit.ApprovalDenied:    configs.EventApprovalDenied,
	audit.ApprovalExpired:   configs.EventApprovalExpired,
	audit.CertIssued:        configs.EventCertificateIssued,
	audit.CertRevoked:       configs.EventCertificateRevoked,
	audit.OrderInvalid:      configs.EventOrderFailed,
}

// FromAudit returns the notification event of an audit event, and false
// for an audit event nobody is notified of.
func FromAudit(e audit.Event) (Event, bool) {
	typ, ok := fromAudit[e.Event]
	if !ok {
		return Event{}, false
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now().UTC()
	}
	ev := Event{ID: "ev_" + core.RandomID(), Type: typ, Time: t, Directory: audit.DirectoryLabel(e.Directory), Data: Data{
		Account: e.Account, Order: e.Order, Names: e.Names, Serial: e.Serial, NotAfter: e.NotAfter,
		Upstream: e.Upstream, Rule: e.Rule, Problem: e.Problem, Detail: e.Detail, Actor: e.Actor,
		EABKey: e.EABKey, Group: e.Group, Remote: e.Remote, Reason: e.Reason,
	}}
	if e.RevocationReason != nil {
		ev.Data.Reason = audit.RevocationReasonOf(e)
	}
	return ev, true
}

// Options are a Notifier's dependencies.
type Options struct {
	Config configs.Notifications
	Store  store.Store
	// Owner names this replica in leases and in the events it derives.
	Owner    string
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Clock: time.Now when nil.
	Clock func() time.Time
	// Getenv reads secret_env; os.Getenv when nil.
	Getenv func(string) string
}

// Notifier queues and delivers notifications.
type Notifier struct {
	cfg     configs.Notifications
	st      store.Store
	owner   string
	log     *slog.Logger
	now     func() time.Time
	secrets map[string][]byte
	hooks   map[string]configs.Webhook
	mailer  *mailer
	metrics *metrics
	kick    chan struct{}
	wg      sync.WaitGroup
	// upstreams remembers each upstream's last state (WatchUpstreams).
	upMu sync.Mutex
	up   map[string]bool
}

// New reads the webhooks' secrets and the SMTP password and returns a
// Notifier; nil, nil when nothing is configured. The metrics are
// registered either way (the outbox's gauges are store-wide, and the
// alert rules name them).
func New(o Options) (*Notifier, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	n := &Notifier{cfg: o.Config, st: o.Store, owner: o.Owner, log: o.Logger, now: o.Clock,
		secrets: map[string][]byte{}, hooks: map[string]configs.Webhook{}, kick: make(chan struct{}, 1), up: map[string]bool{}}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.now == nil {
		n.now = time.Now
	}
	n.metrics = newMetrics(o.Registry, n)
	if !o.Config.On() {
		return nil, nil
	}
	for _, w := range o.Config.Webhooks {
		var secret []byte
		if w.SecretFile != "" {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("notify: webhook %s: %w", w.Name, err)
			}
			secret = []byte(strings.TrimSpace(string(b)))
		} else {
			secret = []byte(getenv(w.SecretEnv))
		}
		if len(secret) < 16 {
			return nil, fmt.Errorf("notify: webhook %s: the secret must be at least 16 bytes", w.Name)
		}
		n.secrets[w.Name], n.hooks[w.Name] = secret, w
	}
	if o.Config.Email.On() {
		m, err := newMailer(o.Config.Email, o.Config.Retry.Timeout.D())
		if err != nil {
			return nil, err
		}
		n.mailer = m
	}
	return n, nil
}

// auditTee records an audit event and queues its notification.
type auditTee struct {
	next interface{ Record(audit.Event) error }
	n    *Notifier
}

// Record writes e to the audit log, then queues the notification it maps
// to (FromAudit). A notification that cannot be queued is logged and
// counted: the operation it tells of has happened and stands.
func (t auditTee) Record(e audit.Event) error {
	err := t.next.Record(e)
	if ev, ok := FromAudit(e); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if perr := t.n.Publish(ctx, ev); perr != nil {
			t.n.log.Error("notification not queued", "event", ev.Type, "id", ev.ID, "err", perr)
		}
	}
	return err
}

// Tee returns an auditor that records to next and queues the
// notifications of the events it records; next itself when n is nil.
func (n *Notifier) Tee(next interface{ Record(audit.Event) error }) interface{ Record(audit.Event) error } {
	if n == nil {
		return next
	}
	return auditTee{next: next, n: n}
}

// Publish queues ev for every destination that wants it, in one store
// write. A nil Notifier publishes nothing.
func (n *Notifier) Publish(ctx context.Context, ev Event) error {
	if n == nil {
		return nil
	}
	if ev.Time.IsZero() {
		ev.Time = n.now().UTC()
	}
	ns, err := n.destinations(ctx, ev)
	if err == nil && len(ns) > 0 {
		err = n.st.EnqueueNotifications(ctx, ns)
	}
	if err != nil {
		n.metrics.count("any", "enqueue_failed")
		return err
	}
	n.wake()
	return nil
}

// wake tells the delivery loop there is work.
func (n *Notifier) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// destinations are ev's notifications: one per webhook that wants it and
// one per mail recipient.
func (n *Notifier) destinations(ctx context.Context, ev Event) ([]*store.Notification, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	now := n.now()
	var ns []*store.Notification
	add := func(channel, target string, b []byte) {
		ns = append(ns, &store.Notification{ID: ev.ID + "/" + channel + ":" + target, EventID: ev.ID, Type: ev.Type,
			Channel: channel, Target: target, Body: b, CreatedAt: now, NotBefore: now})
	}
	for _, w := range n.cfg.Webhooks {
		if len(w.Events) == 0 || slices.Contains(w.Events, ev.Type) {
			add(ChannelWebhook, w.Name, body)
		}
	}
	if n.mailer == nil || !slices.Contains(n.cfg.Email.MailEvents(), ev.Type) {
		return ns, nil
	}
	to, err := n.recipients(ctx, ev)
	if err != nil {
		return nil, err
	}
	if len(to) > 0 {
		msg, err := json.Marshal(compose(ev))
		if err != nil {
			return nil, err
		}
		for _, addr := range to {
			add(ChannelEmail, addr, msg)
		}
	}
	return ns, nil
}

// recipients are the administrators and, for an account's event
// (configs.AccountMailEvents), the account's mailto: contacts unless it
// opted out; each address once.
func (n *Notifier) recipients(ctx context.Context, ev Event) ([]string, error) {
	to := slices.Clone(n.cfg.Email.Admins)
	if ev.Data.Account != "" && slices.Contains(configs.AccountMailEvents, ev.Type) {
		a, err := n.st.GetAccount(ctx, ev.Data.Account)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		case !a.EmailOptOut:
			for _, c := range a.Contact {
				addr, ok := strings.CutPrefix(c, "mailto:")
				if _, perr := mail.ParseAddress(addr); ok && perr == nil {
					to = append(to, addr)
				}
			}
		}
	}
	slices.Sort(to)
	return slices.Compact(to), nil
}
