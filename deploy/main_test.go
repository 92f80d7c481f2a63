// Package deploy_test checks the packaging in deploy/ and at the repository
// root against the real binary: the systemd unit (systemd-analyze verify and
// security, the config it names passes `acmebridge config check`), the
// Dockerfile (its `go build` command run as written, the binary static),
// and the Helm chart (helm lint and template, the rendered objects, the
// rendered config checked by the binary, and replicas started from the
// rendered pod spec on a real Redis).
package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/internal/testutil"
)

// repoRoot is the repository's top directory, relative to this package.
const repoRoot = ".."

// binPath is the acmebridge binary TestMain builds (or ACMEBRIDGE_BIN).
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	path, cleanup, err := testutil.BuildBinary(repoRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	defer cleanup()
	binPath = path
	return m.Run()
}

// runCmd runs name with args in dir (this package's when empty) and returns its
// combined output and exit code; a command that cannot start fails the test.
func runCmd(t *testing.T, env []string, dir, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

// configCheck runs the real `acmebridge config check` on path and returns
// its output and exit code.
func configCheck(t *testing.T, path string) (string, int) {
	t.Helper()
	return runCmd(t, nil, "", binPath, "config", "check", "--config", path)
}

// requireConfigOK fails unless `acmebridge config check` accepts path.
func requireConfigOK(t *testing.T, path string) string {
	t.Helper()
	out, code := configCheck(t, path)
	require.Equal(t, 0, code, "acmebridge config check --config %s:\n%s", path, out)
	require.Contains(t, out, ": ok")
	return out
}
