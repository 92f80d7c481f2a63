package test

// The clients of the matrix (matrix_test.go): how each is found, and the
// commands that drive it through the features. Flags and files follow
// the per-client tests (lego_cli_test.go, certbot_test.go).

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Runners of the client matrix (matrix_clients_test.go) for Caddy,
// dehydrated, uacme and the step CLI.

func runCaddy(r *clientRun, v211 bool) {
	s := r.s
	t := r.t
	home := filepath.Join(r.dir, "home")
	storage := filepath.Join(r.dir, "storage")
	require.NoError(t, os.MkdirAll(home, 0o700))
	env := toolEnv("HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	httpsPort := freePorts(t, 1)[0]
	var eab eabKey
	if _, unsupported := r.mc.Unsupported[featRegisterEAB]; !unsupported {
		eab = s.createEAB(t)
	}

	issuer := func(email string, extra ...string) string {
		b := &strings.Builder{}
		fmt.Fprintf(b, "\t\tissuer acme {\n\t\t\tdir %s\n\t\t\ttrusted_roots %s\n\t\t\temail %s\n\t\t\tdisable_tlsalpn_challenge\n", s.DirectoryURL, s.CAFile, email)
		for _, e := range extra {
			fmt.Fprintf(b, "\t\t\t%s\n", e)
		}
		b.WriteString("\t\t}\n")
		return b.String()
	}
	site := func(name string, tls string) string {
		return fmt.Sprintf("%s {\n\ttls {\n%s\t}\n\trespond \"ok\"\n}\n", name, tls)
	}
	httpName, eabName := r.name("http"), r.name("eab")
	shortName, ariName, profName := r.shortName("renew"), r.name("ari"), r.name("profile")
	cfg := fmt.Sprintf(`{
	admin off
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	renew_interval 1s
	ocsp_stapling off
	storage file_system %s
}
`, s.HTTPPort, httpsPort, storage)
	// Each site gets its own email, so its own account: Caddy 2.6
	// (certmagic 0.17) registers an email's account once per concurrent
	// obtain and can keep the key of one registration with the URL of the
	// other, after which every request of that account fails "JWS
	// verification error" (a CI run saw it on the renewal; lego#1006 and
	// NixOS#101445 describe the same mismatch).
	cfg += site(httpName, issuer("caddy@example.com"))
	cfg += site(eabName, issuer("caddy-eab@example.com", fmt.Sprintf("eab %s %s", eab.ID, eab.HMACKey)))
	if r.up.ShortValidity {
		cfg += site(shortName, issuer("caddy-renew@example.com"))
	}
	aprName := r.approvalName("apr")
	if r.up.Name == approvalColumn {
		cfg += site(aprName, issuer("caddy-apr@example.com"))
	}
	if v211 {
		cfg += site(ariName, issuer("caddy-ari@example.com"))
		cfg += site(profName, issuer("caddy-profile@example.com", "profile "+matrixProfile))
	}
	cfgFile := filepath.Join(r.dir, "Caddyfile")
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Caddyfile:\n%s", cfg)
		}
	})
	p := startBG(t, env, r.dir, r.bin, "run", "--config", cfgFile, "--adapter", "caddyfile")

	certPath := func(name string) string {
		m, _ := filepath.Glob(filepath.Join(storage, "certificates", "*", name, name+".crt"))
		if len(m) == 0 {
			return filepath.Join(storage, "certificates", "NONE", name, name+".crt")
		}
		return m[0]
	}
	// waitCert waits until the stored certificate for name differs from
	// serial ("" for any) and returns its chain.
	waitCert := func(t *testing.T, name, serial string, d time.Duration) []byte {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			if b, err := os.ReadFile(certPath(name)); err == nil {
				if sn := serialOf(b); sn != "" && sn != serial {
					return b
				}
			}
			if err := p.alive(); err != nil {
				t.Fatalf("waiting for the certificate of %s: %v", name, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("Caddy stored no new certificate for %s within %s", name, d)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Caddy's first order for aprName is refused pending approval; the
	// administrator approves it at once, and Caddy's own retry (a minute
	// later) must issue. The decision is taken here, before the other
	// features, so that retry falls within their run.
	approved := false
	if r.up.Name == approvalColumn {
		r.t.Run("approval decision", func(t *testing.T) {
			var id string
			require.True(t, waitFor(30*time.Second, func() bool { id = r.pendingFor(t, aprName); return id != "" }),
				"Caddy's first order for %s left no pending approval request", aprName)
			_, err := os.Stat(certPath(aprName))
			require.True(t, os.IsNotExist(err), "Caddy has a certificate for %s before the approval", aprName)
			r.s.admin(t, "approval", "approve", id)
			approved = true
		})
	}

	r.step(featRegister, func(t *testing.T) string {
		waitCert(t, httpName, "", time.Minute)
		m, _ := filepath.Glob(filepath.Join(storage, "acme", "*", "users", "caddy@example.com", "*.json"))
		require.NotEmpty(t, m, "Caddy stored no account")
		return "automatic, on the first certificate"
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		r.verify(t, waitCert(t, eabName, "", time.Minute), eabName)
		r.eabBound(t, eab.ID)
		return "`eab KID KEY` in the acme issuer"
	})
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			r.verify(t, waitCert(t, httpName, "", time.Minute), httpName)
			return "on `http_port`"
		})
	}
	r.step(featDNS01, nil)
	if r.needs(featRenew, featRegister) {
		r.step(featRenew, func(t *testing.T) string {
			if !r.up.ShortValidity {
				r.skip(t, "needs a certificate that expires during the test; the acme upstream leaves the lifetime to Pebble (6 days at least)")
			}
			first := waitCert(t, shortName, "", time.Minute)
			l1 := r.verify(t, first, shortName)
			l2 := r.verify(t, waitCert(t, shortName, serialOf(first), 2*time.Minute), shortName)
			require.NotEqual(t, l1.SerialNumber, l2.SerialNumber)
			return "by expiry (a 90-second certificate, `renew_interval 1s`)"
		})
	}
	if r.needs(featRenewARI, featHTTP01) {
		r.step(featRenewARI, func(t *testing.T) string {
			first := waitCert(t, ariName, "", time.Minute)
			l1 := r.verify(t, first, ariName)
			// Nothing happens while the window lies ahead.
			time.Sleep(3 * time.Second)
			b, err := os.ReadFile(certPath(ariName))
			require.NoError(t, err)
			require.Equal(t, serialOf(first), serialOf(b), "Caddy renewed before the ARI window")
			r.renewNow(t, l1)
			l2 := r.verify(t, waitCert(t, ariName, serialOf(first), 100*time.Second), ariName)
			require.NotEqual(t, l1.SerialNumber, l2.SerialNumber)
			return "renews by itself after `acmebridge cert renew-now`, at its next renewalInfo poll"
		})
	}
	if r.needs(featProfile, featRegister) {
		r.step(featProfile, func(t *testing.T) string {
			return requireShortLived(t, r.verify(t, waitCert(t, profName, "", time.Minute), profName))
		})
	}
	r.step(featRevoke, nil)
	if r.up.Name != approvalColumn {
		r.rec.set(r.mc.ID, r.up.Name, featApproval, resNotRun, "run in the "+approvalColumn+" column")
		return
	}
	r.step(featApproval, func(t *testing.T) string {
		require.True(t, approved, "the approval decision failed (see its subtest)")
		r.verify(t, waitCert(t, aprName, "", 2*time.Minute), aprName)
		return "refused while pending; Caddy's own retry (a minute later) issues after `acmebridge approval approve`"
	})
}

// ---------------------------------------------------------------------------
// dehydrated

func runDehydrated(r *clientRun) {
	s := r.s
	t := r.t
	env := toolEnv("CURL_CA_BUNDLE=" + s.CAFile)
	webroot := filepath.Join(r.dir, "webroot")
	wellKnown := filepath.Join(webroot, ".well-known", "acme-challenge")
	require.NoError(t, os.MkdirAll(wellKnown, 0o755))
	r.serveWebroot(webroot)
	dnsHook := r.dnsHook(t)
	// dehydrated calls its hook for every event; only dns-01's deploy and
	// clean events matter here (http-01 goes through WELLKNOWN).
	hook := writeScript(t, r.dir, "dehydrated-hook.sh", fmt.Sprintf(`[ -n "$MATRIX_DNS01" ] || exit 0
case "$1" in
deploy_challenge) exec %[1]q present "_acme-challenge.$2." "$4" ;;
clean_challenge) exec %[1]q cleanup "_acme-challenge.$2." "$4" ;;
esac
exit 0
`, dnsHook))
	config := func(name, base string, extra ...string) string {
		c := fmt.Sprintf("CA=%q\nBASEDIR=%q\nWELLKNOWN=%q\nHOOK=%q\nCONTACT_EMAIL=%q\nKEY_ALGO=prime256v1\nCHALLENGETYPE=http-01\n",
			s.DirectoryURL, base, wellKnown, hook, "dehydrated@example.com")
		c += strings.Join(extra, "\n") + "\n"
		require.NoError(t, os.MkdirAll(base, 0o700))
		p := filepath.Join(r.dir, name)
		require.NoError(t, os.WriteFile(p, []byte(c), 0o600))
		return p
	}
	main := filepath.Join(r.dir, "main")
	cfg := config("config", main)
	run := func(t *testing.T, env []string, cfg string, args ...string) string {
		t.Helper()
		return runTool(t, env, r.dir, r.bin, append([]string{"-f", cfg}, args...)...)
	}

	r.step(featRegister, func(t *testing.T) string {
		run(t, env, cfg, "--register", "--accept-terms")
		return "`--register --accept-terms`"
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		k := s.createEAB(t)
		c := config("config-eab", filepath.Join(r.dir, "eab"), "EAB_KID="+k.ID, "EAB_HMAC_KEY="+k.HMACKey)
		run(t, env, c, "--register", "--accept-terms")
		r.eabBound(t, k.ID)
		return "`EAB_KID`, `EAB_HMAC_KEY`"
	})
	httpName := r.name("http")
	chain := func(name string) string { return filepath.Join(main, "certs", name, "fullchain.pem") }
	var leaf *x509.Certificate
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			run(t, env, cfg, "--cron", "--domain", httpName)
			leaf = r.verifyFile(t, chain(httpName), httpName)
			return "WELLKNOWN served on the http-01 port"
		})
	}
	if r.needs(featDNS01, featRegister) {
		r.step(featDNS01, func(t *testing.T) string {
			name := r.name("dns")
			run(t, append(env, "MATRIX_DNS01=1"), cfg, "--cron", "--domain", name, "--challenge", "dns-01")
			r.verifyFile(t, chain(name), name)
			require.Empty(t, s.DNS.TXT("_acme-challenge."+name+"."), "the hook removed the record")
			return "`HOOK` deploy_challenge/clean_challenge"
		})
	}
	if r.needs(featRenew, featHTTP01) {
		r.step(featRenew, func(t *testing.T) string {
			time.Sleep(1100 * time.Millisecond) // dehydrated names files by the second
			run(t, env, cfg, "--cron", "--domain", httpName, "--force")
			l2 := r.verifyFile(t, chain(httpName), httpName)
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber, "renew must issue a new certificate")
			leaf = l2
			return "`--cron --force`"
		})
	}
	r.step(featRenewARI, nil)
	r.step(featProfile, nil)
	if r.needs(featRevoke, featHTTP01) {
		r.step(featRevoke, func(t *testing.T) string {
			run(t, env, cfg, "--revoke", filepath.Join(main, "certs", httpName, "cert.pem"))
			r.requireRevoked(t, leaf)
			return ""
		})
	}
	r.approvalStep(func(t *testing.T, name string) string {
		args := []string{"-f", cfg, "--cron", "--domain", name}
		out, err := runToolErr(t, env, r.dir, r.bin, args...)
		r.approve(t, name, out, err)
		runTool(t, env, r.dir, r.bin, args...)
		r.verifyFile(t, chain(name), name)
		return approvalNote
	})
}

// ---------------------------------------------------------------------------
// uacme

func runUacme(r *clientRun) {
	s := r.s
	t := r.t
	// uacme (libcurl-gnutls) trusts only the system bundle and has no
	// option or variable to name another: it runs in a private mount
	// namespace where the bundle is acmebridge's ca.pem.
	unshare, err := exec.LookPath("unshare")
	require.NoError(t, err, "uacme needs unshare(1) to trust a private CA")
	webroot := filepath.Join(r.dir, "webroot")
	wellKnown := filepath.Join(webroot, ".well-known", "acme-challenge")
	require.NoError(t, os.MkdirAll(wellKnown, 0o755))
	r.serveWebroot(webroot)
	dnsHook := r.dnsHook(t)
	hook := writeScript(t, r.dir, "uacme-hook.sh", fmt.Sprintf(`method=$1 type=$2 ident=$3 token=$4 auth=$5
[ "$type" = "$MATRIX_CHALLENGE" ] || exit 1
case "$method:$type" in
begin:http-01) printf '%%s' "$auth" > %[1]q/"$token" ;;
done:http-01|failed:http-01) rm -f %[1]q/"$token" ;;
begin:dns-01) exec %[2]q present "_acme-challenge.$ident." "$auth" ;;
done:dns-01|failed:dns-01) exec %[2]q cleanup "_acme-challenge.$ident." "$auth" ;;
esac
`, wellKnown, dnsHook))
	env := toolEnv()
	uacmeArgs := func(confdir string, args ...string) []string {
		return append([]string{"-m", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"`, s.CAFile,
			r.bin, "-v", "-c", confdir, "-a", s.DirectoryURL, "-t", "EC"}, args...)
	}
	uacme := func(t *testing.T, env []string, confdir string, args ...string) string {
		t.Helper()
		return runTool(t, env, r.dir, unshare, uacmeArgs(confdir, args...)...)
	}
	main := filepath.Join(r.dir, "main")
	r.step(featRegister, func(t *testing.T) string {
		uacme(t, env, main, "-y", "new", "uacme@example.com")
		return "`new`"
	})
	r.step(featRegisterEAB, func(t *testing.T) string {
		k := s.createEAB(t)
		uacme(t, env, filepath.Join(r.dir, "eab"), "-y", "-e", k.ID+":"+k.HMACKey, "new", "uacme-eab@example.com")
		r.eabBound(t, k.ID)
		return "`-e KID:KEY`"
	})
	httpName := r.name("http")
	chain := func(name string) string { return filepath.Join(main, name, "cert.pem") }
	withChallenge := func(typ string) []string { return append(toolEnv(), "MATRIX_CHALLENGE="+typ) }
	var leaf *x509.Certificate
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			uacme(t, withChallenge("http-01"), main, "-h", hook, "issue", httpName)
			leaf = r.verifyFile(t, chain(httpName), httpName)
			return "hook writes the file served on the http-01 port"
		})
	}
	if r.needs(featDNS01, featRegister) {
		r.step(featDNS01, func(t *testing.T) string {
			name := r.name("dns")
			uacme(t, withChallenge("dns-01"), main, "-h", hook, "issue", name)
			r.verifyFile(t, chain(name), name)
			return "`-h hook`"
		})
	}
	if r.needs(featRenew, featHTTP01) {
		r.step(featRenew, func(t *testing.T) string {
			uacme(t, withChallenge("http-01"), main, "-h", hook, "-f", "issue", httpName)
			l2 := r.verifyFile(t, chain(httpName), httpName)
			require.NotEqual(t, leaf.SerialNumber, l2.SerialNumber, "renew must issue a new certificate")
			leaf = l2
			return "`issue -f`"
		})
	}
	r.step(featRenewARI, nil)
	r.step(featProfile, nil)
	if r.needs(featRevoke, featHTTP01) {
		r.step(featRevoke, func(t *testing.T) string {
			uacme(t, env, main, "revoke", chain(httpName))
			r.requireRevoked(t, leaf)
			return ""
		})
	}
	r.approvalStep(func(t *testing.T, name string) string {
		args := uacmeArgs(main, "-h", hook, "issue", name)
		out, err := runToolErr(t, withChallenge("http-01"), r.dir, unshare, args...)
		r.approve(t, name, out, err)
		runTool(t, withChallenge("http-01"), r.dir, unshare, args...)
		r.verifyFile(t, chain(name), name)
		return approvalNote
	})
}

// ---------------------------------------------------------------------------
// step CLI

func runStep(r *clientRun) {
	s := r.s
	env := toolEnv("STEPPATH=" + filepath.Join(r.dir, "step"))
	name := r.name("http")
	crt, key := filepath.Join(r.dir, "http.crt"), filepath.Join(r.dir, "http.key")
	// step makes a new account with every `ca certificate`: registration is
	// judged by that run.
	var out string
	var runErr error
	r.step(featRegister, func(t *testing.T) string {
		out, runErr = runToolErr(t, env, r.dir, r.bin, "ca", "certificate", name, crt, key,
			"--acme", s.DirectoryURL, "--root", s.CAFile, "--standalone", "--http-listen", "127.0.0.1:"+itoa(s.HTTPPort),
			"--contact", "mailto:step@example.com", "--kty", "EC", "--force")
		require.NoError(t, runErr, "step ca certificate:\n%s", out)
		return "implicit: a new account per `step ca certificate`"
	})
	r.step(featRegisterEAB, nil)
	if r.needs(featHTTP01, featRegister) {
		r.step(featHTTP01, func(t *testing.T) string {
			r.verifyFile(t, crt, name)
			return "`--standalone --http-listen`"
		})
	}
	for _, f := range []string{featDNS01, featRenew, featRenewARI, featProfile, featRevoke, featApproval} {
		r.step(f, nil)
	}
	if r.up.Name != approvalColumn {
		return
	}
	// Why approval is "not supported": the same command after the approval
	// is refused again, for a new request (a new account).
	r.t.Run("approval is the account's", func(t *testing.T) {
		name := r.approvalName("apr")
		crt, key := filepath.Join(r.dir, "apr.crt"), filepath.Join(r.dir, "apr.key")
		args := []string{"ca", "certificate", name, crt, key,
			"--acme", s.DirectoryURL, "--root", s.CAFile, "--standalone", "--http-listen", "127.0.0.1:" + itoa(s.HTTPPort),
			"--contact", "mailto:step@example.com", "--kty", "EC", "--force"}
		out, err := runToolErr(t, env, r.dir, r.bin, args...)
		first := requestIn(t, out, name)
		r.approve(t, name, out, err)
		out, err = runToolErr(t, env, r.dir, r.bin, args...)
		require.Error(t, err, "step issued after the approval: the matrix's approval cell for step is wrong\n%s", out)
		require.NotEqual(t, first, requestIn(t, out, name), "refused for the same request")
	})
}

// ---------------------------------------------------------------------------
// golang.org/x/crypto/acme
