// Command chaosreport prints the table of the Redis chaos runs
// (test/redisfailover_test.go): per topology and durability setting, how
// many promises broke over all rounds. The runs append one JSON line per
// round to ACMEBRIDGE_CHAOS_OUT; `make chaos-redis` runs them and then
// this.
//
//	go run ./test/chaosreport -in FILE [-notes]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/acmebridge/acmebridge/test/chaoscount"
)

// round is one run's line.
type round = chaoscount.Counts

func main() {
	in := flag.String("in", "", "the JSON lines the runs wrote (ACMEBRIDGE_CHAOS_OUT)")
	notes := flag.Bool("notes", false, "print every round's notes, not only those of rounds with durability on that broke a promise")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaosreport:", err)
		os.Exit(1)
	}
	defer f.Close()
	rounds, err := read(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaosreport:", err)
		os.Exit(1)
	}
	fmt.Print(render(rounds, *notes))
}

func read(r io.Reader) ([]round, error) {
	var out []round
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var x round
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return nil, fmt.Errorf("%q: %w", sc.Text(), err)
		}
		out = append(out, x)
	}
	return out, sc.Err()
}

// render returns one Markdown row per topology and setting (the sums over
// its rounds, with the number of rounds that broke each promise), then the
// notes.
func render(rounds []round, allNotes bool) string {
	var w strings.Builder
	type key struct{ topo, dur string }
	groups := map[key][]round{}
	var keys []key
	for _, r := range rounds {
		k := key{r.Topology, r.Durability}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	order := map[string]int{"sentinel": 0, "aof": 1, "cluster": 2}
	slices.SortFunc(keys, func(a, b key) int {
		if order[a.topo] != order[b.topo] {
			return order[a.topo] - order[b.topo]
		}
		return strings.Compare(a.dur, b.dur)
	})
	fmt.Fprintln(&w, "Counts are sums over the rounds; (k) is how many rounds had any.")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| topology | durability | rounds | double signed | lost certificates | EAB bound twice | nonces accepted twice | stuck processing | bad client errors | orders | certificates received | Vault signed (unrecorded) | clean 503s | in the window: certs / EAB / nonces | s per round |")
	fmt.Fprintln(&w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		g := groups[k]
		sum := func(f func(round) int) string {
			n, hit := 0, 0
			for _, r := range g {
				n += f(r)
				if f(r) > 0 {
					hit++
				}
			}
			return fmt.Sprintf("%d (%d)", n, hit)
		}
		total := func(f func(round) int) int {
			n := 0
			for _, r := range g {
				n += f(r)
			}
			return n
		}
		secs := 0.0
		for _, r := range g {
			secs += r.Seconds
		}
		fmt.Fprintf(&w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d | %d | %d (%d) | %d | %d / %d / %d | %.0f |\n",
			k.topo, k.dur, len(g),
			sum(func(r round) int { return r.DoubleSigned }), sum(func(r round) int { return r.LostCerts }),
			sum(func(r round) int { return r.EABDouble }), sum(func(r round) int { return r.NonceReplays }),
			sum(func(r round) int { return r.Stuck }), sum(func(r round) int { return r.BadErrors }),
			total(func(r round) int { return r.Orders }), total(func(r round) int { return r.Received }),
			total(func(r round) int { return r.VaultSigned }), total(func(r round) int { return r.Unrecorded }),
			total(func(r round) int { return r.Clean503 }),
			total(func(r round) int { return r.CertsInWindow }), total(func(r round) int { return r.EABInWindow }),
			total(func(r round) int { return r.NoncesInWindow }), secs/float64(len(g)))
	}
	for _, k := range keys {
		for _, r := range groups[k] {
			if !allNotes && (r.Durability != "on" || r.Violations() == 0) {
				continue
			}
			fmt.Fprintf(&w, "\n%s durability=%s round %d (%d broken): %s\n", r.Topology, r.Durability, r.Round, r.Violations(), r.Fault)
			for _, n := range r.Notes {
				fmt.Fprintf(&w, "  %s\n", n)
			}
		}
	}
	return w.String()
}
