package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Summary describes the latencies of one step, in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest sample such that at least p% of the
// samples are less than or equal to it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Summarize sorts samples in place and returns their summary.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return Summary{
		Count: len(samples),
		Mean:  ms(sum / time.Duration(len(samples))),
		P50:   ms(Percentile(samples, 50)),
		P95:   ms(Percentile(samples, 95)),
		P99:   ms(Percentile(samples, 99)),
		Max:   ms(samples[len(samples)-1]),
	}
}

// ms converts a duration to float milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// Recorder collects latency samples by step name from many goroutines.
type Recorder struct {
	mu      sync.Mutex
	order   []string
	samples map[string][]time.Duration
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{samples: map[string][]time.Duration{}}
}

// Add records one sample of step. Steps are reported in the order of
// their first sample unless Declare named them first.
func (r *Recorder) Add(step string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.samples[step]; !ok {
		r.order = append(r.order, step)
	}
	r.samples[step] = append(r.samples[step], d)
}

// Declare fixes the report order of steps (before any sample is added).
func (r *Recorder) Declare(steps ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range steps {
		if _, ok := r.samples[s]; !ok {
			r.samples[s] = nil
			r.order = append(r.order, s)
		}
	}
}

// Summaries returns the steps in order and their summaries; steps without
// samples are left out.
func (r *Recorder) Summaries() ([]string, map[string]Summary) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var steps []string
	out := map[string]Summary{}
	for _, s := range r.order {
		if len(r.samples[s]) == 0 {
			continue
		}
		steps = append(steps, s)
		out[s] = Summarize(slices.Clone(r.samples[s]))
	}
	return steps, out
}

// Counter counts occurrences by key from many goroutines.
type Counter struct {
	mu sync.Mutex
	m  map[string]int
}

// Inc adds one to key.
func (c *Counter) Inc(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[key]++
}

// Map returns a copy of the counts (nil when empty).
func (c *Counter) Map() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return nil
	}
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}
