package proxy

import (
	"net/http"

	"github.com/acmebridge/acmebridge/audit"
)

// record writes an audit event for a request (its ID and client address
// filled in) before the response that depends on it is written.
func (s *Server) record(r *http.Request, e audit.Event) {
	if r != nil {
		e.RequestID, e.Remote = requestID(r), s.clientIP(r)
	}
	if s.auditLog == nil {
		return
	}
	if err := s.auditLog.Record(e); err != nil {
		s.log.Error("audit: record", "event", e.Event, "err", err)
	}
}
