package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run measured. Its JSON form is what `acmebridge bench
// --json` prints and what the comparison reads back.
type Result struct {
	Label     string `json:"label"`
	Directory string `json:"directory,omitempty"`
	Challenge string `json:"challenge,omitempty"`
	// Clients is the number that registered; Orders the issuances each ran.
	Clients int `json:"clients"`
	Orders  int `json:"orders"`
	// Issued and Failed count issuances.
	Issued int `json:"issued"`
	Failed int `json:"failed"`
	// WallSeconds is the measured phase (after every client registered);
	// Throughput is Issued / WallSeconds.
	WallSeconds float64 `json:"wall_seconds"`
	Throughput  float64 `json:"issuances_per_second"`
	// Steps lists the keys of Latency in the order of an issuance.
	Steps   []string           `json:"steps"`
	Latency map[string]Summary `json:"latency"`
	// RequestsPerIssuance counts every HTTP request (nonces, polls and
	// retries included); PollsPerIssuance the waits for a pending
	// challenge or a processing order.
	RequestsPerIssuance float64 `json:"requests_per_issuance"`
	PollsPerIssuance    float64 `json:"polls_per_issuance"`
	// Errors counts failed issuances (and registrations) by problem type,
	// or "client: ..." when no problem document explains them; Problems
	// every problem document received, including retried ones.
	Errors     map[string]int `json:"errors,omitempty"`
	Problems   map[string]int `json:"problems,omitempty"`
	FirstError string         `json:"first_error,omitempty"`
	// ClientCPU is this process's CPU time over the measured phase
	// (responders included); Server the server processes'.
	ClientCPU CPU       `json:"client_cpu"`
	Server    ServerCPU `json:"server_cpu"`
	StartedAt time.Time `json:"started_at"`
	// Windows are the run's stretches of Config.Window issuances.
	Windows []Window `json:"windows,omitempty"`
}

// CPU is CPU time over the measured phase and per issuance.
type CPU struct {
	Seconds       float64 `json:"seconds"`
	MsPerIssuance float64 `json:"ms_per_issuance"`
}

// ServerCPU is the CPU time of the server processes (--server-pid).
type ServerCPU struct {
	CPU
	Processes []ProcessCPU `json:"processes,omitempty"`
}

// ProcessCPU is one process's CPU time over the measured phase.
type ProcessCPU struct {
	PID     int     `json:"pid"`
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

type procSample struct {
	pid  int
	cpu  time.Duration
	name string
	err  error
}

func readServers(pids []int) []procSample {
	out := make([]procSample, len(pids))
	for i, pid := range pids {
		out[i].pid = pid
		out[i].cpu, out[i].name, out[i].err = ProcCPU(pid)
	}
	return out
}

func serverCPU(before, after []procSample, issued int) ServerCPU {
	var s ServerCPU
	var total time.Duration
	for i := range before {
		p := ProcessCPU{PID: before[i].pid, Name: after[i].name}
		if err := cmpErr(before[i].err, after[i].err); err != nil {
			p.Error = err.Error()
		} else {
			d := after[i].cpu - before[i].cpu
			total += d
			p.Seconds = d.Seconds()
		}
		s.Processes = append(s.Processes, p)
	}
	s.Seconds = total.Seconds()
	s.MsPerIssuance = perIssuance(total, issued)
	return s
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the human report: the headline, a latency table by
// step, CPU, and failures by type.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %d clients x %d orders\n", r.Label, r.Challenge, r.Clients, r.Orders)
	fmt.Fprintf(&b, "issued %d, failed %d in %.2fs: %.1f issuances/s\n\n", r.Issued, r.Failed, r.WallSeconds, r.Throughput)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tcount\tmean ms\tp50 ms\tp95 ms\tp99 ms\tmax ms\t")
	for _, s := range r.Steps {
		l := r.Latency[s]
		name := s
		if s == StepTotal {
			name = "end to end"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, l.Count, l.Mean, l.P50, l.P95, l.P99, l.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nrequests/issuance %.1f, polls/issuance %.2f\n", r.RequestsPerIssuance, r.PollsPerIssuance)
	fmt.Fprintf(&b, "client CPU: %.2f ms/issuance (%.2fs)\n", r.ClientCPU.MsPerIssuance, r.ClientCPU.Seconds)
	if len(r.Server.Processes) > 0 {
		var parts []string
		for _, p := range r.Server.Processes {
			if p.Error != "" {
				parts = append(parts, fmt.Sprintf("pid %d: %s", p.PID, p.Error))
				continue
			}
			parts = append(parts, fmt.Sprintf("pid %d %s %.2fs", p.PID, p.Name, p.Seconds))
		}
		fmt.Fprintf(&b, "server CPU: %.2f ms/issuance (%s)\n", r.Server.MsPerIssuance, strings.Join(parts, ", "))
	} else {
		b.WriteString("server CPU: not measured (--server-pid)\n")
	}
	writeCounts(&b, "failures by type", r.Errors)
	writeCounts(&b, "problem documents received (retries included)", r.Problems)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first failure: %s\n", r.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCounts(b *strings.Builder, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(b, "%s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(b, "  %-28s %d\n", k, m[k])
	}
}
