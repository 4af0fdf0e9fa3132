#!/usr/bin/env bash
# bench/run.sh: issuance throughput, latency, CPU and memory of `fulcrum serve`, next to the
# OpenSSL floor of this machine (README.md, "Benchmark"). Loopback only; bounded in time.
#
#   bench/run.sh                       the full pipeline: CA=file CT=embedded KEYS=p256, RS256 tokens
#   CA=pkcs11 CT=off bench/run.sh      ... any of the settings below
#
# Settings (environment):
#   CA=file|ephemeral|pkcs11   file: a P-256 CA made with openssl in the temp dir (--ca fileca;
#                              CA_KEY=rsa2048|rsa3072 for an RSA one); ephemeral: --ca ephemeralca;
#                              pkcs11: a SoftHSM2 token in the temp dir (scripts/softhsm-ca.sh)
#   CT=embedded|off            the embedded CT log (fresh state dir) or --ct-log-url ""
#   KEYS=p256|rsa2048|mixed    the clients' keys          TOKEN_ALG=RS256|ES256|mixed (RS256)
#   N=2000                     distinct requests (token + key + proof), replayed round robin
#   DURATION=10                seconds of each measured phase (full speed, half load, idle conns)
#   WARMUP=3                   seconds of full-speed warm-up before the first phase
#   CONNECTIONS=auto           keep-alive connections of the load. auto: chosen before full speed
#                              by closed-loop runs of RAMP_SECONDS (3) at 64, 128 and 256
#                              connections: the fewest within 2 % of the best throughput. Full
#                              speed needs enough requests in flight to fill the logs' group
#                              commits while the cores work: too few leave the cores idle while
#                              batches wait (64 did by 12-14 % once a certificate cost ~0.3 ms)
#   IDLE=1000                  idle keep-alive connections held open during the memory phase
#   FLOOR_SECONDS=1            seconds per fulcrum-floor measurement
#   LOG_LEVEL=info             the server's --log-level (its request log goes to a file)
#   SERVER_ARGS="..."          more `fulcrum serve` flags, split on spaces (e.g. --group-commit-ms 4)
#   PERF=1                     perf record -g of the server during the full-speed phase; prints
#                              perf report's top 40 symbols (no children) and keeps the temp dir
#   BUILD=build                the build directory (fulcrum, fulcrum-dev-issuer, fulcrum-loadgen,
#                              fulcrum-floor, fulcrum-bench-gen)
# Last line: BENCH rps=... floor_rps=... ratio=... (the summary's numbers, machine-readable).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
ca=${CA:-file}
ca_key=${CA_KEY:-p256}
ct=${CT:-embedded}
keys=${KEYS:-p256}
token_alg=${TOKEN_ALG:-RS256}
n=${N:-2000}
duration=${DURATION:-10}
duration=${duration%s}
warmup=${WARMUP:-3}
warmup=${warmup%s}
conns=${CONNECTIONS:-auto}
ramp_seconds=${RAMP_SECONDS:-3}
idle=${IDLE:-1000}
floor_seconds=${FLOOR_SECONDS:-1}
log_level=${LOG_LEVEL:-info}
perf=${PERF:-0}

die() { echo "bench: $*" >&2; exit 2; }
case $ca in file | ephemeral | pkcs11) ;; *) die "CA must be file, ephemeral or pkcs11" ;; esac
case $ca_key in p256 | rsa2048 | rsa3072) ;; *) die "CA_KEY must be p256, rsa2048 or rsa3072" ;; esac
[[ $ca == file || $ca_key == p256 ]] || die "CA_KEY applies to CA=file only"
case $ct in
  off) ct_args=(--ct-log-url "") ;;
  embedded) ct_args=(--ct-log-url embedded) ;;
  *) die "CT must be embedded or off" ;;
esac
case $keys in p256 | rsa2048 | mixed) ;; *) die "KEYS must be p256, rsa2048 or mixed" ;; esac
case $token_alg in RS256 | ES256 | mixed) ;; *) die "TOKEN_ALG must be RS256, ES256 or mixed" ;; esac
auto_conns=0
if [[ $conns == auto ]]; then
  auto_conns=1
  conns=64
fi
for v in n duration warmup conns idle ramp_seconds; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v}: not a whole number"
done
((duration > 0 && conns > 0 && n > 0)) || die "DURATION, CONNECTIONS and N must be > 0"
for b in fulcrum fulcrum-dev-issuer fulcrum-loadgen fulcrum-floor fulcrum-bench-gen; do
  [[ -x $build/$b ]] || die "$build/$b is missing: build first (make build, or BUILD=dir)"
done
if [[ $perf == 1 ]]; then command -v perf >/dev/null || die "PERF=1 needs perf (linux-perf)"; fi
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-bench-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $perf == 1 ]]; then echo "bench: kept $tmp (perf.data, server log)"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

cores=$(nproc)
hz=$(getconf CLK_TCK)
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" | tail -1; } # KEY < text -> value
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
io_written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
# delta NAME: the growth of a metric (a counter, or a histogram's _sum/_count) over full speed
delta() {
  awk -v n="$1" '$1 == n {v[FILENAME] = $2} END {printf "%.6f", v[ARGV[2]] - v[ARGV[1]]}' \
    "$tmp/metrics.0" "$tmp/metrics.1"
}
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# The whole machine's CPU time (all cores, ticks): "busy steal total". busy counts user, nice,
# system, irq and softirq; steal is time the hypervisor gave to others; total adds idle, iowait.
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# "busy% steal%" of the machine between two machine_ticks readings.
machine_use() {
  awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); t = y[3] - x[3];
    if (t <= 0) t = 1; printf "%.0f %.0f", (y[1] - x[1]) * 100 / t, (y[2] - x[2]) * 100 / t}'
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

floor_token=rs256
[[ $token_alg == ES256 ]] && floor_token=es256
echo "== floor: OpenSSL on this machine ($cores cores) =="
"$build/fulcrum-floor" --seconds "$floor_seconds" --threads "$cores" --token "$floor_token" \
  --ca-key "$ca_key" --ct "$ct" | tee "$tmp/floor.out"
floor_line=$(grep '^FLOOR ' "$tmp/floor.out") || die "fulcrum-floor printed no FLOOR line"
floor_rps=$(field issuances_per_s <<<"$floor_line")
floor_us=$(field us_per_issuance <<<"$floor_line")

"$build/fulcrum-dev-issuer" --host 127.0.0.1 --port 0 --port-file "$tmp/issuer.port" \
  >/dev/null 2>"$tmp/issuer.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/issuer.port ]] && break; sleep 0.05; done
[[ -s $tmp/issuer.port ]] || die "the dev issuer did not start: $(cat "$tmp/issuer.log")"
issuer="http://127.0.0.1:$(cat "$tmp/issuer.port")"
echo "{\"OIDCIssuers\":{\"$issuer\":{\"IssuerURL\":\"$issuer\",\"ClientID\":\"sigstore\",\"Type\":\"email\"}}}" \
  >"$tmp/config.json"

echo "== requests: $n distinct $token_alg tokens and $keys keys with their proofs =="
if ! "$build/fulcrum-bench-gen" "$issuer" "$n" "$tmp/requests.jsonl" "$keys" "$token_alg"; then
  [[ $token_alg == RS256 ]] || die "cannot mint $token_alg tokens"
  echo "bench: the dev issuer cannot mint RS256 tokens: using ES256 tokens (the floor still assumes RS256)"
  token_alg=ES256
  "$build/fulcrum-bench-gen" "$issuer" "$n" "$tmp/requests.jsonl" "$keys" ES256
fi

ca_args=(--ca ephemeralca)
case $ca in
  file)
    case $ca_key in
      p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca-key.pem" ;;
      rsa*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${ca_key#rsa}" -out "$tmp/ca-key.pem" ;;
    esac 2>/dev/null
    openssl req -new -x509 -key "$tmp/ca-key.pem" -out "$tmp/ca.pem" -days 30 -sha256 \
      -subj "/O=Fulcrum Bench/CN=Fulcrum Bench CA" \
      -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "extendedKeyUsage=codeSigning" 2>/dev/null
    ca_args=(--ca fileca --fileca-cert "$tmp/ca.pem" --fileca-key "$tmp/ca-key.pem" --fileca-key-passwd "")
    ;;
  pkcs11)
    # shellcheck source=../scripts/softhsm-ca.sh
    source "$top/scripts/softhsm-ca.sh"
    softhsm_ca_setup "$tmp/softhsm" "$build"
    ca_args=(--ca pkcs11ca --pkcs11-config-path "$p11_config" --pkcs11-pin-file "$p11_pin"
      --hsm-caroot-id fulcrum-root)
    ;;
esac
"$build/fulcrum" serve --host 127.0.0.1 --port 0 --port-file "$tmp/port" "${ca_args[@]}" \
  --config-path "$tmp/config.json" "${ct_args[@]}" --state-dir "$tmp/state" \
  --log-level "$log_level" --metrics-port 0 --metrics-port-file "$tmp/metrics.port" \
  --idle-connection-timeout 600s ${SERVER_ARGS:-} \
  2>"$tmp/fulcrum.log" &
fpid=$!
pids+=($fpid)
for _ in $(seq 200); do [[ -s $tmp/port ]] && break; sleep 0.05; done
[[ -s $tmp/port ]] || die "the server did not start: $(tail -5 "$tmp/fulcrum.log")"
url="http://127.0.0.1:$(cat "$tmp/port")"
echo "== server: CA=$ca${ca_key:+ ($ca_key)} CT=$ct, $cores workers, log level $log_level; pid $fpid =="
head -1 "$tmp/requests.jsonl" | curl -fsS -o /dev/null -d @- "$url/api/v2/signingCert" ||
  die "the first request failed: $(tail -5 "$tmp/fulcrum.log")"
rss_start=$(rss_kib "$fpid" VmRSS)

loadgen() { # name args... -> output in $tmp/name.out, RESULT line in $result
  local name=$1
  shift
  "$build/fulcrum-loadgen" "$url" "$tmp/requests.jsonl" --connections "$conns" "$@" \
    >"$tmp/$name.out" 2>&1 || { cat "$tmp/$name.out"; die "fulcrum-loadgen failed ($name)"; }
  grep -v '^RESULT ' "$tmp/$name.out" | sed 's/^/  /'
  result=$(grep '^RESULT ' "$tmp/$name.out") || die "fulcrum-loadgen printed no RESULT ($name)"
  echo "  $result"
}

if ((warmup > 0)); then
  echo "== warm-up: full speed for $warmup s =="
  loadgen warmup --max --duration "$warmup"
fi

ramp=""
if ((auto_conns)); then
  echo "== connections: closed loop at 64, 128 and 256 connections, $ramp_seconds s each =="
  best=0
  declare -A ramp_rps
  for c in 64 128 256; do
    conns=$c
    loadgen "ramp$c" --max --duration "$ramp_seconds" >/dev/null
    ramp_rps[$c]=$(field rps <<<"$result")
    echo "  $c connections: ${ramp_rps[$c]} issuances/s"
    best=$(awk -v a="$best" -v b="${ramp_rps[$c]}" 'BEGIN {print (b > a ? b : a)}')
  done
  for c in 64 128 256; do
    if awk -v r="${ramp_rps[$c]}" -v b="$best" 'BEGIN {exit !(r >= 0.98 * b)}'; then
      conns=$c
      break
    fi
  done
  ramp="chosen: the fewest within 2 % of the best of 64/128/256 (${ramp_rps[64]}/${ramp_rps[128]}/${ramp_rps[256]} issuances/s)"
  echo "  $ramp: $conns"
fi

echo "== full speed: closed loop, $conns connections, $duration s =="
if [[ $perf == 1 ]]; then
  perf record -g -o "$tmp/perf.data" -p "$fpid" -- sleep "$((duration + 1))" 2>"$tmp/perf.log" &
  perf_pid=$!
  sleep 0.3
fi
metrics() { curl -fsS "http://127.0.0.1:$(cat "$tmp/metrics.port")/metrics" 2>/dev/null || true; }
metrics >"$tmp/metrics.0"
io0=$(io_written "$fpid")
cpu0=$(cpu_ticks "$fpid")
mach0=$(machine_ticks)
loadgen full --max --duration "$duration"
mach1=$(machine_ticks)
cpu1=$(cpu_ticks "$fpid")
read -r full_busy full_steal <<<"$(machine_use "$mach0" "$mach1")"
echo "  machine: $full_busy % busy (server, load generator, kernel), $full_steal % stolen by the hypervisor"
io1=$(io_written "$fpid")
metrics >"$tmp/metrics.1"
full=$result
rps=$(field rps <<<"$full")
ok=$(field ok <<<"$full")
server_cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')
cpu_us=$(awk -v t="$((cpu1 - cpu0))" -v hz="$hz" -v n="$ok" 'BEGIN {printf "%.0f", (n > 0 ? t / hz * 1e6 / n : 0)}')
rss_full=$(rss_kib "$fpid" VmRSS)

# The VM's speed drifts by a quarter within minutes: the floor is measured again right after the
# full-speed phase, and the ratio is taken against the mean of the two measurements.
echo "== floor again, right after full speed =="
"$build/fulcrum-floor" --seconds "$floor_seconds" --threads "$cores" --token "$floor_token" \
  --ca-key "$ca_key" --ct "$ct" >"$tmp/floor2.out" || die "fulcrum-floor failed"
floor_rps_after=$(field issuances_per_s <<<"$(grep '^FLOOR ' "$tmp/floor2.out")")
floor_rps_before=$floor_rps
floor_rps=$(awk -v a="$floor_rps_before" -v b="$floor_rps_after" 'BEGIN {printf "%.0f", (a + b) / 2}')
echo "  floor issuances/s: $floor_rps_before before, $floor_rps_after after, mean $floor_rps"

half=$(awk -v r="$rps" 'BEGIN {h = r / 2; printf "%.0f", h < 1 ? 1 : h}')
echo "== half load: open loop at $half/s (half the full speed), $duration s =="
mach0=$(machine_ticks)
loadgen half --rate "$half" --duration "$duration" --warmup 1
mach1=$(machine_ticks)
half_result=$result
read -r half_busy half_steal <<<"$(machine_use "$mach0" "$mach1")"
echo "  machine: $half_busy % busy (server, load generator, kernel), $half_steal % stolen by the hypervisor"

echo "== memory: $idle idle keep-alive connections held open, plus the load at $half/s, $duration s =="
rss_max=0
"$build/fulcrum-loadgen" "$url" "$tmp/requests.jsonl" --connections "$conns" --rate "$half" \
  --duration "$duration" --idle-connections "$idle" >"$tmp/idle.out" 2>&1 &
lg_pid=$!
while kill -0 "$lg_pid" 2>/dev/null; do
  r=$(rss_kib "$fpid" VmRSS)
  ((r > rss_max)) && rss_max=$r
  sleep 0.2
done
wait "$lg_pid" || { cat "$tmp/idle.out"; die "fulcrum-loadgen failed (idle)"; }
grep -v '^RESULT ' "$tmp/idle.out" | sed 's/^/  /'
idle_result=$(grep '^RESULT ' "$tmp/idle.out") || die "fulcrum-loadgen printed no RESULT (idle)"
echo "  $idle_result"
peak=$(rss_kib "$fpid" VmHWM)

if [[ $perf == 1 ]]; then
  wait "$perf_pid" || true
  echo "== perf: the server during the full-speed phase (top 40 symbols, no children) =="
  { perf report -i "$tmp/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' | head -40; } || true
  echo "  (call graphs: perf report -i $tmp/perf.data --no-children)"
fi
if [[ $ct == embedded ]]; then
  echo "== CT log after the run: $(curl -fsS "$url/ct/v1/get-sth" | head -c 200)"
fi

errors=$(($(field errors <<<"$full") + $(field errors <<<"$half_result") + $(field errors <<<"$idle_result")))
ratio=$(awk -v a="$rps" -v f="$floor_rps" 'BEGIN {printf "%.3f", (f > 0 ? a / f : 0)}')
echo "== summary: CA=$ca ($ca_key) CT=$ct KEYS=$keys tokens=$token_alg, $cores cores, $conns connections${ramp:+ ($ramp)} =="
printf '%-22s %s issuances/s (%s threads; mean of %s before and %s after full speed; %s us of CPU per issuance)\n' \
  "floor (OpenSSL):" "$floor_rps" "$cores" "$floor_rps_before" "$floor_rps_after" "$floor_us"
printf '%-22s %s issuances/s; ms p50 %s  p99 %s  p99.9 %s\n' "full speed:" "$rps" \
  "$(field p50_ms <<<"$full")" "$(field p99_ms <<<"$full")" "$(field p999_ms <<<"$full")"
printf '%-22s %s (%s%% of the floor)\n' "achieved/floor:" "$ratio" \
  "$(awk -v r="$ratio" 'BEGIN {printf "%.1f", r * 100}')"
printf '%-22s %s/s; ms p50 %s  p99 %s  p99.9 %s\n' "half load:" "$half" \
  "$(field p50_ms <<<"$half_result")" "$(field p99_ms <<<"$half_result")" \
  "$(field p999_ms <<<"$half_result")"
printf '%-22s full speed %s %% busy, %s %% stolen; half load %s %% busy, %s %% stolen (all cores)\n' \
  "machine:" "$full_busy" "$full_steal" "$half_busy" "$half_steal"
printf '%-22s %s s over the full-speed phase = %s us per issuance (floor %s us)\n' "server CPU:" \
  "$server_cpu" "$cpu_us" "$floor_us"
printf '%-22s %s us per request\n' "loadgen CPU:" "$(field cpu_us_per_req <<<"$full")"
disk_kib=$(awk -v b="$((io1 - io0))" -v n="$ok" 'BEGIN {printf "%.1f", (n > 0 ? b / n / 1024 : 0)}')
storage="$disk_kib KiB written to disk per issuance"
if [[ $ct == embedded ]]; then
  storage+=$(awk -v cn="$(delta fulcrum_ct_log_batch_entries_count)" \
    -v cs="$(delta fulcrum_ct_log_batch_entries_sum)" -v ms="$(delta fulcrum_ct_log_commit_seconds_sum)" \
    -v ws="$(delta fulcrum_ct_submit_seconds_sum)" -v wn="$(delta fulcrum_ct_submit_seconds_count)" \
    'BEGIN {if (cn > 0 && wn > 0) printf "; CT log: %.1f entries per commit, %.2f ms per commit, a submission waits %.2f ms", cs / cn, ms / cn * 1000, ws / wn * 1000}')
fi
storage+=$(awk -v an="$(delta fulcrum_audit_batch_records_count)" \
  -v as="$(delta fulcrum_audit_batch_records_sum)" -v ss="$(delta fulcrum_audit_sync_seconds_sum)" \
  -v sn="$(delta fulcrum_audit_sync_seconds_count)" \
  'BEGIN {if (an > 0 && sn > 0) printf "; audit log: %.1f records per sync, %.2f ms per sync", as / an, ss / sn * 1000}')
printf '%-22s %s\n' "storage (full speed):" "$storage"
printf '%-22s %s MiB at start, %s after full speed, %s with %s idle connections + load; peak %s (VmHWM)\n' \
  "server RSS:" "$(mib "$rss_start")" "$(mib "$rss_full")" "$(mib "$rss_max")" "$idle" "$(mib "$peak")"
printf '%-22s %s\n' "errors:" "$errors"
echo "BENCH rps=$rps floor_rps=$floor_rps floor_rps_before=$floor_rps_before" \
  "floor_rps_after=$floor_rps_after ratio=$ratio p99_ms=$(field p99_ms <<<"$full")" \
  "p99_half_ms=$(field p99_ms <<<"$half_result") cpu_us_per_issuance=$cpu_us floor_us=$floor_us" \
  "disk_kib_per_issuance=$disk_kib connections=$conns" \
  "rss_idle_mib=$(mib "$rss_max") peak_rss_mib=$(mib "$peak")" \
  "busy_full_pct=$full_busy steal_full_pct=$full_steal busy_half_pct=$half_busy" \
  "steal_half_pct=$half_steal errors=$errors"
