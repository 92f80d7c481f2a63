package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Window is one stretch of a long run (Config.Window issuances): its
// throughput, latency and the server's memory at its end, so a drift over
// a long run (a growing store, a leak) shows.
type Window struct {
	// Index counts windows from 1; Issued is the run's total at its end.
	Index  int `json:"index"`
	Issued int `json:"issued"`
	// Throughput is the window's issuances per second.
	Throughput float64 `json:"issuances_per_second"`
	// P50Ms and P99Ms are the window's issuance latencies.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// ServerRSSMiB is the resident memory of the server processes
	// (Config.ServerPIDs) at its end; 0 when unknown. ServerAnonMiB is
	// the part that is the processes' own memory (heap, stacks: VmRSS's
	// RssAnon), the rest being mapped files, such as a bbolt store's
	// pages, which follow the store's size.
	ServerRSSMiB  float64 `json:"server_rss_mib"`
	ServerAnonMiB float64 `json:"server_anon_mib"`
}

// String is the window as one line of the run's progress.
func (w Window) String() string {
	return fmt.Sprintf("window %d: %d issued, %.1f/s, p50 %.1f ms, p99 %.1f ms, server RSS %.1f MiB (anonymous %.1f MiB)",
		w.Index, w.Issued, w.Throughput, w.P50Ms, w.P99Ms, w.ServerRSSMiB, w.ServerAnonMiB)
}

// windows collects the latencies of the current window.
type windows struct {
	size int
	pids []int
	on   func(Window)

	mu    sync.Mutex
	lat   []time.Duration
	start time.Time
	total int
	done  []Window
}

func newWindows(size int, pids []int, on func(Window)) *windows {
	return &windows{size: size, pids: pids, on: on, start: time.Now()}
}

// add records one issuance's latency and closes the window when full.
func (w *windows) add(d time.Duration) {
	if w == nil || w.size <= 0 {
		return
	}
	w.mu.Lock()
	w.lat = append(w.lat, d)
	w.total++
	if len(w.lat) < w.size {
		w.mu.Unlock()
		return
	}
	lat := w.lat
	w.lat = make([]time.Duration, 0, w.size)
	now := time.Now()
	win := Window{Index: len(w.done) + 1, Issued: w.total, Throughput: float64(len(lat)) / now.Sub(w.start).Seconds()}
	w.start = now
	slices.Sort(lat)
	win.P50Ms, win.P99Ms = ms(Percentile(lat, 50)), ms(Percentile(lat, 99))
	all, anon := rss(w.pids)
	win.ServerRSSMiB, win.ServerAnonMiB = float64(all)/(1<<20), float64(anon)/(1<<20)
	w.done = append(w.done, win)
	w.mu.Unlock()
	if w.on != nil {
		w.on(win)
	}
}

// list returns the windows closed so far.
func (w *windows) list() []Window {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.done)
}

// rss is the summed resident memory of pids in bytes, all of it (VmRSS
// of /proc/PID/status) and the anonymous part (RssAnon); processes that
// cannot be read count 0.
func rss(pids []int) (all, anon int64) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		all += statusKB(string(b), "VmRSS:")
		anon += statusKB(string(b), "RssAnon:")
	}
	return all, anon
}

// statusKB reads a "Field:  1234 kB" line of /proc/PID/status, in bytes.
func statusKB(status, field string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
