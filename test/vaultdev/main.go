// Command vaultdev is a minimal HashiCorp Vault dev server for acmebridge's
// tests: in-memory storage, the PKI secrets engine, AppRole and JWT auth
// (JWT stands in for Kubernetes auth: the same login, role and jwt), a fixed
// root token and a listen address chosen by the caller. It links Vault's own
// packages because no Vault binary is installable on the test machines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	jwtauth "github.com/hashicorp/vault-plugin-auth-jwt"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/logical/pki"
	"github.com/hashicorp/vault/helper/namespace"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vaultdev:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8200", "listen address (host:port; port 0 picks a free one)")
	rootToken := flag.String("root-token", "root", "fixed root token to create")
	tlsCert := flag.String("tls-cert", "", "PEM certificate file: serve HTTPS when set (with -tls-key)")
	tlsKey := flag.String("tls-key", "", "PEM private key file for -tls-cert")
	logLevel := flag.String("log-level", "warn", "log level: trace, debug, info, warn, error")
	flag.Parse()
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}

	logger := hclog.New(&hclog.LoggerOptions{Name: "vaultdev", Level: hclog.LevelFromString(*logLevel), Output: os.Stderr})
	phys, err := inmem.NewInmem(nil, logger)
	if err != nil {
		return fmt.Errorf("inmem storage: %w", err)
	}
	core, err := vault.NewCore(&vault.CoreConfig{
		Physical:           phys,
		Logger:             logger,
		DisableMlock:       true,
		LogicalBackends:    map[string]logical.Factory{"pki": pki.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory, "jwt": jwtauth.Factory},
		BuiltinRegistry:    noBuiltins{},
	})
	if err != nil {
		return fmt.Errorf("new core: %w", err)
	}
	ctx := namespace.RootContext(context.Background())
	init, err := core.Initialize(ctx, &vault.InitParams{
		BarrierConfig:  &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		RecoveryConfig: nil,
	})
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if _, err := core.Unseal(init.SecretShares[0]); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); core.Sealed(); {
		if time.Now().After(deadline) {
			return errors.New("still sealed after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := createRootToken(ctx, core, init.RootToken, *rootToken); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{
		Core:           core,
		ListenerConfig: &configutil.Listener{Type: "tcp", Address: ln.Addr().String()},
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
	}
	// The line tests wait for: the address actually bound.
	fmt.Printf("vaultdev listening on %s://%s\n", scheme, ln.Addr())

	errc := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			errc <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
			return
		}
		errc <- srv.Serve(ln)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		return err
	case <-sig:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return core.Shutdown()
}

// createRootToken makes a root token with the fixed id the tests use, the way
// `vault server -dev -dev-root-token-id` does, and revokes the generated one.
func createRootToken(ctx context.Context, core *vault.Core, generated, id string) error {
	resp, err := core.HandleRequest(ctx, &logical.Request{
		Operation:   logical.UpdateOperation,
		ClientToken: generated,
		Path:        "auth/token/create",
		Data: map[string]interface{}{
			"id":                id,
			"policies":          []string{"root"},
			"no_parent":         true,
			"no_default_policy": true,
		},
	})
	if err != nil {
		return fmt.Errorf("create root token: %w", err)
	}
	if resp != nil && resp.IsError() {
		return fmt.Errorf("create root token: %v", resp.Error())
	}
	if id == generated {
		return nil
	}
	_, err = core.HandleRequest(ctx, &logical.Request{
		Operation:   logical.UpdateOperation,
		ClientToken: generated,
		Path:        "auth/token/revoke-self",
	})
	_ = err // the generated token is unknown to callers; failing to revoke it is harmless here
	return nil
}

// noBuiltins is an empty plugin registry (vault.CoreConfig.BuiltinRegistry,
// five methods): the dev server registers its backends directly in
// CoreConfig, and external plugins are not used.
type noBuiltins struct{}

// Contains reports no builtin plugin.
func (noBuiltins) Contains(string, consts.PluginType) bool { return false }

// Get finds no builtin plugin.
func (noBuiltins) Get(string, consts.PluginType) (func() (interface{}, error), bool) {
	return nil, false
}

// Keys lists no builtin plugin.
func (noBuiltins) Keys(consts.PluginType) []string { return nil }

// DeprecationStatus knows no builtin plugin.
func (noBuiltins) DeprecationStatus(string, consts.PluginType) (consts.DeprecationStatus, bool) {
	return consts.Unknown, false
}

// IsBuiltinEntPlugin reports no enterprise plugin.
func (noBuiltins) IsBuiltinEntPlugin(string, consts.PluginType) bool { return false }
