package test

// The client matrix (issue 7): every real ACME client installable here,
// driven against the acmebridge binary with each upstream kind (the local
// CA, a real Vault dev server, and a relay to a real Pebble), feature by
// feature. Each feature is a subtest whose outcome is recorded; the results
// are written as JSON ($ACMEBRIDGE_MATRIX_OUT, default test/matrix.json)
// and rendered into README.md by `go run ./test/matrixgen` (make matrix).
//
// The clients themselves are in matrix_clients_test.go.

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// Results of one cell.
const (
	resPass        = "pass"
	resFail        = "fail"
	resUnsupported = "not supported"
	resNotRun      = "not run"
)

// The matrix's axes. Feature names are the JSON's and the README's.
const (
	featRegister    = "register"
	featRegisterEAB = "register (EAB)"
	featHTTP01      = "http-01"
	featDNS01       = "dns-01"
	featRenew       = "renew"
	featRenewARI    = "renew (ARI)"
	featProfile     = "profile"
	featRevoke      = "revoke"
	featApproval    = "approval"
)

var (
	matrixFeatures  = []string{featRegister, featRegisterEAB, featHTTP01, featDNS01, featRenew, featRenewARI, featProfile, featRevoke, featApproval}
	matrixUpstreams = []string{"local", "vault", "pebble", "tenant"}
)

// matrixZone is the DNS zone of every name the matrix orders.
const matrixZone = "matrix.test"

// matrixProfile is the profile the server offers in meta.profiles; orders
// naming it get a certificate valid for at most a day (local, Vault) or
// Pebble's "shortlived" profile (six days), so a profile test only has to
// check that the lifetime is under a week.
const matrixProfile = "shortlived"

// matrixCell is one client × upstream × feature result.
type matrixCell struct {
	Client   string `json:"client"`
	Upstream string `json:"upstream"`
	Feature  string `json:"feature"`
	Result   string `json:"result"`
	Note     string `json:"note,omitempty"`
}

// matrixClientInfo describes a client row.
type matrixClientInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Install string `json:"install"`
	// Notes are the client's quirks met, and how they are handled.
	Notes []string `json:"notes,omitempty"`
}

// matrixReport is the JSON file matrixgen renders.
type matrixReport struct {
	GeneratedAt time.Time          `json:"generated_at"`
	Machine     string             `json:"machine"`
	Seconds     float64            `json:"seconds"`
	Clients     []matrixClientInfo `json:"clients"`
	Upstreams   []string           `json:"upstreams"`
	Features    []string           `json:"features"`
	Cells       []matrixCell       `json:"cells"`
}

// matrixRecorder collects the cells of one run, concurrently.
type matrixRecorder struct {
	mu      sync.Mutex
	start   time.Time
	cells   map[[3]string]matrixCell
	clients map[string]*matrixClientInfo
}

func (r *matrixRecorder) set(client, upstream, feature, result, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [3]string{client, upstream, feature}
	// A recorded failure is never overwritten by a later, milder result.
	if old, ok := r.cells[k]; ok && old.Result == resFail && result != resFail {
		return
	}
	r.cells[k] = matrixCell{Client: client, Upstream: upstream, Feature: feature, Result: result, Note: note}
}

func (r *matrixRecorder) get(client, upstream, feature string) (matrixCell, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cells[[3]string{client, upstream, feature}]
	return c, ok
}

// fillRow records every feature of a client × upstream not yet recorded.
func (r *matrixRecorder) fillRow(client, upstream, result, note string) {
	for _, f := range matrixFeatures {
		if _, ok := r.get(client, upstream, f); !ok {
			r.set(client, upstream, f, result, note)
		}
	}
}

func (r *matrixRecorder) client(mc *matrixClient) *matrixClientInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ci, ok := r.clients[mc.ID]; ok {
		return ci
	}
	ci := &matrixClientInfo{ID: mc.ID, Name: mc.Name, Install: mc.Install, Notes: slices.Clone(mc.Quirks)}
	r.clients[mc.ID] = ci
	return ci
}

// matrixOut is where the results go.
func matrixOut() string {
	if p := os.Getenv("ACMEBRIDGE_MATRIX_OUT"); p != "" {
		return p
	}
	return "matrix.json" // the test runs in test/
}

// write merges this run's rows into the results file: a client × upstream
// row this run touched replaces the stored one; other rows are kept, so
// `-run Matrix/local/certbot` updates one row.
func (r *matrixRecorder) write(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := matrixOut()
	var prev matrixReport
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	touched := map[[2]string]bool{}
	for k := range r.cells {
		touched[[2]string{k[0], k[1]}] = true
	}
	rep := matrixReport{GeneratedAt: time.Now().UTC().Truncate(time.Second), Seconds: time.Since(r.start).Round(time.Second).Seconds(),
		Machine:   fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
		Upstreams: matrixUpstreams, Features: matrixFeatures}
	if len(touched) < len(matrixClients())*len(matrixUpstreams) && prev.Seconds > 0 {
		rep.Seconds = prev.Seconds // a partial run: keep the full run's time
	}
	for _, c := range prev.Cells {
		if !touched[[2]string{c.Client, c.Upstream}] && slices.Contains(matrixFeatures, c.Feature) {
			rep.Cells = append(rep.Cells, c)
		}
	}
	for _, c := range r.cells {
		rep.Cells = append(rep.Cells, c)
	}
	clients := map[string]matrixClientInfo{}
	for _, ci := range prev.Clients {
		clients[ci.ID] = ci
	}
	for id, ci := range r.clients {
		clients[id] = *ci
	}
	for _, mc := range matrixClients() {
		if ci, ok := clients[mc.ID]; ok {
			rep.Clients = append(rep.Clients, ci)
		}
	}
	order := func(list []string, s string) int { return slices.Index(list, s) }
	clientOrder := func(id string) int {
		return slices.IndexFunc(matrixClients(), func(m *matrixClient) bool { return m.ID == id })
	}
	slices.SortFunc(rep.Cells, func(a, b matrixCell) int {
		if d := clientOrder(a.Client) - clientOrder(b.Client); d != 0 {
			return d
		}
		if d := order(matrixUpstreams, a.Upstream) - order(matrixUpstreams, b.Upstream); d != 0 {
			return d
		}
		return order(matrixFeatures, a.Feature) - order(matrixFeatures, b.Feature)
	})
	b, err := json.MarshalIndent(rep, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
	t.Logf("client matrix written to %s (render it with `go run ./test/matrixgen`)", path)
}

// matrixUpstream is one upstream column: its YAML and the roots its
// certificates chain to.
type matrixUpstream struct {
	Name string
	// YAML is the upstream's list entry, named "main".
	YAML string
	// ProfileRule holds the keys the "shortlived" rule adds.
	ProfileRule string
	// Roots verify the issued chains (nil: the local CA's root.pem,
	// read once the server runs).
	Roots     *x509.CertPool
	RootsName string
	// ShortValidity says whether max_validity reaches the certificate
	// (the acme upstream leaves the lifetime to the CA).
	ShortValidity bool
	// Directory, when set, puts the matrix's settings in that directory
	// (directories:) and points the clients at /{Directory}/directory;
	// the top level then refuses EAB and issues nothing.
	Directory string
}

// matrixServerYAML is the config every matrix server runs: EAB optional
// (so one server registers accounts both ways), the profile offered, ARI
// answers to be polled again after a minute (the least allowed), and names under
// short.matrix.test issued for 90 seconds (the Vault upstream refuses less than a minute) (lifetime-driven renewal),
// and names under approval.matrix.test issued only once an administrator
// approved them (the approval feature, run in the local column).
func matrixServerYAML(up *matrixUpstream) string {
	if up.Directory != "" {
		return matrixTenantYAML(up)
	}
	return fmt.Sprintf(`accounts:
  eab: optional
orders:
  profiles:
    %s: "certificates valid for a day at most"
  renewal_retry_after: 1m
upstreams:
%spolicy:
  rules:
    - name: profile
      match: {profiles: [%s]}
      upstreams: [main]
%s    - name: short
      match: {domains: ["*.short.%s"]}
      upstreams: [main]
      max_validity: 90s
    - name: approval
      match: {domains: ["*.approval.%s"]}
      upstreams: [main]
      approval: required
  default: {upstreams: [main]}
`, matrixProfile, up.YAML, matrixProfile, up.ProfileRule, matrixZone, matrixZone)
}

// matrixTenantYAML is matrixServerYAML inside the directory up.Directory:
// the tenant has the sign-up, profile and policy; the top level refuses
// EAB and denies every order, so nothing a client gets can come from it.
func matrixTenantYAML(up *matrixUpstream) string {
	return fmt.Sprintf(`accounts:
  eab: disabled
orders:
  renewal_retry_after: 1m
upstreams:
%spolicy:
  default: {action: deny, reason: "the top level issues nothing in this test"}
directories:
  - name: %s
    accounts:
      eab: optional
    profiles:
      %s: "certificates valid for a day at most"
    policy:
      rules:
        - name: profile
          match: {profiles: [%s]}
          upstreams: [main]
          max_validity: 24h
        - name: short
          match: {domains: ["*.short.%s"]}
          upstreams: [main]
          max_validity: 90s
      default: {upstreams: [main]}
`, up.YAML, up.Directory, matrixProfile, matrixProfile, matrixZone)
}

// matrixParallel is how many client runs of one upstream go at once.
func matrixParallel() int {
	if n, err := strconv.Atoi(os.Getenv("ACMEBRIDGE_MATRIX_PARALLEL")); err == nil && n > 0 {
		return n
	}
	return 4
}

// TestMatrix runs every client against every upstream kind and records the
// results. Within an upstream, clients run concurrently (each has its own
// acmebridge process and ports).
func TestMatrix(t *testing.T) {
	rec := &matrixRecorder{start: time.Now(), cells: map[[3]string]matrixCell{}, clients: map[string]*matrixClientInfo{}}
	t.Cleanup(func() { rec.write(t) })
	clients := matrixClients()

	// The upstream columns run side by side, and the client runs of all of
	// them share one limit: most of a run is waiting (Caddy's ARI poll,
	// certbot's start-up), not CPU. Slow clients queue first.
	sem := make(chan struct{}, matrixParallel())
	slices.SortStableFunc(clients, func(a, b *matrixClient) int { return b.slow() - a.slow() })
	var groups sync.WaitGroup
	for _, upName := range matrixUpstreams {
		groups.Add(1)
		go func() {
			defer groups.Done()
			t.Run(upName, func(t *testing.T) {
				up, reason := startMatrixUpstream(t, upName)
				if up == nil {
					for _, mc := range clients {
						rec.client(mc)
						rec.fillRow(mc.ID, upName, resNotRun, reason)
					}
					if os.Getenv("CI") != "" {
						t.Fatalf("upstream %s unavailable under CI: %s", upName, reason)
					}
					t.Skipf("upstream %s unavailable: %s", upName, reason)
				}
				var wg sync.WaitGroup
				for _, mc := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						sem <- struct{}{}
						defer func() { <-sem }()
						t.Run(mc.ID, func(t *testing.T) { runMatrixCell(t, rec, up, mc) })
					}()
					time.Sleep(10 * time.Millisecond) // keep the queue in order
				}
				wg.Wait()
			})
		}()
	}
	groups.Wait()
}

// startMatrixUpstream starts what an upstream column needs and returns it,
// or nil and why not.
func startMatrixUpstream(t *testing.T, name string) (up *matrixUpstream, reason string) {
	t.Helper()
	switch name {
	case "local":
		return &matrixUpstream{Name: name, YAML: "  - name: main\n    type: local\n", ProfileRule: "      max_validity: 24h\n",
			ShortValidity: true}, ""
	case "vault":
		if _, err := vaultBinaryQuiet(); err != nil {
			return nil, err.Error()
		}
		v := vaulttest.Start(t, vaulttest.Options{})
		root := v.Client(t, "")
		p := vaulttest.SetupPKI(t, root, vaulttest.PKIOptions{AllowedDomains: []string{matrixZone}})
		vaulttest.PutPolicy(t, root, "acmebridge", vaulttest.MinimumPolicy(p.Mount, p.Role))
		tok := vaulttest.CreateToken(t, root, vaulttest.TokenOptions{Policies: []string{"acmebridge"}, NoDefaultPolicy: true})
		tokFile := filepath.Join(t.TempDir(), "vault-token")
		require.NoError(t, os.WriteFile(tokFile, []byte(tok+"\n"), 0o600))
		return &matrixUpstream{Name: name, YAML: fmt.Sprintf(`  - name: main
    type: vault
    vault:
      address: %q
      mount: %s
      role: %s
      ttl: 720h
      token_file: %q
`, v.URL, p.Mount, p.Role, tokFile), ProfileRule: "      max_validity: 24h\n",
			Roots: p.Roots, RootsName: "Vault's root", ShortValidity: true}, ""
	case "pebble":
		dir, err := acmetest.Dir()
		if err != nil {
			return nil, err.Error()
		}
		if !fileExists(filepath.Join(dir, "pebble")) && os.Getenv("CI") == "" {
			return nil, "Pebble is not installed in " + dir + " (make deps)"
		}
		p := acmetest.Start(t, acmetest.Options{})
		return &matrixUpstream{Name: name, YAML: acmeUpstreamDNS("main", p),
			ProfileRule: "      upstream_profile: " + matrixProfile + "\n",
			Roots:       p.Roots(t), RootsName: "Pebble's root"}, ""
	case "tenant":
		return &matrixUpstream{Name: name, YAML: "  - name: main\n    type: local\n", ShortValidity: true, Directory: "tenant"}, ""
	}
	return nil, "unknown upstream " + name
}

// vaultBinaryQuiet finds the Vault dev server binary without building it
// (the matrix never waits nine minutes for it; `make vault-dev` builds it,
// and under CI vaulttest builds it on demand).
func vaultBinaryQuiet() (string, error) {
	if p := os.Getenv(vaulttest.EnvBin); p != "" {
		if fileExists(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s does not exist", vaulttest.EnvBin, p)
	}
	if os.Getenv("CI") != "" {
		return "", nil // vaulttest.Start builds it or fails
	}
	bin, err := vaulttest.CachedPath("vaultdev") // the test runs in test/
	if err != nil {
		return "", err
	}
	if !fileExists(bin) {
		return "", fmt.Errorf("the Vault dev server is not built (make vault-dev)")
	}
	return bin, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// runMatrixCell runs one client against one upstream.
func runMatrixCell(t *testing.T, rec *matrixRecorder, up *matrixUpstream, mc *matrixClient) {
	ci := rec.client(mc)
	bin, err := mc.Find()
	if err != nil {
		rec.fillRow(mc.ID, up.Name, resNotRun, "client not installed: "+err.Error())
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and CI is set: %v", mc.Name, err)
		}
		t.Skipf("%s is not installed (make deps; set CI=true to make this a failure): %v", mc.Name, err)
	}
	// The same client runs in every column at once: its version is read
	// and written under the recorder's lock.
	rec.mu.Lock()
	known := ci.Version != ""
	rec.mu.Unlock()
	if !known && mc.Version != nil {
		v := mc.Version(bin)
		rec.mu.Lock()
		ci.Version = v
		rec.mu.Unlock()
	}
	s := startServer(t, matrixServerYAML(up))
	if up.Directory != "" {
		s = s.in(up.Directory)
	}
	r := &clientRun{t: t, s: s, up: up, mc: mc, rec: rec, bin: bin, dir: t.TempDir(), passed: map[string]bool{}, skips: map[*testing.T]string{}}
	r.roots, r.rootsName = up.Roots, up.RootsName
	if r.roots == nil {
		r.roots, r.rootsName = rootPool(t, s, "main")
	}
	start := time.Now()
	defer func() {
		// Whatever the client's run did not reach is "not run".
		rec.fillRow(mc.ID, up.Name, resNotRun, "not reached (see the test log)")
		t.Logf("%s × %s took %s", mc.ID, up.Name, time.Since(start).Round(time.Millisecond))
	}()
	mc.Run(r)
}

// matrixClient is one client row.
type matrixClient struct {
	ID, Name, Install string
	// Unsupported maps a feature the client lacks to why.
	Unsupported map[string]string
	// Quirks are what the client needed that a plain run would not have
	// given it, and on which side the fix lies.
	Quirks []string
	// Find returns the client's binary ("" for a library).
	Find func() (string, error)
	// Version reports the binary's version.
	Version func(bin string) string
	// Run drives the client through its features with r.step.
	Run func(r *clientRun)
}

// slow ranks clients whose run takes longest (Caddy waits for renewals).
func (mc *matrixClient) slow() int {
	if strings.HasPrefix(mc.ID, "caddy") {
		return 1
	}
	return 0
}

// clientRun is one client × upstream run.
type clientRun struct {
	t         *testing.T
	s         *server
	up        *matrixUpstream
	mc        *matrixClient
	rec       *matrixRecorder
	bin       string
	dir       string
	roots     *x509.CertPool
	rootsName string

	mu     sync.Mutex
	passed map[string]bool
	skips  map[*testing.T]string
}

// name is the DNS name a feature orders: FEATURE.CLIENT.UPSTREAM.matrix.test.
func (r *clientRun) name(label string) string {
	return label + "." + strings.ReplaceAll(r.mc.ID, ".", "") + "." + r.up.Name + "." + matrixZone
}

// shortName is a name issued for 90 seconds (the short rule).
func (r *clientRun) shortName(label string) string {
	return label + "." + strings.ReplaceAll(r.mc.ID, ".", "") + "." + r.up.Name + ".short." + matrixZone
}

// approvalName is a name issued only after an administrator's approval
// (the approval rule).
func (r *clientRun) approvalName(label string) string {
	return label + "." + strings.ReplaceAll(r.mc.ID, ".", "") + "." + r.up.Name + ".approval." + matrixZone
}

// approvalColumn is the only column that runs the approval feature: the
// decision is acmebridge's, the same whatever the upstream.
const approvalColumn = "local"

// approvalStep runs the approval feature in the approval column: fn runs
// the client once for name (refused while the request is pending), calls
// r.approve, and runs the same command again, which must issue. Other
// columns record it not run.
func (r *clientRun) approvalStep(fn func(t *testing.T, name string) string) {
	if _, unsupported := r.mc.Unsupported[featApproval]; !unsupported && r.up.Name != approvalColumn {
		r.rec.set(r.mc.ID, r.up.Name, featApproval, resNotRun, "run in the "+approvalColumn+" column")
		return
	}
	if !r.needs(featApproval, featRegister) {
		return
	}
	name := r.approvalName("apr")
	r.step(featApproval, func(t *testing.T) string { return fn(t, name) })
}

// approve requires a refused run (err, out) to have left a pending
// approval request for name, and approves it as an administrator would.
func (r *clientRun) approve(t *testing.T, name, out string, err error) {
	t.Helper()
	require.Error(t, err, "issued %s without approval:\n%s", name, out)
	id := r.pendingFor(t, name)
	require.NotEmpty(t, id, "no pending approval request for %s after the refused run:\n%s", name, out)
	r.s.admin(t, "approval", "approve", id)
}

// pendingFor returns the ID of the pending approval request for name, or "".
func (r *clientRun) pendingFor(t *testing.T, name string) string {
	t.Helper()
	var page listing[approvalRec]
	r.s.adminJSON(t, &page, "approval", "list", "--status", "pending")
	for _, a := range page.Items {
		if slices.Contains(a.Names, name) {
			return a.ID
		}
	}
	return ""
}

// approvalNote is the README note of a passed approval cell.
const approvalNote = "refused while pending; the same command issues after `acmebridge approval approve`"

// step runs one feature as a subtest and records its result: pass, fail,
// or, when fn skips, not run. fn returns a note for the README (may be
// ""). A feature the client lacks is recorded "not supported" and not run.
func (r *clientRun) step(feature string, fn func(t *testing.T) string) bool {
	if reason, ok := r.mc.Unsupported[feature]; ok {
		r.rec.set(r.mc.ID, r.up.Name, feature, resUnsupported, reason)
		return false
	}
	var note string
	ok := r.t.Run(feature, func(t *testing.T) {
		defer func() {
			switch {
			case t.Failed():
				r.rec.set(r.mc.ID, r.up.Name, feature, resFail, note)
			case t.Skipped():
				r.mu.Lock()
				note = r.skips[t]
				r.mu.Unlock()
				r.rec.set(r.mc.ID, r.up.Name, feature, resNotRun, note)
			default:
				r.rec.set(r.mc.ID, r.up.Name, feature, resPass, note)
			}
		}()
		note = fn(t)
	})
	if ok {
		r.mu.Lock()
		r.passed[feature] = true
		r.mu.Unlock()
	}
	return ok
}

// needs records feature as not run (and returns false) unless every one of
// deps passed.
func (r *clientRun) needs(feature string, deps ...string) bool {
	if _, unsupported := r.mc.Unsupported[feature]; unsupported {
		return true // step records it
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range deps {
		if !r.passed[d] {
			r.rec.set(r.mc.ID, r.up.Name, feature, resNotRun, "needs "+d+", which did not pass")
			return false
		}
	}
	return true
}

// skip records the step as not run with a reason.
func (r *clientRun) skip(t *testing.T, format string, args ...any) {
	t.Helper()
	r.mu.Lock()
	r.skips[t] = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	t.Skipf(format, args...)
}

// verify checks an issued chain against the upstream's roots and names.
func (r *clientRun) verify(t *testing.T, chainPEM []byte, names ...string) *x509.Certificate {
	t.Helper()
	return verifyChainPool(t, r.roots, r.rootsName, chainPEM, names)
}

// verifyFile is verify on a file.
func (r *clientRun) verifyFile(t *testing.T, path string, names ...string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err, "the client wrote no certificate")
	return r.verify(t, b, names...)
}

// certOf returns acmebridge's record of an issued certificate.
func (r *clientRun) certOf(t *testing.T, leaf *x509.Certificate) certRec {
	t.Helper()
	var page listing[certRec]
	r.s.adminJSON(t, &page, "cert", "list", "--name", leaf.DNSNames[0])
	for _, c := range page.Items {
		var n big.Int
		if _, ok := n.SetString(strings.ReplaceAll(c.Serial, ":", ""), 16); ok && n.Cmp(leaf.SerialNumber) == 0 {
			return c
		}
	}
	t.Fatalf("acmebridge has no record of serial %x for %s", leaf.SerialNumber, leaf.DNSNames[0])
	return certRec{}
}

// requireRevoked checks acmebridge recorded the revocation.
func (r *clientRun) requireRevoked(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	c := r.certOf(t, leaf)
	require.NotEmpty(t, c.RevokedAt, "acmebridge does not show %s revoked", c.ID)
	require.False(t, strings.HasPrefix(c.RevokedAt, "0001-"), "acmebridge does not show %s revoked", c.ID)
}

// renewNow asks acmebridge to move a certificate's ARI window into the
// past (what an operator does after an incident).
func (r *clientRun) renewNow(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	c := r.certOf(t, leaf)
	r.s.admin(t, "cert", "renew-now", c.ID)
}

// eabBound requires the EAB key to be bound to an account now.
func (r *clientRun) eabBound(t *testing.T, kid string) {
	t.Helper()
	var page listing[eabKey]
	r.s.adminJSON(t, &page, "eab", "list")
	for _, k := range page.Items {
		if k.ID == kid {
			require.NotEmpty(t, k.AccountID, "EAB key %s is not bound to an account (status %s)", kid, k.Status)
			return
		}
	}
	t.Fatalf("EAB key %s is not listed", kid)
}

// requireShortLived checks the profile reached the certificate: under a
// week (the default is 30 or 90 days).
func requireShortLived(t *testing.T, leaf *x509.Certificate) string {
	t.Helper()
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	require.Less(t, life, 7*24*time.Hour, "a %s certificate lives %s", matrixProfile, life)
	return ""
}

// toolVersion runs bin with args and returns the first line that holds a
// digit, trimmed.
func toolVersion(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if strings.ContainsAny(l, "0123456789") {
			return l
		}
	}
	return ""
}
