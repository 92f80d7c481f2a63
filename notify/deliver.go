package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acmebridge/acmebridge/store"
)

// Headers of a webhook POST.
const (
	// SignatureHeader is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// t + "." + body>", made with the webhook's secret at each attempt,
	// so receivers can refuse an old timestamp (a replay).
	SignatureHeader = "Acmebridge-Signature"
	// EventIDHeader is the event's ID, what receivers de-duplicate on.
	EventIDHeader = "Acmebridge-Event-Id"
)

// workers is how many deliveries a replica runs at once.
const workers = 4

// idlePoll is how often an idle delivery worker looks for due work that
// another replica queued (work queued here wakes it at once).
const idlePoll = time.Second

// Sign returns the SignatureHeader value for body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a SignatureHeader value against body: a v1 signature
// that matches, made no more than tolerance away from now. It is what a
// receiver does (and what the tests do).
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("notify: signature without a timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("notify: signature timestamp outside the tolerance")
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("notify: no matching v1 signature")
}

// Backoff is the wait after the attempt-th failed attempt: initial,
// doubled each time, at most max.
func Backoff(attempt int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}

// Run delivers the outbox until ctx ends, and scans for expiring
// certificates when expiring is not nil.
func (n *Notifier) Run(ctx context.Context, expiring ExpiringFunc) {
	if n == nil {
		return
	}
	for i := range workers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.deliverLoop(ctx, fmt.Sprintf("%s/%d", n.owner, i))
		}()
	}
	if expiring != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.scanLoop(ctx, expiring)
		}()
	}
	<-ctx.Done()
	n.wg.Wait()
}

// deliverLoop claims and delivers notifications one at a time.
func (n *Notifier) deliverLoop(ctx context.Context, owner string) {
	lease := n.cfg.Retry.Timeout.D() + 5*time.Second
	for ctx.Err() == nil {
		no, err := n.st.ClaimNotification(ctx, owner, n.now(), lease)
		if err != nil {
			if !errors.Is(err, store.ErrNoJob) && ctx.Err() == nil {
				n.log.Warn("claiming a notification", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-n.kick:
			case <-time.After(idlePoll):
			}
			continue
		}
		n.deliver(ctx, owner, no)
	}
}

// deliver makes one attempt and records its outcome: acknowledged when
// delivered, retried after Backoff, given up past retry.max_age.
func (n *Notifier) deliver(ctx context.Context, owner string, no *store.Notification) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.Retry.Timeout.D())
	err := n.send(actx, no)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the lease ends and another replica retries
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	if err == nil {
		n.metrics.count(no.Channel, "sent")
		if aerr := n.st.AckNotification(sctx, no.ID, owner); aerr != nil {
			n.log.Warn("acknowledging a delivered notification (it may be sent again)", "id", no.ID, "err", aerr)
		}
		return
	}
	now := n.now()
	if now.Sub(no.CreatedAt) >= n.cfg.Retry.MaxAge.D() {
		n.metrics.count(no.Channel, "failed")
		n.log.Error("notification given up after notifications.retry.max_age", "event", no.Type, "event_id", no.EventID,
			"channel", no.Channel, "target", no.Target, "attempts", no.Attempts, "err", err)
		if aerr := n.st.AckNotification(sctx, no.ID, owner); aerr != nil {
			n.log.Warn("dropping a notification", "id", no.ID, "err", aerr)
		}
		return
	}
	n.metrics.count(no.Channel, "retried")
	wait := Backoff(no.Attempts, n.cfg.Retry.Initial.D(), n.cfg.Retry.Max.D())
	n.log.Info("notification not delivered, retrying", "event", no.Type, "event_id", no.EventID,
		"channel", no.Channel, "target", no.Target, "attempts", no.Attempts, "retry_in", wait, "err", err)
	if rerr := n.st.RetryNotification(sctx, no.ID, owner, now.Add(wait), err.Error()); rerr != nil {
		n.log.Warn("releasing a notification for a retry", "id", no.ID, "err", rerr)
	}
}

// errUnconfigured is the error of a notification whose destination is no
// longer configured: it is retried (a restart may bring it back) until
// max_age.
var errUnconfigured = errors.New("destination not configured")

// send makes one delivery attempt.
func (n *Notifier) send(ctx context.Context, no *store.Notification) error {
	switch no.Channel {
	case ChannelWebhook:
		w, ok := n.hooks[no.Target]
		if !ok {
			return errUnconfigured
		}
		return n.post(ctx, w.URL, n.secrets[w.Name], no)
	case ChannelEmail:
		if n.mailer == nil {
			return errUnconfigured
		}
		return n.mailer.send(ctx, no.Target, no.EventID, no.Body)
	}
	return fmt.Errorf("unknown channel %q", no.Channel)
}

// webhookClient follows no redirect: a 3xx is not a delivery.
var webhookClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// post POSTs the event to a webhook, signed; a 2xx answer is a delivery.
func (n *Notifier) post(ctx context.Context, url string, secret []byte, no *store.Notification) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(no.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "acmebridge-webhook")
	req.Header.Set(EventIDHeader, no.EventID)
	req.Header.Set(SignatureHeader, Sign(secret, no.Body, n.now()))
	resp, err := webhookClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end above; nothing to report
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
