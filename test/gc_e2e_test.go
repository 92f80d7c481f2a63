package test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGCTarget: serve runs the garbage collector with a target of 400%
// when the environment sets no GOGC (cmd/acmebridge gcPercent,
// docs/performance.md), and GOGC set by the operator wins. The Go
// collector's go_gc_gogc_percent on /metrics says which is in force.
func TestGCTarget(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		want float64
	}{
		{"GOGC unset", []string{"GOGC="}, 400},
		{"GOGC=50", []string{"GOGC=50"}, 50},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServerWith(t, "", serverOpts{env: c.env})
			m := scrapeMetrics(t, s.AdminURL)
			require.Equal(t, c.want, m.sum(t, "go_gc_gogc_percent", func(map[string]string) bool { return true }))
		})
	}
}
