package vault

import (
	"encoding/pem"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream"
	"github.com/acmebridge/acmebridge/upstream/vault/vaulttest"
)

// BenchmarkSign compares a raw pki/sign call (vault/api, root token) with
// Issue (the same call plus the setRef mark, the 403 wrapper, parsing and
// chain ordering) against the dev server, one fresh CSR per operation (made
// before the timer starts), sequentially and from 4×GOMAXPROCS goroutines.
// Run:
//
//	go test -run '^$' -bench Sign -benchtime 300x ./upstream/vault/
func BenchmarkSign(b *testing.B) {
	e := newEnv(b, vaulttest.PKIOptions{})
	ctx := ctxT(b)
	requests := func(b *testing.B, prefix string) []*upstream.Request {
		out := make([]*upstream.Request, b.N)
		for i := range out {
			out[i] = newRequest(b, csrOptions{}, fmt.Sprintf("%s%d.example.test", prefix, i))
		}
		return out
	}
	raw := func(b *testing.B, reqs []*upstream.Request, i int) {
		csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: reqs[i].CSRDER})
		_, err := e.root.Logical().WriteWithContext(ctx, e.pki.Mount+"/sign/"+e.pki.Role,
			map[string]any{"csr": string(csr), "format": "pem"})
		require.NoError(b, err)
	}
	u := e.upstream(b, nil)
	issue := func(b *testing.B, reqs []*upstream.Request, i int) {
		var refs refLog
		_, err := u.Issue(ctx, reqs[i], refs.set)
		require.NoError(b, err)
	}
	for _, bc := range []struct {
		name string
		op   func(*testing.B, []*upstream.Request, int)
	}{{"raw-pki-sign", raw}, {"upstream-Issue", issue}} {
		b.Run(bc.name, func(b *testing.B) {
			reqs := requests(b, bc.name)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bc.op(b, reqs, i)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			reqs := requests(b, bc.name+"p")
			var next atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.op(b, reqs, int(next.Add(1)-1))
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
