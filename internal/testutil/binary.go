package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// BuildBinary builds ./cmd/acmebridge of the module at repoRoot into a new
// temporary directory and returns its path and a function removing it; for
// a test package's TestMain. When ACMEBRIDGE_BIN is set (a prebuilt
// binary, e.g. a CI artefact) it returns that path and builds nothing.
func BuildBinary(repoRoot string) (path string, cleanup func(), err error) {
	if p := os.Getenv("ACMEBRIDGE_BIN"); p != "" {
		return p, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "acmebridge-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path = filepath.Join(dir, "acmebridge")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/acmebridge")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/acmebridge: %w\n%s", err, out)
	}
	return path, cleanup, nil
}
