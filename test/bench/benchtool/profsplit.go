package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// workKind is one kind of work a CPU sample can be spent on. A sample
// belongs to the first kind in workKinds one of whose frames matches.
type workKind struct {
	name string
	// floor marks work an ACME server in the bench's shape cannot skip
	// without giving up a guarantee: the signatures RFC 8555 and the CSR
	// carry and the certificate's own, the writes and disk syncs that make
	// each state a client is told about durable, the system calls of the
	// requests and of http-01 validation (and, on Redis, of the store).
	floor bool
	re    *regexp.Regexp
}

// workKinds is in priority order: a sample of ECDSA inside a JWS check is
// ECDSA, not the handler that called it.
var workKinds = []workKind{
	{"TLS handshakes", true, regexp.MustCompile(`crypto/tls\.\(\*Conn\)\.(server|client)?[Hh]andshake`)},
	{"ECDSA P-256 (the JWS, the CSR, the certificate's signature and Go's check of it)", true, regexp.MustCompile(`crypto/ecdsa|fips140/ecdsa|fips140/nistec|fips140/bigmod`)},
	{"disk: pwrite, fdatasync (bbolt's commits), the audit log's write", true, regexp.MustCompile(`syscall\.(Fdatasync|Fsync|pwrite)|os\.\(\*File\)\.Write`)},
	{"sockets and other system calls: read, write, connect, close, epoll", true, regexp.MustCompile(`internal/runtime/syscall|runtime\.netpoll|^syscall\.`)},
	{"TLS records: AES-GCM and framing", true, regexp.MustCompile(`crypto/tls`)},
	{"garbage collection and allocation", false, regexp.MustCompile(`runtime\.(gcBgMarkWorker|gcDrain|bgsweep|bgscavenge|mallocgc|gcAssist|sweepone|markroot)`)},
	{"goroutine stacks growing", false, regexp.MustCompile(`runtime\.(newstack|copystack|morestack)`)},
	{"scheduler, timers, channels", false, regexp.MustCompile(`runtime\.(schedule|findRunnable|park_m|futex|notesleep|lock2|unlock2|wakep|stealWork|checkTimers|ready|goready|selectgo|chansend|chanrecv|semacquire|semrelease)`)},
	{"go-jose: JWS and JWK parsing", false, regexp.MustCompile(`go-jose`)},
	{"JSON: the JWS scan, store records, responses", false, regexp.MustCompile(`encoding/json|go-json-experiment`)},
	{"bbolt: B+tree and pages", false, regexp.MustCompile(`go\.etcd\.io/bbolt`)},
	{"go-redis client", false, regexp.MustCompile(`redis/go-redis`)},
	{"x509 and ASN.1 (CSR and certificate)", false, regexp.MustCompile(`crypto/x509|encoding/asn1|x/crypto/cryptobyte`)},
	{"DNS messages (miekg/dns)", false, regexp.MustCompile(`miekg/dns`)},
	{"acmebridge's own code", false, regexp.MustCompile(`acmebridge/acmebridge`)},
	{"net/http: HTTP/2 frames, headers, routing", false, regexp.MustCompile(`net/http|gorilla/mux|golang\.org/x/net`)},
	{"other", false, regexp.MustCompile(`.`)},
}

// split is the CPU samples of one profile by kind of work.
type split struct {
	total  time.Duration
	byKind []time.Duration // indexed like workKinds
}

// profileSplit prints where a server's CPU went per issuance:
// benchtool profile-split -profile P.pprof RESULT.json... (the bench's
// results of that server, for the number of issuances).
func profileSplit(args []string) error {
	fs := flag.NewFlagSet("profile-split", flag.ContinueOnError)
	profile := fs.String("profile", "", "a CPU profile (serve --cpuprofile)")
	markdown := fs.Bool("markdown", false, "print a Markdown table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: benchtool profile-split -profile FILE RESULT.json")
	}
	issued := 0
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var r struct {
			Issued int `json:"issued"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		issued += r.Issued
	}
	if issued == 0 {
		return fmt.Errorf("no issuances in %s", strings.Join(fs.Args(), " "))
	}
	cmd := exec.Command("go", "tool", "pprof", "-traces", *profile)
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	s, perr := splitTraces(out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("go tool pprof -traces %s: %w", *profile, err)
	}
	if perr != nil {
		return perr
	}
	return s.print(os.Stdout, issued, *markdown)
}

// splitTraces reads `go tool pprof -traces` and counts each sample once,
// under the first kind of work any of its frames matches.
func splitTraces(r io.Reader) (split, error) {
	s := split{byKind: make([]time.Duration, len(workKinds))}
	var value time.Duration
	var frames []string
	flush := func() {
		if len(frames) == 0 {
			return
		}
		s.total += value
		for i, k := range workKinds {
			if matchAny(k.re, frames) {
				s.byKind[i] += value
				break
			}
		}
		frames = frames[:0]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || len(frames) == 0 && !strings.HasPrefix(line, " ") {
			continue // the header, before the first trace
		}
		if len(frames) == 0 {
			// The first line of a trace: its value, then the leaf frame.
			d, err := parseSampleValue(f[0])
			if err != nil {
				return s, err
			}
			if len(f) < 2 {
				continue
			}
			value = d
			frames = append(frames, f[1])
			continue
		}
		frames = append(frames, f[0])
	}
	flush()
	return s, sc.Err()
}

// parseSampleValue reads pprof's "10ms", "1.20s", "500us".
func parseSampleValue(v string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"us", time.Microsecond}, {"ns", time.Nanosecond}, {"s", time.Second}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return 0, fmt.Errorf("sample value %q: %w", v, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("sample value %q has no unit", v)
}

func matchAny(re *regexp.Regexp, frames []string) bool {
	for _, f := range frames {
		if re.MatchString(f) {
			return true
		}
	}
	return false
}

// print writes the split as a table: share of the samples and
// milliseconds per issuance, the floor's kinds summed at the end.
func (s split) print(w io.Writer, issued int, markdown bool) error {
	perIss := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(issued) }
	share := func(d time.Duration) float64 { return 100 * float64(d) / float64(max(s.total, 1)) }
	var floor time.Duration
	rows := [][3]string{}
	for i, k := range workKinds {
		d := s.byKind[i]
		name := k.name
		if k.floor {
			floor += d
			name += " *"
		}
		rows = append(rows, [3]string{name, fmt.Sprintf("%.1f%%", share(d)), fmt.Sprintf("%.2f", perIss(d))})
	}
	rows = append(rows,
		[3]string{"* the floor: work no server in this shape can skip", fmt.Sprintf("%.1f%%", share(floor)), fmt.Sprintf("%.2f", perIss(floor))},
		[3]string{fmt.Sprintf("all samples (%d issuances)", issued), "100%", fmt.Sprintf("%.2f", perIss(s.total))})
	var b strings.Builder
	if markdown {
		b.WriteString("| kind of work | share | ms per issuance |\n| --- | ---: | ---: |\n")
		for _, r := range rows {
			b.WriteString("| " + strings.Join(r[:], " | ") + " |\n")
		}
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "kind of work\tshare\tms/iss\t")
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r[:], "\t")+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
