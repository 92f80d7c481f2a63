package local

import "testing"

// BenchmarkIssueNewOrder is one issuance of a new order each time (as the
// worker issues), finalized now: signing, and whatever the CA records.
func BenchmarkIssueNewOrder(b *testing.B) { benchIssue(b, true) }
