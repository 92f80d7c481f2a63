package bench

import (
	"io"
	"net/http"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// TestHTTP01Responder serves every client's token from one port.
func TestHTTP01Responder(t *testing.T) {
	r, err := StartHTTP01(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	defer r.Close()
	r.Set("tok1", "tok1.thumb")
	r.Set("tok2", "tok2.thumb")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + r.Addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get("/.well-known/acme-challenge/tok2")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "tok2.thumb", body)
	r.Clear("tok2")
	code, _ = get("/.well-known/acme-challenge/tok2")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get("/other/tok1")
	require.Equal(t, http.StatusNotFound, code)
}

// TestDNSServer answers A 127.0.0.1 for any name and the TXT records set,
// over UDP and TCP.
func TestDNSServer(t *testing.T) {
	d, err := StartDNS(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	defer d.Close()
	d.SetTXT("_acme-challenge.X.bench.test", "v1")
	d.SetTXT("_acme-challenge.x.bench.test.", "v2")
	for _, netw := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: netw}
		q := new(dns.Msg).SetQuestion("_acme-challenge.x.bench.test.", dns.TypeTXT)
		m, _, err := c.Exchange(q, d.Addr)
		require.NoError(t, err)
		var got []string
		for _, rr := range m.Answer {
			got = append(got, rr.(*dns.TXT).Txt...)
		}
		require.Equal(t, []string{"v1", "v2"}, got, netw)

		m, _, err = c.Exchange(new(dns.Msg).SetQuestion("anything.example.", dns.TypeA), d.Addr)
		require.NoError(t, err)
		require.Len(t, m.Answer, 1)
		require.Equal(t, "127.0.0.1", m.Answer[0].(*dns.A).A.String())
	}
	d.ClearTXT("_acme-challenge.x.bench.test.", "v1")
	d.ClearTXT("_acme-challenge.x.bench.test.", "v2")
	m, _, err := new(dns.Client).Exchange(new(dns.Msg).SetQuestion("_acme-challenge.x.bench.test.", dns.TypeTXT), d.Addr)
	require.NoError(t, err)
	require.Empty(t, m.Answer)
	require.Equal(t, dns.RcodeSuccess, m.Rcode)
}
