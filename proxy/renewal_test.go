package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
)

// ariID is the RFC 9773 §4.1 identifier of a certificate.
func ariID(c *x509.Certificate) string {
	serial := c.SerialNumber.Bytes()
	if serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...)
	}
	return b64(c.AuthorityKeyId) + "." + b64(serial)
}

// issue gets a certificate for names and returns its leaf and store record.
func issue(t *testing.T, e *env, c *client, names ...string) (*x509.Certificate, *store.Certificate) {
	_, o := c.readyOrder(dnsIDs(names...)...)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o = decode[orderJSON](t, c.post(o.Finalize, map[string]string{"csr": b64(makeCSR(t, key, "", names, nil))}))
	require.Equal(t, "valid", o.Status)
	blk, _ := pem.Decode(c.post(o.Certificate, nil).Body.Bytes())
	leaf, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	rec, err := e.st.GetCertificate(t.Context(), strings.TrimPrefix(o.Certificate, testBase+pathCert))
	require.NoError(t, err)
	return leaf, rec
}

func TestRenewalInfo(t *testing.T) {
	e := newEnv(t, nil)
	d := decode[directory](t, e.do(http.MethodGet, pathDirectory, "", nil))
	require.Equal(t, testBase+pathRenewalInfo, d.RenewalInfo)
	c := e.newClient()
	c.register()
	leaf, rec := issue(t, e, c, "ari.example.com")

	get := func(id string) (*http.Response, renewalInfo) {
		w := e.do(http.MethodGet, pathRenewalInfo+"/"+id, "", nil)
		var ri renewalInfo
		if w.Code == http.StatusOK {
			ri = decode[renewalInfo](t, w)
		}
		return w.Result(), ri
	}
	resp, ri := get(ariID(leaf))
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "21600", resp.Header.Get("Retry-After"))
	start, err := time.Parse(time.RFC3339, ri.SuggestedWindow.Start)
	require.NoError(t, err)
	end, err := time.Parse(time.RFC3339, ri.SuggestedWindow.End)
	require.NoError(t, err)
	require.True(t, start.Before(end))
	require.True(t, start.After(leaf.NotBefore.Add(59*24*time.Hour)), "two thirds into a 90-day certificate")
	require.True(t, end.Before(leaf.NotAfter))

	// Malformed and unknown identifiers; a right serial with a wrong AKI.
	requireProblem(t, e.do(http.MethodGet, pathRenewalInfo+"/nodot", "", nil), 400, "malformed")
	requireProblem(t, e.do(http.MethodGet, pathRenewalInfo+"/AAAA.AAAA", "", nil), 404, "malformed")
	wrongAKI := b64([]byte("not-the-aki")) + "." + strings.Split(ariID(leaf), ".")[1]
	requireProblem(t, e.do(http.MethodGet, pathRenewalInfo+"/"+wrongAKI, "", nil), 404, "malformed")
	requireProblem(t, e.do(http.MethodPost, pathRenewalInfo+"/"+ariID(leaf), "", nil), 405, "malformed")

	// An operator's early renewal moves the window into the past.
	rec.RenewBy = time.Now()
	require.NoError(t, e.st.UpdateCertificate(t.Context(), rec))
	resp, ri = get(ariID(leaf))
	_ = resp.Body.Close()
	end, _ = time.Parse(time.RFC3339, ri.SuggestedWindow.End)
	require.False(t, end.After(time.Now()))

	// So does revocation.
	require.Equal(t, http.StatusOK, c.post(pathRevoke, map[string]any{"certificate": b64(leaf.Raw)}).Code)
	resp, ri = get(ariID(leaf))
	_ = resp.Body.Close()
	end, _ = time.Parse(time.RFC3339, ri.SuggestedWindow.End)
	require.True(t, end.Before(time.Now()))
}

func TestReplaces(t *testing.T) {
	e := newEnv(t, nil)
	c := e.newClient()
	c.register()
	leaf, rec := issue(t, e, c, "old.example.com", "other.example.com")
	id := ariID(leaf)

	// Another account may not replace it; an order sharing no name may not.
	o := e.newClient()
	o.register()
	requireProblem(t, o.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("old.example.com"), "replaces": id}), 403, "unauthorized")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("new.example.com"), "replaces": id}), 400, "malformed")
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("old.example.com"), "replaces": "garbage"}), 400, "malformed")

	rec2 := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("old.example.com"), "replaces": id})
	require.Equal(t, http.StatusCreated, rec2.Code, rec2.Body.String())
	stored, err := e.st.GetCertificate(t.Context(), rec.ID)
	require.NoError(t, err)
	require.NotEmpty(t, stored.ReplacedBy)
	// RFC 9773 §7.4: a second replacement is alreadyReplaced.
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("old.example.com"), "replaces": id}), 409, "alreadyReplaced")
}

func TestProfiles(t *testing.T) {
	e := newEnv(t, func(c *configs.Config) {
		c.Orders.Profiles = map[string]string{"tlsserver": "90-day server certificate", "shortlived": "7 days"}
		c.Policy.Rules = []configs.Rule{{Name: "short", Match: configs.Match{Profiles: []string{"shortlived"}}, Upstreams: []string{"dev"},
			MaxValidity: configs.Duration(7 * 24 * time.Hour)}}
	})
	d := decode[directory](t, e.do(http.MethodGet, pathDirectory, "", nil))
	require.Equal(t, "7 days", d.Meta.Profiles["shortlived"])
	c := e.newClient()
	c.register()
	requireProblem(t, c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p.example.com"), "profile": "nope"}), 400, "invalidProfile")
	rec := c.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p.example.com"), "profile": "shortlived"})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	o := decode[orderJSON](t, rec)
	require.Equal(t, "shortlived", o.Profile)
	stored, err := e.st.GetOrder(t.Context(), strings.TrimPrefix(rec.Header().Get("Location"), testBase+pathOrder))
	require.NoError(t, err)
	require.Equal(t, "short", stored.Rule, "the profile routes the order")
	require.Equal(t, 7*24*time.Hour, stored.MaxValidity)

	f := newEnv(t, nil)
	g := f.newClient()
	g.register()
	requireProblem(t, g.post(pathNewOrder, map[string]any{"identifiers": dnsIDs("p.example.com"), "profile": "tlsserver"}), 400, "invalidProfile")
}
