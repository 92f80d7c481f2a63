package acmeerr

import (
	"errors"
	"net/http"

	"github.com/acmebridge/acmebridge/core"
)

// errNS is the ACME error namespace (RFC 8555 §6.7).
const errNS = core.ErrorNS

// Problem is an RFC 7807 problem document as ACME uses it (RFC 8555 §6.7).
type Problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status,omitempty"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []Problem   `json:"subproblems,omitempty"`
	Algorithms  []string    `json:"algorithms,omitempty"`
}

// kindInfo gives, for each error kind, its problem type and HTTP status.
var kindInfo = map[Kind]struct {
	typ    string
	status int
}{
	Internal:                {"serverInternal", http.StatusInternalServerError},
	Malformed:               {"malformed", http.StatusBadRequest},
	Unauthorized:            {"unauthorized", http.StatusForbidden},
	NotFound:                {"malformed", http.StatusNotFound},
	BadNonce:                {"badNonce", http.StatusBadRequest},
	BadSignatureAlgorithm:   {"badSignatureAlgorithm", http.StatusBadRequest},
	BadPublicKey:            {"badPublicKey", http.StatusBadRequest},
	BadCSR:                  {"badCSR", http.StatusBadRequest},
	BadRevocationReason:     {"badRevocationReason", http.StatusBadRequest},
	AlreadyRevoked:          {"alreadyRevoked", http.StatusBadRequest},
	AccountDoesNotExist:     {"accountDoesNotExist", http.StatusBadRequest},
	ExternalAccountRequired: {"externalAccountRequired", http.StatusUnauthorized},
	InvalidContact:          {"invalidContact", http.StatusBadRequest},
	UnsupportedContact:      {"unsupportedContact", http.StatusBadRequest},
	UserActionRequired:      {"userActionRequired", http.StatusForbidden},
	RejectedIdentifier:      {"rejectedIdentifier", http.StatusBadRequest},
	UnsupportedIdentifier:   {"unsupportedIdentifier", http.StatusBadRequest},
	OrderNotReady:           {"orderNotReady", http.StatusForbidden},
	RateLimited:             {"rateLimited", http.StatusTooManyRequests},
	Conflict:                {"malformed", http.StatusConflict},
	Connection:              {"connection", http.StatusBadRequest},
	DNS:                     {"dns", http.StatusBadRequest},
	TLS:                     {"tls", http.StatusBadRequest},
	IncorrectResponse:       {"incorrectResponse", http.StatusBadRequest},
	CAA:                     {"caa", http.StatusForbidden},
	Unavailable:             {"serverInternal", http.StatusServiceUnavailable},
	MethodNotAllowed:        {"malformed", http.StatusMethodNotAllowed},
	UnsupportedMediaType:    {"malformed", http.StatusUnsupportedMediaType},
	PayloadTooLarge:         {"malformed", http.StatusRequestEntityTooLarge},
	AlreadyReplaced:         {"alreadyReplaced", http.StatusConflict},
	InvalidProfile:          {"invalidProfile", http.StatusBadRequest},
	AccountNotValid:         {"unauthorized", http.StatusUnauthorized},
}

// ToProblem turns an error into a problem document. Internal errors keep
// their cause out of the document: the detail names only the request ID.
func ToProblem(err error, requestID string) Problem {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Kind: Internal, Err: err}
	}
	info, ok := kindInfo[e.Kind]
	if !ok {
		info = kindInfo[Internal]
	}
	p := Problem{Type: errNS + info.typ, Detail: e.Detail, Status: info.status, Identifier: e.Identifier, Algorithms: e.Algorithms}
	if info.status >= 500 {
		p.Detail = "internal error"
		if e.Kind == Unavailable && e.Detail != "" {
			p.Detail = e.Detail
		}
		if requestID != "" {
			p.Detail += "; request id " + requestID
		}
	}
	for _, s := range e.Sub {
		sp := ToProblem(s, requestID)
		sp.Status = 0
		p.Subproblems = append(p.Subproblems, sp)
	}
	return p
}
