package test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// approvalYAML: names under approval.e2e.test issue only after an
// administrator approved them for the account; the rest is issued freely.
const approvalYAML = `upstreams:
  - name: internal
    type: local
policy:
  rules:
    - name: floor3
      match: {domains: ["*.approval.e2e.test"]}
      upstreams: [internal]
      approval: required
  default: {upstreams: [internal]}
`

var approvalRequestRe = regexp.MustCompile(`approval required: request (apr-[0-9a-f]+) for ([a-z0-9.]+) is pending`)

// approvalRec is what `acmebridge approval list|show --json` prints.
type approvalRec struct {
	ID        string   `json:"id"`
	Status    string   `json:"status"`
	Names     []string `json:"names"`
	Rule      string   `json:"rule"`
	Remote    string   `json:"remote"`
	Attempts  int      `json:"attempts"`
	DecidedBy string   `json:"decided_by"`
	Reason    string   `json:"reason"`
}

// requestIn finds the approval request named in a client's output.
func requestIn(t *testing.T, text, name string) string {
	t.Helper()
	m := approvalRequestRe.FindStringSubmatch(text)
	require.NotNil(t, m, "no approval request named in:\n%s", text)
	require.Equal(t, name, m[2])
	return m[1]
}

// TestApprovalLego: lego (the library) is refused with rejectedIdentifier
// naming the request; `acmebridge approval approve` lets its next attempt
// issue, and a renewal is not asked again; `approval deny --reason` puts
// the reason in the next attempt's problem.
func TestApprovalLego(t *testing.T) {
	quietLego(t)
	s := startServer(t, approvalYAML)
	c, _ := legoAccount(t, s, "lego-approval@example.com", nil)

	_, err := legoObtainErr(c, "p1.approval.e2e.test")
	pd := requireProblem(t, err, "rejectedIdentifier")
	id := requestIn(t, pd.Detail, "p1.approval.e2e.test")
	require.Contains(t, pd.Detail, "acmebridge approval approve "+id)

	var pending listing[approvalRec]
	s.adminJSON(t, &pending, "approval", "list", "--status", "pending")
	require.Len(t, pending.Items, 1)
	require.Equal(t, id, pending.Items[0].ID)
	require.Equal(t, "floor3", pending.Items[0].Rule)
	require.Equal(t, "127.0.0.1", pending.Items[0].Remote)

	var decided approvalRec
	s.adminJSON(t, &decided, "approval", "approve", "--reason", "ticket 12", id)
	require.Equal(t, "approved", decided.Status)
	require.Equal(t, "admin", decided.DecidedBy)
	res := legoObtain(t, c, "p1.approval.e2e.test")
	s.verifyChain(t, res.Certificate, []string{"p1.approval.e2e.test"})
	legoObtain(t, c, "p1.approval.e2e.test") // a renewal: not asked again
	legoObtain(t, c, "free.e2e.test")        // a rule without approval

	_, err = legoObtainErr(c, "p2.approval.e2e.test")
	id2 := requestIn(t, requireProblem(t, err, "rejectedIdentifier").Detail, "p2.approval.e2e.test")
	s.admin(t, "approval", "deny", "--reason", "p2 is not on floor 3", id2)
	_, err = legoObtainErr(c, "p2.approval.e2e.test")
	pd = requireProblem(t, err, "rejectedIdentifier")
	require.Contains(t, pd.Detail, "approval denied: request "+id2)
	require.Contains(t, pd.Detail, "p2 is not on floor 3")

	lines := readAudit(t, s.AuditFile())
	for _, ev := range []string{"approval.requested", "approval.approved", "approval.denied"} {
		require.NotEqual(t, -1, findAudit(lines, 0, func(e auditEvent) bool { return e.Event == ev }), "no %s:\n%s", ev, dumpAudit(lines))
	}
}

// TestApprovalCLIs: the lego CLI and certbot (Debian's 2.1) runs are
// refused naming the request (certbot 2.1 prints a Python AttributeError
// for a refused newOrder: the problem is in its log); after `acmebridge
// approval approve` their next ordinary run issues; after a deny the
// reason is in the next run's output (certbot: its log).
func TestApprovalCLIs(t *testing.T) {
	legoBin := requireTool(t, "lego")
	certbot := requireTool(t, "certbot")
	s := startServer(t, approvalYAML)

	t.Run("lego", func(t *testing.T) {
		const name = "lego.approval.e2e.test"
		path := filepath.Join(t.TempDir(), "lego")
		env := toolEnv("LEGO_CA_CERTIFICATES=" + s.CAFile)
		args := []string{"--server", s.DirectoryURL, "--path", path, "--email", "lego-cli@example.com", "--accept-tos",
			"--domains", name, "--http", "--http.port", "127.0.0.1:" + itoa(s.HTTPPort), "run"}
		out, err := runToolErr(t, env, s.Dir, legoBin, args...)
		require.Error(t, err, out)
		t.Logf("lego's output for the refusal:\n%s", out)
		id := requestIn(t, out, name)
		s.admin(t, "approval", "approve", id)
		runTool(t, env, s.Dir, legoBin, args...)
		chain, err := os.ReadFile(filepath.Join(path, "certificates", name+".crt"))
		require.NoError(t, err)
		s.verifyChain(t, chain, []string{name})

		const denied = "lego2.approval.e2e.test"
		args[len(args)-5] = denied
		out, err = runToolErr(t, env, s.Dir, legoBin, args...)
		require.Error(t, err, out)
		s.admin(t, "approval", "deny", "--reason", "not a floor 3 device", requestIn(t, out, denied))
		out, err = runToolErr(t, env, s.Dir, legoBin, args...)
		require.Error(t, err, out)
		require.Contains(t, out, "not a floor 3 device")
	})

	t.Run("certbot", func(t *testing.T) {
		const name = "certbot.approval.e2e.test"
		dir := t.TempDir()
		env := toolEnv("REQUESTS_CA_BUNDLE=" + s.CAFile)
		logFile := filepath.Join(dir, "logs", "letsencrypt.log")
		logOnFailure(t, logFile)
		certonly := func(n string) (string, error) {
			_ = os.Remove(logFile) // certbot appends: keep this run's log alone
			return runToolErr(t, env, dir, certbot, "certonly", "--server", s.DirectoryURL, "-d", n,
				"--agree-tos", "-m", "x@example.com", "--non-interactive", "--no-eff-email",
				"--standalone", "--http-01-port", itoa(s.HTTPPort), "--http-01-address", "127.0.0.1",
				"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"))
		}
		// What certbot shows, and its log (where 2.1 writes the problem).
		seen := func(out string) string {
			b, _ := os.ReadFile(logFile)
			return out + "\n" + string(b)
		}
		out, err := certonly(name)
		require.Error(t, err, out)
		// certbot 2.1 shows "AttributeError: can't set attribute" here, the
		// problem only in its log (README, Approvals).
		t.Logf("certbot's output for the refusal:\n%s", out)
		id := requestIn(t, seen(out), name)
		s.admin(t, "approval", "approve", id)
		out, err = certonly(name)
		require.NoError(t, err, out)
		chain, err := os.ReadFile(filepath.Join(dir, "config", "live", name, "fullchain.pem"))
		require.NoError(t, err)
		s.verifyChain(t, chain, []string{name})

		const denied = "certbot2.approval.e2e.test"
		out, err = certonly(denied)
		require.Error(t, err, out)
		s.admin(t, "approval", "deny", "--reason", "certbot2 was retired", requestIn(t, seen(out), denied))
		out, err = certonly(denied)
		require.Error(t, err, out)
		require.Contains(t, seen(out), "certbot2 was retired")
	})
}

// TestApprovalNotified: an approval request and its decision reach a
// webhook receiver (signed, once per event ID) and the decision is mailed
// to the account's contact and the administrator over STARTTLS; so do a
// revocation (certificate.revoked) and an order whose validation failed
// (order.failed).
func TestApprovalNotified(t *testing.T) {
	quietLego(t)
	dir := t.TempDir()
	hook := &hookReceiver{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	smtpd := testutil.StartSMTP(t, dir)
	secretFile := filepath.Join(dir, "hook.secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(e2eWebhookSecret+"\n"), 0o600))
	pwFile := filepath.Join(dir, "smtp.password")
	require.NoError(t, os.WriteFile(pwFile, []byte(smtpd.Password), 0o600))
	s := startServer(t, approvalYAML+fmt.Sprintf(`notifications:
  webhooks:
    - {name: ops, url: %q, secret_file: %q}
  email:
    smtp: {addr: %q, username: %q, password_file: %q, starttls: required, ca_file: %q}
    from: acmebridge@example.com
    admins: [pki@example.com]
  retry: {initial: 200ms, max: 1s, timeout: 2s}
`, hs.URL, secretFile, smtpd.Addr, smtpd.User, pwFile, smtpd.CAFile))
	c, _ := legoAccount(t, s, "requester@example.com", nil)

	_, err := legoObtainErr(c, "p1.approval.e2e.test")
	id := requestIn(t, requireProblem(t, err, "rejectedIdentifier").Detail, "p1.approval.e2e.test")
	require.True(t, waitFor(20*time.Second, func() bool { return len(hook.of("approval.requested")) == 1 }),
		"approval.requested delivered")
	s.admin(t, "approval", "approve", "--reason", "ticket 7", id)
	require.True(t, waitFor(20*time.Second, func() bool {
		return len(hook.of("approval.approved")) == 1 && len(smtpd.Mails()) >= 2
	}), "approval.approved delivered and mailed; %d mails", len(smtpd.Mails()))
	res := legoObtain(t, c, "p1.approval.e2e.test")

	// certificate.revoked: lego revokes what it got.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, c.Certificate.Revoke(ctx, res.Certificate))
	// order.failed: an http-01 challenge nobody answers makes the order
	// invalid (x/crypto/acme, no responder on the validation port).
	xc := &acme.Client{Key: newECKey(t), DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-notify"}
	_, err = xc.Register(ctx, &acme.Account{}, acme.AcceptTOS)
	require.NoError(t, err)
	o, err := xc.AuthorizeOrder(ctx, acme.DomainIDs("nobody-answers.e2e.test"))
	require.NoError(t, err)
	z, err := xc.GetAuthorization(ctx, o.AuthzURLs[0])
	require.NoError(t, err)
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			_, err = xc.Accept(ctx, ch)
			require.NoError(t, err)
		}
	}
	_, err = xc.WaitOrder(ctx, o.URI)
	require.Error(t, err, "the order fails")
	require.True(t, waitFor(20*time.Second, func() bool {
		return len(hook.of("certificate.revoked")) == 1 && len(hook.of("order.failed")) == 1
	}), "certificate.revoked and order.failed delivered; got %d, %d", len(hook.of("certificate.revoked")), len(hook.of("order.failed")))
	require.Equal(t, []string{"nobody-answers.e2e.test"}, hook.of("order.failed")[0].Data.Names)
	time.Sleep(2 * time.Second) // room for a duplicate to show up

	hook.requireOnce(t)
	require.Equal(t, []string{"p1.approval.e2e.test"}, hook.of("approval.approved")[0].Data.Names)
	to := map[string]bool{}
	for _, m := range smtpd.Mails() {
		require.True(t, m.TLS, "sent over STARTTLS")
		if strings.Contains(m.Data, "p1.approval.e2e.test") && strings.Contains(strings.ToLower(m.Data), "approved") {
			to[strings.Join(m.To, ",")] = true
		}
	}
	require.True(t, to["requester@example.com"], "the requester is mailed: %v", smtpd.Mails())
	require.True(t, to["pki@example.com"], "the administrator is mailed: %v", smtpd.Mails())
}

// TestApprovalExpiresAudited: a request no administrator answers within
// orders.approval_ttl is marked expired by the running server's sweep
// (retention.sweep_interval), written to the audit log as approval.expired
// and sent to the webhook, once, without any client coming back;
// `approval show` says expired.
func TestApprovalExpiresAudited(t *testing.T) {
	quietLego(t)
	hook := &hookReceiver{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(e2eWebhookSecret+"\n"), 0o600))
	s := startServer(t, approvalYAML+fmt.Sprintf(`orders:
  approval_ttl: 2s
retention:
  sweep_interval: 1s
notifications:
  webhooks:
    - {name: ops, url: %q, secret_file: %q}
  retry: {initial: 200ms, max: 1s, timeout: 2s}
`, hs.URL, secretFile))
	c, _ := legoAccount(t, s, "lego-expiry@example.com", nil)
	_, err := legoObtainErr(c, "late.approval.e2e.test")
	id := requestIn(t, requireProblem(t, err, "rejectedIdentifier").Detail, "late.approval.e2e.test")

	expiredEvents := func() []auditEvent {
		var out []auditEvent
		for _, l := range readAudit(t, s.AuditFile()) {
			if l.E.Event == "approval.expired" {
				out = append(out, l.E)
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(expiredEvents()) > 0 }, 15*time.Second, 100*time.Millisecond,
		"no approval.expired in the audit log")
	time.Sleep(2500 * time.Millisecond) // two more sweeps
	got := expiredEvents()
	require.Len(t, got, 1, "audited once: %v", got)
	require.True(t, got[0].hasName("late.approval.e2e.test"))
	require.Contains(t, got[0].Reason, "no administrator decided by")
	var shown approvalRec
	s.adminJSON(t, &shown, "approval", "show", id)
	require.Equal(t, "expired", shown.Status)
	require.True(t, waitFor(20*time.Second, func() bool { return len(hook.of("approval.expired")) == 1 }),
		"approval.expired delivered")
	require.Equal(t, []string{"late.approval.e2e.test"}, hook.of("approval.expired")[0].Data.Names)
}
