package proxy

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/store"
)

// errNS is the ACME error namespace (RFC 8555 §6.7).
const errNS = "urn:ietf:params:acme:error:"

// problemDoc is an RFC 7807 problem document as ACME uses it (RFC 8555 §6.7).
type problemDoc struct {
	Type        string              `json:"type"`
	Detail      string              `json:"detail,omitempty"`
	Status      int                 `json:"status,omitempty"`
	Identifier  *acmeerr.Identifier `json:"identifier,omitempty"`
	Subproblems []problemDoc        `json:"subproblems,omitempty"`
	Algorithms  []string            `json:"algorithms,omitempty"`
}

// kindInfo gives, for each error kind, its problem type and HTTP status.
var kindInfo = map[acmeerr.Kind]struct {
	typ    string
	status int
}{
	acmeerr.Internal:                {"serverInternal", http.StatusInternalServerError},
	acmeerr.Malformed:               {"malformed", http.StatusBadRequest},
	acmeerr.Unauthorized:            {"unauthorized", http.StatusForbidden},
	acmeerr.NotFound:                {"malformed", http.StatusNotFound},
	acmeerr.BadNonce:                {"badNonce", http.StatusBadRequest},
	acmeerr.BadSignatureAlgorithm:   {"badSignatureAlgorithm", http.StatusBadRequest},
	acmeerr.BadPublicKey:            {"badPublicKey", http.StatusBadRequest},
	acmeerr.BadCSR:                  {"badCSR", http.StatusBadRequest},
	acmeerr.BadRevocationReason:     {"badRevocationReason", http.StatusBadRequest},
	acmeerr.AlreadyRevoked:          {"alreadyRevoked", http.StatusBadRequest},
	acmeerr.AccountDoesNotExist:     {"accountDoesNotExist", http.StatusBadRequest},
	acmeerr.ExternalAccountRequired: {"externalAccountRequired", http.StatusUnauthorized},
	acmeerr.InvalidContact:          {"invalidContact", http.StatusBadRequest},
	acmeerr.UnsupportedContact:      {"unsupportedContact", http.StatusBadRequest},
	acmeerr.UserActionRequired:      {"userActionRequired", http.StatusForbidden},
	acmeerr.RejectedIdentifier:      {"rejectedIdentifier", http.StatusBadRequest},
	acmeerr.UnsupportedIdentifier:   {"unsupportedIdentifier", http.StatusBadRequest},
	acmeerr.OrderNotReady:           {"orderNotReady", http.StatusForbidden},
	acmeerr.RateLimited:             {"rateLimited", http.StatusTooManyRequests},
	acmeerr.Conflict:                {"malformed", http.StatusConflict},
	acmeerr.Connection:              {"connection", http.StatusBadRequest},
	acmeerr.DNS:                     {"dns", http.StatusBadRequest},
	acmeerr.TLS:                     {"tls", http.StatusBadRequest},
	acmeerr.IncorrectResponse:       {"incorrectResponse", http.StatusBadRequest},
	acmeerr.CAA:                     {"caa", http.StatusForbidden},
	acmeerr.Unavailable:             {"serverInternal", http.StatusServiceUnavailable},
	acmeerr.MethodNotAllowed:        {"malformed", http.StatusMethodNotAllowed},
	acmeerr.UnsupportedMediaType:    {"malformed", http.StatusUnsupportedMediaType},
	acmeerr.PayloadTooLarge:         {"malformed", http.StatusRequestEntityTooLarge},
	acmeerr.AlreadyReplaced:         {"alreadyReplaced", http.StatusConflict},
	acmeerr.InvalidProfile:          {"invalidProfile", http.StatusBadRequest},
	acmeerr.AccountNotValid:         {"unauthorized", http.StatusUnauthorized},
}

// toProblem turns an error into a problem document. Internal errors keep
// their cause out of the document: the detail names only the request ID.
func toProblem(err error, requestID string) problemDoc {
	var e *acmeerr.Error
	if !errors.As(err, &e) {
		e = &acmeerr.Error{Kind: acmeerr.Internal, Err: err}
	}
	info, ok := kindInfo[e.Kind]
	if !ok {
		info = kindInfo[acmeerr.Internal]
	}
	p := problemDoc{Type: errNS + info.typ, Detail: e.Detail, Status: info.status, Identifier: e.Identifier, Algorithms: e.Algorithms}
	if info.status >= 500 {
		p.Detail = "internal error"
		if e.Kind == acmeerr.Unavailable && e.Detail != "" {
			p.Detail = e.Detail
		}
		if requestID != "" {
			p.Detail += "; request id " + requestID
		}
	}
	for _, s := range e.Sub {
		sp := toProblem(s, requestID)
		sp.Status = 0
		p.Subproblems = append(p.Subproblems, sp)
	}
	return p
}

// storedProblem converts an error into the form kept on orders and
// challenges.
func storedProblem(err error) *store.Problem {
	p := toProblem(err, "")
	return fromDoc(p)
}

func fromDoc(p problemDoc) *store.Problem {
	sp := &store.Problem{Type: p.Type, Detail: p.Detail, Status: p.Status}
	if p.Identifier != nil {
		sp.Identifier = &store.Identifier{Type: p.Identifier.Type, Value: p.Identifier.Value}
	}
	for _, s := range p.Subproblems {
		sp.Subproblems = append(sp.Subproblems, *fromDoc(s))
	}
	return sp
}

// writeProblem is the one place where errors become HTTP responses
// (RFC 8555 §6.7: "the server SHOULD return an HTTP error response ... with a
// problem document").
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	rid := requestID(r)
	p := toProblem(err, rid)
	var e *acmeerr.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds()+0.999)))
	}
	if e != nil && e.Kind == acmeerr.MethodNotAllowed {
		if allow := w.Header().Get("Allow"); allow == "" {
			w.Header().Set("Allow", "POST")
		}
	}
	level := slog.LevelDebug
	if p.Status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "problem", "request_id", rid, "type", p.Type, "status", p.Status, "err", err)
	setProblemType(r, p.Type)
	s.metrics.problem(p.Type)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
