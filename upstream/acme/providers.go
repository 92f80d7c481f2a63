package acme

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/route53"
)

// dnsProviders are the lego DNS providers acmebridge is built with, by the
// names lego's documentation uses. lego's registry of every provider
// (providers/dns) pulls in each provider's SDK; only these are linked.
// Adding one is one line here and one in configs.ACMEDNSProviders.
var dnsProviders = map[string]func() (challenge.Provider, error){
	// exec runs EXEC_PATH with "present|cleanup FQDN VALUE".
	"exec": func() (challenge.Provider, error) { return exec.NewDNSProvider() },
	// httpreq POSTs {"fqdn","value"} to HTTPREQ_ENDPOINT/present|cleanup.
	"httpreq": func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
	// rfc2136 sends dynamic updates (RFC 2136) to RFC2136_NAMESERVER,
	// signed with TSIG (RFC2136_TSIG_*); lego now calls it dnsupdate.
	"rfc2136":   func() (challenge.Provider, error) { return dnsupdate.NewDNSProvider() },
	"dnsupdate": func() (challenge.Provider, error) { return dnsupdate.NewDNSProvider() },
	// cloudflare takes CF_DNS_API_TOKEN (or CLOUDFLARE_DNS_API_TOKEN).
	"cloudflare": func() (challenge.Provider, error) { return cloudflare.NewDNSProvider() },
	// route53 takes the AWS SDK's usual variables (AWS_REGION,
	// AWS_ACCESS_KEY_ID, AWS_PROFILE, ...) and AWS_HOSTED_ZONE_ID.
	"route53": func() (challenge.Provider, error) { return route53.NewDNSProvider() },
}

// DNSProviders lists the names Solver.Provider accepts, sorted.
func DNSProviders() []string {
	names := make([]string, 0, len(dnsProviders))
	for n := range dnsProviders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// envMu serialises the environment changes newDNSProvider makes.
var envMu sync.Mutex

// newDNSProvider builds the named provider with env set in the process
// environment while lego's constructor reads it (lego providers take
// their configuration from the environment, including VAR_FILE to read a
// secret from a file). The previous values are restored afterwards.
func newDNSProvider(name string, env map[string]string) (challenge.Provider, error) {
	mk, ok := dnsProviders[name]
	if !ok {
		return nil, fmt.Errorf("%q is not a DNS provider acmebridge is built with (%v)", name, DNSProviders())
	}
	envMu.Lock()
	defer envMu.Unlock()
	type saved struct {
		value string
		set   bool
	}
	prev := map[string]saved{}
	for k, v := range env {
		old, set := os.LookupEnv(k)
		prev[k] = saved{old, set}
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	defer func() {
		for k, s := range prev {
			if s.set {
				_ = os.Setenv(k, s.value)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}()
	return mk()
}

// sequential is a lego provider whose records are set one authorization at
// a time (lego's dns01 looks for this method).
type sequential interface {
	Sequential() time.Duration
}

// timedProvider overrides a provider's propagation timeout and interval.
type timedProvider struct {
	challenge.Provider
	timeout, interval time.Duration
}

// Timeout implements challenge.ProviderTimeout.
func (p timedProvider) Timeout() (time.Duration, time.Duration) {
	timeout, interval := p.timeout, p.interval
	if pt, ok := p.Provider.(challenge.ProviderTimeout); ok {
		t, i := pt.Timeout()
		if timeout == 0 {
			timeout = t
		}
		if interval == 0 {
			interval = i
		}
	}
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if interval == 0 {
		interval = 2 * time.Second
	}
	return timeout, interval
}

// timedSequentialProvider is timedProvider for a sequential provider.
type timedSequentialProvider struct {
	timedProvider
	seq sequential
}

// Sequential keeps the wrapped provider's sequencing.
func (p timedSequentialProvider) Sequential() time.Duration { return p.seq.Sequential() }

// withTimeouts wraps p so that the configured propagation timeout and
// interval (zero: the provider's own) apply.
func withTimeouts(p challenge.Provider, timeout, interval time.Duration) challenge.Provider {
	t := timedProvider{Provider: p, timeout: timeout, interval: interval}
	if s, ok := p.(sequential); ok {
		return timedSequentialProvider{timedProvider: t, seq: s}
	}
	return t
}
