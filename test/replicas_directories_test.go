package test

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/lego"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// replicaDirectoriesYAML gives every replica two directories: tenant with
// its own policy, and other, which denies everything.
const replicaDirectoriesYAML = `policy:
  default: {action: deny, reason: "the top level issues nothing here"}
directories:
  - name: tenant
    policy:
      rules:
        - {name: tenant-zone, match: {domains: ["*.tenant.e2e.test"]}, upstreams: [dev]}
      default: {action: deny, reason: "tenant names only"}
  - name: other
    policy:
      default: {action: deny, reason: "other issues nothing"}
`

// TestReplicasDirectories: two replicas on one Redis serve a directory's
// clients round-robin; an account made through one replica is refused by
// the other directory on the other replica, and its records carry their
// directory in the shared store.
func TestReplicasDirectories(t *testing.T) {
	rd := startRedis(t, false)
	rs := startReplicas(t, replicaOptions{N: 2, Redis: rd, Extra: replicaDirectoriesYAML})
	rs.DirectoryURL = rs.Proxy.URL + "/tenant/directory"
	useTestDNSForLego(t, rs.DNS)

	const clients, perClient = 3, 3
	users := make([]*legoUser, clients)
	legos := make([]*lego.Client, clients)
	for i := range users {
		users[i] = rs.register(t, fmt.Sprintf("dir%d@example.com", i))
		require.True(t, strings.HasPrefix(users[i].reg.Location, rs.Proxy.URL+"/tenant/acme/account/"), users[i].reg.Location)
		legos[i] = rs.legoClient(t, users[i], 60*time.Second)
		rs.useDNS01(t, legos[i], nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClient {
				ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
				r := obtain(ctx, legos[i], []string{fmt.Sprintf("c%d-%d.tenant.e2e.test", i, j)})
				cancel()
				if r.err != nil {
					errs[i] = r.err
					return
				}
				verifyChainPool(t, rs.Roots, "the local CA's root.pem", r.res.Certificate, r.names)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "client %d", i)
	}
	// The tenant's policy, not the top level's deny.
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	r := obtain(ctx, legos[0], []string{"www.elsewhere.e2e.test"})
	pd := requireProblem(t, r.err, "rejectedIdentifier")
	require.Contains(t, pd.Detail, "tenant names only")

	// The account, asked of the other directory on each replica: its own
	// URL as kid, and the URL rewritten into the other directory.
	u := users[0]
	for _, rp := range rs.Replicas {
		for _, kid := range []string{u.reg.Location, strings.Replace(u.reg.Location, "/tenant/", "/other/", 1)} {
			target := rp.BaseURL + "/other/acme/new-order"
			nonce := fetchNonce(t, rp.BaseURL+"/other/acme/new-nonce")
			body := signJOSE(t, u.key, kid, nonce, strings.Replace(target, rp.BaseURL, rs.Proxy.URL, 1), `{"identifiers":[{"type":"dns","value":"x.tenant.e2e.test"}]}`)
			status, _, respBody := postJOSE(t, target, body)
			require.Equal(t, http.StatusBadRequest, status, "replica %d, kid %s: %s", rp.Index, kid, respBody)
			var p acme.ProblemDetails
			require.NoError(t, json.Unmarshal(respBody, &p))
			require.Equal(t, "urn:ietf:params:acme:error:accountDoesNotExist", p.Type, "replica %d", rp.Index)
		}
	}
	issued := logOrders(rs.AllLogs(), "local certificate issued")
	require.Len(t, issued, clients*perClient)
}

// signJOSE is signPostAsGet with a payload.
func signJOSE(t *testing.T, key crypto.Signer, kid, nonce, url, payload string) []byte {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"nonce": nonce, "url": url}})
	require.NoError(t, err)
	jws, err := signer.Sign([]byte(payload))
	require.NoError(t, err)
	return []byte(jws.FullSerialize())
}
