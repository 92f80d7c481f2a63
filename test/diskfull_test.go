package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/acme"
)

// tmpfs mounts a tmpfs of size bytes at a new directory and unmounts it at
// cleanup. Mounting needs root (CI runs as root); elsewhere the test fails
// with the reason rather than passing unseen.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount a tmpfs (needs root): %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes zeros into dir/filler until the file system is full and
// returns the filler's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling the disk: %v", err)
			return p
		}
	}
}

// TestDiskFullBolt: the bolt store, the local CA and the audit log on a
// small tmpfs that fills up mid-run. While it is full, requests that must
// write get a clear 503 serverInternal problem with Retry-After (no 500,
// no panic), reads still work, and an order validated before stays ready;
// once space is back the same process (no restart) finishes that order and
// new ones, each issued once, and every issuance is in the audit log.
func TestDiskFullBolt(t *testing.T) {
	mnt := tmpfs(t, 4<<20)
	s := startServer(t, fmt.Sprintf(`store:
  bolt: {path: %q}
audit:
  file: %q
upstreams:
  - name: dev
    type: local
    local: {dir: %q}
`, filepath.Join(mnt, "acmebridge.db"), filepath.Join(mnt, "audit.log"), filepath.Join(mnt, "ca")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	c := &acme.Client{Key: key, DirectoryURL: s.DirectoryURL, HTTPClient: s.HTTPClient(), UserAgent: "acmebridge-diskfull",
		// x/crypto/acme retries a 503 until the context ends: this test
		// wants to see the first one.
		RetryBackoff: func(n int, _ *http.Request, resp *http.Response) time.Duration {
			if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
				return -1
			}
			return time.Second
		}}
	_, err = c.Register(ctx, &acme.Account{}, acme.AcceptTOS)
	require.NoError(t, err)

	// ready runs an order for name up to ready (dns-01 on the test DNS).
	ready := func(name string) *acme.Order { return readyByDNS01(ctx, t, c, s.DNS, name) }
	finalize := func(o *acme.Order, name string) ([][]byte, error) {
		der, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, matrixCSR(t, name), true)
		return der, err
	}
	// finalizeOnly sends the finalize request without waiting for the
	// order (CreateOrderCert polls the order until it is done).
	finalizeOnly := func(o *acme.Order, name string) error {
		fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
		defer fcancel()
		_, _, err := c.CreateOrderCert(fctx, o.FinalizeURL, matrixCSR(t, name), true)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil // accepted: the order is processing
		}
		return err
	}
	requireUnavailable := func(err error, what string) {
		t.Helper()
		var ae *acme.Error
		require.True(t, errors.As(err, &ae), "%s: want an ACME problem, got %v", what, err)
		require.Equal(t, http.StatusServiceUnavailable, ae.StatusCode, "%s: %v", what, err)
		require.Equal(t, "urn:ietf:params:acme:error:serverInternal", ae.ProblemType, what)
		require.NotEmpty(t, ae.Header.Get("Retry-After"), what)
		require.NotContains(t, ae.Detail, "no space", "%s: the cause is logged, not sent", what)
	}

	first := ready("before.full.test")
	_, err = finalize(first, "before.full.test")
	require.NoError(t, err, "issuance before the disk fills")
	pending := ready("during.full.test")

	filler := fillDisk(t, mnt)
	t.Logf("disk full: %s", strings.TrimSpace(string(must(exec.Command("df", "-k", mnt).CombinedOutput()))))

	_, err = c.AuthorizeOrder(ctx, acme.DomainIDs("new.full.test"))
	requireUnavailable(err, "newOrder while full")
	resp, err := http.Get(s.AdminURL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the process is up")

	// Finalize while full: bbolt may still find free pages in its file for
	// the job, so the answer is either a 503 (the order stays ready) or
	// the order processing. The CA then signs, and either the store finds
	// room for the certificate too, or it cannot record it and the job
	// retries: the CA signs the same certificate again (deterministic per
	// order), so the order still gets one certificate.
	err = finalizeOnly(pending, "during.full.test")
	o, gerr := c.GetOrder(ctx, pending.URI)
	require.NoError(t, gerr, "reads work while full")
	t.Logf("finalize while full: %v (order %s)", err, o.Status)
	if err != nil {
		requireUnavailable(err, "finalize while full")
		require.Equal(t, acme.StatusReady, o.Status, "the refused finalize left the order ready")
	} else {
		require.Contains(t, []string{acme.StatusProcessing, acme.StatusValid}, o.Status)
		id := path.Base(o.URI)
		require.True(t, waitFor(30*time.Second, func() bool {
			return countLines(s.Logs(), `msg="worker: store certificate".*order=`+id) > 0 ||
				countLines(s.Logs(), `msg="local certificate issued".*order=`+id) > 0
		}), "the worker took the job while full")
		t.Logf("while full: %d failed store(s) of the certificate", countLines(s.Logs(), `msg="worker: store certificate".*order=`+id))
	}

	require.NoError(t, os.Remove(filler))
	if err != nil {
		_, err = finalize(pending, "during.full.test")
		require.NoError(t, err, "the order validated before the outage is issued after it, without a restart")
	} else {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		o, err = c.WaitOrder(wctx, pending.URI)
		wcancel()
		require.NoError(t, err, "the job retried after the outage issues, without a restart")
		require.Equal(t, acme.StatusValid, o.Status)
	}
	after := ready("after.full.test")
	_, err = finalize(after, "after.full.test")
	require.NoError(t, err)

	logs := s.Logs()
	require.NotContains(t, logs, "panic")
	signed := signedSerials(logs)
	require.Len(t, signed, 3, "three orders signed: %v", signed)
	for o, serials := range signed {
		require.Len(t, serials, 1, "order %s got one certificate, however often it was signed", o)
	}
	audit, err := os.ReadFile(filepath.Join(mnt, "audit.log"))
	require.NoError(t, err)
	require.Equal(t, 3, bytes.Count(audit, []byte(`"event":"certificate.issued"`)), "every issuance is in the audit log")
}

func must[T any](v T, _ error) T { return v }
