// Package audit writes and reads acmebridge's audit log: one JSON line per
// security-relevant event (accounts, EAB bindings, orders and policy
// decisions, validations, issuance, revocation, admin actions, refusals).
// A line is written before the response that depends on it; it never holds
// a secret (no keys, tokens, MACs or CSRs).
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Event types.
const (
	AccountCreated     = "account.created"
	AccountUpdated     = "account.updated"
	AccountDeactivated = "account.deactivated"
	AccountKeyRolled   = "account.key_rolled"
	EABBound           = "eab.bound"
	EABCreated         = "eab.created"
	EABRevoked         = "eab.revoked"
	OrderCreated       = "order.created"
	OrderRefused       = "order.refused"
	OrderInvalid       = "order.invalid"
	ChallengeValid     = "challenge.valid"
	ChallengeInvalid   = "challenge.invalid"
	CertIssued         = "certificate.issued"
	CertRevoked        = "certificate.revoked"
	FinalizeRefused    = "finalize.refused"
	AdminAction        = "admin.action"

	// AuthzDelegated is an authorization created valid without a challenge
	// by a rule's delegated validation (with EAB key, group, name, rule).
	AuthzDelegated = "authorization.delegated"

	// ApprovalRequested is an order refused until an administrator
	// approves its names (a rule's approval), written when the request is
	// opened (or reopened after it expired); ApprovalApproved and
	// ApprovalDenied are the decisions, with who decided (Actor) and why
	// (Reason). Approval names the request; notify sends them.
	ApprovalRequested = "approval.requested"
	ApprovalApproved  = "approval.approved"
	ApprovalDenied    = "approval.denied"
	// ApprovalExpired is a pending request no administrator decided within
	// orders.approval_ttl, or an approval whose expiry passed: written
	// once, by the sweep that marks it expired or by the account's next
	// order for those names, whichever comes first (Reason says when it
	// expired). A later order opens it again (ApprovalRequested).
	ApprovalExpired = "approval.expired"
)

// Event is one audit line.
type Event struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	RequestID string    `json:"request_id,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Account   string    `json:"account,omitempty"`
	EABKey    string    `json:"eab_key,omitempty"`
	Group     string    `json:"group,omitempty"`
	Order     string    `json:"order,omitempty"`
	Names     []string  `json:"names,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Upstream  string    `json:"upstream,omitempty"`
	Upstreams []string  `json:"upstreams,omitempty"`
	Challenge string    `json:"challenge,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	// Problem is the problem type of a refusal or failure, without the
	// ACME namespace (rejectedIdentifier, badCSR, caa...); Detail is its
	// detail as the client was told.
	Problem string `json:"problem,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Contacts are an account's contacts (account.created, .updated).
	Contacts []string `json:"contacts,omitempty"`
	// RevocationReason is a revocation's RFC 5280 §5.3.1 reason code.
	RevocationReason *int `json:"revocation_reason,omitempty"`
	// Reason is an admin action's description or an EAB key's grants.
	// Lines written before Problem, Detail, Contacts and RevocationReason
	// existed held those here ("type: detail", contacts joined by
	// commas, the reason code); Summarize still reads them.
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
	// Directory is the ACME directory (tenant) the event belongs to: the
	// name of a configured directory, empty for the top level.
	Directory string `json:"directory,omitempty"`
	// Approval is the ID of the approval request an approval.* event is
	// about.
	Approval string `json:"approval,omitempty"`
}

// TopLevel is how operators name the top-level directory (/directory) in
// filters and views: configured directories' names never hold a '/'.
const TopLevel = "/"

// DirectoryLabel is the name operators see for a directory: TopLevel for
// the top level ("").
func DirectoryLabel(name string) string {
	if name == "" {
		return TopLevel
	}
	return name
}

// Why is the event's reason for people: a problem's type and detail, a
// revocation reason's name, an account's contacts, or Reason.
func (e Event) Why() string {
	switch {
	case e.Problem != "" && e.Detail != "":
		return e.Problem + ": " + e.Detail
	case e.Problem != "":
		return e.Problem
	case e.RevocationReason != nil:
		return RevocationReasonOf(e)
	case len(e.Contacts) > 0:
		return strings.Join(e.Contacts, ",")
	}
	return e.Reason
}

// ReasonCode returns a pointer to code, for Event.RevocationReason.
func ReasonCode(code int) *int { return &code }

// Log appends events to a writer, one JSON line each, serialised.
type Log struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer
	now func() time.Time
}

// Open returns a Log appending to path ("-" is standard output; "" discards).
// The file is created 0600.
func Open(path string) (*Log, error) {
	switch path {
	case "":
		return &Log{w: io.Discard, now: time.Now}, nil
	case "-":
		return &Log{w: os.Stdout, now: time.Now}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Log{w: f, c: f, now: time.Now}, nil
}

// New returns a Log writing to w (tests).
func New(w io.Writer) *Log { return &Log{w: w, now: time.Now} }

// Record writes one event; Time is set when zero. The line is written with
// one write call, so lines from concurrent requests never interleave.
func (l *Log) Record(e Event) error {
	if l == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(b)
	return err
}

// Close closes the file.
func (l *Log) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	return l.c.Close()
}

// Filter selects events when reading a log back.
type Filter struct {
	Since, Until time.Time
	Account      string
	// Name matches an event naming it (exact, case-insensitive).
	Name string
	// Events limits the event types.
	Events []string
	// Directory keeps one directory's events: its name, or TopLevel; ""
	// keeps every directory's.
	Directory string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && e.Time.After(f.Until):
		return false
	case f.Account != "" && e.Account != f.Account:
		return false
	case len(f.Events) > 0 && !slices.Contains(f.Events, e.Event):
		return false
	case f.Name != "" && !slices.ContainsFunc(e.Names, func(n string) bool { return strings.EqualFold(n, f.Name) }):
		return false
	case f.Directory != "" && DirectoryLabel(e.Directory) != f.Directory:
		return false
	}
	return true
}

// Read calls fn for every event in r that passes f. A line that is not an
// event (a torn last line after a crash) is reported, not fatal.
func Read(r io.Reader, f Filter, fn func(Event)) (bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Event == "" {
			bad++
			continue
		}
		if f.Match(e) {
			fn(e)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return bad, fmt.Errorf("audit: %w", err)
	}
	return bad, nil
}
