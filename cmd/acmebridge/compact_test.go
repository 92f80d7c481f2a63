package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acmebridge/acmebridge/store"
	"github.com/acmebridge/acmebridge/store/bolt"
)

// TestStoreCompact: `acmebridge store compact` refuses while the file is
// held, and after a sweep removed most records shrinks the file, which
// then opens and serves (what was kept is there, new records go in).
func TestStoreCompact(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "acmebridge.db")
	st, err := bolt.Open(bolt.Options{Path: path})
	require.NoError(t, err)
	now := time.Now().UTC()
	acct := &store.Account{ID: "acct", Status: store.StatusValid, KeyThumbprint: "tp", CreatedAt: now}
	require.NoError(t, st.CreateAccount(ctx, acct))
	pad := strings.Repeat("x", 2000)
	for i := range 1500 {
		az := &store.Authorization{ID: fmt.Sprintf("az-%d", i), AccountID: "acct", Status: store.StatusInvalid,
			Identifier: store.Identifier{Type: "dns", Value: fmt.Sprintf("h%d.example.com", i)}, Expires: now}
		o := &store.Order{ID: fmt.Sprintf("o-%d", i), AccountID: "acct", Status: store.StatusInvalid, AuthzIDs: []string{az.ID},
			Identifiers: []store.Identifier{az.Identifier}, Expires: now, Error: &store.Problem{Detail: pad}}
		require.NoError(t, st.CreateOrder(ctx, o, []*store.Authorization{az}))
	}
	var out, errb bytes.Buffer
	require.Equal(t, 1, run([]string{"store", "compact", "--data-dir", dir}, &out, &errb), "held by the open store")
	require.Contains(t, errb.String(), "in use by another process")

	got, err := st.Sweep(ctx, now.Add(2*time.Hour), store.Retention{Orders: time.Hour}, 10000)
	require.NoError(t, err)
	require.Equal(t, 1500, got.Orders)
	require.NoError(t, st.Close())

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, run([]string{"store", "compact", "--data-dir", dir}, &out, &errb), errb.String())
	var before, after int64
	_, err = fmt.Sscanf(out.String(), path+": %d bytes before, %d after", &before, &after)
	require.NoError(t, err, out.String())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, after, fi.Size())
	require.Less(t, after*4, before, "the file shrank: %s", out.String())
	leftovers, err := filepath.Glob(filepath.Join(dir, "*.compact-*"))
	require.NoError(t, err)
	require.Empty(t, leftovers)

	st, err = bolt.Open(bolt.Options{Path: path})
	require.NoError(t, err)
	defer st.Close()
	_, err = st.GetAccount(ctx, "acct")
	require.NoError(t, err)
	_, err = st.GetOrder(ctx, "o-1")
	require.ErrorIs(t, err, store.ErrNotFound)
	az := &store.Authorization{ID: "az-new", AccountID: "acct", Status: store.StatusPending, Expires: now.Add(time.Hour)}
	require.NoError(t, st.CreateOrder(ctx, &store.Order{ID: "o-new", AccountID: "acct", AuthzIDs: []string{"az-new"}, Expires: now.Add(time.Hour)},
		[]*store.Authorization{az}))
	page, err := st.ListOrders(ctx, "acct", "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"o-new"}, page.IDs)
}
