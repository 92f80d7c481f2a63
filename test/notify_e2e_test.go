package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
	"github.com/acmebridge/acmebridge/notify"
)

const e2eWebhookSecret = "e2e-webhook-secret-0123456789"

// hookReceiver is a webhook endpoint: 503 while down; otherwise it checks
// the signature and keeps each delivery.
type hookReceiver struct {
	mu      sync.Mutex
	down    bool
	refused int
	got     []notify.Event
	bad     []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		h.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := notify.Verify([]byte(e2eWebhookSecret), body, r.Header.Get(notify.SignatureHeader), time.Now(), time.Minute); err != nil {
		h.bad = append(h.bad, err.Error())
	}
	var ev notify.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.ID != r.Header.Get(notify.EventIDHeader) {
		h.bad = append(h.bad, "malformed delivery: "+string(body))
	}
	h.got = append(h.got, ev)
}

// requireOnce requires every delivery so far to be well signed and formed,
// and every event ID to have arrived once.
func (h *hookReceiver) requireOnce(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Empty(t, h.bad)
	seen := map[string]int{}
	for _, e := range h.got {
		seen[e.ID]++
	}
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// of returns the deliveries of an event type.
func (h *hookReceiver) of(typ string) []notify.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []notify.Event
	for _, e := range h.got {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestNotificationsE2E: two replicas on Redis send webhooks and mail.
// certificate.issued is queued while the receiver answers 503 and the
// replica that queued it is killed with SIGKILL; the other replica
// delivers it once the receiver is back, once, signed. A certificate of a
// two-minute CA enters the 7d and 2d windows of the unrenewed-expiry
// definition within a minute: certificate.expiring reaches the webhook
// once per window and the SMTP server (STARTTLS, AUTH PLAIN) mails the
// account's contact and the administrator.
func TestNotificationsE2E(t *testing.T) {
	rd := startRedis(t, false)
	dir := t.TempDir()
	hook := &hookReceiver{down: true}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	smtpd := testutil.StartSMTP(t, dir)
	secretFile := filepath.Join(dir, "hook.secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(e2eWebhookSecret+"\n"), 0o600))
	pwFile := filepath.Join(dir, "smtp.password")
	require.NoError(t, os.WriteFile(pwFile, []byte(smtpd.Password), 0o600))
	extra := fmt.Sprintf(`policy:
  default:
    upstreams: [short]
notifications:
  webhooks:
    - name: ops
      url: %q
      secret_file: %q
  email:
    smtp: {addr: %q, username: %q, password_file: %q, starttls: required, ca_file: %q}
    from: acmebridge@example.com
    admins: [pki@example.com]
  retry: {initial: 200ms, max: 1s, timeout: 2s}
  expiry_scan: 1s
`, hs.URL, secretFile, smtpd.Addr, smtpd.User, pwFile, smtpd.CAFile)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Extra: extra,
		Upstreams: fmt.Sprintf("  - name: short\n    type: local\n    local: {dir: %q, validity: 2m}\n", filepath.Join(dir, "short-ca"))})
	useTestDNSForLego(t, rs.DNS)

	u := rs.register(t, "owner@example.com")
	c := rs.legoClient(t, u, 60*time.Second)
	rs.useDNS01(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	r := obtain(ctx, c, []string{"notify.e2e.test"})
	cancel()
	require.NoError(t, r.err)

	// Queued and refused while the receiver is down; then the replica
	// holding it may be killed mid-retry: nothing is lost.
	require.True(t, waitFor(10*time.Second, func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.refused >= 2
	}), "the webhook is tried while it answers 503")
	rs.Replicas[0].Kill9(t)
	hook.setDown(false)
	require.True(t, waitFor(30*time.Second, func() bool { return len(hook.of("certificate.issued")) > 0 }),
		"certificate.issued delivered by the surviving replica")

	// The expiry windows: 7d at 2/9 of the lifetime left, 2d at 1/9.
	require.True(t, waitFor(90*time.Second, func() bool {
		return len(hook.of("certificate.expiring")) >= 2 && len(smtpd.Mails()) >= 4
	}), "certificate.expiring for both windows, webhook and mail; got %d webhooks, %d mails",
		len(hook.of("certificate.expiring")), len(smtpd.Mails()))
	time.Sleep(3 * time.Second) // room for a duplicate to show up

	hook.requireOnce(t)
	issued := hook.of("certificate.issued")
	require.Len(t, issued, 1)
	require.Equal(t, []string{"notify.e2e.test"}, issued[0].Data.Names)
	within := map[string]bool{}
	for _, e := range hook.of("certificate.expiring") {
		within[e.Data.Within] = true
		require.Equal(t, []string{"notify.e2e.test"}, e.Data.Names)
	}
	require.Equal(t, map[string]bool{"7d": true, "2d": true}, within)

	to := map[string]int{}
	for _, m := range smtpd.Mails() {
		require.True(t, m.TLS, "sent over STARTTLS")
		require.Equal(t, smtpd.User, m.User, "authenticated")
		require.Contains(t, m.Data, "Subject: [acmebridge] Certificate for notify.e2e.test expires within")
		to[strings.Join(m.To, ",")]++
	}
	require.Equal(t, map[string]int{"owner@example.com": 2, "pki@example.com": 2}, to)
}

// startHook starts a webhook receiver for a test and returns it with the
// notifications section that sends every event to it.
func startHook(t *testing.T) (*hookReceiver, string) {
	t.Helper()
	hook := &hookReceiver{}
	hs := httptest.NewServer(hook)
	t.Cleanup(hs.Close)
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(e2eWebhookSecret+"\n"), 0o600))
	return hook, fmt.Sprintf(`notifications:
  webhooks:
    - {name: ops, url: %q, secret_file: %q}
  retry: {initial: 200ms, max: 1s, timeout: 2s}
`, hs.URL, secretFile)
}
