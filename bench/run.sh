#!/usr/bin/env bash
# Issuance throughput and latency of `fulcrum serve` (ephemeral CA) under wrk, with many distinct
# tokens and keys. Loopback only; bounded in time.
#   bench/run.sh [N_REQUESTS=2000] [DURATION=20s] [CONNECTIONS=32] [KEYS=p256|rsa2048|mixed] [CT=off|embedded] [CA=ephemeral|pkcs11]
# CA=pkcs11 signs through a SoftHSM2 token made in the temp dir (scripts/softhsm-ca.sh).
# CT=embedded runs the embedded Certificate Transparency log (precertificate, log entry committed
# to SQLite, SCT verified, final certificate) in a fresh state directory; CT=off is --ct-log-url "".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
n=${1:-2000}; duration=${2:-20s}; conns=${3:-32}; keys=${4:-p256}; ct=${5:-off}; ca=${6:-ephemeral}
case $ct in
  off) ct_args=(--ct-log-url "") ;;
  embedded) ct_args=(--ct-log-url embedded) ;;
  *) echo "bench: CT must be off or embedded" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$build/fulcrum-dev-issuer" --host 127.0.0.1 --port 0 --port-file "$tmp/issuer.port" >/dev/null 2>"$tmp/issuer.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/issuer.port ]] && break; sleep 0.05; done
issuer="http://127.0.0.1:$(cat "$tmp/issuer.port")"
echo "{\"OIDCIssuers\":{\"$issuer\":{\"IssuerURL\":\"$issuer\",\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}" > "$tmp/config.json"

echo "bench: minting $n distinct tokens and $keys keys..."
"$build/fulcrum-bench-gen" "$issuer" "$n" "$tmp/requests.jsonl" "$keys"

ca_args=(--ca ephemeralca)
if [[ $ca == pkcs11 ]]; then
  # shellcheck source=../scripts/softhsm-ca.sh
  source "$top/scripts/softhsm-ca.sh"
  softhsm_ca_setup "$tmp/softhsm" "$build"
  ca_args=(--ca pkcs11ca --pkcs11-config-path "$p11_config" --pkcs11-pin-file "$p11_pin"
           --hsm-caroot-id fulcrum-root)
fi
"$build/fulcrum" serve --host 127.0.0.1 --port 0 --port-file "$tmp/port" "${ca_args[@]}" \
  --config-path "$tmp/config.json" "${ct_args[@]}" --state-dir "$tmp/state" --log-level error \
  2>"$tmp/fulcrum.log" &
fpid=$!; pids+=($fpid)
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$tmp/port")"

# Warm the JWKS cache and check one request works.
head -1 "$tmp/requests.jsonl" | curl -fsS -o /dev/null -d @- "$url/api/v2/signingCert"
echo "bench: one request's latency (curl, 20 sequential requests):"
for i in $(seq 2 21); do
  sed -n "${i}p" "$tmp/requests.jsonl" | curl -sS -o /dev/null -w '%{time_total}\n' -d @- "$url/api/v2/signingCert"
done | sort -n | awk '{a[NR]=$1} END {printf "  min %.2f ms, median %.2f ms, max %.2f ms\n", a[1]*1000, a[int((NR+1)/2)]*1000, a[NR]*1000}'

cpu0=$(awk '{print $14+$15}' /proc/$fpid/stat)
wrk -t2 -c"$conns" -d"$duration" --latency -s "$top/bench/signing.lua" "$url" -- "$tmp/requests.jsonl"
cpu1=$(awk '{print $14+$15}' /proc/$fpid/stat)
hz=$(getconf CLK_TCK)
echo "bench: server CPU during the run: $(( (cpu1 - cpu0) / hz )) s; peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$fpid/status)"
if [[ $ct == embedded ]]; then
  sth=$(curl -fsS "$url/ct/v1/get-sth")
  echo "bench: CT log after the run: $sth"
  echo "bench: CT log database: $(du -sh "$tmp/state/ctlog" | cut -f1)"
fi
