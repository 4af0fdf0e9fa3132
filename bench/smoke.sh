#!/usr/bin/env bash
# bench/smoke.sh BUILD_DIR: ctest bench/smoke. Runs bench/run.sh briefly (floor ~2 s, each load
# phase 2 s, the connection ramp 1 s per count, the full pipeline: file CA, embedded CT) against a
# real server and checks that the FLOOR, ramp, RESULT and BENCH lines parse and that no request
# failed. No timing is asserted.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: bench/smoke.sh BUILD_DIR}
out=$(mktemp "${TMPDIR:-/tmp}/fulcrum-bench-smoke-XXXXXX")
trap 'rm -f "$out"' EXIT
fail() { echo "bench/smoke: FAIL: $*" >&2; cat "$out" >&2; exit 1; }

BUILD=$build CA=file CT=embedded KEYS=p256 N=40 DURATION=2 WARMUP=1 RAMP_SECONDS=1 IDLE=50 \
  FLOOR_SECONDS=0.25 PERF=0 bash "$here/run.sh" >"$out" 2>&1 || fail "bench/run.sh exited $?"

num='[0-9]+(\.[0-9]+)?'
grep -Eq "^FLOOR us_per_issuance=$num issuances_per_s=$num threads=[0-9]+ " "$out" ||
  fail "no FLOOR line that parses"
floor_rps=$(sed -n 's/^FLOOR .* issuances_per_s=\([0-9.]*\) .*/\1/p' "$out")
awk -v r="$floor_rps" 'BEGIN {exit !(r > 0)}' || fail "the floor is $floor_rps issuances/s"

n=0
while read -r line; do
  [[ $line =~ ^RESULT\ rps=$num\ p50_ms=$num\ p99_ms=$num\ p999_ms=$num\ errors=[0-9]+\  ]] ||
    fail "RESULT line does not parse: $line"
  [[ $line == *" errors=0 "* ]] || fail "errors in: $line"
  [[ $line != "RESULT rps=0.0 "* ]] || fail "nothing issued: $line"
  n=$((n + 1))
done < <(sed -n 's/^ *\(RESULT .*\)/\1/p' "$out")
((n == 4)) || fail "expected 4 RESULT lines (warm-up, full speed, half load, idle), got $n"

# CONNECTIONS=auto: one closed-loop run per count, and one of them chosen
for c in 64 128 256; do
  grep -Eq "^  $c connections: $num issuances/s$" "$out" || fail "no ramp result for $c connections"
done
grep -Eq "^  chosen: .*: (64|128|256)$" "$out" || fail "no connection count chosen"
grep -Eq "^BENCH rps=$num floor_rps=$num floor_rps_before=$num floor_rps_after=$num ratio=$num .* errors=0$" "$out" ||
  fail "no BENCH line with errors=0"
grep -Eq "^machine: +full speed [0-9]+ % busy, [0-9]+ % stolen; half load [0-9]+ % busy, [0-9]+ % stolen" "$out" ||
  fail "no machine line in the summary"
grep -Eq "^BENCH .* busy_full_pct=[0-9]+ steal_full_pct=[0-9]+ busy_half_pct=[0-9]+ steal_half_pct=[0-9]+ " "$out" ||
  fail "no machine figures in the BENCH line"
grep -q "idle keep-alive connections: 50 asked, 50 answered /healthz 200, 50 still open" "$out" ||
  fail "the idle connections were not all held open"
echo "bench/smoke: ok ($n loadgen runs, floor $floor_rps issuances/s)"
