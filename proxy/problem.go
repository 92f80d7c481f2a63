package proxy

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/acmebridge/acmebridge/acmeerr"
	"github.com/acmebridge/acmebridge/core"
)

// errNS is the ACME error namespace (RFC 8555 §6.7).
const errNS = core.ErrorNS

// problemDoc is an RFC 7807 problem document as ACME uses it.
type problemDoc = acmeerr.Problem

// toProblem turns an error into a problem document (acmeerr.ToProblem).
func toProblem(err error, requestID string) problemDoc { return acmeerr.ToProblem(err, requestID) }

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
