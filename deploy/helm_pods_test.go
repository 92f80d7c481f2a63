package deploy_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// readyTimeout bounds the wait for a process to answer.
const readyTimeout = 30 * time.Second

// TestHelmPodsOnRedis runs two replicas the way the chart's pod spec says,
// on one real Redis with a password: the rendered ConfigMap and the fake
// Secrets are written where the volumes would mount them (under a scratch
// root), the environment is resolved from the Secrets, and the binary runs
// with the container's args. Both replicas must pass their probes, serve
// the directory at the external URL, and share the store, the store key
// and the admin token: an EAB key made through one is listed by the other.
func TestHelmPodsOnRedis(t *testing.T) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("redis-server is not installed (`make deps` installs it; set CI=true to make this a failure)")
		}
		t.Fatalf("redis-server is not installed, and CI is set: %v", err)
	}
	const redisPassword = "chart-test-password"
	redisAddr := startRedis(t, redisBin, redisPassword)

	secrets := map[string]map[string]string{
		"acmebridge-store-key":   {"store.key": hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))},
		"acmebridge-admin-token": {"token": "chart-test-admin-token"},
		"acmebridge-vault":       {"token": "hvs.chart-test-vault-token"},
		"redis-auth":             {"password": redisPassword},
	}
	var pods []*podProc
	for i := range 2 {
		ports := testutil.FreePorts(t, 2)
		values := filepath.Join(t.TempDir(), "values.yaml")
		require.NoError(t, os.WriteFile(values, fmt.Appendf(nil,
			"redis: {addrs: [%q], password: {existingSecret: redis-auth}}\nports: {acme: %d, admin: %d}\n",
			redisAddr, ports[0], ports[1]), 0o600))
		pods = append(pods, startPod(t, fmt.Sprintf("replica-%d", i), renderChart(t, "-f", values), secrets))
	}

	for _, p := range pods {
		for _, pr := range []*probe{p.container.LivenessProbe, p.container.ReadinessProbe} {
			url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port(t, pr.HTTPGet.Port), pr.HTTPGet.Path)
			waitOK(t, p, url)
		}
		// The ACME listener: plain HTTP behind the Ingress, URLs built from
		// externalURL.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/directory", p.port(t, "acme")))
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var dir map[string]any
		require.NoError(t, json.Unmarshal(body, &dir), "%s", body)
		require.Equal(t, "https://acme.example.com/acme/new-nonce", dir["newNonce"], "%s", body)
	}

	// Admin commands as `kubectl exec` runs them, with the pod's env.
	out := pods[0].run(t, "eab", "create", "--note", "made on replica-0", "--json")
	var key struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &key), out)
	require.NotEmpty(t, key.ID, out)
	out = pods[1].run(t, "eab", "list", "--json")
	require.Contains(t, out, key.ID, "replica-1 does not see the key made on replica-0")
	require.Contains(t, out, "made on replica-0")
}

// podProc is one replica started from the rendered pod spec.
type podProc struct {
	name      string
	container *container
	env       []string
	root      string
	cmd       *exec.Cmd
	logs      *testutil.SyncBuffer
	exited    chan struct{}
}

// startPod materialises the pod's volumes under a scratch root, rewrites
// the paths of the config, the args and the env to point there, and starts
// the binary with the container's args.
func startPod(t *testing.T, name string, r *rendered, secrets map[string]map[string]string) *podProc {
	t.Helper()
	d, c := r.deployment(t)
	root := t.TempDir()
	vols := map[string]volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	// Every mount path maps to root+path, in one pass (root itself may be
	// under /tmp, a mount path).
	var pairs []string
	slices.SortFunc(c.VolumeMounts, func(a, b volumeMount) int { return len(b.MountPath) - len(a.MountPath) })
	for _, vm := range c.VolumeMounts {
		pairs = append(pairs, vm.MountPath, filepath.Join(root, vm.MountPath))
	}
	rewrite := strings.NewReplacer(pairs...).Replace
	for _, vm := range c.VolumeMounts {
		dir := filepath.Join(root, vm.MountPath)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		v := vols[vm.Name]
		switch {
		case v.ConfigMap != nil:
			cm := r.only(t, "ConfigMap")
			require.Equal(t, v.ConfigMap.Name, cm.Metadata.Name)
			for k, data := range cm.Data {
				require.NoError(t, os.WriteFile(filepath.Join(dir, k), []byte(rewrite(data)), 0o444))
			}
		case v.Secret != nil:
			s, ok := secrets[v.Secret.SecretName]
			require.True(t, ok, "the pod mounts Secret %s, which the test does not provide", v.Secret.SecretName)
			files := map[string]string{}
			for k := range s {
				files[k] = k
			}
			if v.Secret.Items != nil {
				files = map[string]string{}
				for _, it := range v.Secret.Items {
					files[it.Key] = it.Path
				}
			}
			for k, p := range files {
				val, ok := s[k]
				require.True(t, ok, "Secret %s has no key %s", v.Secret.SecretName, k)
				require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(val), 0o440))
			}
		}
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root, "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1"}
	for _, e := range c.Env {
		val := rewrite(e.Value)
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			require.NotNil(t, ref, "env %s: only secretKeyRef is modelled", e.Name)
			s, ok := secrets[ref.Name][ref.Key]
			require.True(t, ok, "env %s: no Secret %s key %s", e.Name, ref.Name, ref.Key)
			val = s
		}
		env = append(env, e.Name+"="+val)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = rewrite(a)
	}
	p := &podProc{name: name, container: c, env: env, root: root, logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Dir = root
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.logs.String())
		}
	})
	return p
}

// port returns the container port of a named port.
func (p *podProc) port(t *testing.T, name string) int {
	t.Helper()
	for _, cp := range p.container.Ports {
		if cp.Name == name {
			return cp.ContainerPort
		}
	}
	t.Fatalf("%s: no container port %q", p.name, name)
	return 0
}

// run runs an acmebridge command with the pod's environment and working
// directory (as `kubectl exec` would) and returns its output.
func (p *podProc) run(t *testing.T, args ...string) string {
	t.Helper()
	out, code := runCmd(t, p.env, p.root, binPath, args...)
	require.Equal(t, 0, code, "%s: acmebridge %s:\n%s", p.name, strings.Join(args, " "), out)
	return out
}

// waitOK polls url until it answers 200, failing if the process exits or
// readyTimeout passes.
func waitOK(t *testing.T, p *podProc, url string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		select {
		case <-p.exited:
			t.Fatalf("%s exited before %s answered:\n%s", p.name, url, p.logs.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within %s (last: %s)", p.name, url, readyTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRedis starts redis-server on a free loopback port with a password
// and no persistence, and stops it when the test ends.
func startRedis(t *testing.T, bin, password string) string {
	t.Helper()
	port := testutil.FreePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logs := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--requirepass", password, "--dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("redis-server output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited:\n%s", logs.String())
		default:
		}
		require.False(t, time.Now().After(deadline), "redis-server did not listen on %s: %v", addr, err)
		time.Sleep(50 * time.Millisecond)
	}
}
