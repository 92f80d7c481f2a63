package notify

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmebridge/acmebridge/store"
)

// statsEvery is how long the outbox's size is cached between scrapes.
const statsEvery = 5 * time.Second

// metrics are the deliveries' measurements.
type metrics struct {
	total *prometheus.CounterVec
	mu    sync.Mutex
	at    time.Time
	stats store.NotificationStats
}

// newMetrics registers acmebridge_notifications_total and the outbox's
// gauges (read from the store, shared by every replica) with reg.
func newMetrics(reg prometheus.Registerer, n *Notifier) *metrics {
	m := &metrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmebridge_notifications_total",
		Help: "Notification delivery attempts by channel (webhook, email) and result: sent, retried (failed, to be retried), " +
			"failed (given up after notifications.retry.max_age), enqueue_failed (the store refused the event)."},
		[]string{"channel", "result"})}
	for _, ch := range []string{ChannelWebhook, ChannelEmail} {
		for _, r := range []string{"sent", "retried", "failed"} {
			m.total.WithLabelValues(ch, r)
		}
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.total,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_notifications_queued",
			Help: "Notifications in the outbox (store-wide): queued, or being delivered."},
			func() float64 { return float64(m.read(n).Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "acmebridge_notifications_oldest_seconds",
			Help: "Age of the oldest notification in the outbox (store-wide), 0 when it is empty."},
			func() float64 {
				s := m.read(n)
				if s.Oldest.IsZero() {
					return 0
				}
				return max(n.now().Sub(s.Oldest).Seconds(), 0)
			}))
	return m
}

// count counts one outcome.
func (m *metrics) count(channel, result string) {
	if m != nil {
		m.total.WithLabelValues(channel, result).Inc()
	}
}

// read returns the outbox's size, cached for statsEvery.
func (m *metrics) read(n *Notifier) store.NotificationStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := time.Now(); now.Sub(m.at) >= statsEvery {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if s, err := n.st.NotificationStats(ctx); err == nil {
			m.stats, m.at = s, now
		}
	}
	return m.stats
}
