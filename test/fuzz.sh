#!/usr/bin/env bash
# Runs every fuzz target of the module (each `func FuzzX(f *testing.F)` in a
# _test.go file of a package `go list ./...` lists) with `go test -fuzz` for
# FUZZTIME each, one after the other.
#
#   make fuzz-short   FUZZTIME=5s, the short pass `make test` ends with
#   make fuzz         FUZZTIME=10m, the long run
#
# FUZZ_TARGETS, a regular expression, limits the targets (e.g. 'JWS|CSR').
# FUZZMINIMIZETIME bounds the minimization of each new interesting input
# (go test's -fuzzminimizetime, 60s by default): the short pass sets 100x (a
# hundred runs), or minimizing one large seed would take its whole time.
# FUZZ_REPORT=file appends one line per target for test/security_report.sh:
#   <package> <target> <seconds> <execs> <ok|FAIL>
# A failing input is kept by `go test` under the package's testdata/fuzz/<target>/
# (commit it: it then runs with the normal tests); the script goes on with the
# other targets and exits 1 at the end.
#
# Go 1.26's fuzz coordinator can end a duration-bounded run with a bare
# "context deadline exceeded" failure at the -fuzztime boundary, writing no
# input (golang/go#75804, fixed in Go 1.27): such a run, and only such a run
# (that exact failure, no input written, nothing else failing), is reported
# as ok with a note rather than failed.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-5s}"
FUZZ_TARGETS="${FUZZ_TARGETS:-.}"
minimize=()
if [ -n "${FUZZMINIMIZETIME:-}" ]; then
	minimize=(-fuzzminimizetime "$FUZZMINIMIZETIME")
fi

# inputs DIR: how many inputs a target's corpus directory holds.
inputs() {
	if [ -d "$1" ]; then
		find "$1" -type f | wc -l
	else
		echo 0
	fi
}

# deadline_race TARGET OUT: OUT is go test's output of a run whose only
# failure is the coordinator's bare deadline error (see above).
deadline_race() {
	local target=$1 out=$2
	! grep -q 'Failing input written' "$out" &&
		[ "$(grep -c -- '^--- FAIL' "$out")" -eq 1 ] &&
		grep -A1 -- "^--- FAIL: ${target} (" "$out" | tail -1 | grep -qx '[[:space:]]*context deadline exceeded'
}

failed=()
total_start=$(date +%s%N)
count=0
for dir in $("$GO" list -f '{{.Dir}}' ./...); do
	pkg="./${dir#"$PWD"/}"
	[ "$dir" = "$PWD" ] && pkg="."
	for file in "$dir"/*_test.go; do
		[ -e "$file" ] || continue
		for target in $(sed -n -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*\*testing\.F\).*/\1/p' "$file"); do
			[[ "$target" =~ $FUZZ_TARGETS ]] || continue
			count=$((count + 1))
			out=$(mktemp)
			start=$(date +%s%N)
			status=ok note=""
			corpus="$dir/testdata/fuzz/$target"
			before=$(inputs "$corpus")
			if ! "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "${minimize[@]}" "$pkg" >"$out" 2>&1; then
				after=$(inputs "$corpus")
				if [ "$after" -eq "$before" ] && deadline_race "$target" "$out"; then
					note=" (Go's deadline race at -fuzztime's end, golang/go#75804; no input written)"
				else
					status=FAIL
					failed+=("$pkg $target")
					cat "$out"
				fi
			fi
			secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
			execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | awk '{ print $2 }' || true)
			rm -f "$out"
			printf 'fuzz %-20s %-26s %6ss %10s execs  %s\n' "$pkg" "$target" "$secs" "${execs:-0}" "$status$note"
			if [ -n "${FUZZ_REPORT:-}" ]; then
				echo "$pkg $target $secs ${execs:-0} $status" >>"$FUZZ_REPORT"
			fi
		done
	done
done
total=$(awk -v a="$total_start" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
echo "fuzz: $count targets, ${FUZZTIME} each, ${total}s in all"
if [ "$count" -eq 0 ]; then
	echo "fuzz: no target matched ${FUZZ_TARGETS}" >&2
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	exit 1
fi
