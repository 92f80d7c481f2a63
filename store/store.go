// Package store defines the state acmebridge keeps and the contract every
// storage driver implements. The contract is the doc comments on Store; the
// suite in store/storetest enforces it on every driver.
//
// Records are plain structs serialised by the driver. Every mutable record has
// a Version: an Update succeeds only when the stored Version equals the one
// passed in (compare-and-set) and then increments it, so two replicas that
// race on the same order cannot both move it.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/acmebridge/acmebridge/core"
)

// Errors returned by drivers. Callers test them with errors.Is.
var (
	// ErrNotFound: no record with that key.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a compare-and-set lost (the Version moved), or a unique key
	// (account key thumbprint, EAB binding, certificate serial) is taken.
	ErrConflict = errors.New("store: conflict")
	// ErrNoJob: ClaimJob found no job due.
	ErrNoJob = errors.New("store: no job due")
)

// Status values shared by accounts, orders, authorizations, challenges and
// certificates (RFC 8555 §7.1.6).
const (
	StatusPending     = "pending"
	StatusReady       = "ready"
	StatusProcessing  = "processing"
	StatusValid       = "valid"
	StatusInvalid     = "invalid"
	StatusDeactivated = "deactivated"
	StatusExpired     = "expired"
	StatusRevoked     = "revoked"
)

// Identifier is an ACME identifier: core.Identifier, the one identifier
// type every package speaks.
type Identifier = core.Identifier

// Account is an ACME account (RFC 8555 §7.1.2).
type Account struct {
	ID      string   `json:"id"`
	Version int64    `json:"version"`
	Status  string   `json:"status"`
	Contact []string `json:"contact,omitempty"`
	// JWK is the account's public key as JSON (RFC 7517).
	JWK []byte `json:"jwk"`
	// KeyThumbprint is the base64url RFC 7638 thumbprint of JWK; unique
	// among accounts.
	KeyThumbprint        string `json:"keyThumbprint"`
	TermsOfServiceAgreed bool   `json:"termsOfServiceAgreed"`
	EABKeyID             string `json:"eabKeyID,omitempty"`
	// Group and Allow are inherited from the EAB key at binding: the
	// account's policy group and the identifier patterns it may order.
	Group       string    `json:"group,omitempty"`
	Allow       []string  `json:"allow,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedFrom string    `json:"createdFrom,omitempty"`
	// Directory is the ACME directory the account was made in ("" the
	// top level); it exists for no other.
	Directory string `json:"directory,omitempty"`
	// EmailOptOut: the account's contacts get no notification mail (set
	// through the admin API).
	EmailOptOut bool `json:"emailOptOut,omitempty"`
}

// Problem is a stored RFC 7807 problem (order or challenge error).
type Problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail"`
	Status      int         `json:"status,omitempty"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []Problem   `json:"subproblems,omitempty"`
}

// Order is an ACME order (RFC 8555 §7.1.3) with acmebridge's routing decision.
type Order struct {
	ID          string       `json:"id"`
	Version     int64        `json:"version"`
	AccountID   string       `json:"accountID"`
	Status      string       `json:"status"`
	Identifiers []Identifier `json:"identifiers"`
	AuthzIDs    []string     `json:"authzIDs"`
	NotBefore   time.Time    `json:"notBefore,omitzero"`
	NotAfter    time.Time    `json:"notAfter,omitzero"`
	Expires     time.Time    `json:"expires"`
	Profile     string       `json:"profile,omitempty"`
	Error       *Problem     `json:"error,omitempty"`
	// UpstreamProfile and MaxValidity come from the policy decision: the
	// profile asked of the upstream and the cap on the lifetime.
	UpstreamProfile string        `json:"upstreamProfile,omitempty"`
	MaxValidity     time.Duration `json:"maxValidity,omitempty"`
	// Rule and Upstreams are the policy decision taken at newOrder.
	Rule      string   `json:"rule,omitempty"`
	Upstreams []string `json:"upstreams,omitempty"`
	// Upstream is the upstream that issued (or is issuing) the certificate.
	Upstream      string    `json:"upstream,omitempty"`
	CSR           []byte    `json:"csr,omitempty"`
	CertificateID string    `json:"certificateID,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	// Replaces is the ID of the certificate this order renews (RFC 9773
	// §5), when the client said so.
	Replaces string `json:"replaces,omitempty"`
	// CAACheckedAt is when acmebridge last checked CAA for the order's
	// route: at finalize, and again by the worker when that is older than
	// orders.caa_max_age.
	CAACheckedAt time.Time `json:"caaCheckedAt,omitzero"`
	// FinalizedAt is when the order was finalized (set with status
	// processing, never changed): what an upstream derives a default
	// validity from, the same on every attempt (upstream.Request.At).
	FinalizedAt time.Time `json:"finalizedAt,omitzero"`
	// Directory is the account's directory ("" the top level).
	Directory string `json:"directory,omitempty"`
	// Delegated says the order's authorizations were created valid without
	// a challenge, by delegated validation under Rule
	// (configs.Rule.DelegatedValidation); finalize and the worker check
	// that the account's EAB key still grants it.
	Delegated bool `json:"delegated,omitempty"`
}

// Challenge is an ACME challenge (RFC 8555 §7.1.5, §8).
type Challenge struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Status    string    `json:"status"`
	Token     string    `json:"token"`
	Validated time.Time `json:"validated,omitzero"`
	// Started is when the current validation attempt began; a challenge
	// left processing by a replica that died is retried after a while.
	Started time.Time `json:"started,omitzero"`
	Error   *Problem  `json:"error,omitempty"`
}

// Authorization is an ACME authorization (RFC 8555 §7.1.4). Its challenges
// live inside it, so a challenge changes with its authorization atomically.
type Authorization struct {
	ID         string      `json:"id"`
	Version    int64       `json:"version"`
	AccountID  string      `json:"accountID"`
	Status     string      `json:"status"`
	Identifier Identifier  `json:"identifier"`
	Wildcard   bool        `json:"wildcard,omitempty"`
	Expires    time.Time   `json:"expires"`
	Challenges []Challenge `json:"challenges"`
	// Directory is the account's directory ("" the top level).
	Directory string `json:"directory,omitempty"`
	// Delegated says the authorization was created valid without a
	// challenge: delegated validation by policy rule DelegatedRule, for an
	// account bound with an EAB key that rule matches. It is never reused
	// for another order.
	Delegated     bool   `json:"delegated,omitempty"`
	DelegatedRule string `json:"delegatedRule,omitempty"`
}

// Certificate is an issued certificate.
type Certificate struct {
	ID        string `json:"id"`
	Version   int64  `json:"version"`
	AccountID string `json:"accountID"`
	OrderID   string `json:"orderID"`
	// Serial is the lower-case hex serial number; unique among certificates.
	Serial    string    `json:"serial"`
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Upstream  string    `json:"upstream"`
	// ChainPEM is the leaf followed by its issuers, PEM encoded.
	ChainPEM []byte `json:"chainPEM"`
	// Alternates are other chains for the same leaf (RFC 8555 §7.4.2).
	Alternates [][]byte `json:"alternates,omitempty"`
	// KeyThumbprint is the SHA-256 of the certificate's SubjectPublicKeyInfo,
	// hex, so a key can be refused as an account key and vice versa.
	KeyThumbprint    string    `json:"keyThumbprint"`
	IssuedAt         time.Time `json:"issuedAt"`
	RevokedAt        time.Time `json:"revokedAt,omitzero"`
	RevocationReason int       `json:"revocationReason,omitempty"`
	// RenewBy, when set by an operator, moves the certificate's ARI
	// renewal window to end at that time (RFC 9773: forced early renewal).
	RenewBy time.Time `json:"renewBy,omitzero"`
	// ReplacedBy is the order that named this certificate in "replaces"
	// (RFC 9773 §5).
	ReplacedBy string `json:"replacedBy,omitempty"`
	// Directory is the directory of the order's account ("" the top
	// level): revocation by the certificate's key and ARI answer only
	// there.
	Directory string `json:"directory,omitempty"`
}

// EABKey is an External Account Binding key (RFC 8555 §7.3.4).
type EABKey struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	// HMACKey is the raw MAC key. It is sealed at rest by the Sealed
	// wrapper, which every driver is opened through.
	HMACKey   []byte    `json:"hmacKey"`
	Group     string    `json:"group,omitempty"`
	Allow     []string  `json:"allow,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	// AccountID is set once, when the key is bound.
	AccountID string    `json:"accountID,omitempty"`
	BoundAt   time.Time `json:"boundAt,omitzero"`
	// Directory is the directory the key binds in ("" the top level);
	// it binds in no other.
	Directory string `json:"directory,omitempty"`
}

// The states of an ApprovalRequest.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
)

// ApprovalRequest is an account's request for names that a policy rule
// (configs.Rule.Approval) lets issue only after an administrator approved
// them. One request stands for one (directory, account, names, rule): the
// ID is derived from them (ra.ApprovalID), so a client retrying its order
// refreshes LastAttempt of the same request.
type ApprovalRequest struct {
	ID        string `json:"id"`
	Version   int64  `json:"version"`
	Directory string `json:"directory,omitempty"`
	AccountID string `json:"accountID"`
	// EABKey and Group are those of the account's EAB key ("" without).
	EABKey string `json:"eabKey,omitempty"`
	Group  string `json:"group,omitempty"`
	// Names are the order's identifier values, sorted.
	Names []string `json:"names"`
	// Rule is the policy rule that asked for approval.
	Rule string `json:"rule"`
	// Remote is the client's address at the last attempt.
	Remote       string    `json:"remote,omitempty"`
	FirstAttempt time.Time `json:"firstAttempt"`
	LastAttempt  time.Time `json:"lastAttempt"`
	// Attempts counts the orders refused for this request.
	Attempts int `json:"attempts"`
	// Status is ApprovalPending, ApprovalApproved, ApprovalDenied or
	// ApprovalExpired.
	Status string `json:"status"`
	// PendingUntil is when a pending request expires unanswered.
	PendingUntil time.Time `json:"pendingUntil"`
	// DecidedBy, DecidedAt and Reason record the decision.
	DecidedBy string    `json:"decidedBy,omitempty"`
	DecidedAt time.Time `json:"decidedAt,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// Expires ends an approval (zero: it does not end).
	Expires time.Time `json:"expires,omitzero"`
	// Pattern, on an approval, also covers the account's later names that
	// match it (policy.MatchDomain), such as "*.floor3.corp.example.com".
	Pattern string `json:"pattern,omitempty"`
}

// Job is a pending issuance: an order in state processing that a worker must
// take to an upstream.
type Job struct {
	OrderID string `json:"orderID"`
	// Attempts counts claims so far.
	Attempts int `json:"attempts"`
	// NotBefore: the job is not due before this time (backoff).
	NotBefore time.Time `json:"notBefore"`
	// Owner and LeaseUntil are set by ClaimJob.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// UpstreamRef is what the upstream needs to resume the same upstream
	// request (an ACME order URL, a Vault request id); stored before the
	// upstream is called so a restart resumes rather than re-issues.
	UpstreamRef string `json:"upstreamRef,omitempty"`
}

// Validation is a challenge validation in flight (RFC 8555 §7.5.1): it is
// recorded when the client asks for the validation, in the same atomic step
// that makes the challenge processing, and removed in the step that
// records the outcome. The replica that runs it holds a lease; once the
// lease has ended (the replica died, or could not record the outcome) any
// replica may claim it and run the validation again, which is safe since
// http-01, dns-01 and tls-alpn-01 look at the same answer every time.
type Validation struct {
	// AuthzID and ChallengeID name the challenge. An authorization has at
	// most one validation job at a time.
	AuthzID     string `json:"authzID"`
	ChallengeID string `json:"challengeID"`
	// KeyAuthorization is what the response must carry (RFC 8555 §8.1),
	// fixed when the client asked: token "." thumbprint of its key.
	KeyAuthorization string `json:"keyAuthorization"`
	// Attempts counts runs: 1 when started, one more per claim.
	Attempts int `json:"attempts"`
	// Owner holds the job until LeaseUntil.
	Owner      string    `json:"owner"`
	LeaseUntil time.Time `json:"leaseUntil"`
}

// Unchanged is a precondition of a write: the record it names must still
// be at Version, neither moved nor gone, or the write fails with
// ErrConflict and changes nothing. A finalize names the authorizations and
// the EAB key it decided on, so a deactivation or a revocation that lands
// while it looks up CAA stops the issuance (ra/finalize.go).
type Unchanged struct {
	// Authz is an authorization's ID, or EABKey an EAB key's ID: one of
	// the two is set.
	Authz, EABKey string
	Version       int64
}

// AuthzUnchanged is the precondition that a stays as read.
func AuthzUnchanged(a *Authorization) Unchanged {
	return Unchanged{Authz: a.ID, Version: a.Version}
}

// EABKeyUnchanged is the precondition that k stays as read.
func EABKeyUnchanged(k *EABKey) Unchanged {
	return Unchanged{EABKey: k.ID, Version: k.Version}
}

// Kind names a record type in admin listings.
type Kind string

// The kinds List accepts.
const (
	KindAccount     Kind = "account"
	KindOrder       Kind = "order"
	KindCertificate Kind = "certificate"
	KindEABKey      Kind = "eab"
	KindApproval    Kind = "approval"
)

// Page is one page of an ordered listing. Next is empty on the last page.
type Page struct {
	IDs  []string
	Next string
}

// Store is the contract every driver implements. All methods are safe for
// concurrent use, and every method that changes state does so atomically:
// either the whole change is stored or none of it.
type Store interface {
	// NonceKey returns the key the server mints nonces under (they carry
	// their expiry and a MAC, so minting one writes nothing): the same for
	// every replica sharing the store, and a new one whenever the store
	// has forgotten which nonces were used (a bolt store: at every start),
	// so a nonce can never be accepted twice.
	NonceKey(ctx context.Context) ([]byte, error)
	// UseNonce records that nonce was used, until the time it expires, and
	// reports whether this is its first use. Across all replicas sharing
	// the store, exactly one call returns true for a given nonce, ever:
	// a record is forgotten only once its nonce expired, or under the floor
	// below.
	//
	// A driver that bounds its record of used nonces (bolt keeps it in
	// memory, Options.MaxUsedNonces) makes room when it is full by raising
	// a floor: it forgets the uses that expire first and from then on
	// refuses (returns false for) every nonce whose until is not after the
	// latest expiry it forgot, used or not. A full record therefore refuses
	// the oldest outstanding nonces, never the first use of a nonce that
	// expires after everything recorded (the freshest one, which a client
	// gets with every answer, badNonce included): filling it cannot lock
	// clients out. A driver without a bound of its own (Redis: one key per
	// use with a TTL; its memory is Redis's) never refuses a first use.
	UseNonce(ctx context.Context, nonce string, until time.Time) (bool, error)
	// ReadPOST reads the account q.AccountID and the record q names and,
	// in the same atomic step, uses q.Nonce (as UseNonce) only if that
	// account exists with KeyThumbprint q.KeyThumbprint: what a signed POST
	// needs before its handler runs, in one operation (see POSTRead). A
	// missing account or record is not an error (nil in the answer).
	ReadPOST(ctx context.Context, q *POSTRead) (*POSTRecords, error)

	// CreateAccount stores a new account. ErrConflict if another account
	// has the same KeyThumbprint. If a.EABKeyID is set, the EAB key is
	// bound to the account in the same atomic step; ErrConflict if that key
	// is already bound, ErrNotFound if it does not exist.
	CreateAccount(ctx context.Context, a *Account) error
	// GetAccount returns the account with that ID or ErrNotFound.
	GetAccount(ctx context.Context, id string) (*Account, error)
	// GetAccountByKey returns the account whose KeyThumbprint is tp.
	GetAccountByKey(ctx context.Context, tp string) (*Account, error)
	// UpdateAccount stores a (compare-and-set on Version; a.Version is
	// incremented on success). If the KeyThumbprint changed, the key index
	// moves with it and ErrConflict is returned if the new key belongs to
	// another account (RFC 8555 §7.3.5).
	UpdateAccount(ctx context.Context, a *Account) error

	// CreateOrder stores a new order and its new authorizations at once.
	// Authorizations whose IDs are listed in o.AuthzIDs but not passed in
	// authzs are existing ones being reused.
	CreateOrder(ctx context.Context, o *Order, authzs []*Authorization) error
	// GetOrder returns the order or ErrNotFound.
	GetOrder(ctx context.Context, id string) (*Order, error)
	// UpdateOrder stores o (compare-and-set on Version).
	UpdateOrder(ctx context.Context, o *Order) error
	// ListOrders lists the IDs of an account's orders, oldest first, in
	// pages of at most limit, starting after the cursor ("" for the start).
	ListOrders(ctx context.Context, accountID, cursor string, limit int) (Page, error)

	// CreateAuthz stores a new authorization on its own, without an order
	// (pre-authorization, RFC 8555 §7.4.1). ErrConflict if the ID exists.
	CreateAuthz(ctx context.Context, a *Authorization) error
	// FindValidAuthz returns the account's most recently validated
	// authorization for the identifier (Wildcard as given) that is valid
	// and expires after now, or ErrNotFound. Drivers index authorizations
	// when UpdateAuthz (or CreateOrder/CreateAuthz) stores them valid, so
	// this is one lookup, not a scan.
	FindValidAuthz(ctx context.Context, accountID string, id Identifier, wildcard bool, now time.Time) (*Authorization, error)
	// GetAuthz returns the authorization or ErrNotFound.
	GetAuthz(ctx context.Context, id string) (*Authorization, error)
	// UpdateAuthz stores a (compare-and-set on Version).
	UpdateAuthz(ctx context.Context, a *Authorization) error

	// PutCertificate stores a new certificate and, in the same atomic step,
	// the order that now points at it (compare-and-set on the order's
	// Version) and removes the order's job. ErrConflict if the serial is
	// taken or the order moved.
	PutCertificate(ctx context.Context, c *Certificate, o *Order) error
	// GetCertificate returns the certificate or ErrNotFound.
	GetCertificate(ctx context.Context, id string) (*Certificate, error)
	// GetCertificateBySerial returns the certificate with that hex serial.
	GetCertificateBySerial(ctx context.Context, serial string) (*Certificate, error)
	// UpdateCertificate stores c (compare-and-set on Version).
	UpdateCertificate(ctx context.Context, c *Certificate) error

	// PutEABKey stores a new EAB key; ErrConflict if the ID exists.
	PutEABKey(ctx context.Context, k *EABKey) error
	// GetEABKey returns the key or ErrNotFound.
	GetEABKey(ctx context.Context, id string) (*EABKey, error)
	// UpdateEABKey stores k (compare-and-set on Version).
	UpdateEABKey(ctx context.Context, k *EABKey) error

	// PutApproval stores a new approval request, lists it last of
	// KindApproval and indexes it under its account, in one write;
	// ErrConflict if the ID exists (another replica created it first).
	PutApproval(ctx context.Context, r *ApprovalRequest) error
	// GetApproval returns the request or ErrNotFound.
	GetApproval(ctx context.Context, id string) (*ApprovalRequest, error)
	// UpdateApproval stores r if the stored Version equals r.Version, then
	// increments r.Version: ErrConflict if it moved, ErrNotFound if it
	// does not exist. A decision is a promise to the administrator and is
	// written durably (as an EAB binding is).
	UpdateApproval(ctx context.Context, r *ApprovalRequest) error
	// AccountApprovals returns the account's approval requests, oldest
	// first, at most limit (positive).
	AccountApprovals(ctx context.Context, accountID string, limit int) ([]*ApprovalRequest, error)

	// EnqueueJob stores the job and, in the same atomic step, the order
	// (compare-and-set on its Version). ErrConflict if the order moved or a
	// job for it exists: this is what makes one finalize win. ErrConflict
	// too, and nothing stored, if a record in unchanged moved or is gone.
	// A job may be enqueued already claimed (Owner, LeaseUntil and Attempts
	// set, as ClaimJob would set them): no one else claims it before
	// LeaseUntil.
	EnqueueJob(ctx context.Context, j *Job, o *Order, unchanged ...Unchanged) error
	// ClaimJob takes the first job that is due at now and not leased (or
	// whose lease ended), sets Owner and LeaseUntil = now+lease, increments
	// Attempts, and returns it. ErrNoJob if none is due. Exactly one caller
	// claims a job while its lease runs.
	ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Job, error)
	// UpdateJob stores j if j.Owner still holds its lease (ErrConflict if
	// not): used to record UpstreamRef, extend the lease, or release the job
	// with a later NotBefore (Owner "" ends the lease).
	UpdateJob(ctx context.Context, j *Job, owner string) error
	// GetJob returns the job for an order or ErrNotFound.
	GetJob(ctx context.Context, orderID string) (*Job, error)
	// DeleteJob removes the job for an order (a job that ended without a
	// certificate). Missing is not an error.
	DeleteJob(ctx context.Context, orderID string) error

	// Validation jobs (see Validation). UpdateAuthz leaves them alone.

	// StartValidation stores a (compare-and-set on Version; a.Version is
	// incremented on success) and, in the same atomic step, v as the
	// validation job of a, replacing any job a had. v.AuthzID must be
	// a.ID; v is leased to v.Owner until v.LeaseUntil. ErrConflict if a
	// moved (nothing is stored), ErrNotFound if a does not exist.
	StartValidation(ctx context.Context, a *Authorization, v *Validation) error
	// ClaimValidation takes the validation job whose lease ended first, if
	// one ended at or before now: it sets Owner and LeaseUntil = now+lease,
	// increments Attempts and returns it. ErrNoJob if none is due. Exactly
	// one caller claims a job while its lease runs. A job whose
	// authorization is gone may be dropped instead of claimed.
	ClaimValidation(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Validation, error)
	// GetValidation returns the validation job of an authorization or
	// ErrNotFound.
	GetValidation(ctx context.Context, authzID string) (*Validation, error)
	// FinishValidation stores a (compare-and-set on Version) and removes
	// its validation job, whoever holds it, in the same atomic step: how
	// the outcome is recorded. ErrConflict if a moved (the job is then
	// left), ErrNotFound if a does not exist.
	FinishValidation(ctx context.Context, a *Authorization) error
	// DeleteValidation removes the validation job of an authorization (a
	// validation that has nothing left to record). Missing is not an
	// error.
	DeleteValidation(ctx context.Context, authzID string) error

	// List lists the IDs of every record of a kind, oldest first (by
	// creation), in pages of at most limit, starting after the opaque
	// cursor ("" for the start). Records that expired (a driver with TTLs)
	// are left out. An unknown kind or a malformed cursor is ErrNotFound.
	// It serves the admin API; filtering by account, state or name is the
	// caller's.
	List(ctx context.Context, kind Kind, cursor string, limit int) (Page, error)
	// ListNewest is List in the reverse order, newest first, with cursors
	// of its own: what a page of "the latest orders" reads without walking
	// the whole listing.
	ListNewest(ctx context.Context, kind Kind, cursor string, limit int) (Page, error)
	// ListExpiring lists the IDs of certificates that are not revoked and
	// whose NotAfter is before the given time, soonest expiry first, in
	// pages as List. Revoking a certificate (UpdateCertificate with
	// RevokedAt set) removes it from this listing.
	ListExpiring(ctx context.Context, before time.Time, cursor string, limit int) (Page, error)

	// PutSecret stores a new named secret (e.g. an upstream ACME account
	// key); ErrConflict if a secret of that name exists, which is left
	// as it was. The first writer wins, so replicas racing to create the
	// same secret all end up using the winner's (read back with
	// GetSecret). Secrets are never overwritten; the Sealed wrapper
	// encrypts them at rest.
	PutSecret(ctx context.Context, name string, value []byte) error
	// GetSecret returns the secret stored under name or ErrNotFound.
	GetSecret(ctx context.Context, name string) ([]byte, error)

	// SpendRates decides a batch of rate-limit spends (GCRA, see SpendAll)
	// at now, atomically across every replica sharing the store: either
	// every spend is allowed and recorded (check-only ones are not), or
	// none is recorded. A bucket's key is kept until its TAT, after which
	// it is full again and may be forgotten. Decisions are in the order of
	// spends.
	SpendRates(ctx context.Context, spends []RateSpend, now time.Time) ([]RateDecision, error)

	// Challenge tokens: the key authorizations acmebridge presents to an
	// upstream ACME CA's http-01 challenges (RFC 8555 §8.3), kept here so
	// that whichever replica the CA's request reaches can answer it. They
	// are short-lived and not secret (the CA fetches them over plain HTTP).

	// PutChallengeToken stores keyAuth under token until ttl from now,
	// replacing any value and expiry the token had. A token must not be
	// empty and ttl must be positive.
	PutChallengeToken(ctx context.Context, token, keyAuth string, ttl time.Duration) error
	// GetChallengeToken returns the key authorization stored under token
	// or ErrNotFound, which is also the answer once its ttl has passed.
	// Expired tokens do not accumulate: a driver without TTLs of its own
	// removes them as it goes.
	GetChallengeToken(ctx context.Context, token string) (string, error)
	// DeleteChallengeToken removes the token. Missing is not an error.
	DeleteChallengeToken(ctx context.Context, token string) error

	// ListJobs returns the order IDs of every issuance job, queued or held
	// under a lease, in no particular order: what a reload that removed an
	// upstream asks before it closes it (jobs name their order, whose
	// route names the upstreams).
	ListJobs(ctx context.Context) ([]string, error)

	// Reload requests: one replica asks every replica sharing the store
	// to re-read its configuration file (`acmebridge reload`); each polls
	// ReloadRequested and reloads when the number grew.

	// PublishReload records a reload request and returns its number, one
	// more than the last (the first is 1).
	PublishReload(ctx context.Context) (int64, error)
	// ReloadRequested returns the number of the latest reload request, 0
	// when none was made.
	ReloadRequested(ctx context.Context) (int64, error)

	// The notification outbox (package notify): at least once delivery
	// with a lease, as for issuance jobs.

	// EnqueueNotifications stores the notifications in one atomic step.
	// One whose ID is queued already, or was acknowledged within
	// NotificationMemory, is left out: enqueueing the same event twice
	// (two replicas, two passes of a scan) queues it once.
	EnqueueNotifications(ctx context.Context, ns []*Notification) error
	// ClaimNotification takes the notification due soonest if it is due at
	// now (NotBefore reached, no lease running), sets Owner and
	// LeaseUntil = now+lease, increments Attempts and returns it. ErrNoJob
	// if none is due. Exactly one caller claims it while its lease runs.
	ClaimNotification(ctx context.Context, owner string, now time.Time, lease time.Duration) (*Notification, error)
	// AckNotification removes the notification owner holds (delivered, or
	// given up) and remembers its ID (see EnqueueNotifications).
	// ErrConflict if owner no longer holds it, ErrNotFound if it is gone.
	AckNotification(ctx context.Context, id, owner string) error
	// RetryNotification releases the notification owner holds until next,
	// recording lastErr. ErrConflict if owner no longer holds it,
	// ErrNotFound if it is gone.
	RetryNotification(ctx context.Context, id, owner string, next time.Time, lastErr string) error
	// NotificationStats returns the outbox's size and oldest entry.
	NotificationStats(ctx context.Context) (NotificationStats, error)

	// Sweep removes records whose retention ended (see Retention), at
	// most limit index entries looked at per call (limit must be
	// positive), with every index entry that names them, in small atomic
	// steps (never one write for the whole batch). It takes now from the
	// caller, so a test clock drives it. Removal is idempotent: replicas
	// sweeping the same store at once remove each record once between
	// them, and a record one of them removed is only skipped by another.
	// The caller calls again while Swept.Examined == limit (a full
	// batch).
	//
	// Kept, whatever their age: accounts, EAB keys, approval requests,
	// secrets; an order in processing or with an issuance job, or one of
	// whose authorizations has a validation job; an authorization with a
	// validation job, or that an order not yet removed was created with
	// (authorizations are reused across orders: one leaves only after the
	// last order naming it). A record not removable when due is looked at
	// again SweepRetry later.
	Sweep(ctx context.Context, now time.Time, r Retention, limit int) (Swept, error)

	// Ping reports whether the store is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Retention says how long records are kept after they ended; a zero
// duration keeps that kind for good. An order ends at its Expires (RFC
// 8555 §7.1.3: a pending one expires then, and the issuance worker gives
// up by then), an authorization at the latest Expires of it and of the
// orders created with it, a certificate at its NotAfter (revoked ones too:
// a CRL or OCSP answer is owed only until then).
type Retention struct {
	// Orders is how long orders and authorizations are kept after they
	// ended.
	Orders time.Duration
	// Certificates is how long certificates are kept after NotAfter.
	Certificates time.Duration
}

// SweepRetry is how long after a Sweep found a due record not removable
// (an order still processing, an authorization an order still names) it
// looks at it again.
const SweepRetry = time.Hour

// SweepBatch is the most records a driver removes in one atomic step of a
// Sweep (one bolt transaction, one Redis script).
const SweepBatch = 128

// Swept counts what one Sweep did.
type Swept struct {
	// Orders, Authorizations and Certificates are the records removed.
	Orders, Authorizations, Certificates int
	// Examined is how many index entries the sweep looked at: the records
	// removed, those found not removable yet (looked at again later) and
	// entries whose record was already gone. A batch is full when it
	// equals the limit.
	Examined int
}

// Removed is the number of records removed.
func (s Swept) Removed() int { return s.Orders + s.Authorizations + s.Certificates }

// Add returns the sum of s and o.
func (s Swept) Add(o Swept) Swept {
	return Swept{Orders: s.Orders + o.Orders, Authorizations: s.Authorizations + o.Authorizations,
		Certificates: s.Certificates + o.Certificates, Examined: s.Examined + o.Examined}
}
