package notify

import (
	"context"
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/core"
	"github.com/acmebridge/acmebridge/store"
)

// Expiring is a certificate expiring without a renewal, and the smallest
// window of acmebridge_certificates_expiring_unrenewed it is in ("7d",
// "2d").
type Expiring struct {
	CertificateID string
	Within        string
}

// ExpiringFunc lists the certificates expiring without a renewal: the
// definition behind acmebridge_certificates_expiring_unrenewed and its
// alerts (proxy.Metrics.Unrenewed).
type ExpiringFunc func(ctx context.Context) ([]Expiring, error)

// scanLoop runs ScanExpiring every notifications.expiry_scan.
func (n *Notifier) scanLoop(ctx context.Context, expiring ExpiringFunc) {
	t := time.NewTicker(n.cfg.ExpiryScan.D())
	defer t.Stop()
	for {
		if err := n.ScanExpiring(ctx, expiring); err != nil && ctx.Err() == nil {
			n.log.Warn("expiry scan", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScanExpiring queues certificate.expiring for each certificate expiring
// without a renewal, once per certificate and window: the event's ID is
// derived from both, so every replica and every pass queues the same one
// (the outbox keeps one).
func (n *Notifier) ScanExpiring(ctx context.Context, expiring ExpiringFunc) error {
	list, err := expiring(ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		c, err := n.st.GetCertificate(ctx, e.CertificateID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		ev := Event{ID: "ev_expiring_" + c.ID + "_" + e.Within, Type: configs.EventCertificateExpiring,
			Directory: audit.DirectoryLabel(c.Directory), Data: Data{Account: c.AccountID, Order: c.OrderID,
				Names: c.Names, Serial: c.Serial, NotAfter: c.NotAfter, Upstream: c.Upstream, Within: e.Within}}
		if err := n.Publish(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// UpstreamState queues upstream.down or upstream.recovered when an
// upstream's state differs from the last one this replica saw (the first
// sighting of a healthy upstream tells nothing). Each replica has its own
// circuit breaker, so each tells what it sees (Data.Replica).
func (n *Notifier) UpstreamState(ctx context.Context, upstream string, up bool) {
	if n == nil {
		return
	}
	n.upMu.Lock()
	was, seen := n.up[upstream]
	n.up[upstream] = up
	n.upMu.Unlock()
	if (seen && was == up) || (!seen && up) {
		return
	}
	typ := configs.EventUpstreamDown
	if up {
		typ = configs.EventUpstreamRecovered
	}
	ev := Event{ID: "ev_" + core.RandomID(), Type: typ, Data: Data{Upstream: upstream, Replica: n.owner}}
	if err := n.Publish(ctx, ev); err != nil {
		n.log.Error("notification not queued", "event", typ, "err", err)
	}
}

// ReloadFailed queues config.reload_failed.
func (n *Notifier) ReloadFailed(ctx context.Context, reason string) {
	if n == nil {
		return
	}
	ev := Event{ID: "ev_" + core.RandomID(), Type: configs.EventConfigReloadFailed, Data: Data{Reason: reason, Replica: n.owner}}
	if err := n.Publish(ctx, ev); err != nil {
		n.log.Error("notification not queued", "event", ev.Type, "err", err)
	}
}
