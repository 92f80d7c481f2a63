package proxy

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// approvalEnv: names under corp.example.com need an administrator's
// approval (mode: required or new-names); profile "pre" routes them
// through a rule without approval (to give an account a certificate
// before). The server reads the time from the returned clock.
func approvalEnv(t *testing.T, mode string) (*env, *fakeClock) {
	return newEnvClock(t, func(c *configs.Config) {
		c.Orders.Profiles = map[string]string{"pre": "issued before approvals"}
		c.Policy.Rules = []configs.Rule{
			{Name: "pre", Match: configs.Match{Profiles: []string{"pre"}}, Upstreams: []string{"dev"}},
			{Name: "corp", Match: configs.Match{Domains: []string{"*.corp.example.com"}}, Upstreams: []string{"dev"}, Approval: mode},
		}
	})
}

var approvalIDRe = regexp.MustCompile(`request (apr-[0-9a-f]+)`)

// refusedForApproval orders names and requires the approval refusal:
// 400 rejectedIdentifier whose detail names the request and what to do.
// It returns the request ID.
func (c *client) refusedForApproval(names ...string) (string, problemDoc) {
	t := c.e.t
	t.Helper()
	p := requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs(names...)}), http.StatusBadRequest, "rejectedIdentifier")
	m := approvalIDRe.FindStringSubmatch(p.Detail)
	require.NotNil(t, m, p.Detail)
	return m[1], p
}

func decide(t *testing.T, e *env, id string, d ra.ApprovalDecision) {
	t.Helper()
	if d.By == "" {
		d.By = "admin"
	}
	_, err := e.srv.RA().DecideApproval(t.Context(), id, d)
	require.NoError(t, err)
}

// TestApprovalRequiredThenIssued: the first order is refused naming a
// pending request (retries refresh the same one, audited once); after
// the approval (audited with who decided) the next order issues, and a
// renewal is never asked again.
func TestApprovalRequiredThenIssued(t *testing.T) {
	e, _ := approvalEnv(t, configs.ApprovalRequired)
	c := e.newClient()
	c.register()
	id, p := c.refusedForApproval("b.corp.example.com", "a.corp.example.com")
	require.Contains(t, p.Detail, "approval required: request "+id+" for a.corp.example.com, b.corp.example.com is pending")
	require.Contains(t, p.Detail, "acmebridge approval approve "+id)
	require.Len(t, p.Subproblems, 2)

	again, _ := c.refusedForApproval("a.corp.example.com", "b.corp.example.com")
	require.Equal(t, id, again, "a retry refreshes the same request")
	r, err := e.st.GetApproval(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.ApprovalPending, r.Status)
	require.Equal(t, 2, r.Attempts)
	require.Equal(t, "192.0.2.1", r.Remote)
	require.Equal(t, "corp", r.Rule)
	require.Len(t, e.audit.of(audit.ApprovalRequested), 1)

	decide(t, e, id, ra.ApprovalDecision{Approve: true, Reason: "ticket 42"})
	ev := e.audit.of(audit.ApprovalApproved)
	require.Len(t, ev, 1)
	require.Equal(t, "admin", ev[0].Actor)
	require.Equal(t, id, ev[0].Approval)

	c.issued("a.corp.example.com", "b.corp.example.com")
	c.issued("a.corp.example.com") // a renewal (and a subset) asks nothing
	require.Len(t, e.audit.of(audit.ApprovalRequested), 1)
}

// TestApprovalDeniedReasonShown: a denial's reason and the request reach
// the client in the next attempt's problem detail.
func TestApprovalDeniedReasonShown(t *testing.T) {
	e, _ := approvalEnv(t, configs.ApprovalRequired)
	c := e.newClient()
	c.register()
	id, _ := c.refusedForApproval("p.corp.example.com")
	decide(t, e, id, ra.ApprovalDecision{By: "admin:ops", Reason: "printers get names under floor3"})
	_, p := c.refusedForApproval("p.corp.example.com")
	require.Contains(t, p.Detail, "approval denied: request "+id)
	require.Contains(t, p.Detail, "printers get names under floor3")
	require.Equal(t, "admin:ops", e.audit.of(audit.ApprovalDenied)[0].Actor)
	// Reversed: approved after all.
	decide(t, e, id, ra.ApprovalDecision{Approve: true})
	c.issued("p.corp.example.com")
}

// TestApprovalIsTheAccounts: another account, and a request recorded for
// the account in another directory, never use an approval.
func TestApprovalIsTheAccounts(t *testing.T) {
	e, _ := approvalEnv(t, configs.ApprovalRequired)
	owner, other := e.newClient(), e.newClient()
	owner.register()
	other.register()
	id, _ := owner.refusedForApproval("a.corp.example.com")
	decide(t, e, id, ra.ApprovalDecision{Approve: true, Pattern: "*.corp.example.com"})
	owner.issued("a.corp.example.com")

	otherID, _ := other.refusedForApproval("a.corp.example.com")
	require.NotEqual(t, id, otherID)

	// An approved request of this account recorded in another directory.
	acct := other.kid[len(other.url(pathAccount)):]
	forged := &store.ApprovalRequest{ID: "apr-forged", Directory: "devices", AccountID: acct, Names: []string{"z.corp.example.com"},
		Rule: "corp", Status: store.ApprovalApproved, FirstAttempt: time.Now(), LastAttempt: time.Now(), PendingUntil: time.Now().Add(time.Hour)}
	require.NoError(t, e.st.PutApproval(t.Context(), forged))
	other.refusedForApproval("z.corp.example.com")
}

// TestApprovalExpires: an approval with an expiry, and a pending request
// left unanswered past orders.approval_ttl, ask again.
func TestApprovalExpires(t *testing.T) {
	e, clk := approvalEnv(t, configs.ApprovalRequired)
	c := e.newClient()
	c.register()
	id, _ := c.refusedForApproval("a.corp.example.com")
	clk.add(8 * 24 * time.Hour) // past the default 7 days
	r, err := e.srv.RA().Approval(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.ApprovalExpired, r.Status)
	again, _ := c.refusedForApproval("a.corp.example.com")
	require.Equal(t, id, again)
	require.Len(t, e.audit.of(audit.ApprovalRequested), 2, "an expired request reopens")
	expired := e.audit.of(audit.ApprovalExpired)
	require.Len(t, expired, 1, "the expiry is audited before the request reopens")
	require.Equal(t, id, expired[0].Approval)
	require.Contains(t, expired[0].Reason, "no administrator decided by")

	decide(t, e, id, ra.ApprovalDecision{Approve: true, Expires: clk.now().Add(time.Hour)})
	c.issued("a.corp.example.com")
	clk.add(2 * time.Hour)
	r, err = e.srv.RA().Approval(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.ApprovalExpired, r.Status, "an approval past its expiry shows expired before any sweep")
	c.refusedForApproval("a.corp.example.com")
	require.Len(t, e.audit.of(audit.ApprovalRequested), 3, "an approval that ended asks again")
	expired = e.audit.of(audit.ApprovalExpired)
	require.Len(t, expired, 2)
	require.Contains(t, expired[1].Reason, "the approval by admin ended at")

	_, err = e.srv.RA().DecideApproval(t.Context(), id, ra.ApprovalDecision{Approve: true, By: "admin", Expires: clk.now().Add(-time.Minute)})
	require.ErrorContains(t, err, "in the past")
}

// TestApprovalExpirySweep: the sweep marks a request left unanswered past
// orders.approval_ttl expired and audits approval.expired once, however
// often it runs; the account's next order then opens it again without a
// second expiry event.
func TestApprovalExpirySweep(t *testing.T) {
	e, clk := approvalEnv(t, configs.ApprovalRequired)
	c := e.newClient()
	c.register()
	id, _ := c.refusedForApproval("s.corp.example.com")
	n, err := e.srv.RA().ExpireApprovals(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due yet")

	clk.add(8 * 24 * time.Hour)
	for _, want := range []int{1, 0} {
		n, err = e.srv.RA().ExpireApprovals(t.Context())
		require.NoError(t, err)
		require.Equal(t, want, n)
	}
	stored, err := e.st.GetApproval(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.ApprovalExpired, stored.Status, "stored expired, not only shown so")
	expired := e.audit.of(audit.ApprovalExpired)
	require.Len(t, expired, 1)
	require.Equal(t, id, expired[0].Approval)
	require.Equal(t, []string{"s.corp.example.com"}, expired[0].Names)

	again, _ := c.refusedForApproval("s.corp.example.com")
	require.Equal(t, id, again)
	require.Len(t, e.audit.of(audit.ApprovalRequested), 2)
	require.Len(t, e.audit.of(audit.ApprovalExpired), 1, "swept once, not audited again at the next order")
}

// TestApprovalPattern: an approval for a pattern covers the account's
// later names matching it under the same rule, not a wildcard
// certificate; a pattern must cover the request and not be too broad.
func TestApprovalPattern(t *testing.T) {
	e, _ := approvalEnv(t, configs.ApprovalRequired)
	c := e.newClient()
	c.register()
	id, _ := c.refusedForApproval("p1.floor3.corp.example.com")
	for _, bad := range []string{"*.floor4.corp.example.com", "*.com", "p1.floor3.corp.example.com"} {
		_, err := e.srv.RA().DecideApproval(t.Context(), id, ra.ApprovalDecision{Approve: true, By: "admin", Pattern: bad})
		require.Error(t, err, bad)
	}
	decide(t, e, id, ra.ApprovalDecision{Approve: true, Pattern: "*.floor3.corp.example.com"})
	c.issued("p2.floor3.corp.example.com")
	c.refusedForApproval("p2.floor4.corp.example.com")
	c.refusedForApproval("*.floor3.corp.example.com")
}

// TestApprovalNewNames: with new-names, a name the account already holds
// a certificate for is not asked; a new one is.
func TestApprovalNewNames(t *testing.T) {
	e, _ := approvalEnv(t, configs.ApprovalNewNames)
	c := e.newClient()
	c.register()
	// Issued under the rule without approval (profile "pre").
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("held.corp.example.com"), "profile": "pre"})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	for _, az := range o.Authorizations {
		a := decode[authzJSON](t, c.post(az, nil))
		require.Equal(t, http.StatusOK, c.post(a.Challenges[0].URL, struct{}{}).Code)
	}
	rec = c.post(o.Finalize, map[string]string{"csr": b64(finalizeCSR(t, "held.corp.example.com"))})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "valid", decode[orderJSON](t, rec).Status)

	c.issued("held.corp.example.com")
	_, p := c.refusedForApproval("held.corp.example.com", "new.corp.example.com")
	require.Contains(t, p.Detail, "for new.corp.example.com is pending", "only the new name is asked")
	other := e.newClient()
	other.register()
	other.refusedForApproval("held.corp.example.com")
}
