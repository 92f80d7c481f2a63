#!/usr/bin/env bash
# Runs the security suites and writes SECURITY.md (at the repository root)
# from their results, through test/securityreport:
#   - the hostile-request suite (proxy/hostile_test.go),
#   - every fuzz target for FUZZTIME (test/fuzz.sh; 5s by default),
#   - the SSRF tests of proxy/va (names matching SSRF_TESTS),
#   - the rate-limit tests (proxy, the store suites on bolt and Redis, and
#     two replicas sharing limits on one Redis with lego as the client),
#   - the chaos runs of test/ (CHAOS_TESTS): real replicas on Redis, one
#     killed with SIGKILL mid-issuance, Redis killed and restarted mid-run,
#     a replica killed while relaying to Pebble, the upstream CA stopped
#     and restarted, the bolt store's disk full.
# The e2e tests need Redis and the clients `make deps` installs.
# OUT=file writes elsewhere. The exit status is 1 if any suite failed (the
# file is written all the same, showing which).
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-5s}"
OUT="${OUT:-SECURITY.md}"
SSRF_TESTS="${SSRF_TESTS:-Private|Redirect|Rebind|Oversize|Slow|Loris|Pinned|IsPublic|CheckAddr|SSRF|Metadata}"
CHAOS_TESTS="${CHAOS_TESTS:-^(TestReplicaKilledMidIssuance|TestRedisRestartMidRun|TestRelayReplicaKilled|TestRelayFailover|TestDiskFullBolt)\$}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

echo "security report: hostile-request suite"
"$GO" test -json -count=1 -run '^(TestHostileRequests|TestHostileCaseFoldedDuplicates|TestStateSnapshotSeesChanges)$' \
	./proxy >"$work/hostile.json" || status=1

echo "security report: fuzz targets, $FUZZTIME each"
FUZZ_REPORT="$work/fuzz.txt" FUZZTIME="$FUZZTIME" FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-100x}" GO="$GO" \
	test/fuzz.sh || status=1

echo "security report: SSRF tests of proxy/va"
"$GO" test -json -count=1 -run "$SSRF_TESTS" ./proxy/va >"$work/ssrf.json" || status=1

echo "security report: rate limits"
"$GO" test -json -count=1 -run '^(TestRateLimit.*|TestRegisteredDomains)$' ./proxy >"$work/rl-proxy.json" || status=1
"$GO" test -json -count=1 -run '^TestRateLimitsAcrossReplicas$' ./test >"$work/rl-e2e.json" || status=1
"$GO" test -json -count=1 -run '^TestStore$/^RateLimit$' ./store/bolt >"$work/rl-bolt.json" || status=1
"$GO" test -json -count=1 -run '^(TestStore|TestStoreCluster|TestStoreSentinel)$/^RateLimit$' ./store/redis >"$work/rl-redis.json" || status=1

echo "security report: authorization holes"
"$GO" test -json -count=1 -run '^(TestFinalizeHostileCSRs|TestFinalizeClientCSRs|TestFinalizeNameInCNOnlyHostile|TestFinalizeNameInCNOnlyRoutes|TestWorkerDecidesStoredCSR|TestFinalizeWeakKeys|TestNewOrderWildcardCoveringDeniedOrRoutedName|TestFullNonceRecordLocksNoOneOut|TestUnknownKeyRequestsLimitedPerIP|TestReadyOrderAuthzDeactivated|TestReadyOrderAuthzDeactivatedOrderRead|TestReadyOrderAuthzExpired|TestDeactivatedDuringValidation|TestRevokedEABKeyRequired|TestExpiredEABKeyRequired|TestRevokedEABKeyOptional|TestFinalizeAuthzDeactivatedDuringCAA|TestFinalizeAuthzExpiredDuringCAA|TestFinalizeEABKeyRevokedDuringCAA|TestFinalizeEABKeyEditedDuringCAA|TestDeactivatedAccountUnauthorized401|TestReplacesAfterInvalidReplacement|TestNotBeforeBackdateCapped)$' \
	./proxy >"$work/holes-proxy.json" || status=1
"$GO" test -json -count=1 -run '^(TestWildcardCoversOtherRules|TestUnicodePatterns)$' ./policy >"$work/holes-policy.json" || status=1
"$GO" test -json -count=1 -run '^(TestPrivateAddressesOnlyWhenSaid|TestPolicyPatternsAsALabels)$' ./configs >"$work/holes-configs.json" || status=1
"$GO" test -json -count=1 -run '^(TestConfigFileDeniesPrivateAddresses|TestHTTP01DetailIsNoOracle)$' ./proxy/va >"$work/holes-va.json" || status=1
"$GO" test -json -count=1 -run '^TestUsedNonceRecordFull$' ./store/bolt >"$work/holes-bolt.json" || status=1
"$GO" test -json -count=1 -run '^(TestSignVerbatimContent|TestSignContentFromParams)$' ./upstream/vault >"$work/holes-vault.json" || status=1
"$GO" test -json -count=1 -run '^(TestPolicyExplainWildcard|TestPolicyExplainUnicode|TestConfigCheckUnicodePattern)$' ./cmd/acmebridge >"$work/holes-cmd.json" || status=1
"$GO" test -json -count=1 -timeout 20m -run '^(TestVaultSignVerbatimCSRContent|TestSSRFConfigFileDeniesPrivate|TestSSRFProblemDetailsNoStatus|TestEABRevokeEndsGrants|TestReplicaKilledMidValidation)$' ./test >"$work/holes-e2e.json" || status=1

echo "security report: chaos runs"
"$GO" test -json -count=1 -timeout 30m -run "$CHAOS_TESTS" ./test >"$work/chaos.json" || status=1

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit="$commit with local changes"
fi
"$GO" run ./test/securityreport -hostile "$work/hostile.json" -fuzz "$work/fuzz.txt" -fuzztime "$FUZZTIME" \
	-ssrf "$work/ssrf.json" -chaos "$work/chaos.json" \
	-ratelimit "$work/rl-proxy.json,$work/rl-e2e.json" -ratelimit-bolt "$work/rl-bolt.json" -ratelimit-redis "$work/rl-redis.json" -commit "$commit" \
	-holes "$work/holes-proxy.json,$work/holes-policy.json,$work/holes-configs.json,$work/holes-va.json,$work/holes-bolt.json,$work/holes-vault.json,$work/holes-cmd.json,$work/holes-e2e.json" \
	-go "$("$GO" env GOVERSION)" -cpus "$(nproc 2>/dev/null || echo ?)" >"$work/SECURITY.md" || status=1
mv "$work/SECURITY.md" "$OUT"
echo "security report: wrote $OUT"
exit "$status"
