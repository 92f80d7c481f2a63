package deploy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// ciValues exercises Vault, EAB (downstream required, upstream HMAC from a
// Secret), Redis Sentinel with password and TLS, TLS, Ingress and
// ServiceMonitor.
const ciValues = chartDir + "/ci/vault-eab-values.yaml"

func TestHelmLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", ciValues}} {
		out, code := helm(t, append([]string{"lint", "--strict", chartDir}, args...)...)
		require.Equal(t, 0, code, "helm lint %v:\n%s", args, out)
		require.Contains(t, out, "0 chart(s) failed")
	}
}

// chartExpect is what one rendering must show beyond the invariants every
// rendering shares.
type chartExpect struct {
	replicas int
	image    string
	// kinds present (and only these).
	kinds []string
	// envFromSecret: container variables that must come from a Secret.
	envFromSecret map[string]keyRef
}

func TestHelmChartDefaults(t *testing.T) {
	r := renderChart(t)
	checkChart(t, r, chartExpect{
		replicas: 2,
		image:    "ghcr.io/acmebridge/acmebridge:" + chartAppVersion(t),
		kinds:    []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Service", "ServiceAccount"},
		envFromSecret: map[string]keyRef{
			"ACMEBRIDGE_STORE_KEY": {Name: "acmebridge-store-key", Key: "store.key"},
		},
	})
	cfg := parseConfig(t, r.configText(t))
	require.Equal(t, "redis", dig(t, cfg, "store", "driver"))
	require.NotContains(t, dig(t, cfg, "store", "redis"), "durability", "replicas 0: the server's default")
	require.Equal(t, true, dig(t, cfg, "server", "tls", "disabled"), "no TLS Secret: plain HTTP behind the Ingress")
	// Empty policy: everything to the first upstream.
	require.Equal(t, []any{"vault"}, dig(t, cfg, "policy", "default", "upstreams"))
	requireConfigOK(t, r.writeConfig(t))
}

func TestHelmChartVaultEAB(t *testing.T) {
	r := renderChart(t, "-f", ciValues)
	checkChart(t, r, chartExpect{
		replicas: 3,
		image:    "ghcr.io/acmebridge/acmebridge:1.2.3",
		kinds: []string{"ConfigMap", "Deployment", "Ingress", "PodDisruptionBudget", "Service", "Service",
			"ServiceAccount", "ServiceMonitor"},
		envFromSecret: map[string]keyRef{
			"ACMEBRIDGE_STORE_KEY":      {Name: "acmebridge-keys", Key: "store-key"},
			"ACMEBRIDGE_REDIS_PASSWORD": {Name: "redis-auth", Key: "password"},
			"CF_DNS_API_TOKEN":          {Name: "cloudflare-dns", Key: "api-token"},
		},
	})
	cfg := parseConfig(t, r.configText(t))
	require.Equal(t, "required", dig(t, cfg, "accounts", "eab"))
	require.Equal(t, "mymaster", dig(t, cfg, "store", "redis", "master_name"))
	require.Equal(t, map[string]any{"replicas": 1, "timeout": "500ms"}, dig(t, cfg, "store", "redis", "durability"))
	require.Equal(t, 50, dig(t, cfg, "store", "redis", "pool_size"), "config.store.redis merges with the chart's keys")
	require.Equal(t, "https://pki.example.com/terms", dig(t, cfg, "server", "terms_of_service"))
	require.Equal(t, "/etc/acmebridge/tls/tls.crt", dig(t, cfg, "server", "tls", "cert_file"))
	// The admin listener on HTTPS: its files from the admin TLS Secret,
	// probes over HTTPS, the in-pod CLI pointed at the admin Service's name
	// with the Secret's CA.
	require.Equal(t, "/etc/acmebridge/admin-tls/tls.crt", dig(t, cfg, "admin", "tls", "cert_file"))
	require.Equal(t, "/etc/acmebridge/admin-tls/ca.crt", dig(t, cfg, "admin", "tls", "ca_file"))
	_, ctr := r.deployment(t)
	require.Equal(t, "HTTPS", ctr.LivenessProbe.HTTPGet.Scheme)
	require.Equal(t, "HTTPS", ctr.ReadinessProbe.HTTPGet.Scheme)
	adminEnv := map[string]string{}
	for _, e := range ctr.Env {
		adminEnv[e.Name] = e.Value
	}
	require.Equal(t, "https://"+adminService(t, r).Metadata.Name+".pki.svc:8556", adminEnv["ACMEBRIDGE_ADMIN"])
	require.Equal(t, "/etc/acmebridge/admin-tls/ca.crt", adminEnv["ACMEBRIDGE_ADMIN_CA_FILE"])
	path := r.writeConfig(t)
	out := requireConfigOK(t, path)
	require.Contains(t, out, "vault-internal (vault), zerossl (acme)")
	// Vault's login: the pod's projected service account token, with the
	// audience the values give (checked against the mounts by checkChart).
	ups, ok := dig(t, cfg, "upstreams").([]any)
	require.True(t, ok)
	vaultUp, ok := ups[0].(map[string]any)
	require.True(t, ok)
	require.Equal(t, "acmebridge", dig(t, vaultUp, "vault", "kubernetes", "role"))
	d, _ := r.deployment(t)
	m := mountTable(t, d.Spec.Template.Spec, ctr).find(dig(t, vaultUp, "vault", "kubernetes", "token_file").(string))
	require.NotNil(t, m)
	require.Equal(t, "serviceAccountToken:https://vault.corp.example.com", m.source)
	require.Equal(t, false, *d.Spec.Template.Spec.AutomountServiceAccountToken, "still no Kubernetes API token in the pod")

	// The policy in the ConfigMap routes as the values say.
	out, code := runCmd(t, nil, "", binPath, "policy", "explain", "--config", path, "--json",
		"host.corp.example.com", "www.example.com", "www.other.org")
	require.Equal(t, 0, code, out)
	var ex []struct {
		Name, Rule, Action string
		Upstreams          []string
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	require.Len(t, ex, 3)
	require.Equal(t, []string{"vault-internal"}, ex[0].Upstreams)
	require.Equal(t, "internal", ex[0].Rule)
	require.Equal(t, []string{"zerossl"}, ex[1].Upstreams)
	require.Equal(t, "deny", ex[2].Action)

	// The directories pass through; the devices directory explains with
	// its own policy; its scoped admin token comes from its Secret.
	dirs, ok := dig(t, cfg, "directories").([]any)
	require.True(t, ok)
	require.Len(t, dirs, 1)
	require.Equal(t, "devices", dig(t, dirs[0].(map[string]any), "name"))
	out, code = runCmd(t, nil, "", binPath, "policy", "explain", "--config", path, "--directory", "devices", "--json",
		"printer.devices.corp.example.com", "host.corp.example.com")
	require.Equal(t, 0, code, out)
	require.NoError(t, json.Unmarshal([]byte(out), &ex))
	require.Equal(t, "lan", ex[0].Rule)
	require.Equal(t, "deny", ex[1].Action)
	toks, ok := dig(t, cfg, "admin", "directory_tokens").([]any)
	require.True(t, ok)
	require.Len(t, toks, 1)
	tok := toks[0].(map[string]any)
	require.Equal(t, "devices", tok["directory"])
	tm := mountTable(t, d.Spec.Template.Spec, ctr).find(tok["token_file"].(string))
	require.NotNil(t, tm)
	require.Equal(t, "secret:acmebridge-devices-admin", tm.source)

	var ing struct {
		Spec struct {
			Rules []struct {
				Host string `yaml:"host"`
				HTTP struct {
					Paths []struct {
						Backend struct {
							Service struct {
								Name string `yaml:"name"`
								Port struct {
									Name string `yaml:"name"`
								} `yaml:"port"`
							} `yaml:"service"`
						} `yaml:"backend"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	r.only(t, "Ingress").decode(t, &ing)
	require.Len(t, ing.Spec.Rules, 1)
	require.Equal(t, "acme.corp.example.com", ing.Spec.Rules[0].Host, "the Ingress host is externalURL's")
	be := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
	require.Equal(t, acmeService(t, r).Metadata.Name, be.Name)
	require.Equal(t, "acme", be.Port.Name)

	var sm struct {
		Spec struct {
			Selector  labelSelector `yaml:"selector"`
			Endpoints []struct {
				Port      string `yaml:"port"`
				Path      string `yaml:"path"`
				Scheme    string `yaml:"scheme"`
				TLSConfig struct {
					ServerName string `yaml:"serverName"`
					CA         struct {
						Secret keyRef `yaml:"secret"`
					} `yaml:"ca"`
				} `yaml:"tlsConfig"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	r.only(t, "ServiceMonitor").decode(t, &sm)
	require.Equal(t, "prometheus", r.only(t, "ServiceMonitor").Metadata.Labels["release"])
	require.Len(t, sm.Spec.Endpoints, 1)
	require.Equal(t, "admin", sm.Spec.Endpoints[0].Port)
	require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
	require.Equal(t, "https", sm.Spec.Endpoints[0].Scheme, "scraped over the admin listener's TLS")
	require.Equal(t, adminService(t, r).Metadata.Name+".pki.svc", sm.Spec.Endpoints[0].TLSConfig.ServerName)
	require.Equal(t, keyRef{Name: "acmebridge-admin-tls", Key: "ca.crt"}, sm.Spec.Endpoints[0].TLSConfig.CA.Secret)
	var selected []string
	for _, s := range r.all("Service") {
		if subset(sm.Spec.Selector.MatchLabels, s.Metadata.Labels) {
			selected = append(selected, s.Metadata.Name)
		}
	}
	require.Equal(t, []string{adminService(t, r).Metadata.Name}, selected, "the ServiceMonitor selects the admin Service only")
}

// TestHelmChartConfigRefused shows the check has teeth: values the server
// refuses render, but `acmebridge config check` fails on them.
func TestHelmChartConfigRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "config.accounts.eab=sometimes"}, "accounts.eab"},
		{[]string{"--set", "policy.default.upstreams[0]=nowhere"}, `unknown upstream "nowhere"`},
		{[]string{"--set", "redis.addrs[0]=redis-without-port"}, "store.redis.addrs[0]"},
		{[]string{"--set", "config.orders.job_lease=soon"}, "not a duration"},
	} {
		t.Run(c.want, func(t *testing.T) {
			r := renderChart(t, c.args...)
			out, code := configCheck(t, r.writeConfig(t))
			require.Equal(t, 1, code, out)
			require.Contains(t, out, c.want)
		})
	}
}

// TestHelmChartChecksum: a change of the policy, the upstreams or another
// reloadable key does not roll the pods (they reload the mounted file: the
// chart turns the watcher on); a key that needs a restart does.
func TestHelmChartChecksum(t *testing.T) {
	sum := func(args ...string) string {
		d, _ := renderChart(t, args...).deployment(t)
		require.NotContains(t, d.Spec.Template.Metadata.Annotations, "checksum/config")
		s := d.Spec.Template.Metadata.Annotations["checksum/restart-config"]
		require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), s)
		return s
	}
	base := sum()
	require.Equal(t, base, sum(), "the same values give the same checksum")
	require.Equal(t, base, sum("--set", "replicaCount=5"), "a change outside the config does not roll the pods")
	require.Equal(t, base, sum("--set", "policy.default.action=deny"), "a policy change is reloaded")
	require.Equal(t, base, sum("--set", "config.log.level=debug"), "the log level is reloaded")
	require.Equal(t, base, sum("--set", "upstreams[0].vault.role=other"), "an upstream change is reloaded")
	require.NotEqual(t, base, sum("--set", "config.log.format=text"), "the log format needs a restart")
	require.NotEqual(t, base, sum("--set", "redis.addrs[0]=other:6379"), "the store needs a restart")
	require.NotEqual(t, base, sum("--set", "config.orders.workers=4"), "orders.workers needs a restart")

	var cfg struct {
		Reload struct {
			WatchInterval string `yaml:"watch_interval"`
		} `yaml:"reload"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(renderChart(t).configText(t)), &cfg))
	require.Equal(t, "5s", cfg.Reload.WatchInterval, "the pods watch their mounted config file")
	d, _ := renderChart(t).deployment(t)
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers[0].VolumeMounts, func(m volumeMount) bool { return m.Name == "config" })
	require.GreaterOrEqual(t, i, 0)
	require.Empty(t, d.Spec.Template.Spec.Containers[0].VolumeMounts[i].SubPath, "a subPath mount never sees a ConfigMap update")
}

// checkChart asserts what every rendering must hold.
func checkChart(t *testing.T, r *rendered, want chartExpect) {
	t.Helper()
	var kinds []string
	for _, o := range r.objects {
		kinds = append(kinds, o.Kind)
	}
	slices.Sort(kinds)
	require.Equal(t, want.kinds, kinds)
	require.Empty(t, r.all("Secret"), "the chart references existing Secrets, it never makes one")

	d, c := r.deployment(t)
	pod := d.Spec.Template.Spec
	require.Equal(t, want.replicas, d.Spec.Replicas)
	require.Equal(t, want.image, c.Image)
	require.True(t, subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels), "the selector selects the pods")

	// Non-root, read-only, no privileges.
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.NotZero(t, pod.SecurityContext.RunAsUser)
	require.NotNil(t, c.SecurityContext.ReadOnlyRootFilesystem)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.Equal(t, []string{"ALL"}, c.SecurityContext.Capabilities.Drop)
	require.Empty(t, c.SecurityContext.Capabilities.Add)
	require.NotNil(t, pod.AutomountServiceAccountToken)
	require.False(t, *pod.AutomountServiceAccountToken, "acmebridge does not talk to the Kubernetes API")
	for _, tsc := range pod.TopologySpreadConstraints {
		require.True(t, subset(tsc.LabelSelector.MatchLabels, d.Spec.Template.Metadata.Labels))
	}

	// The container runs the server on the ConfigMap's config.
	mounts := mountTable(t, pod, c)
	require.Len(t, c.Args, 3)
	require.Equal(t, []string{"serve", "--config"}, c.Args[:2])
	cm := r.only(t, "ConfigMap")
	m := mounts.find(c.Args[2])
	require.NotNil(t, m, "--config %s is not in a mounted volume", c.Args[2])
	require.Equal(t, "configMap:"+cm.Metadata.Name, m.source)
	require.Equal(t, "config.yaml", m.rel)

	// The listeners, the ports, the probes and the Services agree.
	cfg := parseConfig(t, r.configText(t))
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, listenPort(t, dig(t, cfg, "server", "listen")), ports["acme"])
	require.Equal(t, listenPort(t, dig(t, cfg, "admin", "listen")), ports["admin"])
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "admin", c.LivenessProbe.HTTPGet.Port)
	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "admin", c.ReadinessProbe.HTTPGet.Port)
	for name, svc := range map[string]*k8sObject{"acme": acmeService(t, r), "admin": adminService(t, r)} {
		var s service
		svc.decode(t, &s)
		require.True(t, subset(s.Spec.Selector, d.Spec.Template.Metadata.Labels), "Service %s selects the pods", svc.Metadata.Name)
		require.Len(t, s.Spec.Ports, 1)
		require.Equal(t, name, s.Spec.Ports[0].TargetPort)
	}
	var pdb struct {
		Spec struct {
			MaxUnavailable int           `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	r.only(t, "PodDisruptionBudget").decode(t, &pdb)
	require.Equal(t, 1, pdb.Spec.MaxUnavailable)
	require.True(t, subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels))

	// Writable paths are volumes (the root filesystem is read-only).
	dataDir, ok := dig(t, cfg, "data_dir").(string)
	require.True(t, ok)
	m = mounts.find(filepath.Join(dataDir, "x"))
	require.NotNil(t, m, "data_dir %s is not a volume", dataDir)
	require.Equal(t, "emptyDir", m.source)
	require.NotNil(t, mounts.find("/tmp/x"), "/tmp is not a volume")

	// Secrets: referenced, never inlined. Every file the config names is in
	// a mounted Secret (and, with items, one of its paths); every variable
	// it names comes from a Secret; no secret-bearing key holds a value.
	env := map[string]envVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for name, ref := range want.envFromSecret {
		e, ok := env[name]
		require.True(t, ok, "no %s in the container's env", name)
		require.Empty(t, e.Value, "%s is inlined", name)
		require.NotNil(t, e.ValueFrom, name)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, name)
		require.Equal(t, ref, *e.ValueFrom.SecretKeyRef, name)
	}
	walkConfig(cfg, "", func(path, key string, v any) {
		s, _ := v.(string)
		switch {
		case key == "password" || key == "token" || key == "hmac" || key == "secret_id" || key == "role_id":
			t.Errorf("%s: a secret written in the config", path)
		case strings.HasSuffix(key, "_file") && s != "":
			m := mounts.find(s)
			if m == nil {
				t.Errorf("%s: %s is in no mounted volume", path, s)
				return
			}
			if strings.HasSuffix(path, "kubernetes.token_file") {
				if !strings.HasPrefix(m.source, "serviceAccountToken:") {
					t.Errorf("%s: %s is in %s, not a projected service account token", path, s, m.source)
				}
			} else if !strings.HasPrefix(m.source, "secret:") {
				t.Errorf("%s: %s is in %s, not a Secret", path, s, m.source)
			}
			if m.items != nil && !slices.Contains(m.items, m.rel) {
				t.Errorf("%s: %s is not among the Secret's items %v", path, m.rel, m.items)
			}
		case strings.HasSuffix(key, "_env") && s != "":
			e, ok := env[s]
			if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("%s: the variable %s does not come from a Secret", path, s)
			}
		}
	})
	adminToken := mounts.find(dig(t, cfg, "admin", "token_file").(string))
	require.NotNil(t, adminToken)
	require.True(t, strings.HasPrefix(adminToken.source, "secret:"), "the admin token is shared by the replicas through a Secret")
	require.Equal(t, dig(t, cfg, "admin", "token_file"), env["ACMEBRIDGE_ADMIN_TOKEN_FILE"].Value,
		"admin commands run in a pod find the token")
}

// mount is one volume mount resolved to its volume.
type mount struct {
	path   string
	source string   // "configMap:NAME", "secret:NAME", "serviceAccountToken:AUDIENCE" or "emptyDir"
	items  []string // a Secret's item paths, nil for all keys
	rel    string   // set by find: the path inside the mount
}

type mounts []mount

func mountTable(t *testing.T, pod podSpec, c *container) mounts {
	t.Helper()
	vols := map[string]volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	var out mounts
	for _, vm := range c.VolumeMounts {
		v, ok := vols[vm.Name]
		require.True(t, ok, "volumeMount %s has no volume", vm.Name)
		m := mount{path: vm.MountPath}
		switch {
		case v.ConfigMap != nil:
			m.source = "configMap:" + v.ConfigMap.Name
			require.True(t, vm.ReadOnly, vm.Name)
		case v.Secret != nil:
			m.source = "secret:" + v.Secret.SecretName
			require.True(t, vm.ReadOnly, vm.Name)
			for _, it := range v.Secret.Items {
				m.items = append(m.items, it.Path)
			}
		case v.EmptyDir != nil:
			m.source = "emptyDir"
		case v.Projected != nil:
			// Only service account tokens are projected (for Vault's
			// Kubernetes login).
			require.True(t, vm.ReadOnly, vm.Name)
			for _, src := range v.Projected.Sources {
				require.NotNil(t, src.ServiceAccountToken, "volume %s projects something else than a service account token", v.Name)
				m.source = "serviceAccountToken:" + src.ServiceAccountToken.Audience
				m.items = append(m.items, src.ServiceAccountToken.Path)
			}
		default:
			t.Fatalf("volume %s: unexpected kind", v.Name)
		}
		out = append(out, m)
	}
	return out
}

// find returns the mount holding path (the longest mount path that is a
// parent of it), with rel set.
func (ms mounts) find(path string) *mount {
	var best *mount
	for i := range ms {
		m := ms[i]
		if rel, err := filepath.Rel(m.path, path); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
			if best == nil || len(m.path) > len(best.path) {
				m.rel = rel
				best = &m
			}
		}
	}
	return best
}

func acmeService(t *testing.T, r *rendered) *k8sObject  { return serviceByComponent(t, r, "acme") }
func adminService(t *testing.T, r *rendered) *k8sObject { return serviceByComponent(t, r, "admin") }

func serviceByComponent(t *testing.T, r *rendered, component string) *k8sObject {
	t.Helper()
	for _, s := range r.all("Service") {
		if s.Metadata.Labels["app.kubernetes.io/component"] == component {
			return s
		}
	}
	t.Fatalf("no Service with component %s", component)
	return nil
}

// subset reports whether every label of sel is in labels (and sel is not
// empty).
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func parseConfig(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(text), &m), text)
	return m
}

// dig returns the value at a path of keys in a decoded config.
func dig(t *testing.T, m map[string]any, keys ...string) any {
	t.Helper()
	var v any = m
	for i, k := range keys {
		mm, ok := v.(map[string]any)
		require.True(t, ok, "%s is not a mapping", strings.Join(keys[:i], "."))
		v, ok = mm[k]
		require.True(t, ok, "%s is not set", strings.Join(keys[:i+1], "."))
	}
	return v
}

// walkConfig calls fn for every key of the decoded config, with its
// dotted path.
func walkConfig(v any, path string, fn func(path, key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fn(p, k, c)
			walkConfig(c, p, fn)
		}
	case []any:
		for i, c := range x {
			walkConfig(c, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

func listenPort(t *testing.T, v any) int {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "listen %v", v)
	_, port, err := net.SplitHostPort(s)
	require.NoError(t, err)
	var p int
	_, err = fmt.Sscan(port, &p)
	require.NoError(t, err)
	return p
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	require.NoError(t, err)
	var c struct {
		AppVersion string `yaml:"appVersion"`
	}
	require.NoError(t, yaml.Unmarshal(b, &c))
	require.NotEmpty(t, c.AppVersion)
	return c.AppVersion
}
