package main

import (
	"context"
	"log/slog"
	"sync"

	legolog "github.com/go-acme/lego/v5/log"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/upstream/acme"
)

// acmeOptions turns an acme block into the upstream's options; st is the
// (sealed) store that keeps the account key and the http-01 tokens every
// replica answers from (nil for `upstream check`).
func acmeOptions(u configs.Upstream, st store.Store, log *slog.Logger) acme.Options {
	a := u.ACME
	p := a.Solver.Propagation
	return acme.Options{
		Name: u.Name, Directory: a.Directory, Email: a.Email, CAFile: a.CAFile,
		EABKeyID: a.EAB.KID, EABHMACFile: a.EAB.HMACFile, EABHMACEnv: a.EAB.HMACEnv,
		KeyType: a.KeyType, PreferredChain: a.PreferredChain, Profile: a.Profile, ForwardValidity: a.ForwardValidity,
		Solver: acme.Solver{
			Type: a.Solver.Type, Provider: a.Solver.Provider, Env: a.Solver.Env, Resolvers: a.Solver.Resolvers,
			PropagationTimeout: p.Timeout.D(), PropagationInterval: p.Interval.D(), PropagationWait: p.Wait.D(),
			DisableAuthoritativeCheck: p.DisableAuthoritativeCheck, DisablePropagationCheck: p.DisableCheck,
			Listen: a.Solver.Listen,
		},
		Secrets:        st,
		Tokens:         st,
		RequestTimeout: a.Timeout.D(),
		Logger:         log,
	}
}

var legoLogOnce sync.Once

// useLegoLogger sends lego's process-wide log (its solvers, retries) to
// acmebridge's, one level down: lego's Info is acmebridge's Debug.
func useLegoLogger(log *slog.Logger) {
	legoLogOnce.Do(func() {
		legolog.SetDefault(slog.New(&demoted{h: log.With("lib", "lego").Handler()}))
	})
}

// demoted lowers records below Warn by one level (Info → Debug).
type demoted struct{ h slog.Handler }

func (d *demoted) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, demote(l)) }

func (d *demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d *demoted) WithAttrs(as []slog.Attr) slog.Handler { return &demoted{h: d.h.WithAttrs(as)} }
func (d *demoted) WithGroup(n string) slog.Handler       { return &demoted{h: d.h.WithGroup(n)} }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return l - 4
	}
	return l
}
