package store

import "time"

// POSTRead asks ReadPOST for what a signed ACME POST needs from the store
// (RFC 8555 §6.2 to §6.5): the account its "kid" names, the use of its
// nonce, and the record its URL names, in one operation (one Redis round
// trip) rather than one each.
type POSTRead struct {
	// AccountID is the account the "kid" names.
	AccountID string
	// Nonce, when not empty, is used as UseNonce would use it (until
	// NonceUntil), but only if the account exists and its KeyThumbprint is
	// KeyThumbprint: the key the caller verified the request's signature
	// with. Otherwise it is left unused, so a request the account's key
	// did not sign never spends a nonce.
	Nonce         string
	NonceUntil    time.Time
	KeyThumbprint string
	// At most one of OrderID, AuthzID and CertificateID names the record
	// the request's URL names, read in the same step; OrderAuthzs also
	// reads the order's authorizations.
	OrderID       string
	OrderAuthzs   bool
	AuthzID       string
	CertificateID string
}

// POSTRecords is what ReadPOST read, and whether it used the nonce.
type POSTRecords struct {
	// Account is nil when there is no account AccountID.
	Account *Account
	// NonceChecked says the nonce was used (the account exists and its
	// key thumbprint matched); NonceFresh, then, that this was its first
	// use, with UseNonce's guarantee: exactly one call returns true for a
	// nonce, whether through UseNonce or ReadPOST.
	NonceChecked, NonceFresh bool
	// Order, Authz and Certificate are the records asked for, nil when
	// missing or not asked for. Authzs are Order's authorizations that
	// exist, in AuthzIDs order (with OrderAuthzs).
	Order       *Order
	Authzs      []*Authorization
	Authz       *Authorization
	Certificate *Certificate
}
