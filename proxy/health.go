package proxy

import "time"

// UpstreamHealth reports the circuit breaker's view of an upstream (see
// worker.go): how many transient failures in a row it has had since its
// last success, and until when it is skipped (zero, or a time in the
// past, when it is not). It is what this replica's workers saw; other
// replicas keep their own.
func (s *Server) UpstreamHealth(name string) (failures int, skippedUntil time.Time) {
	v, ok := breakers.Load(s)
	if !ok {
		return 0, time.Time{} // the workers are not running
	}
	b := v.(*breaker)
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.health[name]
	if h == nil {
		return 0, time.Time{}
	}
	return h.failures, h.openUntil
}
