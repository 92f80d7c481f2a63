package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/upstream/acme/acmetest"
)

// TestRelayHTTP01AcrossReplicas: two replicas on one Redis relay to Pebble
// with the http-01 solver, each with its own responder behind one address
// (the port Pebble's VA connects to), as behind a load balancer. Every
// validation request is sent to the replica that did NOT place the
// upstream order, so it never holds the token in memory: it answers from
// the store, and every client gets its certificate.
func TestRelayHTTP01AcrossReplicas(t *testing.T) {
	rd := startRedis(t, false)
	p := acmetest.Start(t, acmetest.Options{AuthzReuse: -1})
	ports := freePorts(t, 2)
	rs := startRelayReplicasEach(t, rd, func(i int) string {
		return relayConfig(acmeUpstreamHTTPOn("pebble", p, ports[i]), "pebble")
	})
	useTestDNSForLego(t, rs.DNS)
	router := startHTTP01Router(t, fmt.Sprintf("127.0.0.1:%d", p.HTTPPort), rs.Replicas, ports)

	orders := [][]string{
		{"a.h01.relay.test", "www.a.h01.relay.test"},
		{"b.h01.relay.test"},
		{"c.h01.relay.test"},
		{"d.h01.relay.test", "www.d.h01.relay.test"},
	}
	results := make([]obtainResult, len(orders))
	var wg sync.WaitGroup
	for i, names := range orders {
		u := rs.register(t, fmt.Sprintf("relay-h01-%d@example.com", i))
		c := rs.legoClient(t, u, 3*time.Minute)
		rs.useDNS01(t, c, nil)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			results[i] = obtain(ctx, c, names)
		})
	}
	wg.Wait()

	routed := router.Routed()
	t.Logf("validation requests: %v", routed)
	for _, r := range results {
		require.NoError(t, r.err, "obtain %v", r.names)
		verifyChainPool(t, p.Roots(t), "Pebble's root", r.res.Certificate, r.names)
	}
	require.Equal(t, len(orders), p.Orders(), "one upstream order per client order")
	placers := map[int]bool{}
	answered := map[string]bool{}
	for _, r := range routed {
		require.NotEqual(t, r.Placer, r.To, "request for %s", r.Host)
		require.NotEqual(t, -1, r.Placer, "no replica placed the order for %s", r.Host)
		placers[r.Placer] = true
		if r.Status == http.StatusOK {
			answered[r.Host] = true
		}
	}
	for _, names := range orders {
		for _, n := range names {
			require.True(t, answered[n], "no replica but the placer's peer answered Pebble for %s", n)
		}
	}
	t.Logf("upstream orders placed by replicas %v; each validated at the other", placers)
	require.Equal(t, 0, countLines(rs.AllLogs(), `msg="http-01 responder: cannot read the token store"`))
}

// http01Router stands for the load balancer in front of the replicas'
// http-01 responders, on the one address Pebble validates at. It sends a
// validation request for a name to a replica that did not place the
// upstream order holding that name (found in the replicas' logs), so the
// answer can only come from what the replicas share.
type http01Router struct {
	replicas []*replica
	ports    []int // each replica's responder port
	client   *http.Client

	mu     sync.Mutex
	routed []routedRequest
}

// routedRequest is one validation request: the name, the replica that
// placed its order (-1: none found), the one it was sent to, and the
// status it answered.
type routedRequest struct {
	Host       string
	Placer, To int
	Status     int
}

func (r routedRequest) String() string {
	return fmt.Sprintf("%s: placed by %d, answered by %d: %d", r.Host, r.Placer, r.To, r.Status)
}

// startHTTP01Router listens on addr until the test ends.
func startHTTP01Router(t *testing.T, addr string, replicas []*replica, ports []int) *http01Router {
	t.Helper()
	rt := &http01Router{replicas: replicas, ports: ports,
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rt
}

// Routed returns the requests routed so far.
func (rt *http01Router) Routed() []routedRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]routedRequest(nil), rt.routed...)
}

// placedNames matches the log line of a placed upstream order: its time
// and its names (slog's text form of a []string).
var placedNames = regexp.MustCompile(`time=(\S+) .*msg="acme order placed".* names="?\[([^\]]*)\]`)

// placer returns the index of the replica that placed the latest upstream
// order naming host (a failed order may be placed again, by either
// replica), waiting a little for its log line to arrive; -1 if none.
func (rt *http01Router) placer(host string) int {
	found := -1
	waitFor(10*time.Second, func() bool {
		var latest time.Time
		for _, r := range rt.replicas {
			for _, m := range placedNames.FindAllStringSubmatch(r.Logs(), -1) {
				at, err := time.Parse(time.RFC3339Nano, m[1])
				if err != nil || !slices.Contains(strings.Fields(m[2]), host) {
					continue
				}
				if found == -1 || at.After(latest) {
					found, latest = r.Index, at
				}
			}
		}
		return found != -1
	})
	return found
}

func (rt *http01Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	rr := routedRequest{Host: host, Placer: rt.placer(host), To: -1}
	defer func() {
		rt.mu.Lock()
		rt.routed = append(rt.routed, rr)
		rt.mu.Unlock()
	}()
	if rr.Placer == -1 {
		rr.Status = http.StatusBadGateway
		http.Error(w, "router: no replica placed an order for "+host, http.StatusBadGateway)
		return
	}
	rr.To = (rr.Placer + 1) % len(rt.replicas)
	out, err := http.NewRequestWithContext(req.Context(), req.Method,
		fmt.Sprintf("http://127.0.0.1:%d%s", rt.ports[rr.To], req.URL.RequestURI()), nil)
	if err != nil {
		rr.Status = http.StatusInternalServerError
		http.Error(w, err.Error(), rr.Status)
		return
	}
	out.Host = req.Host
	resp, err := rt.client.Do(out)
	if err != nil {
		rr.Status = http.StatusBadGateway
		http.Error(w, "router: "+err.Error(), rr.Status)
		return
	}
	defer resp.Body.Close()
	rr.Status = resp.StatusCode
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<16))
}
