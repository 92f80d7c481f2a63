package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// Bounds of a search.
const (
	// maxSearchLog is how much of the newest audit log a search reads.
	maxSearchLog = 64 << 20
	// maxSearchEvents is the length of a history.
	maxSearchEvents = 200
	// maxSearchOrders bounds the orders of a history.
	maxSearchOrders = 100
	// searchOrderScan is how many of the newest orders are read for a
	// name (beside those the audit log names).
	searchOrderScan = 1000
)

// searchView is the history of a name or an account.
type searchView struct {
	Query string
	// Kind is "account" or "name".
	Kind    string
	Account *accountView
	Orders  []orderRow
	Certs   []certRow
	Events  []eventRow
	// Revocations counts the revoked certificates and revocation events.
	Revocations int
	// Notes say how far back the history goes.
	Notes []string
	Empty bool
}

// search finds what the store and the audit log know of q: an account
// (by ID) or a name (exact, case-insensitive); of one directory unless dir
// is "".
func (d *dashboard) search(ctx context.Context, q string, col *colors, dir string) (*searchView, error) {
	now := d.api.now()
	v := &searchView{Query: q, Kind: "name"}
	acct, err := d.api.Store.GetAccount(ctx, q)
	switch {
	case err == nil && !inDirectory(acct.Directory, dir):
	case err == nil:
		av := accountOf(acct)
		v.Account, v.Kind = &av, "account"
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}

	// The audit log's newest part: the history, and the orders and
	// certificates it names.
	filter := audit.Filter{Name: q, Directory: dir}
	if v.Account != nil {
		filter = audit.Filter{Account: q, Directory: dir}
	}
	var events []audit.Event
	w, err := openAuditWindow(d.opts.AuditFile, time.Time{}, maxSearchLog)
	switch {
	case errors.Is(err, errNoAuditFile):
		v.Notes = append(v.Notes, "The audit log is not written to a file: the history shows only what the store holds.")
	case err != nil:
		v.Notes = append(v.Notes, "The audit log could not be read: "+err.Error())
	default:
		_, err = audit.Read(w.Reader(), filter, func(e audit.Event) { events = keepLast(events, e, maxSearchEvents) })
		w.Close()
		if err != nil {
			v.Notes = append(v.Notes, "The audit log could not be read: "+err.Error())
		}
		if w.Truncated {
			v.Notes = append(v.Notes, fmt.Sprintf("Only the newest %d MiB of the audit log were searched.", maxSearchLog>>20))
		}
	}
	events = newestFirst(events, maxSearchEvents)
	orderIDs, serials := []string{}, []string{}
	for _, e := range events {
		v.Events = append(v.Events, eventOf(e))
		if e.Order != "" && !slices.Contains(orderIDs, e.Order) {
			orderIDs = append(orderIDs, e.Order)
		}
		if e.Serial != "" && !slices.Contains(serials, e.Serial) {
			serials = append(serials, e.Serial)
		}
		if e.Event == audit.CertRevoked {
			v.Revocations++
		}
	}

	// The store: the account's own orders, or the newest orders naming q.
	var orders []*store.Order
	if v.Account != nil {
		ids, err := tailIDs(func(c string, l int) (store.Page, error) {
			return d.api.Store.ListOrders(ctx, q, c, l)
		}, maxSearchOrders)
		if err != nil {
			return nil, err
		}
		if orders, err = fetch(ctx, ids, d.api.Store.GetOrder); err != nil {
			return nil, err
		}
	} else {
		ids, more, err := newestIDs(func(c string, l int) (store.Page, error) {
			return d.api.Store.ListNewest(ctx, store.KindOrder, c, l)
		}, searchOrderScan)
		if err != nil {
			return nil, err
		}
		all, err := fetch(ctx, ids, d.api.Store.GetOrder)
		if err != nil {
			return nil, err
		}
		for _, o := range all {
			if o != nil && hasName(o.Identifiers, q) {
				orders = append(orders, o)
			}
		}
		if more {
			v.Notes = append(v.Notes, fmt.Sprintf("The store's newest %d orders were searched, and those the audit log names.", searchOrderScan))
		}
	}
	var missing []string
	for _, id := range orderIDs {
		if !slices.ContainsFunc(orders, func(o *store.Order) bool { return o != nil && o.ID == id }) {
			missing = append(missing, id)
		}
	}
	more, err := fetch(ctx, missing, d.api.Store.GetOrder)
	if err != nil {
		return nil, err
	}
	orders = append(orders, more...)
	orders = slices.DeleteFunc(orders, func(o *store.Order) bool { return o == nil || !inDirectory(o.Directory, dir) })
	slices.SortFunc(orders, func(a, b *store.Order) int { return b.CreatedAt.Compare(a.CreatedAt) })
	orders = orders[:min(len(orders), maxSearchOrders)]

	// Certificates: those of the orders, and those the log names by serial.
	certIDs := []string{}
	for _, o := range orders {
		r := orderRowOf(o)
		if r.Upstream != "" {
			r.Color = col.of(r.Upstream)
		}
		v.Orders = append(v.Orders, r)
		if o.CertificateID != "" {
			certIDs = append(certIDs, o.CertificateID)
		}
	}
	certs, err := fetch(ctx, certIDs, d.api.Store.GetCertificate)
	if err != nil {
		return nil, err
	}
	for _, s := range serials {
		if slices.ContainsFunc(certs, func(c *store.Certificate) bool { return c != nil && c.Serial == s }) {
			continue
		}
		c, err := d.api.Store.GetCertificateBySerial(ctx, s)
		switch {
		case err == nil:
			certs = append(certs, c)
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	certs = slices.DeleteFunc(certs, func(c *store.Certificate) bool { return c == nil || !inDirectory(c.Directory, dir) })
	slices.SortFunc(certs, func(a, b *store.Certificate) int { return b.IssuedAt.Compare(a.IssuedAt) })
	revokedEvents := v.Revocations
	revokedCerts := 0
	for _, c := range certs {
		r := certRowOf(c, now)
		r.Color = col.of(r.Upstream)
		v.Certs = append(v.Certs, r)
		if !c.RevokedAt.IsZero() {
			revokedCerts++
		}
	}
	v.Revocations = max(revokedEvents, revokedCerts)
	v.Empty = v.Account == nil && len(v.Orders) == 0 && len(v.Certs) == 0 && len(v.Events) == 0
	if v.Kind == "name" {
		v.Query = strings.ToLower(q)
	}
	return v, nil
}
