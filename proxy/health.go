package proxy

import "time"

// UpstreamHealth reports the circuit breaker's view of an upstream
// (ra.Breaker): how many transient failures in a row it has had since its
// last success, and until when it is skipped (zero, or a time in the past,
// when it is not). It is what this replica's workers saw; other replicas
// keep their own.
func (s *Server) UpstreamHealth(name string) (failures int, skippedUntil time.Time) {
	return s.ra.Breaker().Health(name)
}
