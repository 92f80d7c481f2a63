package deploy_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	unitPath     = "systemd/acmebridge.service"
	sysusersPath = "systemd/acmebridge.sysusers"
	unitConfig   = "systemd/config.yaml"
)

// unitFile is a parsed systemd unit: section → key → values in order (a
// key may repeat; an empty assignment resets the list, as systemd does).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok && section != "", "%s:%d: not key=value in a section: %q", path, n, line)
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				u[section][k] = []string{}
			} else {
				u[section][k] = append(u[section][k], v)
			}
		}
	}
	require.NoError(t, sc.Err())
	return u
}

// one returns the single value of section.key, failing if it is not set
// exactly once.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v, ok := u[section][key]
	require.True(t, ok, "[%s] %s is not set", section, key)
	require.Len(t, v, 1, "[%s] %s", section, key)
	return v[0]
}

func TestSystemdUnitHardening(t *testing.T) {
	u := parseUnit(t, unitPath)
	svc := u["Service"]
	require.NotNil(t, svc, "no [Service] section")

	for key, want := range map[string]string{
		"User": "acmebridge", "Group": "acmebridge",
		"StateDirectory": "acmebridge", "StateDirectoryMode": "0700", "ConfigurationDirectory": "acmebridge",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"NoNewPrivileges": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
		"ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
		"RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"SystemCallArchitectures": "native", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"UMask": "0077",
	} {
		require.Equal(t, want, u.one(t, "Service", key), "[Service] %s", key)
	}
	require.Contains(t, svc["SystemCallFilter"], "@system-service")
	require.Contains(t, svc["SystemCallFilter"], "~@privileged")
	require.Contains(t, u["Install"]["WantedBy"], "multi-user.target")

	// `systemctl reload` sends SIGHUP, on which the server re-reads its
	// config file.
	require.Equal(t, "/bin/kill -HUP $MAINPID", u.one(t, "Service", "ExecReload"))

	// ExecStart runs the server with the config in the configuration
	// directory; ExecStartPre checks that same file first.
	start := strings.Fields(u.one(t, "Service", "ExecStart"))
	confDir := "/etc/" + u.one(t, "Service", "ConfigurationDirectory")
	require.Equal(t, []string{"/usr/bin/acmebridge", "serve", "--config", confDir + "/config.yaml"}, start)
	require.Equal(t, []string{"/usr/bin/acmebridge", "config", "check", "--config", confDir + "/config.yaml"},
		strings.Fields(u.one(t, "Service", "ExecStartPre")))

	// The example config keeps its state where the unit lets it write, and
	// the real binary accepts it, with the flags the unit passes.
	var cfg struct {
		DataDir string `yaml:"data_dir"`
		Server  struct {
			Listen string `yaml:"listen"`
		} `yaml:"server"`
		Admin struct {
			Listen string `yaml:"listen"`
		} `yaml:"admin"`
	}
	b, err := os.ReadFile(unitConfig)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	require.Equal(t, "/var/lib/"+u.one(t, "Service", "StateDirectory"), cfg.DataDir)
	require.Equal(t, cfg.DataDir, u.one(t, "Service", "WorkingDirectory"))
	requireConfigOK(t, unitConfig)
	out, code := runCmd(t, nil, "", binPath, append(append([]string{}, start[1:3]...), filepath.Join(t.TempDir(), "missing.yaml"))...)
	require.Equal(t, 1, code, "serve --config must be accepted as flags (exit 2 is a usage error):\n%s", out)
	require.Contains(t, out, "missing.yaml")

	// No capability at all unless the config listens below 1024.
	caps := svc["CapabilityBoundingSet"]
	for _, listen := range []string{cfg.Server.Listen, cfg.Admin.Listen} {
		_, port, err := net.SplitHostPort(listen)
		require.NoError(t, err)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		if p < 1024 {
			require.Contains(t, caps, "CAP_NET_BIND_SERVICE", "%s needs CAP_NET_BIND_SERVICE", listen)
		}
	}
	if !strings.Contains(strings.Join(caps, " "), "CAP_NET_BIND_SERVICE") {
		require.Equal(t, []string{}, caps, "CapabilityBoundingSet must be set and empty")
		require.Equal(t, []string{}, svc["AmbientCapabilities"])
	}
}

// TestSystemdAnalyze runs systemd's own checks on the unit: verify (syntax,
// unknown keys, the executables) and the offline security assessment.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): the unit's syntax is not verified by systemd here")
	}
	// A copy whose executables are the binary under test, so verify's
	// check that they exist is real.
	b, err := os.ReadFile(unitPath)
	require.NoError(t, err)
	dir := t.TempDir()
	unit := filepath.Join(dir, "acmebridge.service")
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/bin/acmebridge", binPath)), 0o644))

	out, code := runCmd(t, nil, dir, sa, "verify", "--man=no", unit)
	require.Equal(t, 0, code, "systemd-analyze verify:\n%s", out)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify warned (unknown or misspelled keys?)")

	// Exposure 0.0 (locked down) to 10.0 (unsandboxed); the unit must stay
	// within systemd's "OK" band.
	out, code = runCmd(t, nil, dir, sa, "security", "--offline=true", "--threshold=20", "--no-pager", unit)
	require.Equal(t, 0, code, "systemd-analyze security: exposure above 2.0:\n%s", out)
	require.Contains(t, out, "Overall exposure level for acmebridge.service")
}

// TestSystemdSysusers creates the unit's user with systemd-sysusers in a
// scratch root.
func TestSystemdSysusers(t *testing.T) {
	su, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Skip("systemd-sysusers is not installed (Debian package systemd)")
	}
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	abs, err := filepath.Abs(sysusersPath)
	require.NoError(t, err)
	out, code := runCmd(t, nil, "", su, "--root="+root, abs)
	require.Equal(t, 0, code, "systemd-sysusers:\n%s", out)
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	require.NoError(t, err)
	user := parseUnit(t, unitPath).one(t, "Service", "User")
	var entry []string
	for _, l := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(l, ":"); len(f) == 7 && f[0] == user {
			entry = f
		}
	}
	require.NotNil(t, entry, "no %s in passwd:\n%s", user, passwd)
	uid, err := strconv.Atoi(entry[2])
	require.NoError(t, err)
	require.True(t, uid > 0 && uid < 1000, "uid %d is not a system uid", uid)
	require.Equal(t, "/var/lib/acmebridge", entry[5])
	require.Equal(t, "/usr/sbin/nologin", entry[6])
	group, err := os.ReadFile(filepath.Join(root, "etc", "group"))
	require.NoError(t, err)
	require.Contains(t, string(group), user+":x:")
}
