package configs

import "time"

// Retention says how long records that ended are kept: orders and
// authorizations after they ended, certificates after they expired. It is
// on by default, in the quickstart and in a file that omits the section;
// 0 keeps that kind for good. Accounts, EAB keys and approval requests are
// always kept; the audit log, not the store, is the permanent record of
// every issuance. A background sweep on every replica removes what is due
// (removal is idempotent, so replicas sharing a store do not conflict).
type Retention struct {
	// Orders is how long an order, or an authorization, is kept after it
	// ended. An order ends at its expires (RFC 8555 §7.1.3: a pending order
	// expires then, and issuance gives up by then), so one that finished
	// earlier is kept until its expires plus this; an authorization ends at
	// the latest expires of it and of the orders made with it (they are
	// reused), so it never leaves before an order naming it. One still in
	// processing, or with an issuance or validation job, is kept and
	// looked at again an hour later. 0 keeps them for good.
	Orders Duration `yaml:"orders"`
	// Certificates is how long a certificate, revoked or not, is kept
	// after its NotAfter (revocation status is owed only until then).
	// While it is kept, ARI, revocation and download answer for it even
	// after its order was removed. 0 keeps them for good.
	Certificates Duration `yaml:"certificates"`
	// SweepInterval is how often each replica sweeps (in batches of a few
	// hundred records, repeated while a batch came back full).
	SweepInterval Duration `yaml:"sweep_interval"`
}

// defaultRetention is the retention of every configuration that does not
// say otherwise: 30 days for orders and authorizations, 90 for
// certificates, a sweep every five minutes.
func defaultRetention() Retention {
	return Retention{
		Orders:        Duration(30 * 24 * time.Hour),
		Certificates:  Duration(90 * 24 * time.Hour),
		SweepInterval: Duration(5 * time.Minute),
	}
}

// validateRetention checks the retention section.
func (c *Config) validateRetention(bad func(field, format string, args ...any)) {
	r := c.Retention
	if r.Orders < 0 {
		bad("retention.orders", "must not be negative (0 keeps orders for good)")
	}
	if r.Certificates < 0 {
		bad("retention.certificates", "must not be negative (0 keeps certificates for good)")
	}
	if r.SweepInterval < Duration(time.Second) || r.SweepInterval > Duration(24*time.Hour) {
		bad("retention.sweep_interval", "must be 1s to 24h")
	}
}
