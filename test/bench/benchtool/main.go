// Command benchtool is the helper test/bench/run.sh uses around
// `acmebridge bench`; it is not part of acmebridge.
//
//	benchtool vault-setup -addr URL -token T -ca-file F -domain D [-acme-dns ADDR]
//	    PKI on the Vault dev server as an operator would set it up (EC P-256
//	    root and intermediate, role "bench"), and Vault's own ACME on it.
//	benchtool vault-sign -addr URL -token T -ca-file F -domain D -clients N -count M [-server-pid PID]
//	    raw pki/sign/bench throughput at the same concurrency: the ceiling of
//	    the Vault route. Prints a bench result as JSON.
//	benchtool compare -baseline LABEL [-markdown] [-pair A:B]... FILE...
//	    one table over the JSON results of every round, medians per server,
//	    ratios against the baseline (and of A over B for each -pair).
//	benchtool summary [-issued] FILE
//	    one line of a result (or only its number of issuances).
//	benchtool ports N
//	    N distinct free TCP ports on 127.0.0.1 (UDP free too).
//	benchtool wait -url URL [-ca-file F] [-timeout 60s]
//	    until URL answers 200 over HTTP(S).
//	benchtool storeops -url METRICS_URL
//	    the store operations an acmebridge has made (the counts of its
//	    acmebridge_store_seconds histogram, idle worker polls left out): on
//	    Redis each is one round trip once the scripts are cached.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/acmebridge/acmebridge/bench"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool vault-setup|vault-sign|compare|summary|ports|wait|storeops|profile-split ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "vault-setup":
		err = vaultSetup(os.Args[2:])
	case "vault-sign":
		err = vaultSign(os.Args[2:])
	case "compare":
		err = compare(os.Args[2:])
	case "summary":
		err = summary(os.Args[2:])
	case "ports":
		err = ports(os.Args[2:])
	case "wait":
		err = wait(os.Args[2:])
	case "storeops":
		err = storeOps(os.Args[2:])
	case "profile-split":
		err = profileSplit(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// vaultFlags are the flags of the Vault commands.
type vaultFlags struct {
	addr, token, caFile, domain *string
}

func addVaultFlags(fs *flag.FlagSet) vaultFlags {
	return vaultFlags{
		addr:   fs.String("addr", "", "Vault address (https://127.0.0.1:PORT)"),
		token:  fs.String("token", "", "Vault token"),
		caFile: fs.String("ca-file", "", "PEM roots of Vault's TLS certificate"),
		domain: fs.String("domain", "bench.test", "domain the role may sign names under"),
	}
}

func (f vaultFlags) client() (*api.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 64
	if *f.caFile != "" {
		b, err := os.ReadFile(*f.caFile)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("no certificate in %s", *f.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	c, err := api.NewClient(&api.Config{Address: *f.addr, HttpClient: &http.Client{Transport: tr, Timeout: 30 * time.Second}, MaxRetries: 0})
	if err != nil {
		return nil, err
	}
	c.SetToken(*f.token)
	return c, nil
}

// vaultSetup mounts pki_root (EC P-256 root) and pki (intermediate signed
// by it, the default issuer), writes role "bench" for names under the
// domain, and turns on Vault's ACME on pki with that role, its http-01
// and dns-01 checks resolving through -acme-dns.
func vaultSetup(args []string) error {
	fs := flag.NewFlagSet("vault-setup", flag.ContinueOnError)
	vf := addVaultFlags(fs)
	acmeDNS := fs.String("acme-dns", "", "resolver (ip:port) for Vault's ACME validations")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := vf.client()
	if err != nil {
		return err
	}
	l := c.Logical()
	for _, m := range []string{"pki_root", "pki"} {
		if err := c.Sys().Mount(m, &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
	}
	write := func(path string, data map[string]any) (*api.Secret, error) {
		s, err := l.Write(path, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	s, err := write("pki_root/root/generate/internal", map[string]any{
		"common_name": "bench root", "issuer_name": "root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})
	if err != nil {
		return err
	}
	rootPEM, _ := s.Data["certificate"].(string)
	if s, err = write("pki/intermediate/generate/internal", map[string]any{
		"common_name": "bench intermediate", "key_type": "ec", "key_bits": 256}); err != nil {
		return err
	}
	csr, _ := s.Data["csr"].(string)
	if s, err = write("pki_root/root/sign-intermediate", map[string]any{
		"csr": csr, "format": "pem", "ttl": "43800h", "common_name": "bench intermediate"}); err != nil {
		return err
	}
	interPEM, _ := s.Data["certificate"].(string)
	if s, err = write("pki/intermediate/set-signed", map[string]any{"certificate": interPEM + "\n" + rootPEM}); err != nil {
		return err
	}
	var interID string
	if m, ok := s.Data["mapping"].(map[string]any); ok {
		for id, key := range m {
			if k, _ := key.(string); k != "" {
				interID = id
			}
		}
	}
	if interID == "" {
		return errors.New("set-signed named no issuer with a key")
	}
	steps := []struct {
		path string
		data map[string]any
	}{
		{"pki/config/issuers", map[string]any{"default": interID}},
		{"pki/roles/bench", map[string]any{
			"allowed_domains": []string{*vf.domain}, "allow_subdomains": true, "allow_bare_domains": true,
			"key_type": "any", "max_ttl": "720h", "ttl": "72h", "require_cn": false,
			"server_flag": true, "client_flag": false, "no_store": false}},
		// Vault's own ACME (field notes: cluster path, response headers, acme).
		{"pki/config/cluster", map[string]any{"path": *vf.addr + "/v1/pki", "aia_path": *vf.addr + "/v1/pki"}},
		{"pki/config/acme", map[string]any{"enabled": true, "default_directory_policy": "role:bench",
			"allowed_roles": []string{"bench"}, "dns_resolver": *acmeDNS}},
	}
	for _, st := range steps[:3] {
		if _, err := write(st.path, st.data); err != nil {
			return err
		}
	}
	// Only the two header lists are sent; the mount's other settings stay.
	if err := c.Sys().TuneMountAllowNil("pki", api.TuneMountConfigInput{
		PassthroughRequestHeaders: &[]string{"If-Modified-Since"},
		AllowedResponseHeaders:    &[]string{"Last-Modified", "Location", "Replay-Nonce", "Link"},
	}); err != nil {
		return fmt.Errorf("tune pki: %w", err)
	}
	_, err = write(steps[3].path, steps[3].data)
	return err
}

// vaultSign measures raw pki/sign/bench: -clients goroutines sign -count
// CSRs in all (made before the clock starts), each with its own fresh
// name.
func vaultSign(args []string) error {
	fs := flag.NewFlagSet("vault-sign", flag.ContinueOnError)
	vf := addVaultFlags(fs)
	clients := fs.Int("clients", 16, "concurrent callers")
	count := fs.Int("count", 320, "signatures in all")
	label := fs.String("label", "vault pki/sign (raw)", "label of the result")
	var pids []int
	fs.Func("server-pid", "a server process whose CPU time to count (repeatable)", func(v string) error {
		n, err := strconv.Atoi(v)
		pids = append(pids, n)
		return err
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := vf.client()
	if err != nil {
		return err
	}
	csrs := make([]string, *count)
	for i := range csrs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("sign-%d-%d.%s", time.Now().UnixNano()%1e6, i, *vf.domain)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, key)
		if err != nil {
			return err
		}
		csrs[i] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	lat := bench.NewRecorder()
	var next, failed atomic.Int64
	var firstErr sync.Once
	var sample string
	before := make([]time.Duration, len(pids))
	for i, p := range pids {
		before[i], _, _ = bench.ProcCPU(p)
	}
	cpu0 := bench.SelfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(csrs) {
					return
				}
				t0 := time.Now()
				_, err := c.Logical().WriteWithContext(context.Background(), "pki/sign/bench", map[string]any{"csr": csrs[i], "format": "pem"})
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { sample = err.Error() })
					continue
				}
				lat.Add(bench.StepTotal, time.Since(t0))
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	res := bench.Result{Label: *label, Directory: *vf.addr + "/v1/pki/sign/bench", Clients: *clients, Orders: *count / *clients,
		Failed: int(failed.Load()), WallSeconds: wall.Seconds(), FirstError: sample, StartedAt: start.UTC(), RequestsPerIssuance: 1}
	res.Issued = *count - res.Failed
	res.Throughput = float64(res.Issued) / wall.Seconds()
	res.Steps, res.Latency = lat.Summaries()
	perIss := func(d time.Duration) float64 {
		return float64(d) / float64(time.Millisecond) / float64(max(res.Issued, 1))
	}
	cpu := bench.SelfCPU() - cpu0
	res.ClientCPU = bench.CPU{Seconds: cpu.Seconds(), MsPerIssuance: perIss(cpu)}
	var total time.Duration
	for i, p := range pids {
		after, name, err := bench.ProcCPU(p)
		pc := bench.ProcessCPU{PID: p, Name: name, Seconds: (after - before[i]).Seconds()}
		if err != nil {
			pc.Error = err.Error()
		}
		total += after - before[i]
		res.Server.Processes = append(res.Server.Processes, pc)
	}
	res.Server.Seconds, res.Server.MsPerIssuance = total.Seconds(), perIss(total)
	return res.WriteJSON(os.Stdout)
}

// compare reads result files (each one JSON result, or several
// concatenated) and prints the table.
func compare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	baseline := fs.String("baseline", "", "label the ratios are against")
	markdown := fs.Bool("markdown", false, "a Markdown table")
	var pairs []string
	fs.Func("pair", "A:B, print the throughput ratio of A over B (repeatable)", func(v string) error {
		pairs = append(pairs, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	var results []bench.Result
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		for dec.More() {
			var r bench.Result
			if err := dec.Decode(&r); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			results = append(results, r)
		}
	}
	rows := bench.Compare(results, *baseline)
	if err := bench.WriteComparison(os.Stdout, rows, *baseline, *markdown); err != nil {
		return err
	}
	tp := map[string]float64{}
	for _, r := range rows {
		tp[r.Label] = r.Throughput
	}
	for _, p := range pairs {
		a, b, _ := strings.Cut(p, ":")
		if tp[a] > 0 && tp[b] > 0 {
			fmt.Printf("%s / %s: %.2fx\n", a, b, tp[a]/tp[b])
		}
	}
	return nil
}

// ports prints N distinct free loopback ports, free for TCP and UDP (held
// together while picked, so they differ).
func ports(args []string) error {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		n = v
	}
	var out []string
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		closers = append(closers, pc.Close)
		out = append(out, strconv.Itoa(port))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

// wait polls a URL until it answers 200.
func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	url := fs.String("url", "", "URL to poll")
	caFile := fs.String("ca-file", "", "PEM roots for HTTPS")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(b)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(*timeout)
	for {
		resp, err := c.Get(*url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %w", *url, *timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// summary prints one line of a result file.
func summary(args []string) error {
	fs := flag.NewFlagSet("summary", flag.ContinueOnError)
	issued := fs.Bool("issued", false, "print only the number of issuances")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var r bench.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	if *issued {
		fmt.Println(r.Issued)
		return nil
	}
	line := fmt.Sprintf("%.1f/s, p50 %.1f ms, p99 %.1f ms, server CPU %.2f ms/iss, client CPU %.2f ms/iss, %.1f req/iss, failed %d",
		r.Throughput, r.Latency[bench.StepTotal].P50, r.Latency[bench.StepTotal].P99, r.Server.MsPerIssuance,
		r.ClientCPU.MsPerIssuance, r.RequestsPerIssuance, r.Failed)
	if r.FirstError != "" {
		line += " (first: " + r.FirstError + ")"
	}
	fmt.Println(line)
	return nil
}

func storeOps(args []string) error {
	fs := flag.NewFlagSet("storeops", flag.ContinueOnError)
	url := fs.String("url", "", "the admin listener's /metrics URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(*url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var n float64
	for _, line := range strings.Split(string(body), "\n") {
		idlePoll := (strings.Contains(line, `op="ClaimJob"`) || strings.Contains(line, `op="ClaimValidation"`)) &&
			strings.Contains(line, `result="miss"`)
		if !strings.HasPrefix(line, "acmebridge_store_seconds_count{") || idlePoll {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", *url, line, err)
		}
		n += v
	}
	fmt.Printf("%.0f\n", n)
	return nil
}
