package proxy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/go-acme/lego/v5/registration"
	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
)

// The seed corpora of the proxy's fuzz targets are real traffic: lego v5,
// the ACME library most Go clients use, driven in-process against a proxy
// whose external URL is the fuzz servers' (https://acme.test), so the URLs
// in the captured requests are theirs. Regenerate the files with
//
//	go test ./proxy -run TestFuzzSeedsFromLego -update-fuzz-seeds
//
// Without the flag the test still runs lego and checks that every target
// has its seed files.

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the lego seed corpora under proxy/testdata/fuzz")

// legoUser is lego's registration.User.
type fuzzLegoUser struct {
	reg *acme.ExtendedAccount
	key crypto.Signer
}

func (u *fuzzLegoUser) GetEmail() string                       { return "fuzz@example.com" }
func (u *fuzzLegoUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *fuzzLegoUser) GetPrivateKey() crypto.Signer           { return u.key }

// noopHTTP01 is an http-01 provider that serves nothing: the proxy under
// test validates with the in-process fake.
type noopHTTP01 struct{}

func (noopHTTP01) Present(context.Context, string, string, string) error { return nil }
func (noopHTTP01) CleanUp(context.Context, string, string, string) error { return nil }

// capturedPOST is one request lego sent.
type capturedPOST struct {
	path string
	body []byte
}

// captureLegoTraffic runs lego through registration (plain and with EAB),
// two issuances (one for fuzzName, one with an IP address), a failed
// issuance, an account update, revocation, key rollover and deactivation,
// and returns every POST it sent.
func captureLegoTraffic(t *testing.T) []capturedPOST {
	prev := legolog.Default()
	legolog.SetDefault(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { legolog.SetDefault(prev) })

	e := newEnv(t, fuzzConfig)
	require.NoError(t, e.st.PutEABKey(t.Context(), &store.EABKey{ID: fuzzEABKID, HMACKey: fuzzEABMAC, CreatedAt: time.Now()}))
	e.va.fail["fail."+fuzzName] = true
	var mu sync.Mutex
	var got []capturedPOST
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			mu.Lock()
			got = append(got, capturedPOST{r.URL.RequestURI(), b})
			mu.Unlock()
		}
		r.RemoteAddr = "192.0.2.1:1234"
		e.h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// Every connection to https://acme.test goes to the test server, whose
	// certificate is for example.com.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	addr := srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr.TLSClientConfig.ServerName = "example.com"
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	newClient := func(u *fuzzLegoUser) *lego.Client {
		cfg := lego.NewConfig(u)
		cfg.CADirURL = testBase + pathDirectory
		cfg.HTTPClient = hc
		cfg.Certificate.Timeout = 20 * time.Second
		c, err := lego.NewClient(cfg)
		require.NoError(t, err)
		require.NoError(t, c.Challenge.SetHTTP01Provider(noopHTTP01{}))
		return c
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	user := &fuzzLegoUser{key: key}
	c := newClient(user)
	user.reg, err = c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	require.NoError(t, err)

	res, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{fuzzName}, KeyType: certcrypto.EC256, Bundle: true})
	require.NoError(t, err)
	res2, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"www." + fuzzName, "192.0.2.1"}, KeyType: certcrypto.RSA2048, Bundle: true})
	require.NoError(t, err)
	_, err = c.Certificate.Get(ctx, res.CertURL, true)
	require.NoError(t, err)
	_, err = c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{"fail." + fuzzName, "ok." + fuzzName}, KeyType: certcrypto.EC256})
	require.Error(t, err, "the fake validator fails fail."+fuzzName)
	_, err = c.Registration.UpdateRegistration(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
	require.NoError(t, err)
	reason := acme.CRLReasonKeyCompromise
	require.NoError(t, c.Certificate.RevokeWithReason(ctx, res2.Certificate, &reason))
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	require.NoError(t, c.Registration.KeyRollover(ctx, newKey))

	// The EAB account is on the fixed key FuzzEAB's outer request carries.
	eabUser := &fuzzLegoUser{key: fuzzAccountKey(t)}
	ec := newClient(eabUser)
	eabUser.reg, err = ec.Registration.RegisterWithExternalAccountBinding(ctx, registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: fuzzEABKID, HmacEncoded: base64.RawURLEncoding.EncodeToString(fuzzEABMAC)})
	require.NoError(t, err)
	require.NoError(t, ec.Registration.DeleteRegistration(ctx))

	mu.Lock()
	defer mu.Unlock()
	return append([]capturedPOST(nil), got...)
}

// postKind names the resource of a request path.
func postKind(path string) string {
	switch {
	case path == pathNewAccount:
		return "new-account"
	case path == pathNewOrder:
		return "new-order"
	case path == pathRevoke:
		return "revoke"
	case path == pathKeyChange:
		return "key-change"
	case strings.HasPrefix(path, pathAccount) && strings.HasSuffix(path, "/orders"):
		return "orders"
	case strings.HasPrefix(path, pathAccount):
		return "account"
	case strings.HasPrefix(path, pathOrder) && strings.HasSuffix(path, "/finalize"):
		return "finalize"
	case strings.HasPrefix(path, pathOrder):
		return "order"
	case strings.HasPrefix(path, pathAuthz):
		return "authz"
	case strings.HasPrefix(path, pathChallenge):
		return "challenge"
	case strings.HasPrefix(path, pathCert):
		return "cert"
	}
	return ""
}

// fuzzSeed is one seed file: its target, a name, and its arguments (uint8
// or []byte).
type fuzzSeed struct {
	target, name string
	args         []any
}

// encode writes the seed in the corpus format of `go test -fuzz`.
func (s fuzzSeed) encode() []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range s.args {
		switch v := a.(type) {
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		}
	}
	return b.Bytes()
}

// seedsFromTraffic turns captured requests into the seeds of each target.
func seedsFromTraffic(t *testing.T, posts []capturedPOST) []fuzzSeed {
	unauthPaths := map[string]uint8{"new-account": 0, "new-order": 1, "revoke": 2, "key-change": 3, "account": 4, "order": 5,
		"finalize": 6, "authz": 7, "challenge": 8, "cert": 9, "orders": 10}
	headerTargets := map[string]uint8{"new-account": 0, "new-order": 1, "account": 2, "orders": 3, "order": 4, "authz": 5,
		"challenge": 6, "finalize": 7, "cert": 8, "revoke": 9, "key-change": 10}
	payloadKinds := map[string]uint8{"new-account": payNewAccount, "new-order": payNewOrder, "finalize": payFinalize,
		"revoke": payRevoke, "key-change": payKeyChangeJWS, "challenge": payChallenge, "authz": payAuthzUpdate,
		"account": payAccountUpdate, "order": payOrderGet, "cert": payCertGet}
	var seeds []fuzzSeed
	seen := map[string]bool{}
	perKind := map[string]int{}
	add := func(target, kind string, args ...any) {
		s := fuzzSeed{target: target, args: args}
		h := sha256.Sum256(s.encode())
		key := target + string(h[:])
		if seen[key] || perKind[target+kind] >= 3 {
			return
		}
		seen[key] = true
		perKind[target+kind]++
		s.name = "lego-" + kind + "-" + hex.EncodeToString(h[:4])
		seeds = append(seeds, s)
	}
	for _, p := range posts {
		kind := postKind(p.path)
		if kind == "" {
			continue
		}
		add("FuzzParseJWS", kind, p.body)
		add("FuzzUnauthenticatedPOST", kind, unauthPaths[kind], p.body)
		var flat struct{ Protected, Payload string }
		require.NoError(t, json.Unmarshal(p.body, &flat))
		prot, err := base64.RawURLEncoding.DecodeString(flat.Protected)
		require.NoError(t, err)
		payload, err := base64.RawURLEncoding.DecodeString(flat.Payload)
		require.NoError(t, err)
		// The header, its values made placeholders FuzzSignedHeader fills.
		var hdr map[string]any
		require.NoError(t, json.Unmarshal(prot, &hdr))
		hdr["nonce"], hdr["url"] = "$NONCE", "$URL"
		if _, ok := hdr["kid"]; ok {
			hdr["kid"] = "$KID"
		}
		if _, ok := hdr["jwk"]; ok {
			hdr["jwk"] = "$JWK"
		}
		hb, err := json.Marshal(hdr)
		require.NoError(t, err)
		add("FuzzSignedHeader", kind, headerTargets[kind], hb)
		if pk, ok := payloadKinds[kind]; ok && (len(payload) > 0 || kind == "order" || kind == "cert") {
			add("FuzzPayload", kind, pk, payload)
		}
		switch kind {
		case "finalize":
			var f struct{ CSR string }
			require.NoError(t, json.Unmarshal(payload, &f))
			der, err := base64.RawURLEncoding.DecodeString(f.CSR)
			require.NoError(t, err)
			add("FuzzCSR", kind, der)
		case "new-account":
			var a struct {
				EAB json.RawMessage `json:"externalAccountBinding"`
			}
			require.NoError(t, json.Unmarshal(payload, &a))
			if len(a.EAB) > 0 {
				add("FuzzEAB", kind, []byte(a.EAB))
			}
		case "key-change":
			// The inner payload, with the account and old key made
			// placeholders (FuzzPayload signs the inner JWS itself).
			var inner struct{ Payload string }
			require.NoError(t, json.Unmarshal(payload, &inner))
			ip, err := base64.RawURLEncoding.DecodeString(inner.Payload)
			require.NoError(t, err)
			var kc map[string]any
			require.NoError(t, json.Unmarshal(ip, &kc))
			kc["account"], kc["oldKey"] = "$ACCOUNT", "$OLDKEY"
			kb, err := json.Marshal(kc)
			require.NoError(t, err)
			add("FuzzPayload", "key-change-inner", uint8(payKeyChangeInner), kb)
		}
	}
	return seeds
}

// fuzzSeedTargets are the targets seeded from lego's traffic.
var fuzzSeedTargets = []string{"FuzzParseJWS", "FuzzUnauthenticatedPOST", "FuzzSignedHeader", "FuzzPayload", "FuzzCSR", "FuzzEAB"}

func TestFuzzSeedsFromLego(t *testing.T) {
	posts := captureLegoTraffic(t)
	kinds := map[string]bool{}
	for _, p := range posts {
		kinds[postKind(p.path)] = true
	}
	for _, k := range []string{"new-account", "new-order", "authz", "challenge", "finalize", "cert", "revoke", "key-change", "account"} {
		require.True(t, kinds[k], "lego sent no %s request", k)
	}
	seeds := seedsFromTraffic(t, posts)
	byTarget := map[string][]fuzzSeed{}
	for _, s := range seeds {
		byTarget[s.target] = append(byTarget[s.target], s)
	}
	for _, target := range fuzzSeedTargets {
		require.NotEmpty(t, byTarget[target], "no seed for %s", target)
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateFuzzSeeds {
			old, _ := filepath.Glob(filepath.Join(dir, "lego-*"))
			for _, f := range old {
				require.NoError(t, os.Remove(f))
			}
			require.NoError(t, os.MkdirAll(dir, 0o755))
			for _, s := range byTarget[target] {
				require.NoError(t, os.WriteFile(filepath.Join(dir, s.name), s.encode(), 0o644))
			}
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "lego-*"))
		require.NotEmpty(t, files, "%s has no lego seed files: run go test ./proxy -run TestFuzzSeedsFromLego -update-fuzz-seeds", dir)
	}
	if *updateFuzzSeeds {
		var counts []string
		for _, target := range fuzzSeedTargets {
			counts = append(counts, fmt.Sprintf("%s=%d", target, len(byTarget[target])))
		}
		sort.Strings(counts)
		t.Logf("wrote lego seeds: %s", strings.Join(counts, " "))
	}
}
