package local

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// BenchmarkIssueNewOrder is one issuance of a new order each time (as the
// worker issues), finalized now: signing, and whatever the CA records.
func BenchmarkIssueNewOrder(b *testing.B) {
	ca := newCA(b, Options{})
	req := request(b, []string{"a.example", "b.example"}, []net.IP{net.ParseIP("192.0.2.1")})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req.OrderID = fmt.Sprintf("bench-%d", i)
		req.At = time.Now()
		if _, err := ca.Issue(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}
