package test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestApprovalDashboardButton: lego is refused for a name needing
// approval; in headless chromium an operator signs in to the dashboard,
// sees the request in the queue and clicks Approve (the form posts the
// session's CSRF token, never the admin token); lego's next attempt
// issues, and the audit log names who decided.
func TestApprovalDashboardButton(t *testing.T) {
	_, err := os.Stat(chromiumPath)
	require.NoError(t, err, "chromium is installed by `make deps` (apt-get install chromium)")
	quietLego(t)
	s := startServer(t, approvalYAML)
	c, _ := legoAccount(t, s, "dash-approval@example.com", nil)
	const name = "dash.approval.e2e.test"
	_, err = legoObtainErr(c, name)
	id := requestIn(t, requireProblem(t, err, "rejectedIdentifier").Detail, name)

	token, err := os.ReadFile(s.TokenFile())
	require.NoError(t, err)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, browserTimeout)
	defer tcancel()

	row := "#approval-" + id
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(s.AdminURL+"/dashboard"),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(token))),
		chromedp.Submit(chromedp.ID("login-form")),
		chromedp.WaitVisible(chromedp.ID("approval-queue")),
		chromedp.WaitVisible(chromedp.CSS(row)),
	))
	page, err := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	require.Contains(t, page, name)
	require.NotContains(t, page, strings.TrimSpace(string(token)), "the admin token is never in the page")
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS(row+` input[name="reason"]`), "approved in the browser"),
		chromedp.Click(chromedp.CSS(row+" button.approve")),
		chromedp.WaitVisible(chromedp.ID("approvals-empty")),
	))

	var decided approvalRec
	s.adminJSON(t, &decided, "approval", "show", id)
	require.Equal(t, "approved", decided.Status)
	require.Equal(t, "admin", decided.DecidedBy)
	require.Equal(t, "approved in the browser", decided.Reason)
	res := legoObtain(t, c, name)
	s.verifyChain(t, res.Certificate, []string{name})
}
