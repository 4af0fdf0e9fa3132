#!/usr/bin/env bash
# tests/interop/run.sh: sigstore-js (@sigstore/sign, @sigstore/verify from npm, versions pinned in
# package.json / package-lock.json) against a real `fulcrum serve` and the dev OIDC issuer.
#
# Two servers, every case against each: one with the embedded CT log (the default; the verifier
# is given the trusted root `fulcrum trusted-root` prints for it and requires a verified SCT), one
# with CT off (--ct-log-url "").
#
# Needs FULCRUM_BIN and FULCRUM_DEV_ISSUER_BIN (ctest sets them). Everything runs on 127.0.0.1
# in a temp dir that is removed at the end; both children are stopped on any exit.
# Last line of output: "N passed, N failed". Exit status 0 only if nothing failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${FULCRUM_BIN:?FULCRUM_BIN must point at build/fulcrum}"
: "${FULCRUM_DEV_ISSUER_BIN:?FULCRUM_DEV_ISSUER_BIN must point at build/fulcrum-dev-issuer}"
# Requests to 127.0.0.1 must never go through a proxy from the environment.
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

if [ ! -d "$here/node_modules/@sigstore/sign" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-interop-XXXXXX")
issuer_pid= server_pid= server_off_pid= stop_status=0 passed=0 failed=0

stop() { # pid -> sets stop_status to its exit status (SIGTERM, SIGKILL after 10 s)
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$pid" 2>/dev/null || true
  stop_status=0
  wait "$pid" 2>/dev/null || stop_status=$?
}

dump_logs() {
  local f
  for f in "$work"/*.stderr "$work"/*.stdout; do
    [ -s "$f" ] || continue
    echo "----- ${f##*/} -----" >&2
    tail -c 32768 "$f" >&2
    echo "----- end ${f##*/} -----" >&2
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$server_pid" ]; then stop "$server_pid"; fi
  if [ -n "$server_off_pid" ]; then stop "$server_off_pid"; fi
  if [ -n "$issuer_pid" ]; then stop "$issuer_pid"; fi
  if [ "$status" -ne 0 ]; then dump_logs; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for <seconds> <what> <command...>: polls every 50 ms; fails if a child died or time ran out.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if [ -n "$issuer_pid" ] && ! kill -0 "$issuer_pid" 2>/dev/null; then
      echo "dev issuer exited while waiting for $what" >&2
      return 1
    fi
    if [ -n "$server_pid" ] && ! kill -0 "$server_pid" 2>/dev/null; then
      echo "fulcrum (embedded CT) exited while waiting for $what" >&2
      return 1
    fi
    if [ -n "$server_off_pid" ] && ! kill -0 "$server_off_pid" 2>/dev/null; then
      echo "fulcrum (CT off) exited while waiting for $what" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.05
  done
}

issuer_ready() { grep -q '^ready http://127\.0\.0\.1:[0-9]' "$work/issuer.stdout" 2>/dev/null; }
port_file_ready() { [ -s "$work/server.port" ] && [ -s "$work/server-off.port" ]; }

mkdir "$work/issuer-keys"
"$FULCRUM_DEV_ISSUER_BIN" --host 127.0.0.1 --port 0 --port-file "$work/issuer.port" \
  --key-dir "$work/issuer-keys" >"$work/issuer.stdout" 2>"$work/issuer.stderr" </dev/null &
issuer_pid=$!
wait_for 20 "the dev issuer" issuer_ready
issuer_url=$(sed -n 's/^ready \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/issuer.stdout" | head -n1)

cat >"$work/config.json" <<JSON
{"OIDCIssuers":{"$issuer_url":{"IssuerURL":"$issuer_url","ClientID":"sigstore","Type":"email"}}}
JSON
"$FULCRUM_BIN" serve --host 127.0.0.1 --port 0 --port-file "$work/server.port" \
  --config-path "$work/config.json" --ca ephemeralca --state-dir "$work/state" \
  >"$work/server.stdout" 2>"$work/server.stderr" </dev/null &
server_pid=$!
"$FULCRUM_BIN" serve --host 127.0.0.1 --port 0 --port-file "$work/server-off.port" \
  --config-path "$work/config.json" --ca ephemeralca --ct-log-url "" \
  >"$work/server-off.stdout" 2>"$work/server-off.stderr" </dev/null &
server_off_pid=$!
wait_for 20 "fulcrum's port files" port_file_ready
server_url="http://127.0.0.1:$(tr -dc '0-9' <"$work/server.port")"
server_off_url="http://127.0.0.1:$(tr -dc '0-9' <"$work/server-off.port")"

# The trusted root of the embedded-CT server (its root changes at every start: read it from the
# running server; the log key from its state dir).
if ! "$FULCRUM_BIN" trusted-root --server-url "$server_url" --state-dir "$work/state" \
  >"$work/trusted_root.json" 2>"$work/trusted-root.stderr"; then
  echo "FAIL fulcrum trusted-root" >&2
  cat "$work/trusted-root.stderr" >&2
  exit 1
fi

# run_node <label> <url> <ct mode>: one node run; adds its counts to passed/failed.
run_node() {
  local label=$1 url=$2 mode=$3 out="$work/node-$1.out" status summary
  echo "interop: $label ($url)"
  set +e
  FULCRUM_URL=$url ISSUER_URL=$issuer_url CT_MODE=$mode TRUSTED_ROOT="$work/trusted_root.json" \
    node "$here/main.mjs" | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
  summary=$(tail -n1 "$out")
  if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
    if [ "$status" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ]; then
      echo "FAIL node ($label) exited with status $status" >&2
      failed=$((failed + 1))
    fi
  else
    echo "FAIL node ($label) did not print a summary (exit status $status)" >&2
    failed=$((failed + 1))
  fi
}
run_node embedded-ct "$server_url" embedded
run_node ct-off "$server_off_url" off

for which in server_pid server_off_pid; do
  stop "${!which}"
  printf -v "$which" '%s' ''
  if [ "$stop_status" -eq 0 ]; then passed=$((passed + 1)); else
    echo "FAIL fulcrum ($which) exit status $stop_status after SIGTERM, want 0" >&2
    failed=$((failed + 1))
  fi
done

echo "interop total:"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
