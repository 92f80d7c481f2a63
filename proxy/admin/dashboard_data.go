package admin

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/store"
)

// Bounds on what one page reads (see also dashboard_search.go).
const (
	// expiryDays is the span of the expiry timeline.
	expiryDays = 90
	// maxExpiryFetch bounds the certificates read for the timeline.
	maxExpiryFetch = 50000
	// soonRows is the length of the table of certificates expiring soon.
	soonRows = 50
	// ordersPerPage and maxOrderPages bound the latest orders' table.
	ordersPerPage = 25
	maxOrderPages = 40
	// maxLatencySample bounds the certificates read for latencies.
	maxLatencySample = 500
	// maxIDWalk bounds the IDs walked to find a listing's newest records.
	maxIDWalk = 2_000_000
	// maxAuditWindow bounds the bytes of audit log a page reads.
	maxAuditWindow = 64 << 20
	// recentEvents is the length of the lists of latest refusals and
	// failures.
	recentEvents = 10
	// window is the span of the issuance, refusal and error sections.
	window = 24 * time.Hour
	// fetchers read records in parallel.
	fetchers = 4
	// expiryCacheFor is how long the expiry timeline is kept.
	expiryCacheFor = 30 * time.Second
)

// pageData is everything page.html shows.
type pageData struct {
	Now   time.Time
	Took  string
	Query string
	// Directory is the directory shown (a label, "/" the top level), ""
	// for every directory; Directories the labels to choose from (the
	// selector shows only with more than one).
	Directory   string
	Directories []string
	// StoreDown: the store did not answer; the page says so (HTTP 503).
	StoreDown bool
	Errors    []string
	// AuditNote says what part of the audit log was read, or why none.
	AuditNote string
	// StoreNote tells of Redis failovers and unreplicated writes this
	// replica saw (storeNote); empty when there were none.
	StoreNote  string
	WindowFrom time.Time
	Upstreams  []upstreamRow
	Expiry     *expiryView
	Issuance   issuanceView
	Orders     ordersView
	Refusals   refusalsView
	// Failures are the latest order.invalid events.
	Failures       []eventRow
	FailuresByType template.HTML
	Search         *searchView
	// Approvals is the queue of pending approval requests; CSRF the
	// session's token its forms carry ("" without a session cookie: no
	// buttons).
	Approvals *approvalQueue
	CSRF      string
}

// upstreamRow is one upstream's health and throughput.
type upstreamRow struct {
	Name, Type, Color string
	// State is healthy, failing (transient failures in a row, still
	// tried), skipped (breaker open) or unknown.
	State, StateDetail string
	Issued24h          int
	// Since the process started (Prometheus counters).
	IssuedTotal, ErrorsTransient, ErrorsPermanent int
	ErrorRate                                     string
	UpstreamP50, UpstreamP95                      string
	// OrderP50 and OrderP95: order creation to certificate, last 24h.
	OrderP50, OrderP95 string
	Configured         bool
}

// expiryView is the expiry timeline and the certificates expiring soon.
type expiryView struct {
	Chart template.HTML
	// Total is the certificates expiring within expiryDays; Expired those
	// past NotAfter but not revoked.
	Total, Expired, Within7, Within30 int
	Soon                              []certRow
	SoonMore                          int
	// Truncated: more certificates than maxExpiryFetch expire in the
	// window; the chart shows the soonest.
	Truncated bool
	At        time.Time
	// counts are the bars by upstream, one per day from today.
	counts map[string][]float64
}

// certRow is a certificate in a table.
type certRow struct {
	ID, Serial, Account, Order, Upstream, Color string
	Names                                       []string
	NotAfter, IssuedAt, RevokedAt               time.Time
	RevocationReason                            string
	Days                                        int
	Urgent, Renewed                             bool
}

// orderRow is an order in a table.
type orderRow struct {
	ID, Account, Status, Rule, Upstream, Color, Error, Certificate string
	// Directory is the order's directory ("/" the top level).
	Directory    string
	Names, Route []string
	Created      time.Time
	// Delegated: validated by the rule's delegated validation.
	Delegated bool
}

// ordersView is a page of the latest orders.
type ordersView struct {
	Rows               []orderRow
	Page               int
	PrevLink, NextLink string
	HasPrev, HasNext   bool
	Unavailable        bool
}

// issuanceView is issuance over the window.
type issuanceView struct {
	Chart, LatencyChart template.HTML
	Total, Revoked      int
	Sample              int
}

// refusalsView is refusals over the window.
type refusalsView struct {
	ByType, ByRule template.HTML
	Total          int
	Latest         []eventRow
}

// eventRow is an audit event in a table.
type eventRow struct {
	Time                                                  time.Time
	Event, Account, Order, Serial, Upstream, Rule, Reason string
	Names                                                 []string
}

func eventOf(e audit.Event) eventRow {
	return eventRow{Time: e.Time, Event: e.Event, Account: e.Account, Order: e.Order, Serial: e.Serial, Upstream: e.Upstream,
		Rule: e.Rule, Reason: e.Why(), Names: e.Names}
}

// cached keeps one value for a while.
type cached[T any] struct {
	mu sync.Mutex
	at time.Time
	v  T
}

// get returns the value if younger than ttl, else computes it anew.
func (c *cached[T]) get(now time.Time, ttl time.Duration, fn func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < ttl && now.Sub(c.at) >= 0 {
		return c.v, nil
	}
	v, err := fn()
	if err != nil {
		return v, err
	}
	c.at, c.v = now, v
	return v, nil
}

// palette of the page: the upstreams' colours, configured ones first.
type colors struct {
	names []string
	index map[string]int
}

func (c *colors) add(name string) {
	if _, ok := c.index[name]; !ok {
		c.index[name] = len(c.names)
		c.names = append(c.names, name)
	}
}

func (c *colors) of(name string) string {
	c.add(name)
	return colorOf(c.index[name])
}

func (c *colors) series() []series {
	out := make([]series, len(c.names))
	for i, n := range c.names {
		out[i] = series{Name: n, Color: colorOf(i)}
	}
	return out
}

// storeErr notes a store failure on the page (a record that vanished is
// not one).
func (p *pageData) storeErr(what string, err error) {
	p.StoreDown = true
	p.Errors = append(p.Errors, fmt.Sprintf("The store is unavailable (%s): %v", what, err))
}

// gather builds the page. Store failures become error boxes, never a
// blank page.
func (d *dashboard) gather(ctx context.Context, q url.Values) *pageData {
	start := time.Now()
	now := d.api.now().UTC()
	p := &pageData{Now: now, Query: strings.TrimSpace(q.Get("q")), WindowFrom: now.Add(-window)}
	d.chooseDirectory(p, q.Get("directory"))
	dir := p.Directory
	col := &colors{index: map[string]int{}}
	names := slices.Sorted(maps.Keys(d.api.upstreamTypes()))
	for _, n := range names {
		col.add(n)
	}

	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := d.api.Store.Ping(pctx)
	cancel()
	if err != nil {
		p.storeErr("ping", err)
	}

	p.StoreNote = d.storeNote()
	sum, recent := d.auditSections(p, now, dir)
	var lat *latencies
	if !p.StoreDown {
		exp, err := d.expiryCache(dir).get(now, expiryCacheFor, func() (*expiryView, error) { return d.expiryTimeline(ctx, now, dir) })
		if err != nil {
			p.storeErr("certificates expiring", err)
		} else {
			// The cached view is shared: colour a copy.
			e := *exp
			e.Soon = slices.Clone(exp.Soon)
			for i := range e.Soon {
				e.Soon[i].Color = col.of(e.Soon[i].Upstream)
			}
			p.Expiry = &e
		}
	}
	if !p.StoreDown {
		if err := d.latestOrders(ctx, p, q, col); err != nil {
			p.storeErr("latest orders", err)
		}
	}
	if !p.StoreDown {
		if lat, err = d.latencies(ctx, now, dir); err != nil {
			p.storeErr("issuance latency", err)
		}
	}
	if !p.StoreDown {
		if err := d.pendingApprovals(ctx, p); err != nil {
			p.storeErr("approval requests", err)
		}
	}
	if !p.StoreDown && p.Query != "" {
		if p.Search, err = d.search(ctx, p.Query, col, dir); err != nil {
			p.storeErr("search", err)
		}
	}
	if sum != nil {
		for _, c := range sum.Issued {
			if c.Key != audit.None {
				col.add(c.Key)
			}
		}
	}
	if lat != nil {
		for _, n := range slices.Sorted(maps.Keys(lat.all)) {
			col.add(n)
		}
	}
	d.upstreamRows(p, sum, lat, col, names)
	d.issuanceCharts(p, sum, lat, col)
	d.refusalCharts(p, sum, recent)
	if p.Expiry != nil {
		p.Expiry.Chart = p.Expiry.chart(p.Expiry.At, col)
	}
	p.Took = strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64) + " ms"
	return p
}

// recentAudit are the latest refusals and failures of the window.
type recentAudit struct {
	refusals, failures []audit.Event
}

// auditSections reads the window of the audit log: its summary and the
// latest refusals and failures (of one directory unless dir is "").
func (d *dashboard) auditSections(p *pageData, now time.Time, dir string) (*audit.Summary, *recentAudit) {
	since := now.Add(-window).Truncate(time.Hour)
	w, err := openAuditWindow(d.opts.AuditFile, since, maxAuditWindow)
	switch {
	case errors.Is(err, errNoAuditFile):
		p.AuditNote = "The audit log is not written to a file (audit.file), so refusals, issuance counts and history are not shown."
		return nil, nil
	case err != nil:
		p.Errors = append(p.Errors, "The audit log could not be read: "+err.Error())
		return nil, nil
	}
	defer w.Close()
	if w.Truncated {
		p.AuditNote = fmt.Sprintf("The last 24 hours hold more than %d MiB of audit log: only the newest part is counted.", maxAuditWindow>>20)
	}
	sum, err := audit.SummarizeDirectory(w.Reader(), dir, since, now.Add(time.Nanosecond), time.Hour)
	if err != nil {
		p.Errors = append(p.Errors, "The audit log could not be read: "+err.Error())
		return nil, nil
	}
	rec := &recentAudit{}
	_, err = audit.Read(w.Reader(), audit.Filter{Since: since, Directory: dir,
		Events: []string{audit.OrderRefused, audit.FinalizeRefused, audit.OrderInvalid}},
		func(e audit.Event) {
			if e.Event == audit.OrderInvalid {
				rec.failures = keepLast(rec.failures, e, recentEvents)
			} else {
				rec.refusals = keepLast(rec.refusals, e, recentEvents)
			}
		})
	if err != nil {
		p.Errors = append(p.Errors, "The audit log could not be read: "+err.Error())
	}
	return sum, rec
}

// keepLast appends e and keeps the last n.
func keepLast[T any](s []T, e T, n int) []T {
	s = append(s, e)
	if len(s) > 2*n {
		s = append(s[:0], s[len(s)-n:]...)
	}
	return s
}

// newestFirst returns the last n of s, newest first.
func newestFirst[T any](s []T, n int) []T {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// fetch reads records by ID with a few readers in parallel; a record that
// vanished is nil.
func fetch[T any](ctx context.Context, ids []string, get func(context.Context, string) (T, error)) ([]T, error) {
	out := make([]T, len(ids))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range min(fetchers, len(ids)) {
		wg.Go(func() {
			for i := range next {
				v, err := get(ctx, ids[i])
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					continue
				}
				if err == nil {
					out[i] = v
				}
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dayStart is the start of t's UTC day.
func dayStart(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// expiryTimeline counts the unrevoked certificates (of one directory
// unless dir is "") expiring in the next expiryDays by day and upstream
// (ListExpiring, soonest first: without a directory, pages of
// certificates already expired are counted from their last one, without
// reading each).
func (d *dashboard) expiryTimeline(ctx context.Context, now time.Time, dir string) (*expiryView, error) {
	const pageSize = 1000
	v := &expiryView{At: now}
	day0 := dayStart(now)
	end := day0.Add((expiryDays + 1) * 24 * time.Hour)
	counts := map[string][]float64{}
	var soon []*store.Certificate
	cursor, fetched := "", 0
	for {
		page, err := d.api.Store.ListExpiring(ctx, end, cursor, pageSize)
		if err != nil {
			return nil, err
		}
		if n := len(page.IDs); n > 0 {
			last, err := d.api.Store.GetCertificate(ctx, page.IDs[n-1])
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if last != nil && last.NotAfter.Before(now) && dir == "" {
				v.Expired += n
				if cursor = page.Next; cursor == "" {
					break
				}
				continue
			}
			certs, err := fetch(ctx, page.IDs, d.api.Store.GetCertificate)
			if err != nil {
				return nil, err
			}
			fetched += n
			for _, c := range certs {
				if c == nil || !c.RevokedAt.IsZero() || !inDirectory(c.Directory, dir) {
					continue
				}
				if c.NotAfter.Before(now) {
					v.Expired++
					continue
				}
				i := int(c.NotAfter.Sub(day0) / (24 * time.Hour))
				if i > expiryDays {
					continue
				}
				if counts[c.Upstream] == nil {
					counts[c.Upstream] = make([]float64, expiryDays+1)
				}
				counts[c.Upstream][i]++
				v.Total++
				left := c.NotAfter.Sub(now)
				if left <= 7*24*time.Hour {
					v.Within7++
				}
				if left <= 30*24*time.Hour {
					v.Within30++
					if len(soon) < soonRows {
						soon = append(soon, c)
					} else {
						v.SoonMore++
					}
				}
			}
		}
		if page.Next == "" {
			break
		}
		if fetched >= maxExpiryFetch {
			v.Truncated = true
			break
		}
		cursor = page.Next
	}
	for _, c := range soon {
		v.Soon = append(v.Soon, certRowOf(c, now))
	}
	v.counts = counts
	return v, nil
}

// chart draws the timeline from the day of now.
func (v *expiryView) chart(now time.Time, col *colors) template.HTML {
	for _, n := range slices.Sorted(maps.Keys(v.counts)) {
		col.add(n)
	}
	ss := col.series()
	day0 := dayStart(now)
	cols := make([]column, expiryDays+1)
	for i := range cols {
		day := day0.Add(time.Duration(i) * 24 * time.Hour)
		cols[i].Title = day.Format("Mon 2006-01-02")
		if i%7 == 0 {
			cols[i].Label = day.Format("Jan 2")
		}
		cols[i].Values = make([]float64, len(ss))
		for si, s := range ss {
			if c := v.counts[s.Name]; c != nil {
				cols[i].Values[si] = c[i]
			}
		}
	}
	return stackedBars("expiry-chart", "Certificates expiring per day over the next 90 days, by upstream", cols, ss, 1200, 200)
}

func certRowOf(c *store.Certificate, now time.Time) certRow {
	r := certRow{ID: c.ID, Serial: c.Serial, Account: c.AccountID, Order: c.OrderID, Upstream: c.Upstream, Names: c.Names,
		NotAfter: c.NotAfter, IssuedAt: c.IssuedAt, RevokedAt: c.RevokedAt, Renewed: c.ReplacedBy != ""}
	r.Days = int(math.Floor(c.NotAfter.Sub(now).Hours() / 24))
	r.Urgent = c.NotAfter.Sub(now) <= 7*24*time.Hour
	if !c.RevokedAt.IsZero() {
		r.RevocationReason = audit.RevocationReason(strconv.Itoa(c.RevocationReason))
	}
	return r
}

func orderRowOf(o *store.Order) orderRow {
	r := orderRow{ID: o.ID, Directory: audit.DirectoryLabel(o.Directory), Account: o.AccountID, Status: o.Status, Rule: o.Rule, Upstream: o.Upstream, Route: o.Upstreams,
		Certificate: o.CertificateID, Created: o.CreatedAt, Delegated: o.Delegated}
	for _, id := range o.Identifiers {
		r.Names = append(r.Names, id.Value)
	}
	if o.Error != nil {
		r.Error = strings.TrimPrefix(o.Error.Type, "urn:ietf:params:acme:error:") + ": " + o.Error.Detail
	}
	return r
}

// newestIDs reads up to n IDs of a newest-first listing (store.ListNewest)
// and reports whether it holds more.
func newestIDs(list func(cursor string, limit int) (store.Page, error), n int) ([]string, bool, error) {
	var ids []string
	cursor := ""
	for len(ids) < n {
		page, err := list(cursor, min(n-len(ids), 1000))
		if err != nil {
			return nil, false, err
		}
		ids = append(ids, page.IDs...)
		if page.Next == "" {
			return ids, false, nil
		}
		cursor = page.Next
	}
	return ids, true, nil
}

// tailIDs walks a listing (oldest first, at most maxIDWalk IDs) and
// returns its last n IDs, newest first.
func tailIDs(list func(cursor string, limit int) (store.Page, error), n int) ([]string, error) {
	const pageSize = 1000
	ring := make([]string, 0, n)
	total, cursor := 0, ""
	for total < maxIDWalk {
		page, err := list(cursor, pageSize)
		if err != nil {
			return nil, err
		}
		for _, id := range page.IDs {
			if len(ring) < n {
				ring = append(ring, id)
			} else {
				ring[total%n] = id
			}
			total++
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if total > n {
		k := total % n // the oldest kept
		ring = append(append(make([]string, 0, n), ring[k:]...), ring[:k]...)
	}
	slices.Reverse(ring)
	return ring, nil
}

// latestOrders fills the page of latest orders (?page=N, 0 the newest).
func (d *dashboard) latestOrders(ctx context.Context, p *pageData, q url.Values, col *colors) error {
	page, _ := strconv.Atoi(q.Get("page"))
	page = min(max(page, 0), maxOrderPages-1)
	newest, more, err := d.newestOrders(ctx, (page+1)*ordersPerPage, p.Directory)
	if err != nil {
		return err
	}
	v := &p.Orders
	pages := (len(newest) + ordersPerPage - 1) / ordersPerPage
	if page >= pages {
		page = max(pages-1, 0)
	}
	v.Page = page
	lo, hi := min(page*ordersPerPage, len(newest)), min((page+1)*ordersPerPage, len(newest))
	orders := newest[lo:hi]
	for _, o := range orders {
		if o == nil {
			continue
		}
		r := orderRowOf(o)
		if r.Upstream != "" {
			r.Color = col.of(r.Upstream)
		}
		v.Rows = append(v.Rows, r)
	}
	link := func(n int) string {
		u := url.Values{}
		if p.Query != "" {
			u.Set("q", p.Query)
		}
		if p.Directory != "" {
			u.Set("directory", p.Directory)
		}
		if n > 0 {
			u.Set("page", strconv.Itoa(n))
		}
		if len(u) == 0 {
			return "/dashboard#orders"
		}
		return "/dashboard?" + u.Encode() + "#orders"
	}
	v.HasPrev, v.HasNext = page > 0, (more || page+1 < pages) && page+1 < maxOrderPages
	v.PrevLink, v.NextLink = link(page-1), link(page+1)
	return nil
}

// storeNote reads the Redis driver's counters from the registry: the
// failovers (or restarts) of the master this replica noticed, and the
// writes that failed for want of replicas. Empty when both are zero or
// absent (bolt).
func (d *dashboard) storeNote() string {
	fams, err := d.reg.Gather()
	if err != nil {
		return ""
	}
	var changes, unreplicated float64
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "acmebridge_store_master_changes_total":
				changes += m.GetCounter().GetValue()
			case "acmebridge_store_writes_not_replicated_total":
				unreplicated += m.GetCounter().GetValue()
			}
		}
	}
	var parts []string
	if changes > 0 {
		parts = append(parts, fmt.Sprintf("the Redis master changed %.0f time(s) (a failover or a restart)", changes))
	}
	if unreplicated > 0 {
		parts = append(parts, fmt.Sprintf("%.0f write(s) failed because too few replicas acknowledged them (503 to the client)", unreplicated))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Store: since this replica started, " + strings.Join(parts, "; ") + "."
}
