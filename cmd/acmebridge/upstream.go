package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/upstream/acme"
	"github.com/acmebridge/acmebridge/upstream/local"
	"github.com/acmebridge/acmebridge/upstream/vault"
)

// vaultOptions turns a vault block into the upstream's options.
func vaultOptions(u configs.Upstream, log *slog.Logger) vault.Options {
	v := u.Vault
	o := vault.Options{
		Name: u.Name, Address: v.Address, CAFile: v.CAFile,
		ClientCertFile: v.ClientCertFile, ClientKeyFile: v.ClientKeyFile,
		Namespace: v.Namespace, Mount: v.Mount, Role: v.Role, IssuerRef: v.IssuerRef,
		Mode: vault.Mode(v.Mode), TTL: v.TTL.D(), TokenFile: v.TokenFile, TokenEnv: v.TokenEnv,
		Logger: log,
	}
	if v.AppRole.Enabled() {
		o.AppRole = &vault.AppRole{RoleIDFile: v.AppRole.RoleIDFile, SecretIDFile: v.AppRole.SecretIDFile, Mount: v.AppRole.Mount}
	}
	if v.Kubernetes.Enabled() {
		o.Kubernetes = &vault.Kubernetes{Role: v.Kubernetes.Role, TokenFile: v.Kubernetes.TokenFile, Mount: v.Kubernetes.Mount}
	}
	return o
}

// localCAFiles are the files of a local CA (upstream/local); a directory
// holding none of them has no CA yet.
var localCAFiles = []string{"root.pem", "root.key", "intermediate.pem", "intermediate.key"}

// cmdUpstreamCheck checks, offline from any running server, that each
// configured upstream is reachable and acmebridge authorised: for Vault a
// token lookup and a read of the role, for a local CA that it loads. It
// exits 1 if any check fails.
func cmdUpstreamCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("upstream check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: the quickstart)")
	timeout := fs.Duration("timeout", 15*time.Second, "time allowed for each upstream")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: acmebridge upstream check [--config FILE] [--timeout D]")
		return 2
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Library logs (AppRole logins, retries) stay quiet unless they fail.
	log := newLogger(configs.Log{Level: "error", Format: cfg.Log.Format}, stderr)
	failed := 0
	for _, u := range cfg.Upstreams {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		summary, err := checkUpstream(ctx, u, log)
		cancel()
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s (%s): FAILED: %v\n", u.Name, u.Type, err)
			continue
		}
		fmt.Fprintf(stdout, "%s (%s): ok: %s\n", u.Name, u.Type, summary)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d upstreams failed\n", failed, len(cfg.Upstreams))
		return 1
	}
	return 0
}

// checkUpstream checks one upstream and returns a one-line summary.
func checkUpstream(ctx context.Context, u configs.Upstream, log *slog.Logger) (string, error) {
	switch u.Type {
	case "vault":
		v, err := vault.New(vaultOptions(u, log))
		if err != nil {
			return "", err
		}
		defer func() { _ = v.Close() }() // a one-shot check: its answer is the result
		return v.Check(ctx)
	case "acme":
		// The account lives in the running server's store; this checks the
		// directory, EAB and profile without touching it.
		return acme.CheckOptions(ctx, acmeOptions(u, nil, log))
	case "local":
		if !hasAny(u.Local.Dir, localCAFiles) {
			// serve creates the CA on first start; creating it here would
			// be a side effect of a check.
			return fmt.Sprintf("no CA in %s yet; serve creates one on first start", u.Local.Dir), nil
		}
		ca, err := local.New(local.Options{Name: u.Name, Dir: u.Local.Dir, Logger: log})
		if err != nil {
			return "", err
		}
		inter := ca.Intermediate()
		if time.Now().After(inter.NotAfter) {
			return "", fmt.Errorf("local: the intermediate in %s expired on %s", u.Local.Dir, inter.NotAfter.Format(time.RFC3339))
		}
		return fmt.Sprintf("CA loaded from %s (root %q, intermediate valid until %s)",
			u.Local.Dir, ca.Root().Subject.CommonName, inter.NotAfter.Format("2006-01-02")), nil
	default:
		return "", fmt.Errorf("type %q cannot be checked", u.Type)
	}
}

// hasAny reports whether dir holds any of the named files.
func hasAny(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}
