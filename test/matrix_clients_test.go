package test

// The clients of the matrix (matrix_test.go): how each is found, and the
// commands that drive it through the features. Flags and files follow
// the per-client tests (lego_cli_test.go, certbot_test.go).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// Versions of the clients built into the cache by test/matrix-deps.sh.
const (
	lego425Version = "v4.25.2"
	caddy211       = "v2.11.9"
	stepVersion    = "v0.30.2"
)

// matrixClients lists the rows, in the README's order.
func matrixClients() []*matrixClient {
	return []*matrixClient{
		{
			ID: "certbot", Name: "certbot (Debian)", Install: "apt `certbot`",
			Quirks: []string{
				"2.1 ignores Retry-After while polling (field notes); not hit here, as every upstream answers within finalize: client tolerance, nothing to fix",
			},
			Unsupported: map[string]string{
				featRenewARI: "certbot 2.1 has no ARI; it renews by expiry (`renew --force-renewal` is the renew test)",
				featProfile:  "certbot 2.1 cannot ask for a profile",
			},
			Find:    func() (string, error) { return exec.LookPath("certbot") },
			Version: func(string) string { return debVersion("certbot") },
			Run:     runCertbot,
		},
		{
			ID: "lego-4.9", Name: "lego (Debian)", Install: "apt `lego`",
			Unsupported: map[string]string{
				featRenewARI: "lego 4.9 has no ARI",
				featProfile:  "lego 4.9 has no --profile",
			},
			Find:    func() (string, error) { return exec.LookPath("lego") },
			Version: func(string) string { return debVersion("lego") }, // Debian's build says "dev"
			Run:     func(r *clientRun) { runLego(r, false) },
		},
		{
			ID: "lego-4.25", Name: "lego", Install: "built from its module into the cache (`make deps`)",
			Quirks: []string{
				"`--dns.disable-cp` is deprecated: `--dns.propagation-disable-ans` (test-side flag choice)",
				"`renew` consults renewalInfo first and sends `replaces`; it falls back to `--days` when the window is ahead, so the ARI test uses `--days 1` and certificates of 6 days or more: test-side",
			},
			Find:    cachedTool("lego", lego425Version, "lego"),
			Version: func(b string) string { return toolVersion(b, "--version") },
			Run:     func(r *clientRun) { runLego(r, true) },
		},
		{
			ID: "caddy-2.6", Name: "Caddy (Debian)",
			Quirks: caddyQuirks, Install: "apt `caddy`",
			Unsupported: map[string]string{
				featDNS01:    "Caddy solves dns-01 only through DNS provider plugins; the Debian build has none",
				featRenewARI: "Caddy 2.6 (certmagic 0.17) has no ARI",
				featProfile:  "Caddy 2.6 cannot ask for a profile",
				featRevoke:   "Caddy has no command to revoke a certificate over ACME",
			},
			Find: func() (string, error) {
				if fileExists("/usr/bin/caddy") {
					return "/usr/bin/caddy", nil
				}
				return "", errors.New("/usr/bin/caddy is missing")
			},
			Version: func(string) string { return debVersion("caddy") },
			Run:     func(r *clientRun) { runCaddy(r, false) },
		},
		{
			ID: "caddy-2.11", Name: "Caddy",
			Quirks: append([]string{
				"re-reads renewalInfo only once its Retry-After has passed; acmebridge refuses `orders.renewal_retry_after` under 1m, so an operator's `cert renew-now` reaches Caddy within a minute (the test waits up to 100 s): by design, no fix",
			}, caddyQuirks...), Install: "`go install` into the cache (`make deps`)",
			Unsupported: map[string]string{
				featDNS01:  "Caddy solves dns-01 only through DNS provider plugins; the stock build has none",
				featRevoke: "Caddy has no command to revoke a certificate over ACME",
			},
			Find:    cachedTool("caddy", caddy211, "caddy"),
			Version: func(string) string { return caddy211 }, // a go-install build reports "unknown"
			Run:     func(r *clientRun) { runCaddy(r, true) },
		},
		{
			ID: "dehydrated", Name: "dehydrated (Debian)", Install: "apt `dehydrated`",
			Quirks: []string{
				"refuses to start unless BASEDIR exists; calls its hook for every event, including unknown ones the hook must ignore; http-01 is webroot only (WELLKNOWN, served by the test): client tolerances",
			},
			Unsupported: map[string]string{
				featRenewARI: "dehydrated 0.7 has no ARI",
				featProfile:  "dehydrated 0.7 cannot ask for a profile",
			},
			Find:    func() (string, error) { return exec.LookPath("dehydrated") },
			Version: func(string) string { return debVersion("dehydrated") },
			Run:     runDehydrated,
		},
		{
			ID: "uacme", Name: "uacme (Debian)", Install: "apt `uacme`",
			Quirks: []string{
				"trusts only the system CA bundle (libcurl-gnutls; no option or variable names another): the test runs it in a private mount namespace (`unshare -m`) with acmebridge's ca.pem bind-mounted over /etc/ssl/certs/ca-certificates.crt: client tolerance; in production, install the CA with update-ca-certificates",
				"the hook declines (exit 1) every challenge type but the one under test; acmebridge offers only http-01, dns-01 and tls-alpn-01, so uacme's known failure on token-less unknown types is not triggered",
			},
			Unsupported: map[string]string{
				featRenewARI: "uacme 1.7 has no ARI",
				featProfile:  "uacme 1.7 cannot ask for a profile",
			},
			Find:    func() (string, error) { return exec.LookPath("uacme") },
			Version: func(string) string { return debVersion("uacme") },
			Run:     runUacme,
		},
		{
			ID: "step", Name: "step CLI", Install: "`go install` into the cache (`make deps`)",
			Quirks: []string{
				"sends `notBefore`/`notAfter` of 0001-01-01T00:00:00Z in every newOrder (its NewOrderRequest has `time.Time` fields tagged omitempty, which encoding/json never omits); acmebridge treats zero times as absent (proxy/order.go), so step passes with `allow_validity_request` off: server tolerance, already in place",
				"`--contact` must be a `mailto:` URI (step refuses a bare address before it talks to the server): test-side",
			},
			Unsupported: map[string]string{
				featRegisterEAB: "the step CLI has no External Account Binding option",
				featDNS01:       "`step ca certificate --acme` solves http-01 only (standalone or webroot)",
				featRenew:       "`step ca renew` is step-ca's own mTLS renewal, not ACME",
				featRenewARI:    "no ARI",
				featProfile:     "cannot ask for a profile",
				featRevoke:      "`step ca revoke` is step-ca's own API, not ACME",
				featApproval: "an approval is the account's, and `step ca certificate` makes a new account every run: " +
					"each run opens a new request, so no decision reaches a later run (checked in the local column)",
			},
			Find:    cachedTool("step", stepVersion, "step"),
			Version: func(string) string { return stepVersion },
			Run:     runStep,
		},
		{
			ID: "x-crypto-acme", Name: "Go golang.org/x/crypto/acme", Install: "Go module (in go.mod)",
			Quirks: []string{
				"v0.58.0 has profiles (`WithOrderIssuanceProfile`, checked against meta.profiles) but no renewalInfo or `replaces` (the field notes say otherwise): nothing to fix",
			},
			Unsupported: map[string]string{
				featRenewARI: "x/crypto/acme has no renewalInfo/replaces support (renew is a new order)",
			},
			Find:    func() (string, error) { return "", nil },
			Version: func(string) string { return xcryptoVersion() },
			Run:     runXCrypto,
		},
	}
}

// caddyQuirks apply to both Caddy versions.
var caddyQuirks = []string{
	"registers implicitly and keeps one account per CA and email: the EAB site's issuer gets its own email, so its account is a new one made with the binding: test-side",
	"renews by lifetime (a third left) only: the renew test issues a 90-second certificate through the `short` rule (`max_validity`) with `renew_interval 1s`; through the ACME relay the lifetime is Pebble's (6 days at least), so that cell is not run",
	"no revocation command, and dns-01 only through plugins: not supported",
}

// debVersion is a Debian package's version ("" if unknown).
func debVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cachedTool finds a binary built by test/matrix-deps.sh into
// $CACHE/NAME-VERSION/BIN (CACHE as there), or on PATH.
func cachedTool(name, version, bin string) func() (string, error) {
	return func() (string, error) {
		cache := os.Getenv("ACMEBRIDGE_CACHE")
		if cache == "" {
			c := os.Getenv("XDG_CACHE_HOME")
			if c == "" {
				home, _ := os.UserHomeDir()
				c = filepath.Join(home, ".cache")
			}
			cache = filepath.Join(c, "acmebridge")
		}
		p := filepath.Join(cache, name+"-"+version, bin)
		if fileExists(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s is not built (make deps)", p)
	}
}

// xcryptoVersion is the golang.org/x/crypto version in the module graph.
func xcryptoVersion() string {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "golang.org/x/crypto" {
			return f[1]
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// helpers shared by the clients

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

// dnsHook writes dns-hook.sh: `dns-hook.sh present|cleanup FQDN VALUE`
// posts to the test DNS server's httpreq endpoint.
func (r *clientRun) dnsHook(t *testing.T) string {
	t.Helper()
	return writeScript(t, r.dir, "dns-hook.sh", fmt.Sprintf(`set -e
fqdn=$2
case "$fqdn" in *.) ;; *) fqdn="$fqdn." ;; esac
exec curl -sS -f -m 10 -X POST -H 'Content-Type: application/json' \
  --data "{\"fqdn\":\"$fqdn\",\"value\":\"$3\"}" %q/"$1"
`, r.s.DNS.HTTPURL))
}

// serveWebroot serves root over HTTP on the validator's http-01 port (for
// clients that write challenge files into a directory).
func (r *clientRun) serveWebroot(root string) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", r.s.HTTPPort))
	require.NoError(r.t, err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(root)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	r.t.Cleanup(func() { _ = srv.Close() })
}

// bgProc is a client running in the background (Caddy).
type bgProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error
}

// startBG starts a long-running client; it is stopped when the test ends
// (SIGTERM, then SIGKILL after 10 s), and its output printed on failure.
func startBG(t *testing.T, env []string, dir, bin string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env, p.cmd.Dir = env, dir
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("%s output:\n%s", filepath.Base(bin), tailLines(p.logs.String(), 200))
		}
	})
	return p
}

func (p *bgProc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("the client exited: %v", p.err) //nolint:errorlint // p.err may be nil here, where %w would print %!w(<nil>)
	default:
		return nil
	}
}

func (p *bgProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// serialOf returns the hex serial of a PEM chain's leaf, or "".
func serialOf(chainPEM []byte) string {
	certs, err := parsePEMCerts(chainPEM)
	if err != nil || len(certs) == 0 {
		return ""
	}
	return certs[0].SerialNumber.Text(16)
}

// ---------------------------------------------------------------------------
// certbot

func runCertbot(r *clientRun) {
	s := r.s
	env := toolEnv("REQUESTS_CA_BUNDLE=" + s.CAFile)
	dirsOf := func(d string) []string {
		return []string{"--config-dir", filepath.Join(d, "config"), "--work-dir", filepath.Join(d, "work"),
			"--logs-dir", filepath.Join(d, "logs")}
	}
	main := filepath.Join(r.dir, "main")
	logOnFailure(r.t, filepath.Join(main, "logs", "letsencrypt.log"))
	common := []string{"--server", s.DirectoryURL, "--non-interactive"}
	standalone := []string{"--standalone", "--http-01-port", itoa(s.HTTPPort), "--http-01-address", "127.0.0.1"}
	cmd := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		return runTool(t, env, r.dir, r.bin, append(args, dirsOf(dir)...)...)
	}

	r.step(featRegister, func(t *testing.T) string {
		cmd(t, main, append([]string{"register", "--agree-tos", "-m", "certbot@example.com", "--no-eff-email"}, common...)...)
		// accounts/HOST/PATH.../ID/regr.json: PATH is the directory URL's
		// path (directory, or tenant/directory).
		m, _ := filepath.Glob(filepath.Join(main, "config", "accounts", "*", "*", "*", "regr.json"))
		m2, _ := filepath.Glob(filepath.Join(main, "config", "accounts", "*", "*", "*", "*", "regr.json"))
		require.NotEmpty(t, append(m, m2...), "certbot stored no account")
		return ""
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		k := s.createEAB(t)
		d := filepath.Join(r.dir, "eab")
		logOnFailure(t, filepath.Join(d, "logs", "letsencrypt.log"))
		cmd(t, d, append([]string{"register", "--agree-tos", "-m", "certbot-eab@example.com", "--no-eff-email",
			"--eab-kid", k.ID, "--eab-hmac-key", k.HMACKey}, common...)...)
		r.eabBound(t, k.ID)
		return ""
	})

	httpName := r.name("http")
	live := filepath.Join(main, "config", "live", httpName)
	var leaf *x509.Certificate
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			cmd(t, main, append(append([]string{"certonly", "-d", httpName}, common...), standalone...)...)
			leaf = r.verifyFile(t, filepath.Join(live, "fullchain.pem"), httpName)
			return "standalone"
		})
	}
	if r.needs(featDNS01, featRegister) {
		r.step(featDNS01, func(t *testing.T) string {
			hook := r.dnsHook(t)
			auth := writeScript(t, r.dir, "certbot-dns.sh", fmt.Sprintf(`exec %q "$1" "_acme-challenge.$CERTBOT_DOMAIN." "$CERTBOT_VALIDATION"`+"\n", hook))
			name := r.name("dns")
			cmd(t, main, append([]string{"certonly", "-d", name, "--manual", "--preferred-challenges", "dns",
				"--manual-auth-hook", auth + " present", "--manual-cleanup-hook", auth + " cleanup"}, common...)...)
			r.verifyFile(t, filepath.Join(main, "config", "live", name, "fullchain.pem"), name)
			require.Empty(t, s.DNS.TXT("_acme-challenge."+name+"."), "the cleanup hook removed the record")
			return "--manual with auth/cleanup hooks"
		})
	}
	if r.needs(featRenew, featHTTP01) {
		r.step(featRenew, func(t *testing.T) string {
			cmd(t, main, append([]string{"renew", "--cert-name", httpName, "--force-renewal", "--non-interactive",
				"--no-random-sleep-on-renew"}, standalone...)...)
			l2 := r.verifyFile(t, filepath.Join(live, "fullchain.pem"), httpName)
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber, "renew must issue a new certificate")
			leaf = l2
			return "--force-renewal"
		})
	}
	r.step(featRenewARI, nil)
	r.step(featProfile, nil)
	if r.needs(featRevoke, featHTTP01) {
		r.step(featRevoke, func(t *testing.T) string {
			cmd(t, main, append([]string{"revoke", "--cert-path", filepath.Join(live, "cert.pem"), "--no-delete-after-revoke"}, common...)...)
			r.requireRevoked(t, leaf)
			return ""
		})
	}
	r.approvalStep(func(t *testing.T, name string) string {
		args := append(append(append([]string{"certonly", "-d", name}, common...), standalone...), dirsOf(main)...)
		out, err := runToolErr(t, env, r.dir, r.bin, args...)
		r.approve(t, name, out, err)
		runTool(t, env, r.dir, r.bin, args...)
		r.verifyFile(t, filepath.Join(main, "config", "live", name, "fullchain.pem"), name)
		return approvalNote
	})
}

// ---------------------------------------------------------------------------
// lego CLI (Debian's 4.9 and 4.25)

func runLego(r *clientRun, v425 bool) {
	s := r.s
	env := toolEnv("LEGO_CA_CERTIFICATES="+s.CAFile,
		"HTTPREQ_ENDPOINT="+s.DNS.HTTPURL, "HTTPREQ_POLLING_INTERVAL=1", "HTTPREQ_PROPAGATION_TIMEOUT=30")
	main := filepath.Join(r.dir, "main")
	global := func(path, email string, domains ...string) []string {
		a := []string{"--server", s.DirectoryURL, "--path", path, "--email", email, "--accept-tos", "--key-type", "ec256"}
		for _, d := range domains {
			a = append(a, "--domains", d)
		}
		return a
	}
	httpFlags := []string{"--http", "--http.port", "127.0.0.1:" + itoa(s.HTTPPort)}
	dnsFlags := []string{"--dns", "httpreq", "--dns.resolvers", s.DNS.Addr}
	if v425 {
		dnsFlags = append(dnsFlags, "--dns.propagation-disable-ans")
	} else {
		dnsFlags = append(dnsFlags, "--dns.disable-cp")
	}
	certFile := func(path, name string) string { return filepath.Join(path, "certificates", name+".crt") }
	accountFile := func(path, email string) string {
		m, _ := filepath.Glob(filepath.Join(path, "accounts", "*", email, "account.json"))
		if len(m) == 0 {
			return ""
		}
		return m[0]
	}
	httpName := r.name("http")

	// lego registers inside `run`: the first run makes the account and
	// orders the http-01 certificate; the two cells are judged apart.
	var runOut string
	var runErr error
	r.step(featRegister, func(t *testing.T) string {
		runOut, runErr = runToolErr(t, env, r.dir, r.bin, append(append(global(main, "lego@example.com", httpName), httpFlags...), "run")...)
		require.NotEmpty(t, accountFile(main, "lego@example.com"), "lego stored no account:\n%s", runOut)
		return "inside the first `run`"
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		k := s.createEAB(t)
		path := filepath.Join(r.dir, "eab")
		name := r.name("eab")
		args := append(global(path, "lego-eab@example.com", name), "--eab", "--kid", k.ID, "--hmac", k.HMACKey)
		runTool(t, env, r.dir, r.bin, append(append(args, httpFlags...), "run")...)
		r.verifyFile(t, certFile(path, name), name)
		r.eabBound(t, k.ID)
		return "`--eab --kid --hmac` on `run`"
	})
	var leaf *x509.Certificate
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			require.NoError(t, runErr, "lego run (http-01) failed:\n%s", runOut)
			leaf = r.verifyFile(t, certFile(main, httpName), httpName)
			return "`--http --http.port`"
		})
	}
	if r.needs(featDNS01, featRegister) {
		r.step(featDNS01, func(t *testing.T) string {
			name := r.name("dns")
			runTool(t, env, r.dir, r.bin, append(append(global(main, "lego@example.com", name), dnsFlags...), "run")...)
			r.verifyFile(t, certFile(main, name), name)
			require.Empty(t, s.DNS.TXT("_acme-challenge."+name+"."), "lego cleaned up its TXT record")
			return "`--dns httpreq` (the test DNS server's endpoint)"
		})
	}
	renewArgs := append(global(main, "lego@example.com", httpName), httpFlags...)
	if r.needs(featRenew, featHTTP01) {
		r.step(featRenew, func(t *testing.T) string {
			args := append(renewArgs, "renew", "--days", "10000", "--no-random-sleep")
			if v425 {
				args = append(args, "--ari-disable")
			}
			runTool(t, env, r.dir, r.bin, args...)
			l2 := r.verifyFile(t, certFile(main, httpName), httpName)
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber, "renew must issue a new certificate")
			leaf = l2
			return "`renew --days 10000` (forced)"
		})
	}
	if r.needs(featRenewARI, featHTTP01) {
		r.step(featRenewARI, func(t *testing.T) string {
			// The certificate is far from its ARI window (two thirds of its
			// lifetime) and from --days 1: lego must not renew it.
			args := append(renewArgs, "renew", "--days", "1", "--no-random-sleep")
			out := runTool(t, env, r.dir, r.bin, args...)
			require.Contains(t, out, "renewalInfo endpoint indicates that renewal is not needed")
			same := r.verifyFile(t, certFile(main, httpName), httpName)
			require.Equal(t, leaf.SerialNumber, same.SerialNumber, "lego renewed before the ARI window")
			// The operator asks for early renewal: the window moves into the
			// past, and the same command renews, with "replaces".
			r.renewNow(t, leaf)
			out = runTool(t, env, r.dir, r.bin, args...)
			require.Contains(t, out, "renewalInfo endpoint indicates that renewal is needed")
			l2 := r.verifyFile(t, certFile(main, httpName), httpName)
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber, "lego did not renew after `cert renew-now`")
			leaf = l2
			return "`renew` follows renewalInfo after `acmebridge cert renew-now`"
		})
	}
	if r.needs(featProfile, featRegister) {
		r.step(featProfile, func(t *testing.T) string {
			name := r.name("profile")
			runTool(t, env, r.dir, r.bin, append(append(global(main, "lego@example.com", name), httpFlags...), "run", "--profile", matrixProfile)...)
			return requireShortLived(t, r.verifyFile(t, certFile(main, name), name))
		})
	}
	if r.needs(featRevoke, featHTTP01) {
		r.step(featRevoke, func(t *testing.T) string {
			out := runTool(t, env, r.dir, r.bin, append(global(main, "lego@example.com", httpName), "revoke", "--keep")...)
			require.Contains(t, out, "revoked")
			r.requireRevoked(t, leaf)
			return ""
		})
	}
	r.approvalStep(func(t *testing.T, name string) string {
		args := append(append(global(main, "lego@example.com", name), httpFlags...), "run")
		out, err := runToolErr(t, env, r.dir, r.bin, args...)
		r.approve(t, name, out, err)
		runTool(t, env, r.dir, r.bin, args...)
		r.verifyFile(t, certFile(main, name), name)
		return approvalNote
	})
}

// ---------------------------------------------------------------------------
// Caddy (Debian's 2.6 and 2.11)

func runXCrypto(r *clientRun) {
	s := r.s
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// http-01 responses, served on the validator's port for the whole run.
	serve := serveHTTP01(t, s.HTTPPort)

	newClient := func(t *testing.T) *acme.Client {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-matrix"}
	}
	var c *acme.Client
	r.step(featRegister, func(t *testing.T) string {
		c = newClient(t)
		a, err := c.Register(ctx, &acme.Account{Contact: []string{"mailto:xcrypto@example.com"}}, acme.AcceptTOS)
		require.NoError(t, err)
		require.Equal(t, acme.StatusValid, a.Status)
		return ""
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		k := s.createEAB(t)
		hmacKey, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
		require.NoError(t, err)
		ec := newClient(t)
		_, err = ec.Register(ctx, &acme.Account{Contact: []string{"mailto:xcrypto-eab@example.com"},
			ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.ID, Key: hmacKey}}, acme.AcceptTOS)
		require.NoError(t, err)
		r.eabBound(t, k.ID)
		return ""
	})

	// obtain runs one order with the given challenge type.
	obtain := func(t *testing.T, name, typ string, opts ...acme.OrderOption) *x509.Certificate {
		t.Helper()
		o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name), opts...)
		require.NoError(t, err)
		for _, u := range o.AuthzURLs {
			z, err := c.GetAuthorization(ctx, u)
			require.NoError(t, err)
			if z.Status == acme.StatusValid {
				continue
			}
			var ch *acme.Challenge
			for _, x := range z.Challenges {
				if x.Type == typ {
					ch = x
				}
			}
			require.NotNil(t, ch, "no %s challenge offered", typ)
			switch typ {
			case "http-01":
				body, err := c.HTTP01ChallengeResponse(ch.Token)
				require.NoError(t, err)
				serve(c.HTTP01ChallengePath(ch.Token), body)
			case "dns-01":
				v, err := c.DNS01ChallengeRecord(ch.Token)
				require.NoError(t, err)
				s.DNS.SetTXT("_acme-challenge."+z.Identifier.Value+".", v)
				defer s.DNS.ClearTXT("_acme-challenge."+z.Identifier.Value+".", v)
			}
			_, err = c.Accept(ctx, ch)
			require.NoError(t, err)
			_, err = c.WaitAuthorization(ctx, z.URI)
			require.NoError(t, err)
		}
		o, err = c.WaitOrder(ctx, o.URI)
		require.NoError(t, err)
		csr := matrixCSR(t, name)
		der, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
		require.NoError(t, err)
		var chain []byte
		for _, d := range der {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		return r.verify(t, chain, name)
	}

	httpName := r.name("http")
	var leaf *x509.Certificate
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			leaf = obtain(t, httpName, "http-01")
			return ""
		})
	}
	if r.needs(featDNS01, featRegister) {
		r.step(featDNS01, func(t *testing.T) string {
			obtain(t, r.name("dns"), "dns-01")
			return ""
		})
	}
	if r.needs(featRenew, featHTTP01) {
		r.step(featRenew, func(t *testing.T) string {
			l2 := obtain(t, httpName, "http-01")
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber)
			leaf = l2
			return "a new order for the same name"
		})
	}
	r.step(featRenewARI, nil)
	if r.needs(featProfile, featRegister) {
		r.step(featProfile, func(t *testing.T) string {
			return requireShortLived(t, obtain(t, r.name("profile"), "http-01", acme.WithOrderIssuanceProfile(matrixProfile)))
		})
	}
	if r.needs(featRevoke, featHTTP01) {
		r.step(featRevoke, func(t *testing.T) string {
			require.NoError(t, c.RevokeCert(ctx, nil, leaf.Raw, acme.CRLReasonUnspecified))
			r.requireRevoked(t, leaf)
			return ""
		})
	}
	r.approvalStep(func(t *testing.T, name string) string {
		_, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
		var ae *acme.Error
		require.ErrorAs(t, err, &ae)
		require.Equal(t, "urn:ietf:params:acme:error:rejectedIdentifier", ae.ProblemType)
		r.approve(t, name, ae.Detail, err)
		obtain(t, name, "http-01")
		return "newOrder refused (rejectedIdentifier) while pending; a new order issues after `acmebridge approval approve`"
	})
}

// matrixCSR is a DER CSR for name with a fresh P-256 key.
func matrixCSR(t *testing.T, name string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}}, k)
	require.NoError(t, err)
	return der
}
