package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/acmebridge/acmebridge/configs"
	"github.com/acmebridge/acmebridge/notify"
	"github.com/acmebridge/acmebridge/proxy"
	"github.com/acmebridge/acmebridge/proxy/admin"
	"github.com/acmebridge/acmebridge/ra"
	"github.com/acmebridge/acmebridge/store"
)

// requestPoll is how often a replica looks for a reload request another
// replica published in the store (`acmebridge reload` reaches one).
const requestPoll = 500 * time.Millisecond

// reloader re-reads the configuration file given at start and applies it
// (ra.Reload through proxy.Server.Reload): on SIGHUP, on POST
// /api/v1/reload (then asking every replica sharing the store to do the
// same), on a request another replica published, and when the file's
// contents change (reload.watch_interval). One reload runs at a time.
type reloader struct {
	path    string
	log     *slog.Logger
	level   *slog.LevelVar
	srv     *proxy.Server
	metrics *proxy.Metrics
	ups     *upstreamSet
	st      store.Store
	// notifier tells of a refused reload (config.reload_failed); nil
	// when notifications are off.
	notifier *notify.Notifier
	// adminToken is the global admin token (admin.token_file needs a
	// restart); scopedTokens are admin.directory_tokens, read again from
	// their files at each reload.
	adminToken   string
	scopedTokens *admin.ScopedTokens

	mu sync.Mutex
	// seen is the latest reload request (store) this replica applied or
	// published.
	seen int64
	// sum is the hash of the file in force; failed that of the latest
	// file refused, which the watcher does not try again.
	sum, failed [32]byte
}

// start records the file in force and the reload requests made so far, and
// runs the triggers (hup: SIGHUP, requests, the watcher) until ctx ends. A
// SIGHUP that came while the server started is waiting on hup and is
// applied now.
func (r *reloader) start(ctx context.Context, hup <-chan os.Signal) {
	if b, err := r.read(); err == nil {
		r.sum = sha256.Sum256(b)
	}
	if n, err := r.st.ReloadRequested(ctx); err == nil {
		r.seen = n
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = r.reload("SIGHUP")
			}
		}
	}()
	go r.pollRequests(ctx)
	go r.watch(ctx)
}

// read reads the configuration file ("" is the quickstart: no file).
func (r *reloader) read() ([]byte, error) {
	if r.path == "" {
		return nil, nil
	}
	return os.ReadFile(r.path)
}

// Reload applies the file and, once it is in force, publishes a reload
// request for every other replica sharing the store (admin.Reloader).
func (r *reloader) Reload(ctx context.Context) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	gen, err := r.apply("admin API")
	if err != nil {
		return 0, err
	}
	n, err := r.st.PublishReload(ctx)
	if err != nil {
		r.log.Error("reload: telling the other replicas through the store", "err", err)
		return gen, fmt.Errorf("reloaded here (generation %d), but the other replicas could not be told: %w", gen, err)
	}
	r.seen = max(r.seen, n)
	return gen, nil
}

// reload applies the file.
func (r *reloader) reload(trigger string) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.apply(trigger)
}

// apply reads, validates and applies the file, counting and logging the
// outcome. Called with mu held.
func (r *reloader) apply(trigger string) (int64, error) {
	b, _ := r.read() // Load reports an unreadable file
	sum := sha256.Sum256(b)
	gen, err := r.applyFile()
	if err != nil {
		r.failed = sum
		r.log.Error("configuration reload refused; the running configuration stays", "trigger", trigger,
			"generation", r.srv.RA().Generation(), "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r.notifier.ReloadFailed(ctx, trigger+": "+err.Error())
		cancel()
		return 0, err
	}
	r.sum = sum
	r.log.Info("configuration reloaded", "trigger", trigger, "generation", gen)
	return gen, nil
}

// applyFile builds what the file configures and swaps it in. A failure
// before proxy.Server.Reload (which counts its own) is counted here.
func (r *reloader) applyFile() (int64, error) {
	refuse := func(err error) (int64, error) {
		r.metrics.ConfigReload(false)
		return 0, err
	}
	cfg, err := configs.Load(r.path)
	if err != nil {
		return refuse(err)
	}
	// Refused before any upstream is made for it (ra.Reload checks too).
	if keys := configs.RestartKeys(r.srv.RA().Config(), cfg); len(keys) > 0 {
		return refuse(fmt.Errorf("changing %s needs a restart; the running configuration (generation %d) stays",
			strings.Join(keys, ", "), r.srv.RA().Generation()))
	}
	// The scoped admin tokens are read before anything is swapped: a file
	// that cannot be read refuses the whole reload.
	scoped, err := admin.ReadDirectoryTokens(r.adminToken, cfg.Admin.DirectoryTokens)
	if err != nil {
		return refuse(err)
	}
	newValidator, err := validators(cfg.Validation, r.log)
	if err != nil {
		return refuse(err)
	}
	p, err := r.ups.build(cfg)
	if err != nil {
		return refuse(err)
	}
	// The scoped tokens are swapped just before the generation is, so
	// whoever sees the new generation sees them; put back if the reload
	// is refused after all.
	restore := r.scopedTokens.Swap(scoped)
	gen, err := r.srv.Reload(ra.ReloadOptions{Config: cfg, Issuers: p.Issuers, NewValidator: newValidator})
	if err != nil {
		restore()
		p.abort()
		return 0, err
	}
	p.commit()
	r.level.Set(logLevel(cfg.Log.Level))
	writeBundle(cfg, r.ups.localCAs(cfg))
	for _, name := range cfg.DirectoryNames() {
		warnPrivateValidation(cfg.ForDirectory(name), r.log)
	}
	return gen, nil
}

// pollRequests applies the reload requests other replicas publish.
func (r *reloader) pollRequests(ctx context.Context) {
	t := time.NewTicker(requestPoll)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.st.ReloadRequested(ctx)
		if err != nil {
			if ctx.Err() == nil && time.Since(lastErr) > 30*time.Second {
				r.log.Warn("reload: reading reload requests", "err", err)
				lastErr = time.Now()
			}
			continue
		}
		r.mu.Lock()
		if n > r.seen {
			r.seen = n
			_, _ = r.apply(fmt.Sprintf("reload request %d", n))
		}
		r.mu.Unlock()
	}
}

// watch reloads the file when its contents change, every
// reload.watch_interval of the configuration in force (off while 0).
func (r *reloader) watch(ctx context.Context) {
	for {
		every := r.srv.RA().Config().Reload.WatchInterval.D()
		wait := every
		if wait <= 0 {
			wait = time.Second // off: look again whether a reload turned it on
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if every <= 0 || r.path == "" {
			continue
		}
		b, err := r.read()
		if err != nil {
			continue // being replaced; the next look sees the new file
		}
		sum := sha256.Sum256(b)
		r.mu.Lock()
		if sum != r.sum && sum != r.failed {
			_, _ = r.apply("file changed")
		}
		r.mu.Unlock()
	}
}

// logLevel parses a validated log.level.
func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}
