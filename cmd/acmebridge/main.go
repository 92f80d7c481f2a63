// Command acmebridge is an ACME server (RFC 8555) in front of several
// certificate authorities. Run `acmebridge help` for the commands.
package main

import (
	"fmt"
	"io"
	"os"
)

// usage is printed by `acmebridge help` and on a usage error.
const usage = `acmebridge: one ACME URL in front of many certificate authorities

Usage:
  acmebridge serve [--config FILE]           run the server (no flags: the quickstart)
  acmebridge config check --config FILE      validate a configuration file
  acmebridge policy explain [--config FILE] [--json] [--directory D] [--group G] [--eab-key KID]
                            [--profile P] NAME...
                                             which rule and upstreams each name gets, and why
                                             (--directory: with that directory's policy)
  acmebridge upstream check [--config FILE] [--timeout D]
                                             whether each upstream is reachable and acmebridge
                                             authorised (Vault: token lookup, role read); exit 1 if not
  acmebridge bench --directory URL [--ca-bundle F] [--clients 16] [--orders 10]
                   [--challenge http-01|dns-01] [--http-port P] [--dns-server ADDR]
                   [--eab-kid K --eab-hmac H] [--server-pid PID]... [--json]
                                             load-test any ACME server: issuances/s, latency
                                             per step, errors by type, CPU per issuance
  acmebridge store compact [--config FILE | --data-dir DIR]
                                             rewrite the bolt file without its free pages
                                             (offline: refused while the server runs)
  acmebridge version                         print the version

Admin commands (talk to a running server's admin API; --server URL,
--token-file FILE, --json; defaults suit the quickstart). --directory D names
a directory (tenant), "/" the top level; a token scoped to a directory
(admin.directory_tokens) sees and acts on its own directory only:
  acmebridge eab create [--directory D] [--group G] [--allow 'pattern,...'] [--expires 720h] [--note TEXT]
  acmebridge eab list [--directory D] | eab revoke KID
  acmebridge account list [--directory D] [--status S] | account show ID | account deactivate ID
  acmebridge order list [--directory D] [--account ID] [--state S] [--identifier NAME] | order show ID
  acmebridge cert list [--directory D] [--expiring 30d] [--account ID] [--name NAME] | cert show ID|SERIAL
  acmebridge cert revoke [--reason N] ID|SERIAL
  acmebridge cert renew-now ID|SERIAL | cert renew-now --upstream NAME
                                             move ARI renewal windows into the past
  acmebridge approval list [--directory D] [--status pending|approved|denied|expired] | approval show ID
  acmebridge approval approve [--reason TEXT] [--expires 720h] [--pattern '*.floor3.corp.example.com'] ID
  acmebridge approval deny [--reason TEXT] ID
                                             decide the approval requests of rules with approval;
                                             the client's next run sees the decision
  acmebridge reload                          re-read the configuration file (every replica sharing
                                             the store follows); refused whole if it does not validate
                                             or changes a key that needs a restart
  acmebridge audit [--file F] [--since 24h] [--account ID] [--name NAME] [--event E] [--directory D] [--json]
  acmebridge report [--since 30d] [--until T] [--expiring 30d] [--bucket 1d] [--config F]
                    [--directory D] [--file F]... [--json | --csv]
                                             issuance by upstream, account and domain, refusals,
                                             revocations (audit log) and certificates expiring
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code: 0 success, 1 a
// runtime failure, 2 a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprintln(stderr, "usage: acmebridge config check --config FILE")
			return 2
		}
		return cmdConfigCheck(args[2:], stdout, stderr)
	case "policy":
		if len(args) < 2 || args[1] != "explain" {
			fmt.Fprintln(stderr, "usage: acmebridge policy explain [--config FILE] [--json] NAME...")
			return 2
		}
		return cmdPolicyExplain(args[2:], stdout, stderr)
	case "eab", "account", "order", "cert", "approval":
		return adminCommand(args, stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "upstream":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprintln(stderr, "usage: acmebridge upstream check [--config FILE] [--timeout D]")
			return 2
		}
		return cmdUpstreamCheck(args[2:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "store":
		if len(args) < 2 || args[1] != "compact" {
			fmt.Fprintln(stderr, "usage: acmebridge store compact [--config FILE | --data-dir DIR]")
			return 2
		}
		return cmdStoreCompact(args[2:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "acmebridge", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "acmebridge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
