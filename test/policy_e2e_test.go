package test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoRoutesYAML routes *.corp to the internal CA, the printers EAB group to
// the internal CA, *.pub to the public CA, refuses *.legacy with a reason
// and denies everything else.
const twoRoutesYAML = `accounts:
  eab: optional
upstreams:
  - name: internal
    type: local
  - name: public
    type: local
policy:
  rules:
    - name: corp
      match: {domains: ["*.corp.e2e.test"]}
      upstreams: [internal]
    - name: no-legacy
      match: {domains: ["*.legacy.e2e.test"]}
      action: deny
      reason: "legacy names are retired, see ticket OPS-42"
    - name: printers
      match: {groups: [printers]}
      upstreams: [internal]
    - name: pub
      match: {domains: ["*.pub.e2e.test"]}
      upstreams: [public]
  default: {action: deny}
`

const legacyReason = "legacy names are retired, see ticket OPS-42"

// explanation is one entry of `acmebridge policy explain --json`.
type explanation struct {
	Name      string   `json:"name"`
	Rule      string   `json:"rule"`
	Action    string   `json:"action"`
	Reason    string   `json:"reason"`
	Upstreams []string `json:"upstreams"`
	Skipped   []string `json:"skipped"`
}

// TestTwoRoutes: two local CAs behind one ACME URL, chosen by domain and by
// the account's EAB group; split orders, deny rules and the default deny
// are refused with rejectedIdentifier; `policy explain` agrees offline.
func TestTwoRoutes(t *testing.T) {
	quietLego(t)
	s := startServer(t, twoRoutesYAML)
	internalRoots, internalName := rootPool(t, s, "internal")
	publicRoots, publicName := rootPool(t, s, "public")

	c, _ := legoAccount(t, s, "routes@example.com", nil)

	t.Run("domain-routes", func(t *testing.T) {
		res := legoObtain(t, c, "a.corp.e2e.test")
		leaf := verifyChainPool(t, internalRoots, internalName, res.Certificate, []string{"a.corp.e2e.test"})
		requireNotChainsTo(t, publicRoots, publicName, res.Certificate)
		corpIssuer := leaf.Issuer.String()

		res = legoObtain(t, c, "b.pub.e2e.test")
		leaf = verifyChainPool(t, publicRoots, publicName, res.Certificate, []string{"b.pub.e2e.test"})
		requireNotChainsTo(t, internalRoots, internalName, res.Certificate)
		require.NotEqual(t, corpIssuer, leaf.Issuer.String(), "the two routes must be issued by different CAs")

		// The decision is stored on the order, visible to operators.
		var orders listing[orderRec]
		s.adminJSON(t, &orders, "order", "list", "--identifier", "a.corp.e2e.test")
		require.Len(t, orders.Items, 1)
		require.Equal(t, "corp", orders.Items[0].Rule)
		require.Equal(t, "internal", orders.Items[0].Upstream)
		s.adminJSON(t, &orders, "order", "list", "--identifier", "b.pub.e2e.test")
		require.Len(t, orders.Items, 1)
		require.Equal(t, "pub", orders.Items[0].Rule)
		require.Equal(t, "public", orders.Items[0].Upstream)
	})

	t.Run("mixed-order-refused", func(t *testing.T) {
		_, err := legoObtainErr(c, "a.corp.e2e.test", "b.pub.e2e.test")
		pd := requireProblem(t, err, "rejectedIdentifier")
		require.Len(t, pd.SubProblems, 2, "one subproblem per identifier: %v", err)
		byName := map[string]acme.SubProblem{}
		for _, sp := range pd.SubProblems {
			byName[sp.Identifier.Value] = sp
		}
		for name, rule := range map[string]string{"a.corp.e2e.test": "corp", "b.pub.e2e.test": "pub"} {
			sp, ok := byName[name]
			require.True(t, ok, "no subproblem for %s: %v", name, err)
			require.Equal(t, "dns", sp.Identifier.Type)
			require.Equal(t, "urn:ietf:params:acme:error:rejectedIdentifier", sp.Type)
			require.Contains(t, sp.Detail, rule, "the subproblem for %s names its rule", name)
		}
		require.ErrorContains(t, err, "corp")
		require.ErrorContains(t, err, "pub")
	})

	t.Run("deny-rule-reason", func(t *testing.T) {
		_, err := legoObtainErr(c, "old.legacy.e2e.test")
		pd := requireProblem(t, err, "rejectedIdentifier")
		require.ErrorContains(t, err, legacyReason, "the operator's reason reaches the client")
		found := strings.Contains(pd.Detail, legacyReason)
		for _, sp := range pd.SubProblems {
			if sp.Identifier.Value == "old.legacy.e2e.test" && strings.Contains(sp.Detail, legacyReason) {
				found = true
			}
		}
		require.True(t, found, "the reason is in the problem's detail: %v", err)
	})

	t.Run("eab-group-route", func(t *testing.T) {
		key := s.createEAB(t, "--group", "printers", "--note", "printer fleet")
		require.Equal(t, "printers", key.Group)
		pc, pu := legoAccount(t, s, "printers@example.com", &key)

		// No domain rule matches x.other: the printers group routes it.
		res := legoObtain(t, pc, "x.other.e2e.test")
		verifyChainPool(t, internalRoots, internalName, res.Certificate, []string{"x.other.e2e.test"})
		requireNotChainsTo(t, publicRoots, publicName, res.Certificate)

		var orders listing[orderRec]
		s.adminJSON(t, &orders, "order", "list", "--identifier", "x.other.e2e.test")
		require.Len(t, orders.Items, 1)
		require.Equal(t, "printers", orders.Items[0].Rule)
		require.Equal(t, "internal", orders.Items[0].Upstream)
		require.Equal(t, accountID(pu.reg.Location), orders.Items[0].Account)

		// The same name for an account without EAB: the default denies.
		_, err := legoObtainErr(c, "y.other.e2e.test")
		pd := requireProblem(t, err, "rejectedIdentifier")
		require.ErrorContains(t, err, "default", "the refusal names the default rule: %v", pd)
	})

	t.Run("policy-explain", func(t *testing.T) {
		names := []string{"a.corp.e2e.test", "b.pub.e2e.test", "old.legacy.e2e.test", "x.other.e2e.test"}
		r := runCLI(t, s.Dir, append([]string{"policy", "explain", "--config", s.ConfigPath}, names...)...)
		require.Equal(t, 0, r.Code, "policy explain:\n%s\n%s", r.Stdout, r.Stderr)
		lines := map[string]string{}
		for _, l := range strings.Split(r.Stdout, "\n") {
			if n, _, ok := strings.Cut(l, ": rule "); ok {
				lines[n] = l
			}
		}
		require.Contains(t, lines["a.corp.e2e.test"], "rule corp", r.Stdout)
		require.Contains(t, lines["a.corp.e2e.test"], "internal", r.Stdout)
		require.Contains(t, lines["b.pub.e2e.test"], "rule pub", r.Stdout)
		require.Contains(t, lines["b.pub.e2e.test"], "public", r.Stdout)
		require.Contains(t, lines["old.legacy.e2e.test"], "rule no-legacy", r.Stdout)
		require.Contains(t, lines["old.legacy.e2e.test"], "deny", r.Stdout)
		require.Contains(t, lines["old.legacy.e2e.test"], legacyReason, r.Stdout)
		require.Contains(t, lines["x.other.e2e.test"], "rule default", r.Stdout)
		require.Contains(t, lines["x.other.e2e.test"], "deny", r.Stdout)
		// Why the earlier rules did not match.
		require.Contains(t, r.Stdout, "skipped corp", r.Stdout)

		r = runCLI(t, s.Dir, append([]string{"policy", "explain", "--config", s.ConfigPath, "--json"}, names...)...)
		require.Equal(t, 0, r.Code, "policy explain --json:\n%s\n%s", r.Stdout, r.Stderr)
		var ex []explanation
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &ex), r.Stdout)
		require.Len(t, ex, len(names))
		got := map[string]explanation{}
		for _, e := range ex {
			got[e.Name] = e
		}
		require.Equal(t, "corp", got["a.corp.e2e.test"].Rule)
		require.Equal(t, "allow", got["a.corp.e2e.test"].Action)
		require.Equal(t, []string{"internal"}, got["a.corp.e2e.test"].Upstreams)
		require.Empty(t, got["a.corp.e2e.test"].Skipped)
		require.Equal(t, "pub", got["b.pub.e2e.test"].Rule)
		require.Equal(t, []string{"public"}, got["b.pub.e2e.test"].Upstreams)
		require.Len(t, got["b.pub.e2e.test"].Skipped, 3, "corp, no-legacy and printers were skipped: %v", got["b.pub.e2e.test"].Skipped)
		require.Equal(t, "no-legacy", got["old.legacy.e2e.test"].Rule)
		require.Equal(t, "deny", got["old.legacy.e2e.test"].Action)
		require.Contains(t, got["old.legacy.e2e.test"].Reason, legacyReason)
		require.Equal(t, "default", got["x.other.e2e.test"].Rule)
		require.Equal(t, "deny", got["x.other.e2e.test"].Action)
		require.Len(t, got["x.other.e2e.test"].Skipped, 4)

		// As an account of the printers group, x.other goes to internal.
		r = runCLI(t, s.Dir, "policy", "explain", "--config", s.ConfigPath, "--json", "--group", "printers", "x.other.e2e.test")
		require.Equal(t, 0, r.Code, "policy explain --group:\n%s\n%s", r.Stdout, r.Stderr)
		ex = nil
		require.NoError(t, json.Unmarshal([]byte(r.Stdout), &ex), r.Stdout)
		require.Len(t, ex, 1)
		require.Equal(t, "printers", ex[0].Rule)
		require.Equal(t, "allow", ex[0].Action)
		require.Equal(t, []string{"internal"}, ex[0].Upstreams)

		// The running server's admin API gives the same answer.
		req, err := http.NewRequest(http.MethodGet, s.AdminURL+"/api/v1/policy/explain?name=b.pub.e2e.test&name=old.legacy.e2e.test", nil)
		require.NoError(t, err)
		tok, err := os.ReadFile(s.TokenFile())
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var api []explanation
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&api))
		require.Len(t, api, 2)
		require.Equal(t, "pub", api[0].Rule)
		require.Equal(t, "no-legacy", api[1].Rule)
	})
}

// TestEABRequired: accounts.eab: required. Keys made with the CLI against
// the running server; the lego CLI and certbot each bind their own; a key
// binds once; no EAB is externalAccountRequired; an allow-list limits the
// account's names; list never shows a secret; a revoked key binds nothing.
func TestEABRequired(t *testing.T) {
	quietLego(t)
	s := startServer(t, "accounts:\n  eab: required\n")

	// The directory says so (RFC 8555 §7.1.1).
	{
		resp, err := s.HTTPClient().Get(s.DirectoryURL)
		require.NoError(t, err)
		var dir struct {
			Meta struct {
				ExternalAccountRequired bool `json:"externalAccountRequired"`
			} `json:"meta"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&dir))
		resp.Body.Close()
		require.True(t, dir.Meta.ExternalAccountRequired, "meta.externalAccountRequired")
	}

	kLego := s.createEAB(t, "--note", "lego-cli")
	kCertbot := s.createEAB(t, "--note", "certbot")
	kAllow := s.createEAB(t, "--allow", "*.allowed.e2e.test", "--note", "allow-list")
	kRevoke := s.createEAB(t, "--expires", "720h", "--note", "to revoke")
	require.Equal(t, []string{"*.allowed.e2e.test"}, kAllow.Allow)
	require.NotEmpty(t, kRevoke.ExpiresAt, "--expires sets expires_at")
	secrets := []string{kLego.HMACKey, kCertbot.HMACKey, kAllow.HMACKey, kRevoke.HMACKey}

	// The table form shows the secret once too, with a hint.
	{
		out := s.admin(t, "eab", "create", "--note", "table")
		require.Contains(t, out, "hmac_key")
		require.Contains(t, out, "--eab")
	}

	t.Run("no-eab", func(t *testing.T) {
		u := &legoUser{email: "no-eab@example.com", key: newECKey(t)}
		c := newLegoClient(t, s, u)
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		_, err := c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		requireProblem(t, err, "externalAccountRequired")
	})

	t.Run("lego-cli", func(t *testing.T) {
		legoBin := requireTool(t, "lego")
		const name = "lego.eab.e2e.test"
		env := toolEnv("LEGO_CA_CERTIFICATES=" + s.CAFile)
		args := func(path string) []string {
			return []string{"--server", s.DirectoryURL, "--path", path, "--email", "lego-eab@example.com", "--accept-tos",
				"--eab", "--kid", kLego.ID, "--hmac", kLego.HMACKey,
				"--domains", name, "--http", "--http.port", "127.0.0.1:" + itoa(s.HTTPPort), "run"}
		}
		path := filepath.Join(t.TempDir(), "lego")
		runTool(t, env, s.Dir, legoBin, args(path)...)
		chain, err := os.ReadFile(filepath.Join(path, "certificates", name+".crt"))
		require.NoError(t, err)
		s.verifyChain(t, chain, []string{name})

		// A second account (a new key, another --path) cannot reuse the kid.
		out, err := runToolErr(t, env, s.Dir, legoBin, args(filepath.Join(t.TempDir(), "lego2"))...)
		require.Error(t, err, "binding a used EAB key again must fail:\n%s", out)
		require.Contains(t, out, "urn:ietf:params:acme:error:unauthorized", out)
		require.Contains(t, out, "already bound", out)
	})

	t.Run("certbot", func(t *testing.T) {
		certbot := requireTool(t, "certbot")
		const name = "certbot.eab.e2e.test"
		env := toolEnv("REQUESTS_CA_BUNDLE=" + s.CAFile)
		run := func(dir string) (string, error) {
			args := []string{"certonly", "--server", s.DirectoryURL, "-d", name,
				"--agree-tos", "-m", "certbot-eab@example.com", "--non-interactive", "--no-eff-email",
				"--eab-kid", kCertbot.ID, "--eab-hmac-key", kCertbot.HMACKey,
				"--standalone", "--http-01-port", itoa(s.HTTPPort), "--http-01-address", "127.0.0.1",
				"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"),
				"--logs-dir", filepath.Join(dir, "logs")}
			return runToolErr(t, env, dir, certbot, args...)
		}
		dir := t.TempDir()
		logOnFailure(t, filepath.Join(dir, "logs", "letsencrypt.log"))
		out, err := run(dir)
		require.NoError(t, err, "certbot with EAB:\n%s", out)
		chain, err := os.ReadFile(filepath.Join(dir, "config", "live", name, "fullchain.pem"))
		require.NoError(t, err)
		s.verifyChain(t, chain, []string{name})

		// Another certbot (its own account key) cannot reuse the kid.
		dir2 := t.TempDir()
		out, err = run(dir2)
		require.Error(t, err, "binding a used EAB key again must fail:\n%s", out)
		logText, _ := os.ReadFile(filepath.Join(dir2, "logs", "letsencrypt.log"))
		require.Contains(t, out+string(logText), "urn:ietf:params:acme:error:unauthorized", out)
		require.Contains(t, out+string(logText), "already bound", out)
	})

	var allowAcct string
	t.Run("allow-list", func(t *testing.T) {
		c, u := legoAccount(t, s, "allow@example.com", &kAllow)
		allowAcct = accountID(u.reg.Location)
		res := legoObtain(t, c, "a.allowed.e2e.test")
		s.verifyChain(t, res.Certificate, []string{"a.allowed.e2e.test"})

		_, err := legoObtainErr(c, "b.other.e2e.test")
		pd := requireProblem(t, err, "rejectedIdentifier")
		require.ErrorContains(t, err, "b.other.e2e.test")
		require.True(t, slices.ContainsFunc(pd.SubProblems, func(sp acme.SubProblem) bool { return sp.Identifier.Value == "b.other.e2e.test" }),
			"a subproblem names b.other.e2e.test: %v", err)

		var acct accountRec
		s.adminJSON(t, &acct, "account", "show", allowAcct)
		require.Equal(t, kAllow.ID, acct.EABKey)
		require.Equal(t, []string{"*.allowed.e2e.test"}, acct.Allow)
	})

	t.Run("wrong-mac", func(t *testing.T) {
		// A wrong HMAC is unauthorized, and leaves the key unbound.
		wrong := kRevoke
		wrong.HMACKey = strings.Repeat("A", len(kRevoke.HMACKey))
		u := &legoUser{email: "wrong-mac@example.com", key: newECKey(t)}
		c := newLegoClient(t, s, u)
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		_, err := c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: wrong.ID, HmacEncoded: wrong.HMACKey})
		requireProblem(t, err, "unauthorized")
	})

	t.Run("list", func(t *testing.T) {
		var keys listing[eabKey]
		s.adminJSON(t, &keys, "eab", "list")
		got := map[string]eabKey{}
		for _, k := range keys.Items {
			got[k.ID] = k
			require.Empty(t, k.HMACKey, "eab list must not show an hmac key")
		}
		for _, k := range []eabKey{kLego, kCertbot, kAllow} {
			if k.ID == kLego.ID && !hasTool("lego") || k.ID == kCertbot.ID && !hasTool("certbot") {
				continue
			}
			g, ok := got[k.ID]
			require.True(t, ok, "eab list misses %s", k.ID)
			require.Equal(t, "bound", g.Status, "key %s (%s)", k.ID, k.Note)
			require.NotEmpty(t, g.AccountID, "key %s is bound to an account", k.ID)
			var acct accountRec
			s.adminJSON(t, &acct, "account", "show", g.AccountID)
			require.Equal(t, k.ID, acct.EABKey)
		}
		require.Equal(t, allowAcct, got[kAllow.ID].AccountID)
		require.Equal(t, "unused", got[kRevoke.ID].Status, "a failed binding leaves the key unused")

		jsonOut := s.admin(t, "eab", "list", "--json")
		table := s.admin(t, "eab", "list")
		for _, out := range []string{jsonOut, table} {
			require.NotContains(t, out, "hmac")
			for _, sec := range secrets {
				require.NotContains(t, out, sec, "eab list printed an hmac key")
			}
		}
		require.Contains(t, table, kAllow.ID)
		require.Contains(t, table, "bound")
		require.Contains(t, table, allowAcct)
	})

	t.Run("revoke", func(t *testing.T) {
		var k eabKey
		s.adminJSON(t, &k, "eab", "revoke", kRevoke.ID)
		require.Equal(t, "revoked", k.Status)
		require.NotEmpty(t, k.RevokedAt)
		require.Empty(t, k.HMACKey)

		u := &legoUser{email: "revoked@example.com", key: newECKey(t)}
		c := newLegoClient(t, s, u)
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		_, err := c.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
			TermsOfServiceAgreed: true, Kid: kRevoke.ID, HmacEncoded: kRevoke.HMACKey})
		requireProblem(t, err, "unauthorized")
		require.ErrorContains(t, err, "revoked")

		var keys listing[eabKey]
		s.adminJSON(t, &keys, "eab", "list")
		for _, x := range keys.Items {
			if x.ID == kRevoke.ID {
				require.Equal(t, "revoked", x.Status)
				require.Empty(t, x.AccountID)
			}
		}
	})
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// adminAuditYAML refuses *.forbidden with a reason and routes the rest to
// the quickstart's local CA.
const adminAuditYAML = `accounts:
  eab: optional
policy:
  rules:
    - name: no-forbidden
      match: {domains: ["*.forbidden.e2e.test"]}
      action: deny
      reason: "forbidden.e2e.test is closed to new certificates"
  default: {upstreams: [dev]}
`

const forbiddenReason = "forbidden.e2e.test is closed to new certificates"

// TestAdminCLIAndAudit drives the admin CLI against a running server after
// issuances and a refusal, then reads the audit log back.
func TestAdminCLIAndAudit(t *testing.T) {
	quietLego(t)
	s := startServer(t, adminAuditYAML)

	key := s.createEAB(t, "--group", "ops", "--note", "admin e2e")
	c, u := legoAccount(t, s, "admin-e2e@example.com", &key)
	acct := accountID(u.reg.Location)

	res1 := legoObtain(t, c, "one.admin.e2e.test")
	leaf1 := s.verifyChain(t, res1.Certificate, []string{"one.admin.e2e.test"})
	serial1 := hex.EncodeToString(leaf1.SerialNumber.Bytes())
	// The audit line is written before the response that depends on it:
	// the client saw the certificate, so certificate.issued is there.
	require.NotEqual(t, -1, findAudit(readAudit(t, s.AuditFile()), 0, func(e auditEvent) bool {
		return e.Event == "certificate.issued" && e.Serial == serial1
	}), "certificate.issued for %s is logged by the time the client has the certificate", serial1)

	res2 := legoObtain(t, c, "two.admin.e2e.test")
	leaf2 := s.verifyChain(t, res2.Certificate, []string{"two.admin.e2e.test"})
	serial2 := hex.EncodeToString(leaf2.SerialNumber.Bytes())

	_, err := legoObtainErr(c, "x.forbidden.e2e.test")
	requireProblem(t, err, "rejectedIdentifier")
	require.ErrorContains(t, err, forbiddenReason)

	t.Run("account-list", func(t *testing.T) {
		table := s.admin(t, "account", "list")
		require.Contains(t, table, "ID")
		require.Contains(t, table, acct)
		require.Contains(t, table, key.ID)
		var accts listing[accountRec]
		s.adminJSON(t, &accts, "account", "list")
		require.Len(t, accts.Items, 1)
		require.Equal(t, acct, accts.Items[0].ID)
		require.Equal(t, "valid", accts.Items[0].Status)
		require.Equal(t, "ops", accts.Items[0].Group)
		require.Equal(t, key.ID, accts.Items[0].EABKey)
		require.Equal(t, []string{"mailto:admin-e2e@example.com"}, accts.Items[0].Contact)
	})

	t.Run("orders", func(t *testing.T) {
		var orders listing[orderRec]
		s.adminJSON(t, &orders, "order", "list", "--identifier", "one.admin.e2e.test")
		require.Len(t, orders.Items, 1, "one order for one.admin.e2e.test")
		o := orders.Items[0]
		require.Equal(t, "valid", o.Status)
		require.Equal(t, acct, o.Account)

		s.adminJSON(t, &orders, "order", "list")
		require.Len(t, orders.Items, 2, "the refused order is not stored")
		s.adminJSON(t, &orders, "order", "list", "--account", acct, "--state", "valid")
		require.Len(t, orders.Items, 2)
		s.adminJSON(t, &orders, "order", "list", "--identifier", "x.forbidden.e2e.test")
		require.Empty(t, orders.Items)

		var shown orderRec
		s.adminJSON(t, &shown, "order", "show", o.ID)
		require.Equal(t, o.ID, shown.ID)
		require.Equal(t, "default", shown.Rule)
		require.Equal(t, "dev", shown.Upstream)
		require.Equal(t, []string{"dev"}, shown.Upstreams)
		require.NotEmpty(t, shown.Certificate)

		table := s.admin(t, "order", "show", o.ID)
		require.Regexp(t, `(?m)^rule\s+default\s*$`, table)
		require.Regexp(t, `(?m)^upstream\s+dev\s*$`, table)

		r := s.adminRun(t, "order", "show", "no-such-order")
		require.NotEqual(t, 0, r.Code)
		require.Contains(t, r.Stderr, "not found")
	})

	t.Run("certs", func(t *testing.T) {
		var certs listing[certRec]
		s.adminJSON(t, &certs, "cert", "list")
		require.Len(t, certs.Items, 2)
		serials := []string{certs.Items[0].Serial, certs.Items[1].Serial}
		require.ElementsMatch(t, []string{serial1, serial2}, serials)
		table := s.admin(t, "cert", "list")
		require.Contains(t, table, serial1)
		require.Contains(t, table, serial2)
		require.Contains(t, table, "one.admin.e2e.test")

		// The local CA issues for 90 days.
		s.adminJSON(t, &certs, "cert", "list", "--expiring", "100d")
		require.Len(t, certs.Items, 2, "both certificates expire within 100 days")
		s.adminJSON(t, &certs, "cert", "list", "--expiring", "1d")
		require.Empty(t, certs.Items, "no certificate expires within a day")
		s.adminJSON(t, &certs, "cert", "list", "--name", "two.admin.e2e.test")
		require.Len(t, certs.Items, 1)
		require.Equal(t, serial2, certs.Items[0].Serial)

		var cert certRec
		s.adminJSON(t, &cert, "cert", "show", serial1)
		require.Equal(t, serial1, cert.Serial)
		require.Equal(t, []string{"one.admin.e2e.test"}, cert.Names)
		require.Equal(t, "dev", cert.Upstream)
		require.Equal(t, acct, cert.Account)
		require.WithinDuration(t, leaf1.NotAfter, cert.NotAfter, time.Second)
		require.Empty(t, cert.RevokedAt)
		require.True(t, leafOf(t, []byte(cert.ChainPEM)).Equal(leaf1), "cert show gives the issued chain")

		// Operator revocation, then the client's is alreadyRevoked.
		s.admin(t, "cert", "revoke", serial1)
		s.adminJSON(t, &cert, "cert", "show", serial1)
		require.NotEmpty(t, cert.RevokedAt, "cert show after revoke")
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		err := c.Certificate.Revoke(ctx, res1.Certificate)
		requireProblem(t, err, "alreadyRevoked")
		r := s.adminRun(t, "cert", "revoke", serial1)
		require.NotEqual(t, 0, r.Code, "revoking twice fails")
		require.Contains(t, r.Stderr, "already revoked")

		// The client revokes the other one itself.
		require.NoError(t, c.Certificate.Revoke(ctx, res2.Certificate))
		s.adminJSON(t, &cert, "cert", "show", serial2)
		require.NotEmpty(t, cert.RevokedAt)
	})

	t.Run("wrong-token", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(bad, []byte("not-the-token\n"), 0o600))
		r := runCLI(t, s.Dir, "account", "list", "--server", s.AdminURL, "--token-file", bad)
		require.NotEqual(t, 0, r.Code, "a wrong token must fail")
		require.Contains(t, r.Stderr, "401")
		require.Contains(t, strings.ToLower(r.Stderr), "token")
		require.NotContains(t, r.Stdout, acct, "nothing listed with a wrong token")

		r = runCLI(t, s.Dir, "account", "list", "--server", s.AdminURL, "--token-file", filepath.Join(t.TempDir(), "missing"))
		require.NotEqual(t, 0, r.Code)
		require.Contains(t, r.Stderr, "token")
	})

	t.Run("deactivate", func(t *testing.T) {
		var a accountRec
		s.adminJSON(t, &a, "account", "deactivate", acct)
		require.Equal(t, "deactivated", a.Status)
		s.adminJSON(t, &a, "account", "show", acct)
		require.Equal(t, "deactivated", a.Status)

		_, err := legoObtainErr(c, "three.admin.e2e.test")
		requireProblem(t, err, "unauthorized")
	})

	t.Run("audit-log", func(t *testing.T) {
		info, err := os.Stat(s.AuditFile())
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the audit log is 0600")
		lines := readAudit(t, s.AuditFile())
		dump := dumpAudit(lines)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("audit log %s:\n%s", s.AuditFile(), dump)
			}
		})
		tok, err := os.ReadFile(s.TokenFile())
		require.NoError(t, err)
		for _, l := range lines {
			require.NotContains(t, l.Raw, key.HMACKey, "an audit line holds the HMAC key")
			require.NotContains(t, l.Raw, "-----BEGIN", "an audit line holds a PEM")
			require.NotContains(t, l.Raw, "PRIVATE", "an audit line holds a private key")
			require.NotContains(t, l.Raw, strings.TrimSpace(string(tok)), "an audit line holds the admin token")
		}

		// The story, in order.
		at := -1
		step := func(what string, match func(e auditEvent) bool) auditEvent {
			t.Helper()
			i := findAudit(lines, at+1, match)
			require.NotEqual(t, -1, i, "no %s after line %d in the audit log:\n%s", what, at, dump)
			at = i
			return lines[i].E
		}
		e := step("eab.created", func(e auditEvent) bool { return e.Event == "eab.created" && e.EABKey == key.ID })
		require.Equal(t, "admin", e.Actor)
		step("account.created", func(e auditEvent) bool { return e.Event == "account.created" && e.Account == acct })
		step("eab.bound", func(e auditEvent) bool {
			return e.Event == "eab.bound" && e.Account == acct && e.EABKey == key.ID
		})
		for _, n := range []struct{ name, serial string }{{"one.admin.e2e.test", serial1}, {"two.admin.e2e.test", serial2}} {
			e = step("order.created "+n.name, func(e auditEvent) bool { return e.Event == "order.created" && e.hasName(n.name) })
			require.Equal(t, acct, e.Account)
			require.Equal(t, "default", e.Rule)
			require.Equal(t, []string{"dev"}, e.Upstreams)
			require.NotEmpty(t, e.Order)
			order := e.Order
			e = step("challenge.valid "+n.name, func(e auditEvent) bool { return e.Event == "challenge.valid" && e.hasName(n.name) })
			require.Equal(t, "http-01", e.Challenge)
			require.Equal(t, acct, e.Account)
			e = step("certificate.issued "+n.name, func(e auditEvent) bool { return e.Event == "certificate.issued" && e.hasName(n.name) })
			require.Equal(t, "dev", e.Upstream)
			require.Equal(t, n.serial, e.Serial)
			require.Equal(t, order, e.Order)
			require.Equal(t, []string{n.name}, e.Names)
			require.False(t, e.NotAfter.IsZero(), "certificate.issued has not_after")
		}
		require.WithinDuration(t, leaf2.NotAfter, e.NotAfter, time.Second)
		e = step("order.refused", func(e auditEvent) bool { return e.Event == "order.refused" && e.hasName("x.forbidden.e2e.test") })
		require.Equal(t, acct, e.Account)
		require.Equal(t, "rejectedIdentifier", e.Problem)
		require.Equal(t, "no-forbidden", e.Rule, "order.refused names the rule that refused")
		// Not fatal, so the rest of the story is still checked.
		assert.Contains(t, e.Detail, forbiddenReason, "order.refused carries the operator's reason")
		e = step("certificate.revoked by admin", func(e auditEvent) bool { return e.Event == "certificate.revoked" && e.Serial == serial1 })
		require.Equal(t, "admin", e.Actor)
		require.Equal(t, "dev", e.Upstream)
		e = step("certificate.revoked by ACME", func(e auditEvent) bool { return e.Event == "certificate.revoked" && e.Serial == serial2 })
		require.NotEqual(t, "admin", e.Actor)
		require.NotEmpty(t, e.Actor)
		e = step("account.deactivated", func(e auditEvent) bool { return e.Event == "account.deactivated" && e.Account == acct })
		require.Equal(t, "admin", e.Actor)

		revoked := 0
		for _, l := range lines {
			if l.E.Event == "certificate.revoked" {
				revoked++
			}
		}
		require.Equal(t, 2, revoked, "the refused second revocations are not logged as revocations:\n%s", dump)

		// `acmebridge audit` reads it back, filtered.
		r := runCLI(t, s.Dir, "audit", "--file", s.AuditFile(), "--name", "one.admin.e2e.test", "--json")
		require.Equal(t, 0, r.Code, r.Stderr)
		var events []string
		for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var e auditEvent
			require.NoError(t, json.Unmarshal([]byte(l), &e), "audit --json line: %s", l)
			require.True(t, e.hasName("one.admin.e2e.test"), "audit --name printed %s", l)
			events = append(events, e.Event)
		}
		for _, want := range []string{"order.created", "challenge.valid", "certificate.issued", "certificate.revoked"} {
			require.Contains(t, events, want, "audit --name one.admin.e2e.test:\n%s", r.Stdout)
		}
		require.NotContains(t, r.Stdout, "two.admin.e2e.test")

		r = runCLI(t, s.Dir, "audit", "--file", s.AuditFile(), "--event", "certificate.issued", "--json")
		require.Equal(t, 0, r.Code, r.Stderr)
		require.Len(t, strings.Split(strings.TrimSpace(r.Stdout), "\n"), 2, r.Stdout)

		r = runCLI(t, s.Dir, "audit", "--file", s.AuditFile(), "--account", acct, "--event", "account.created,account.deactivated", "--json")
		require.Equal(t, 0, r.Code, r.Stderr)
		require.Len(t, strings.Split(strings.TrimSpace(r.Stdout), "\n"), 2, r.Stdout)

		r = runCLI(t, s.Dir, "audit", "--file", s.AuditFile(), "--name", "x.forbidden.e2e.test")
		require.Equal(t, 0, r.Code, r.Stderr)
		require.Contains(t, r.Stdout, "EVENT")
		require.Contains(t, r.Stdout, "order.refused")
	})
}
