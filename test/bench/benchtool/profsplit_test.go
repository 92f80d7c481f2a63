package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// traces is `go tool pprof -traces` output in its real shape: a header,
// then samples whose first line carries the value and the leaf frame.
const traces = `File: acmebridge
Type: cpu
Duration: 17.23s, Total samples = 6.09s (35.34%)
-----------+-------------------------------------------------------
      10ms   crypto/internal/fips140/aes/gcm.gcmAesInit
             crypto/tls.(*serverHandshakeStateTLS13).handshake
             crypto/tls.(*Conn).serverHandshake
             net/http.(*conn).serve
-----------+-------------------------------------------------------
     140ms   internal/runtime/syscall/linux.Syscall6
             syscall.read
             net.(*conn).Read
             crypto/tls.(*Conn).Read
             net/http.(*http2Framer).ReadFrame
-----------+-------------------------------------------------------
     1.50s   p256MulInternal
             crypto/internal/fips140/nistec.p256PointDoubleAsm
             crypto/ecdsa.VerifyASN1
             github.com/go-jose/go-jose/v4.JSONWebSignature.Verify (inline)
             github.com/acmebridge/acmebridge/proxy.(*Server).verifyKID
-----------+-------------------------------------------------------
     300ms   internal/runtime/syscall/linux.Syscall6
             syscall.Fdatasync
             go.etcd.io/bbolt.(*Tx).Commit
-----------+-------------------------------------------------------
     500us   runtime.mallocgc
             crypto/internal/fips140/hmac.New[go.shape.interface { BlockSize int; Reset; Size int }]
             github.com/acmebridge/acmebridge/store/bolt.getJSON
-----------+-------------------------------------------------------
      20ms   github.com/acmebridge/acmebridge/ra.decideContent
             github.com/acmebridge/acmebridge/ra.(*RA).Finalize
`

func TestSplitTraces(t *testing.T) {
	s, err := splitTraces(strings.NewReader(traces))
	require.NoError(t, err)
	require.Equal(t, 1970500*time.Microsecond, s.total)
	got := map[string]time.Duration{}
	for i, k := range workKinds {
		if s.byKind[i] != 0 {
			got[k.name] = s.byKind[i]
		}
	}
	require.Equal(t, map[string]time.Duration{
		workKinds[0].name:                   10 * time.Millisecond,   // the handshake, though it ends in AES
		workKinds[1].name:                   1500 * time.Millisecond, // ECDSA, though our handler called it
		workKinds[2].name:                   300 * time.Millisecond,  // a disk sync, not a socket
		workKinds[3].name:                   140 * time.Millisecond,  // a socket read
		"garbage collection and allocation": 500 * time.Microsecond,
		"acmebridge's own code":             20 * time.Millisecond,
	}, got)

	var out bytes.Buffer
	require.NoError(t, s.print(&out, 10, true))
	// The floor: handshake, ECDSA, disk and socket = 1950 ms over 10 issuances.
	require.Contains(t, out.String(), "| * the floor: work no server in this shape can skip | 99.0% | 195.00 |")
	require.Contains(t, out.String(), "| all samples (10 issuances) | 100% | 197.05 |")
}

func TestSplitTracesBadValue(t *testing.T) {
	_, err := splitTraces(strings.NewReader("-----------+----\n      10xs   main.f\n"))
	require.ErrorContains(t, err, `sample value "10xs"`)
}
