package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acmebridge/acmebridge/configs"
)

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	server    *string
	tokenFile *string
	caFile    *string
	asJSON    *bool
}

func newAdminFlags(name string, stderr io.Writer) (*flag.FlagSet, adminFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, adminFlags{
		server:    fs.String("server", envOr("ACMEBRIDGE_ADMIN", "http://127.0.0.1:8556"), "admin API base URL (env ACMEBRIDGE_ADMIN)"),
		tokenFile: fs.String("token-file", envOr("ACMEBRIDGE_ADMIN_TOKEN_FILE", "acmebridge-data/admin.token"), "bearer token file (env ACMEBRIDGE_ADMIN_TOKEN_FILE)"),
		caFile:    fs.String("ca-file", os.Getenv("ACMEBRIDGE_ADMIN_CA_FILE"), "CA bundle to trust for an https admin API (env ACMEBRIDGE_ADMIN_CA_FILE; default: the system roots)"),
		asJSON:    fs.Bool("json", false, "print JSON"),
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func (f adminFlags) client() (*adminClient, error) {
	return newAdminClient(*f.server, *f.tokenFile, *f.caFile)
}

// newAdminClient is a client of the admin API at server with the token in
// tokenFile, trusting the CAs in caFile (the system roots when empty) for
// an https server.
func newAdminClient(server, tokenFile, caFile string) (*adminClient, error) {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading the admin token: %w (use --token-file)", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the admin CA bundle: %w (use --ca-file)", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("admin CA bundle %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &adminClient{base: strings.TrimSuffix(server, "/"), token: strings.TrimSpace(string(b)),
		http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}, nil
}

// adminURLOf is the URL of the admin API of that admin section (https
// with admin.tls), reached on loopback when it listens on every address.
func adminURLOf(a configs.Admin) string {
	scheme := "http://"
	if a.TLS.On() {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return scheme + a.Listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && ip.Is6() {
			host = "::1"
		}
	}
	return scheme + net.JoinHostPort(host, port)
}

// call sends a request and decodes a JSON answer into out; an API error
// becomes an error with the server's message.
func (c *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	// c.base is the operator's --server (or the config's admin.listen).
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd) //nolint:gosec // G704: the URL is the operator's own
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req) //nolint:gosec // G704: as above
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer func() { _ = resp.Body.Close() }() // read below; nothing to do on a close error
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API answered HTTP %d", resp.StatusCode)
	}
	return json.Unmarshal(b, out)
}

// adminCommand runs `acmebridge eab|account|order|cert|approval ...`.
func adminCommand(args []string, stdout, stderr io.Writer) int {
	group := args[0]
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	verb := args[1]
	fs, f := newAdminFlags(group+" "+verb, stderr)
	var (
		eabGroup  = new(string)
		eabAllow  = new(string)
		eabExpire = new(string)
		eabNote   = new(string)
		status    = new(string)
		account   = new(string)
		ident     = new(string)
		expiring  = new(string)
		reason    = new(int)
		directory = new(string)
		why       = new(string)
		pattern   = new(string)
		limit     = fs.Int("limit", 100, "page size")
		cursor    = fs.String("cursor", "", "continue a listing")
	)
	switch group + " " + verb {
	case "eab create", "eab list", "account list", "order list", "cert list", "approval list":
		directory = fs.String("directory", "", `directory (tenant) by name, "/" for the top level (a scoped token: its own)`)
	}
	switch group + " " + verb {
	case "eab create":
		eabGroup = fs.String("group", "", "policy group the bound account joins")
		eabAllow = fs.String("allow", "", "comma-separated identifier patterns the account may order")
		eabExpire = fs.String("expires", "", "key lifetime, e.g. 720h (default: no expiry)")
		eabNote = fs.String("note", "", "free text")
	case "account list":
		status = fs.String("status", "", "only accounts in this status")
	case "order list":
		status = fs.String("state", "", "only orders in this state")
		account = fs.String("account", "", "only this account's orders")
		ident = fs.String("identifier", "", "only orders for this name")
	case "cert list":
		expiring = fs.String("expiring", "", "only certificates expiring within, e.g. 30d")
		account = fs.String("account", "", "only this account's certificates")
		ident = fs.String("name", "", "only certificates for this name")
	case "cert revoke":
		reason = fs.Int("reason", 0, "RFC 5280 reason code")
	case "cert renew-now":
		ident = fs.String("upstream", "", "every valid certificate of this upstream instead of one ID")
	case "approval list":
		status = fs.String("status", "", "only requests in this status: pending, approved, denied, expired")
	case "approval approve":
		why = fs.String("reason", "", "why (kept with the approval, audited)")
		eabExpire = fs.String("expires", "", "the approval ends after, e.g. 720h (default: it does not end)")
		pattern = fs.String("pattern", "", "also approve the account's later names matching this, e.g. '*.floor3.corp.example.com'")
	case "approval deny":
		why = fs.String("reason", "", "why: the client is told in its next attempt's problem detail")
	}
	if err := fs.Parse(args[2:]); err != nil {
		return 2
	}
	c, err := f.client()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	arg := func() (string, bool) {
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "%s %s: name exactly one ID\n", group, verb)
			return "", false
		}
		return url.PathEscape(fs.Arg(0)), true
	}
	page := url.Values{"limit": {fmt.Sprint(*limit)}, "cursor": {*cursor}}
	if *directory != "" {
		page.Set("directory", *directory)
	}
	var out any
	var path string // every case sets it
	method := http.MethodGet
	var body any
	switch group + " " + verb {
	case "eab create":
		method, path = http.MethodPost, "/api/v1/eab"
		var allow []string
		if *eabAllow != "" {
			allow = strings.Split(*eabAllow, ",")
		}
		body = map[string]any{"directory": *directory, "group": *eabGroup, "allow": allow, "expires": *eabExpire, "note": *eabNote}
	case "eab list":
		path = "/api/v1/eab?" + page.Encode()
	case "eab revoke":
		id, ok := arg()
		if !ok {
			return 2
		}
		method, path = http.MethodPost, "/api/v1/eab/"+id+"/revoke"
	case "account list":
		page.Set("status", *status)
		path = "/api/v1/accounts?" + page.Encode()
	case "account show", "order show", "cert show":
		id, ok := arg()
		if !ok {
			return 2
		}
		path = map[string]string{"account": "/api/v1/accounts/", "order": "/api/v1/orders/", "cert": "/api/v1/certificates/"}[group] + id
	case "account deactivate":
		id, ok := arg()
		if !ok {
			return 2
		}
		method, path = http.MethodPost, "/api/v1/accounts/"+id+"/deactivate"
	case "order list":
		page.Set("state", *status)
		page.Set("account", *account)
		page.Set("identifier", *ident)
		path = "/api/v1/orders?" + page.Encode()
	case "cert list":
		page.Set("expiring", *expiring)
		page.Set("account", *account)
		page.Set("name", *ident)
		path = "/api/v1/certificates?" + page.Encode()
	case "cert revoke":
		id, ok := arg()
		if !ok {
			return 2
		}
		method, path, body = http.MethodPost, "/api/v1/certificates/"+id+"/revoke", map[string]int{"reason": *reason}
	case "cert renew-now":
		method = http.MethodPost
		if *ident != "" {
			path = "/api/v1/upstreams/" + url.PathEscape(*ident) + "/renew-now"
			break
		}
		id, ok := arg()
		if !ok {
			return 2
		}
		path = "/api/v1/certificates/" + id + "/renew-now"
	case "approval list":
		page.Set("status", *status)
		path = "/api/v1/approvals?" + page.Encode()
	case "approval show", "approval approve", "approval deny":
		id, ok := arg()
		if !ok {
			return 2
		}
		path = "/api/v1/approvals/" + id
		switch verb {
		case "approve":
			method, body = http.MethodPost, map[string]string{"reason": *why, "expires": *eabExpire, "pattern": *pattern}
			path += "/approve"
		case "deny":
			method, body = http.MethodPost, map[string]string{"reason": *why}
			path += "/deny"
		}
	default:
		fmt.Fprintf(stderr, "acmebridge: unknown command %q\n\n%s", group+" "+verb, usage)
		return 2
	}
	// One request, bounded by the client's timeout.
	if err := c.call(context.Background(), method, path, body, &out); err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", group, verb, err)
		return 1
	}
	if *f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return 0
	}
	printTable(stdout, group, verb, out)
	return 0
}

// columns are the fields shown, per record kind, in tables.
var columns = map[string][]string{
	"eab":      {"id", "directory", "status", "group", "allow", "account_id", "expires_at", "note"},
	"account":  {"id", "directory", "status", "group", "eab_key", "contact", "created_at"},
	"order":    {"id", "directory", "status", "identifiers", "rule", "upstream", "account", "created_at"},
	"cert":     {"serial", "directory", "names", "upstream", "not_after", "revoked_at", "account"},
	"approval": {"id", "directory", "status", "names", "rule", "account", "remote", "last_attempt", "decided_by", "reason"},
}

// printTable prints records as a table for people.
func printTable(w io.Writer, group, verb string, out any) {
	var items []any
	switch v := out.(type) {
	case map[string]any:
		if list, ok := v["items"].([]any); ok {
			items = list
			defer func() {
				if next, _ := v["next"].(string); next != "" {
					fmt.Fprintf(w, "(more: --cursor %s)\n", next)
				}
			}()
		} else {
			items = []any{v}
		}
	case []any:
		items = v
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	cols := columns[group]
	if verb == "show" || (group == "eab" && verb == "create") || (group == "approval" && verb != "list") {
		// One record: every field, one per line.
		for _, it := range items {
			m, _ := it.(map[string]any)
			for _, k := range sortedKeys(m) {
				fmt.Fprintf(tw, "%s\t%s\n", k, cell(m[k]))
			}
		}
		if group == "eab" && verb == "create" {
			fmt.Fprintln(tw, "\nThe HMAC key is shown only now; give it to the client with the key ID (lego --eab --kid ID --hmac KEY, certbot --eab-kid ID --eab-hmac-key KEY).")
		}
		return
	}
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, it := range items {
		m, _ := it.(map[string]any)
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = cell(m[c])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case []any:
		var parts []string
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				parts = append(parts, cell(m["value"]))
			} else {
				parts = append(parts, cell(e))
			}
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

// cmdReload runs `acmebridge reload`: the server re-reads its
// configuration file, and every replica sharing its store follows.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs, f := newAdminFlags("reload", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: acmebridge reload [--server URL] [--token-file FILE] [--json]")
		return 2
	}
	c, err := f.client()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var out struct {
		Generation int64 `json:"generation"`
	}
	if err := c.call(context.Background(), http.MethodPost, "/api/v1/reload", nil, &out); err != nil {
		fmt.Fprintf(stderr, "reload: %v\n", err)
		return 1
	}
	if *f.asJSON {
		_ = json.NewEncoder(stdout).Encode(out)
		return 0
	}
	fmt.Fprintf(stdout, "configuration reloaded: generation %d (replicas sharing the store follow within a second)\n", out.Generation)
	return 0
}
