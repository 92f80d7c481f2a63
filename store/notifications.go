package store

import "time"

// Notification is one message of the notification outbox (package notify)
// to one destination: a webhook or an e-mail address. An event that goes
// to three destinations is three notifications with the same EventID,
// which receivers de-duplicate on (delivery is at least once).
type Notification struct {
	// ID is unique in the outbox: the event ID and the destination.
	ID string `json:"id"`
	// EventID names the event; the same for each of its destinations.
	EventID string `json:"eventID"`
	// Type is the event type (certificate.issued, ...).
	Type string `json:"type"`
	// Channel is "webhook" or "email"; Target is the webhook's name or the
	// e-mail address.
	Channel string `json:"channel"`
	Target  string `json:"target"`
	// Body is what is delivered: the webhook's JSON body, or the mail's
	// subject and text (as notify encodes them).
	Body      []byte    `json:"body"`
	CreatedAt time.Time `json:"createdAt"`
	// Attempts counts claims so far.
	Attempts int `json:"attempts"`
	// NotBefore: not due before this time (backoff).
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Owner and LeaseUntil are set by ClaimNotification.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// LastError is the last failed attempt's error, for the operator.
	LastError string `json:"lastError,omitempty"`
}

// NotificationStats is the size of the outbox: how many notifications it
// holds (queued or leased) and when the oldest was enqueued (zero when
// empty).
type NotificationStats struct {
	Queued int
	Oldest time.Time
}

// NotificationMemory is how long an acknowledged notification's ID is
// remembered, so EnqueueNotifications does not queue it again: events a
// scan finds again and again (a certificate expiring) are derived with the
// same ID on every replica and every pass.
const NotificationMemory = 30 * 24 * time.Hour
