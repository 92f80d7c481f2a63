package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/audit"
	"github.com/acmebridge/acmebridge/configs"
	itestutil "github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/notify"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

const secret = "0123456789abcdef-webhook-secret"

func TestSignVerify(t *testing.T) {
	body := []byte(`{"id":"ev_1"}`)
	now := time.Unix(1700000000, 0)
	h := notify.Sign([]byte(secret), body, now)
	require.True(t, strings.HasPrefix(h, "t=1700000000,v1="), h)
	require.NoError(t, notify.Verify([]byte(secret), body, h, now.Add(time.Minute), 5*time.Minute))
	require.Error(t, notify.Verify([]byte("another secret.."), body, h, now, 5*time.Minute), "another key")
	require.Error(t, notify.Verify([]byte(secret), []byte(`{"id":"ev_2"}`), h, now, 5*time.Minute), "another body")
	require.Error(t, notify.Verify([]byte(secret), body, h, now.Add(10*time.Minute), 5*time.Minute), "a replay")
	require.Error(t, notify.Verify([]byte(secret), body, strings.Replace(h, "t=1700000000", "t=1700000300", 1), now, 10*time.Minute),
		"the timestamp is signed")
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		require.Equal(t, w, notify.Backoff(i+1, time.Second, 10*time.Second), "attempt %d", i+1)
	}
}

// receiver is a webhook endpoint that answers 503 while down, and checks
// each delivery's signature.
type receiver struct {
	mu     sync.Mutex
	down   int
	got    []notify.Event
	bad    []string
	failed int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down > 0 {
		r.down--
		r.failed++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := notify.Verify([]byte(secret), body, req.Header.Get(notify.SignatureHeader), time.Now(), time.Minute); err != nil {
		r.bad = append(r.bad, err.Error())
	}
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get(notify.EventIDHeader) {
		r.bad = append(r.bad, "body or event id header: "+string(body))
	}
	r.got = append(r.got, ev)
}

func (r *receiver) events() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.got...)
}

// setup is a Notifier on a bolt store with one webhook and e-mail to a
// test SMTP server, running until the test ends.
func setup(t *testing.T, rcv *receiver) (*notify.Notifier, store.Store, *itestutil.SMTPServer, *prometheus.Registry) {
	dir := t.TempDir()
	st, err := bolt.Open(bolt.Options{Path: filepath.Join(dir, "db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)
	smtpd := itestutil.StartSMTP(t, dir)
	pw := filepath.Join(dir, "smtp-password")
	require.NoError(t, os.WriteFile(pw, []byte(smtpd.Password), 0o600))
	cfg := configs.Default().Notifications
	cfg.Webhooks = []configs.Webhook{{Name: "ops", URL: hook.URL, SecretEnv: "HOOK_SECRET"}}
	cfg.Email = configs.Email{From: "acmebridge@example.com", Admins: []string{"pki@example.com"},
		SMTP: configs.SMTP{Addr: smtpd.Addr, Username: smtpd.User, PasswordFile: pw, StartTLS: "required", CAFile: smtpd.CAFile}}
	cfg.Retry.Initial, cfg.Retry.Max = configs.Duration(100*time.Millisecond), configs.Duration(200*time.Millisecond)
	reg := prometheus.NewRegistry()
	n, err := notify.New(notify.Options{Config: cfg, Store: st, Owner: "test", Registry: reg,
		Getenv: func(string) string { return secret }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, st, smtpd, reg
}

// TestApprovalDecisionNotified: the audit events the approvals feature
// records (approval.approved, approval.denied, with Account and Names)
// reach the webhook, signed, and are mailed to the account's mailto:
// contacts and the administrators over STARTTLS with AUTH PLAIN; an
// account that opted out gets no mail.
func TestApprovalDecisionNotified(t *testing.T) {
	rcv := &receiver{}
	n, st, smtpd, _ := setup(t, rcv)
	ctx := t.Context()
	now := time.Now()
	require.NoError(t, st.CreateAccount(ctx, &store.Account{ID: "acct1", Status: store.StatusValid, JWK: []byte("{}"),
		KeyThumbprint: "tp1", Contact: []string{"mailto:alice@example.com"}, CreatedAt: now}))
	require.NoError(t, st.CreateAccount(ctx, &store.Account{ID: "acct2", Status: store.StatusValid, JWK: []byte("{}"),
		KeyThumbprint: "tp2", Contact: []string{"mailto:bob@example.com"}, CreatedAt: now, EmailOptOut: true}))
	var log strings.Builder
	tee := n.Tee(audit.New(&log))
	require.NoError(t, tee.Record(audit.Event{Event: audit.ApprovalApproved, Account: "acct1", Names: []string{"printer.corp.example"},
		Actor: "admin"}))
	require.NoError(t, tee.Record(audit.Event{Event: audit.ApprovalDenied, Account: "acct2", Names: []string{"nas.corp.example"},
		Reason: "not ours"}))
	require.NoError(t, tee.Record(audit.Event{Event: audit.ChallengeValid, Account: "acct1"}))
	require.Contains(t, log.String(), `"event":"approval.approved"`, "the audit line is still written")

	require.Eventually(t, func() bool { return len(rcv.events()) == 2 && len(smtpd.Mails()) == 3 }, 10*time.Second, 50*time.Millisecond)
	require.Empty(t, rcv.bad)
	types := map[string]notify.Event{}
	for _, e := range rcv.events() {
		types[e.Type] = e
	}
	require.Equal(t, []string{"printer.corp.example"}, types["approval.approved"].Data.Names)
	require.Equal(t, "acct2", types["approval.denied"].Data.Account)
	to := map[string]string{}
	for _, m := range smtpd.Mails() {
		require.True(t, m.TLS, "STARTTLS")
		require.Equal(t, smtpd.User, m.User, "AUTH PLAIN")
		require.Equal(t, "acmebridge@example.com", m.From)
		require.Len(t, m.To, 1)
		to[m.To[0]] += m.Data
	}
	require.Contains(t, to["alice@example.com"], "Subject: [acmebridge] Approved: printer.corp.example")
	require.NotContains(t, to, "bob@example.com", "opted out")
	require.Contains(t, to["pki@example.com"], "Denied: nas.corp.example")
	require.Contains(t, to["pki@example.com"], "Reason: not ours")
}

// TestWebhookRetried: a receiver that answers 503 gets the event again
// after a backoff, once it answers 2xx, and only then; the attempts are
// counted.
func TestWebhookRetried(t *testing.T) {
	rcv := &receiver{down: 3}
	n, st, _, reg := setup(t, rcv)
	require.NoError(t, n.Publish(t.Context(), notify.Event{ID: "ev_up", Type: configs.EventUpstreamDown, Data: notify.Data{Upstream: "vault"}}))
	require.Eventually(t, func() bool { return len(rcv.events()) == 1 }, 10*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, rcv.events(), 1, "delivered once")
	require.Equal(t, "ev_up", rcv.events()[0].ID)
	require.Empty(t, rcv.bad)
	require.Equal(t, 3.0, testutil.ToFloat64(counter(t, reg, "webhook", "retried")))
	stats, err := st.NotificationStats(t.Context())
	require.NoError(t, err)
	require.Zero(t, stats.Queued)
}

// counter finds acmebridge_notifications_total{channel,result}.
func counter(t *testing.T, reg *prometheus.Registry, channel, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "acmebridge_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["channel"] == channel && l["result"] == result {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no acmebridge_notifications_total{channel=%q,result=%q}", channel, result)
	return nil
}
