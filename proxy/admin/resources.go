package admin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/policy"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// eabView is an EAB key without its secret.
type eabView struct {
	ID string `json:"id"`
	// Directory is the directory the key binds in ("/" the top level).
	Directory string    `json:"directory"`
	Group     string    `json:"group,omitempty"`
	Allow     []string  `json:"allow,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	AccountID string    `json:"account_id,omitempty"`
	BoundAt   time.Time `json:"bound_at,omitzero"`
	Status    string    `json:"status"`
}

func (a *api) eabView(k *store.EABKey) eabView {
	st := "unused"
	switch {
	case !k.RevokedAt.IsZero():
		st = "revoked"
	case k.AccountID != "":
		st = "bound"
	case !k.ExpiresAt.IsZero() && a.now().After(k.ExpiresAt):
		st = "expired"
	}
	return eabView{ID: k.ID, Directory: audit.DirectoryLabel(k.Directory), Group: k.Group, Allow: k.Allow, Note: k.Note, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
		RevokedAt: k.RevokedAt, AccountID: k.AccountID, BoundAt: k.BoundAt, Status: st}
}

// listParams reads a listing's page and directory filter, or answers the
// error.
func (a *api) listParams(w http.ResponseWriter, r *http.Request) (cursor string, limit int, dir string, ok bool) {
	cursor, limit, err := pageParams(r)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return "", 0, "", false
	}
	dir, status, err := a.directoryParam(r, r.URL.Query().Get("directory"))
	if err != nil {
		fail(w, status, err.Error())
		return "", 0, "", false
	}
	return cursor, limit, dir, true
}

func (a *api) listEAB(w http.ResponseWriter, r *http.Request) {
	cursor, limit, dir, ok := a.listParams(w, r)
	if !ok {
		return
	}
	keys, next, err := scan(r.Context(), func(c string, l int) (store.Page, error) { return a.Store.List(r.Context(), store.KindEABKey, c, l) },
		a.Store.GetEABKey, func(k *store.EABKey) bool { return inDirectory(k.Directory, dir) }, cursor, limit)
	if err != nil {
		storeFail(w, err, "listing")
		return
	}
	out := listing[eabView]{Items: []eabView{}, Next: next}
	for _, k := range keys {
		out.Items = append(out.Items, a.eabView(k))
	}
	writeJSON(w, http.StatusOK, out)
}

// createEABReq is the body of POST /api/v1/eab.
type createEABReq struct {
	// Directory is the directory the key binds in: a configured one, or
	// "" or "/" for the top level; a scoped token's own when it names
	// none.
	Directory string   `json:"directory"`
	Group     string   `json:"group"`
	Allow     []string `json:"allow"`
	// Expires is a duration such as "720h"; empty never expires.
	Expires string `json:"expires"`
	Note    string `json:"note"`
}

// createdEAB is the answer: the only time the secret is shown.
type createdEAB struct {
	eabView
	HMACKey string `json:"hmac_key"`
}

func (a *api) createEAB(w http.ResponseWriter, r *http.Request) {
	var req createEABReq
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "body must be {directory, group, allow, expires, note}: "+err.Error())
		return
	}
	dir, status, err := a.directoryParam(r, req.Directory)
	if err != nil {
		fail(w, status, err.Error())
		return
	}
	if dir == audit.TopLevel {
		dir = ""
	}
	k := &store.EABKey{Directory: dir, Group: req.Group, Note: req.Note, CreatedAt: a.now()}
	for _, p := range req.Allow {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !validAllow(p) {
			fail(w, http.StatusBadRequest, "allow pattern "+p+" is not a name, *.suffix, glob or CIDR")
			return
		}
		// Identifiers arrive as A-labels: a Unicode pattern is stored as
		// its A-label form, or it would never match (as policy patterns).
		if !strings.Contains(p, "/") {
			al, err := configs.ALabels(p)
			if err != nil {
				fail(w, http.StatusBadRequest, "allow pattern "+err.Error())
				return
			}
			p = al
		}
		k.Allow = append(k.Allow, p)
	}
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			fail(w, http.StatusBadRequest, "expires must be a positive duration such as 720h")
			return
		}
		k.ExpiresAt = k.CreatedAt.Add(d)
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	mac := newHMACKey()
	k.ID, k.HMACKey = "kid-"+base64.RawURLEncoding.EncodeToString(id), mac
	if err := a.Store.PutEABKey(r.Context(), k); err != nil {
		storeFail(w, err, "EAB key")
		return
	}
	a.record(r, audit.Event{Event: audit.EABCreated, EABKey: k.ID, Reason: "group=" + k.Group + " allow=" + strings.Join(k.Allow, ","),
		Directory: k.Directory})
	writeJSON(w, http.StatusCreated, createdEAB{eabView: a.eabView(k), HMACKey: base64.RawURLEncoding.EncodeToString(mac)})
}

// validAllow accepts what policy.MatchDomain and a CIDR understand.
func validAllow(p string) bool {
	if strings.Contains(p, "/") {
		_, err := netip.ParsePrefix(p)
		return err == nil
	}
	return !strings.ContainsAny(p, " ,") && strings.Count(p, "*") <= 1 && !strings.HasSuffix(p, ".")
}

func (a *api) revokeEAB(w http.ResponseWriter, r *http.Request) {
	k, err := fetchVisible(r, a.Store.GetEABKey, func(k *store.EABKey) string { return k.Directory }, r.PathValue("kid"))
	if err != nil {
		storeFail(w, err, "EAB key")
		return
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = a.now()
		if err := a.Store.UpdateEABKey(r.Context(), k); err != nil {
			storeFail(w, err, "EAB key")
			return
		}
		a.record(r, audit.Event{Event: audit.EABRevoked, EABKey: k.ID, Account: k.AccountID, Directory: k.Directory})
	}
	writeJSON(w, http.StatusOK, a.eabView(k))
}

// accountView is an account for operators.
type accountView struct {
	ID string `json:"id"`
	// Directory is the account's directory ("/" the top level).
	Directory string    `json:"directory"`
	Status    string    `json:"status"`
	Contact   []string  `json:"contact,omitempty"`
	EABKey    string    `json:"eab_key,omitempty"`
	Group     string    `json:"group,omitempty"`
	Allow     []string  `json:"allow,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Remote    string    `json:"created_from,omitempty"`
	KeyTP     string    `json:"key_thumbprint"`
	// EmailNotifications: the account's contacts get notification mail
	// (POST /api/v1/accounts/{id}/notifications turns it off and on).
	EmailNotifications bool `json:"email_notifications"`
}

func accountOf(a *store.Account) accountView {
	return accountView{ID: a.ID, Directory: audit.DirectoryLabel(a.Directory), Status: a.Status, Contact: a.Contact, EABKey: a.EABKeyID, Group: a.Group, Allow: a.Allow,
		CreatedAt: a.CreatedAt, Remote: a.CreatedFrom, KeyTP: a.KeyThumbprint, EmailNotifications: !a.EmailOptOut}
}

// notificationsReq is the body of POST /api/v1/accounts/{id}/notifications.
type notificationsReq struct {
	Email *bool `json:"email"`
}

// accountNotifications opts an account's contacts out of notification
// mail, or back in ({"email": false|true}); audited.
func (a *api) accountNotifications(w http.ResponseWriter, r *http.Request) {
	var req notificationsReq
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Email == nil {
		fail(w, http.StatusBadRequest, `body must be {"email": true|false}`)
		return
	}
	x, err := fetchVisible(r, a.Store.GetAccount, accountDir, r.PathValue("id"))
	if err != nil {
		storeFail(w, err, "account")
		return
	}
	if x.EmailOptOut == *req.Email {
		x.EmailOptOut = !*req.Email
		if err := a.Store.UpdateAccount(r.Context(), x); err != nil {
			storeFail(w, err, "account")
			return
		}
		a.record(r, audit.Event{Event: audit.AdminAction, Account: x.ID, Directory: x.Directory,
			Reason: fmt.Sprintf("email notifications %s", map[bool]string{true: "on", false: "off"}[*req.Email])})
	}
	writeJSON(w, http.StatusOK, accountOf(x))
}

func (a *api) listAccounts(w http.ResponseWriter, r *http.Request) {
	cursor, limit, dir, ok := a.listParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	accts, next, err := scan(r.Context(), func(c string, l int) (store.Page, error) { return a.Store.List(r.Context(), store.KindAccount, c, l) },
		a.Store.GetAccount, func(x *store.Account) bool {
			return inDirectory(x.Directory, dir) &&
				(q.Get("status") == "" || x.Status == q.Get("status")) && (q.Get("group") == "" || x.Group == q.Get("group"))
		}, cursor, limit)
	if err != nil {
		storeFail(w, err, "listing")
		return
	}
	out := listing[accountView]{Items: []accountView{}, Next: next}
	for _, x := range accts {
		out.Items = append(out.Items, accountOf(x))
	}
	writeJSON(w, http.StatusOK, out)
}

// accountDir is an account's directory.
func accountDir(x *store.Account) string { return x.Directory }

func (a *api) showAccount(w http.ResponseWriter, r *http.Request) {
	x, err := fetchVisible(r, a.Store.GetAccount, accountDir, r.PathValue("id"))
	if err != nil {
		storeFail(w, err, "account")
		return
	}
	writeJSON(w, http.StatusOK, accountOf(x))
}

func (a *api) deactivateAccount(w http.ResponseWriter, r *http.Request) {
	x, err := fetchVisible(r, a.Store.GetAccount, accountDir, r.PathValue("id"))
	if err != nil {
		storeFail(w, err, "account")
		return
	}
	if x.Status == store.StatusValid {
		x.Status = store.StatusDeactivated
		if err := a.Store.UpdateAccount(r.Context(), x); err != nil {
			storeFail(w, err, "account")
			return
		}
		a.record(r, audit.Event{Event: audit.AccountDeactivated, Account: x.ID, Directory: x.Directory})
	}
	writeJSON(w, http.StatusOK, accountOf(x))
}

// orderView is an order with its policy decision.
type orderView struct {
	ID string `json:"id"`
	// Directory is the order's directory ("/" the top level).
	Directory   string             `json:"directory"`
	Account     string             `json:"account"`
	Status      string             `json:"status"`
	Identifiers []store.Identifier `json:"identifiers"`
	Profile     string             `json:"profile,omitempty"`
	Rule        string             `json:"rule"`
	Upstreams   []string           `json:"upstreams"`
	Upstream    string             `json:"upstream,omitempty"`
	Certificate string             `json:"certificate,omitempty"`
	Error       *store.Problem     `json:"error,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	Expires     time.Time          `json:"expires"`
	// Replaces is the certificate this order renews (ARI "replaces").
	Replaces string `json:"replaces,omitempty"`
	// Delegated: the order's authorizations were valid without a
	// challenge, by the delegated validation of Rule.
	Delegated bool `json:"delegated,omitempty"`
	// Authorizations are listed when one order is shown.
	Authorizations []authzView `json:"authorizations,omitempty"`
}

// authzView is an order's authorization: its state, the challenge that
// validated it, or the rule that delegated it.
type authzView struct {
	ID         string           `json:"id"`
	Identifier store.Identifier `json:"identifier"`
	Wildcard   bool             `json:"wildcard,omitempty"`
	Status     string           `json:"status"`
	Expires    time.Time        `json:"expires"`
	// ValidatedBy is the type of the challenge that validated it.
	ValidatedBy string `json:"validated_by,omitempty"`
	// Delegated and DelegatedRule: valid without a challenge, by that
	// rule's delegated validation.
	Delegated     bool   `json:"delegated,omitempty"`
	DelegatedRule string `json:"delegated_rule,omitempty"`
}

func orderOf(o *store.Order) orderView {
	return orderView{ID: o.ID, Directory: audit.DirectoryLabel(o.Directory), Account: o.AccountID, Status: o.Status, Identifiers: o.Identifiers, Profile: o.Profile,
		Rule: o.Rule, Upstreams: o.Upstreams, Upstream: o.Upstream, Certificate: o.CertificateID, Error: o.Error,
		CreatedAt: o.CreatedAt, Expires: o.Expires, Replaces: o.Replaces, Delegated: o.Delegated}
}

func authzOf(a *store.Authorization, now time.Time) authzView {
	v := authzView{ID: a.ID, Identifier: a.Identifier, Wildcard: a.Wildcard, Status: ra.AuthzStatus(a, now),
		Expires: a.Expires, Delegated: a.Delegated, DelegatedRule: a.DelegatedRule}
	for _, c := range a.Challenges {
		if c.Status == store.StatusValid {
			v.ValidatedBy = c.Type
		}
	}
	return v
}

func hasName(ids []store.Identifier, name string) bool {
	return slices.ContainsFunc(ids, func(id store.Identifier) bool { return strings.EqualFold(id.Value, name) })
}

func (a *api) listOrders(w http.ResponseWriter, r *http.Request) {
	cursor, limit, dir, ok := a.listParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	list := func(c string, l int) (store.Page, error) { return a.Store.List(r.Context(), store.KindOrder, c, l) }
	if acct := q.Get("account"); acct != "" {
		list = func(c string, l int) (store.Page, error) { return a.Store.ListOrders(r.Context(), acct, c, l) }
	}
	orders, next, err := scan(r.Context(), list, a.Store.GetOrder, func(o *store.Order) bool {
		return inDirectory(o.Directory, dir) && (q.Get("state") == "" || o.Status == q.Get("state")) && (q.Get("identifier") == "" || hasName(o.Identifiers, q.Get("identifier")))
	}, cursor, limit)
	if err != nil {
		storeFail(w, err, "listing")
		return
	}
	out := listing[orderView]{Items: []orderView{}, Next: next}
	for _, o := range orders {
		out.Items = append(out.Items, orderOf(o))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) showOrder(w http.ResponseWriter, r *http.Request) {
	o, err := fetchVisible(r, a.Store.GetOrder, func(o *store.Order) string { return o.Directory }, r.PathValue("id"))
	if err != nil {
		storeFail(w, err, "order")
		return
	}
	v := orderOf(o)
	for _, id := range o.AuthzIDs {
		az, err := a.Store.GetAuthz(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			continue // an authorization removed after it expired
		}
		if err != nil {
			storeFail(w, err, "authorization")
			return
		}
		v.Authorizations = append(v.Authorizations, authzOf(az, a.now()))
	}
	writeJSON(w, http.StatusOK, v)
}

// certView is a certificate for operators.
type certView struct {
	ID string `json:"id"`
	// Directory is the certificate's directory ("/" the top level).
	Directory string    `json:"directory"`
	Serial    string    `json:"serial"`
	Account   string    `json:"account"`
	Order     string    `json:"order"`
	Names     []string  `json:"names"`
	Upstream  string    `json:"upstream"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	IssuedAt  time.Time `json:"issued_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Reason    int       `json:"revocation_reason,omitempty"`
	RenewBy   time.Time `json:"renew_by,omitzero"`
	// ReplacedBy is the order that renews it (ARI "replaces").
	ReplacedBy string `json:"replaced_by,omitempty"`
	ChainPEM   string `json:"chain_pem,omitempty"`
}

func certOf(c *store.Certificate, withPEM bool) certView {
	v := certView{ID: c.ID, Directory: audit.DirectoryLabel(c.Directory), Serial: c.Serial, Account: c.AccountID, Order: c.OrderID, Names: c.Names, Upstream: c.Upstream,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, IssuedAt: c.IssuedAt, RevokedAt: c.RevokedAt, Reason: c.RevocationReason,
		RenewBy: c.RenewBy, ReplacedBy: c.ReplacedBy}
	if withPEM {
		v.ChainPEM = string(c.ChainPEM)
	}
	return v
}

func (a *api) listCertificates(w http.ResponseWriter, r *http.Request) {
	cursor, limit, dir, ok := a.listParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	list := func(c string, l int) (store.Page, error) {
		return a.Store.List(r.Context(), store.KindCertificate, c, l)
	}
	if e := q.Get("expiring"); e != "" {
		d, err := parseDays(e)
		if err != nil {
			fail(w, http.StatusBadRequest, "expiring must be a duration such as 30d or 720h")
			return
		}
		before := a.now().Add(d)
		list = func(c string, l int) (store.Page, error) { return a.Store.ListExpiring(r.Context(), before, c, l) }
	}
	certs, next, err := scan(r.Context(), list, a.Store.GetCertificate, func(c *store.Certificate) bool {
		return inDirectory(c.Directory, dir) && (q.Get("account") == "" || c.AccountID == q.Get("account")) &&
			(q.Get("name") == "" || slices.ContainsFunc(c.Names, func(n string) bool { return strings.EqualFold(n, q.Get("name")) })) &&
			(q.Get("upstream") == "" || c.Upstream == q.Get("upstream"))
	}, cursor, limit)
	if err != nil {
		storeFail(w, err, "listing")
		return
	}
	out := listing[certView]{Items: []certView{}, Next: next}
	for _, c := range certs {
		out.Items = append(out.Items, certOf(c, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// parseDays accepts Go durations and a whole number of days ("30d").
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := time.ParseDuration(d + "h")
		return n * 24, err
	}
	return time.ParseDuration(s)
}

// certificate finds a certificate by ID or serial; one of a directory the
// token may not see is not found.
func (a *api) certificate(r *http.Request) (*store.Certificate, error) {
	id := r.PathValue("id")
	c, err := a.Store.GetCertificate(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		c, err = a.Store.GetCertificateBySerial(r.Context(), strings.ToLower(strings.ReplaceAll(id, ":", "")))
	}
	if err == nil && !visible(r, c.Directory) {
		return nil, notVisible
	}
	return c, err
}

func (a *api) showCertificate(w http.ResponseWriter, r *http.Request) {
	c, err := a.certificate(r)
	if err != nil {
		storeFail(w, err, "certificate")
		return
	}
	writeJSON(w, http.StatusOK, certOf(c, true))
}

// newHMACKey returns 256 random bits whose base64url form does not start
// with '-' or '_': operators paste it after a flag (certbot --eab-hmac-key
// KEY), and command-line parsers take a value starting with '-' for an
// option.
func newHMACKey() []byte {
	mac := make([]byte, 32)
	for {
		_, _ = rand.Read(mac)
		if c := base64.RawURLEncoding.EncodeToString(mac[:3])[0]; c != '-' && c != '_' {
			return mac
		}
	}
}

// revokeReq is the body of a revocation (optional).
type revokeReq struct {
	Reason int `json:"reason"`
}

// revokeCertificate revokes through the domain core's one revocation path
// (ra.Revoke), as the operator.
func (a *api) revokeCertificate(w http.ResponseWriter, r *http.Request) {
	var req revokeReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		fail(w, http.StatusBadRequest, "body must be {reason}")
		return
	}
	c, err := a.certificate(r)
	if err != nil {
		storeFail(w, err, "certificate")
		return
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	}
	c, err = a.RA.Revoke(r.Context(), ra.RevokeRequest{By: ra.ByAdmin, Serial: c.Serial, Reason: req.Reason,
		Client: ra.Client{Remote: host}})
	if err != nil {
		domainFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, certOf(c, false))
}

// domainFail answers an error of the domain core by its kind; an
// upstream's refusal is 502 and names the upstream, never its text.
func domainFail(w http.ResponseWriter, err error) {
	status, msg := domainStatus(err)
	fail(w, status, msg)
}

// domainStatus is the status and message an error of the domain core is
// answered with.
func domainStatus(err error) (int, string) {
	var up *ra.UpstreamError
	if errors.As(err, &up) {
		return http.StatusBadGateway, "upstream " + up.Upstream + " refused the request"
	}
	var e *acmeerr.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, "internal error"
	}
	switch e.Kind {
	case acmeerr.NotFound:
		return http.StatusNotFound, e.Detail
	case acmeerr.AlreadyRevoked, acmeerr.Conflict:
		return http.StatusConflict, e.Detail
	case acmeerr.Unavailable:
		return http.StatusServiceUnavailable, e.Detail
	case acmeerr.Internal:
		return http.StatusInternalServerError, e.Detail
	default:
		return http.StatusBadRequest, e.Detail
	}
}

// upstreamView is an upstream's name and type.
type upstreamView struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func (a *api) listUpstreams(w http.ResponseWriter, _ *http.Request) {
	out := []upstreamView{}
	for name, typ := range a.upstreamTypes() {
		out = append(out, upstreamView{Name: name, Type: typ})
	}
	slices.SortFunc(out, func(x, y upstreamView) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, out)
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	names := q["name"]
	if len(names) == 0 {
		fail(w, http.StatusBadRequest, "name at least one ?name=")
		return
	}
	dir, status, err := a.directoryParam(r, q.Get("directory"))
	if err != nil {
		fail(w, status, err.Error())
		return
	}
	eng := a.explainer(dir)
	if eng == nil {
		fail(w, http.StatusServiceUnavailable, "no policy to explain for directory "+audit.DirectoryLabel(dir))
		return
	}
	req := policy.Request{EABKey: q.Get("eab_key"), Group: q.Get("group"), Profile: q.Get("profile")}
	out := []policy.Explanation{}
	for _, n := range names {
		out = append(out, eng.Explain(n, req))
	}
	writeJSON(w, http.StatusOK, out)
}

// explainer is the policy of a directory (a label from directoryParam;
// "" the top level): the one the directory runs with now.
func (a *api) explainer(label string) Explainer {
	name := label
	if name == audit.TopLevel {
		name = ""
	}
	if a.Directories != nil {
		if d := a.Directories.Directory(name); d != nil {
			if e, ok := d.Router().(Explainer); ok {
				return e
			}
		}
	}
	if name == "" {
		return a.Policy
	}
	return nil
}

// markRenew moves a certificate's ARI window into the past (RFC 9773 §4.2),
// so clients polling renewal-info renew it now.
func (a *api) markRenew(r *http.Request, c *store.Certificate) error {
	c.RenewBy = a.now()
	if err := a.Store.UpdateCertificate(r.Context(), c); err != nil {
		return err
	}
	a.record(r, audit.Event{Event: audit.AdminAction, Account: c.AccountID, Names: c.Names, Serial: c.Serial,
		Upstream: c.Upstream, Reason: "early renewal requested", Directory: c.Directory})
	return nil
}

func (a *api) renewNow(w http.ResponseWriter, r *http.Request) {
	c, err := a.certificate(r)
	if err != nil {
		storeFail(w, err, "certificate")
		return
	}
	if err := a.markRenew(r, c); err != nil {
		storeFail(w, err, "certificate")
		return
	}
	writeJSON(w, http.StatusOK, certOf(c, false))
}

// renewUpstreamNow asks for early renewal of every valid certificate one
// upstream issued (after an incident at that CA).
func (a *api) renewUpstreamNow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.upstreamTypes()[name]; !ok {
		fail(w, http.StatusNotFound, "no upstream "+name)
		return
	}
	now, n, cursor := a.now(), 0, ""
	for {
		page, err := a.Store.List(r.Context(), store.KindCertificate, cursor, 500)
		if err != nil {
			storeFail(w, err, "listing")
			return
		}
		for _, id := range page.IDs {
			c, err := a.Store.GetCertificate(r.Context(), id)
			if err != nil || c.Upstream != name || !c.RevokedAt.IsZero() || !c.NotAfter.After(now) {
				continue
			}
			if err := a.markRenew(r, c); err != nil {
				storeFail(w, err, "certificate")
				return
			}
			n++
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	writeJSON(w, http.StatusOK, map[string]int{"marked": n})
}
