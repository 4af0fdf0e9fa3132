#!/usr/bin/env bash
# tests/fuzz/run.sh: runs every libFuzzer target for N seconds (default 20) on a copy of its seed
# corpus, and fails on any crash, leak, timeout or out-of-memory.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]          (TARGET: fuzz_jwt, ... ; default: all)
#
# Environment:
#   FUZZ_BUILD     build directory configured with -DFULCRUM_FUZZ=ON (default: build-fuzz)
#   FUZZ_PARALLEL  targets run at the same time (default 1)
#   FUZZ_NICE      command prefix for each run, e.g. "nice -n 19" (default: none)
#   FUZZ_KEEP      if set, a directory that receives each target's grown corpus
#                  (<FUZZ_KEEP>/<target>/) and logs, for picking new seeds by hand
#
# Nothing under the repository is written: corpora, logs, the targets' $TMPDIR (the CT log's
# database) and crash artifacts live in a temporary directory, removed when every target
# passed and kept (path printed) when one failed.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-20}
shift $(( $# > 0 ? 1 : 0 ))
build=${FUZZ_BUILD:-$root/build-fuzz}
parallel=${FUZZ_PARALLEL:-1}
nice_cmd=${FUZZ_NICE:-}

case $secs in ''|*[!0-9]*) echo "run.sh: SECONDS must be a number, not '$secs'" >&2; exit 2;; esac

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in "$here"/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
for t in "${targets[@]}"; do
  if [ ! -x "$build/$t" ]; then
    echo "run.sh: $build/$t is missing: cmake -DFULCRUM_FUZZ=ON and build the 'fuzz' target" >&2
    exit 2
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-fuzz.XXXXXX")
export FULCRUM_FIXTURES_DIR="$root/tests/fixtures"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

# One target: copy the seeds, fuzz, write "<rc>" to $work/<t>.rc.
run_one() {
  local t=$1 dir=$work/$t
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  if [ -d "$here/corpus/$t" ]; then cp -R "$here/corpus/$t/." "$dir/corpus/"; fi
  local rc=0
  TMPDIR="$dir/tmp" $nice_cmd "$build/$t" "$dir/corpus" \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -detect_leaks=1 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

start=$(date +%s)
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-22s %6s %12s %8s %8s %7s  %s\n' target seconds execs cov ft corpus result
for t in "${targets[@]}"; do
  dir=$work/$t
  rc=$(cat "$dir/rc" 2>/dev/null || echo 99)
  log=$dir/log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E ' cov: ' | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  result=ok
  if [ "$rc" != 0 ] || grep -qE '^==[0-9]+==ERROR|^SUMMARY: |runtime error:|fuzz invariant failed|ALARM|out-of-memory|Test unit written|deadly signal' "$log"; then
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-22s %6s %12s %8s %8s %7s  %s\n' "$t" "${took:-?}" "${execs:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$result"
done
echo "total wall time: $(( $(date +%s) - start )) s"

if [ -n "${FUZZ_KEEP:-}" ]; then
  mkdir -p "$FUZZ_KEEP"
  for t in "${targets[@]}"; do
    mkdir -p "$FUZZ_KEEP/$t"
    cp -R "$work/$t/corpus/." "$FUZZ_KEEP/$t/"
    cp "$work/$t/log" "$FUZZ_KEEP/$t.log"
  done
fi

if [ "$failed" != 0 ]; then
  for t in "${targets[@]}"; do
    dir=$work/$t
    if [ "$(cat "$dir/rc" 2>/dev/null)" != 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|fuzz invariant failed' "$dir/log"; then
      echo "---- $t (last 40 lines of $dir/log)"
      tail -40 "$dir/log"
      ls "$dir/artifacts" 2>/dev/null | sed "s#^#  artifact: $dir/artifacts/#"
    fi
  done
  echo "run.sh: FAILED; everything is kept in $work" >&2
  exit 1
fi
rm -rf "$work"
exit 0
