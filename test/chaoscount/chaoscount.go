// Package chaoscount is what one Redis chaos run (test/redisfailover_test.go)
// counts and writes as a JSON line, and what test/chaosreport reads back:
// one type for both.
package chaoscount

import "fmt"

// Counts is what one run found: the six promises, then context.
type Counts struct {
	Topology   string `json:"topology"`
	Durability string `json:"durability"`
	Round      int    `json:"round"`

	// DoubleSigned: orders Vault signed more than once.
	DoubleSigned int `json:"double_signed"`
	// LostCerts: certificates a client received that the store no longer
	// lists (by serial).
	LostCerts int `json:"lost_certs"`
	// EABDouble: EAB keys whose binding a client was told of that a second
	// account could bind too, or whose account is gone.
	EABDouble int `json:"eab_double"`
	// NonceReplays: signed requests accepted before the fault and again
	// after it.
	NonceReplays int `json:"nonce_replays"`
	// Stuck: orders still processing a while after recovery.
	Stuck int `json:"stuck"`
	// BadErrors: answers clients saw that were neither right nor a clean
	// 503 with Retry-After.
	BadErrors int `json:"bad_errors"`

	// Orders the store lists, certificates the clients received, Vault
	// signed, and those Vault signed that the store has no record of.
	Orders      int `json:"orders"`
	Received    int `json:"received"`
	VaultSigned int `json:"vault_signed"`
	Unrecorded  int `json:"unrecorded"`
	// Clean503 counts the clean 503s the clients saw.
	Clean503 int `json:"clean_503"`
	// InWindow: what the window held, so a zero is not an empty test:
	// certificates received, EAB bindings and nonces accepted in it.
	CertsInWindow  int `json:"certs_in_window"`
	EABInWindow    int `json:"eab_in_window"`
	NoncesInWindow int `json:"nonces_in_window"`
	// Fault is what was done; Seconds the round's length, processes'
	// start included.
	Fault   string   `json:"fault"`
	Seconds float64  `json:"seconds"`
	Notes   []string `json:"notes,omitempty"`
}

// Violations sums the six promises.
func (c Counts) Violations() int {
	return c.DoubleSigned + c.LostCerts + c.EABDouble + c.NonceReplays + c.Stuck + c.BadErrors
}

// Note adds a line to Notes.
func (c *Counts) Note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}
