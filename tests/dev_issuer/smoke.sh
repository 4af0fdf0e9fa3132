#!/usr/bin/env bash
# tests/dev_issuer/smoke.sh [BIN]: end-to-end check of fulcrum-dev-issuer.
#
# Starts it on 127.0.0.1 port 0 with a key dir, mints RS256 and ES256 tokens (and every kind of
# deliberately bad one), verifies them independently (node:crypto against the published JWKS via
# jwt_check.mjs, and `openssl dgst -verify` against the stored RSA key), checks discovery, JWKS,
# /stats and /control (non-blocking delay, injected statuses, JWKS padding, redirects, rotation,
# reset), tenants under /t/<name> (own issuer URL, per-tenant counters), TLS with a private CA
# made here by openssl, a restart with the same key dir, the loopback-only refusal, and exit
# status 0 on SIGTERM.
#
# BIN defaults to $FULCRUM_DEV_ISSUER_BIN, then build/fulcrum-dev-issuer. Needs curl, node, openssl.
# Last line: "N passed, N failed"; exit status 0 only if nothing failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:-${FULCRUM_DEV_ISSUER_BIN:-$here/../../build/fulcrum-dev-issuer}}
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
for tool in curl node openssl; do
  command -v "$tool" >/dev/null || { echo "smoke: $tool is needed" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "smoke: $bin is not an executable (build it first)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-dev-issuer-smoke-XXXXXX")
pid= url= pass=0 fail=0
cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$fail" -ne 0 ] || [ "$status" -ne 0 ]; then
    for f in "$work"/*.stderr; do [ -s "$f" ] && { echo "----- ${f##*/}" >&2; tail -c 8192 "$f" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

check() { # check WHAT COMMAND...
  local what=$1
  shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $what" >&2; fi
}
eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }' || { echo "  $1 is not < $2" >&2; return 1; }; }
js() { local j=$1 e=$2; shift 2; node -p "const d = JSON.parse(process.argv[1]); $e" "$j" "$@"; } # js JSON EXPR [ARGS]
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
mint() { curl -fsS "$url/token${1:+?$1}"; }
info() { node "$here/jwt_check.mjs" "$work/jwks.json" "$1"; } # token -> verdict JSON

start() { # start NAME ARGS...: sets pid and url
  local name=$1 i
  shift
  "$bin" "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" </dev/null &
  pid=$!
  for ((i = 0; i < 200; i++)); do
    grep -q '^ready https\{0,1\}://127\.0\.0\.1:[0-9]*$' "$work/$name.stdout" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "smoke: $name exited before it was ready" >&2; return 1; }
    sleep 0.05
  done
  url=$(sed -n 's/^ready //p' "$work/$name.stdout")
  [ -n "$url" ] || { echo "smoke: $name never printed its ready line" >&2; return 1; }
}

stop() { # stop: SIGTERM, returns the exit status
  local status=0
  kill -TERM "$pid"
  wait "$pid" || status=$?
  pid=
  return "$status"
}

# ---- start ----------------------------------------------------------------------------------
start issuer --host 127.0.0.1 --port 0 --port-file "$work/port" --key-dir "$work/keys"
check "port file holds the ready line's port" eq "http://127.0.0.1:$(cat "$work/port")" "$url"
check "key files are mode 0600" eq "$(stat -c %a "$work/keys/rsa.pem") $(stat -c %a "$work/keys/ec.pem")" "600 600"

# ---- discovery and JWKS ---------------------------------------------------------------------
disc=$(curl -fsS "$url/.well-known/openid-configuration")
check "discovery issuer" eq "$(js "$disc" d.issuer)" "$url"
check "discovery jwks_uri" eq "$(js "$disc" d.jwks_uri)" "$url/jwks"
check "discovery algs" eq "$(js "$disc" 'd.id_token_signing_alg_values_supported.join()')" "RS256,ES256"
curl -fsS "$(js "$disc" d.jwks_uri)" >"$work/jwks.json"
jwks=$(cat "$work/jwks.json")
check "jwks keys" eq "$(js "$jwks" 'd.keys.map(k => [k.kid, k.kty, k.alg, k.use, k.crv].join("/")).join(" ")')" \
  "dev-rsa-1/RSA/RS256/sig/ dev-ec-1/EC/ES256/sig/P-256"
check "RSA modulus is 2048 bits, e = 65537" eq "$(js "$jwks" 'Buffer.from(d.keys[0].n, "base64url").length + "/" + d.keys[0].e')" "256/AQAB"
check "EC x, y are 32 bytes" eq "$(js "$jwks" '[d.keys[1].x, d.keys[1].y].map(v => Buffer.from(v, "base64url").length).join()')" "32,32"
check "jwks Content-Type" eq "$(curl -fsS -o /dev/null -w '%{content_type}' "$url/jwks")" "application/json"

# ---- good tokens ----------------------------------------------------------------------------
rs=$(mint)
v=$(info "$rs")
check "RS256 default token verifies (node)" eq "$(js "$v" d.sig)" valid
check "RS256 header" eq "$(js "$v" 'JSON.stringify(d.header)')" '{"alg":"RS256","typ":"JWT","kid":"dev-rsa-1"}'
check "RS256 default claims" eq "$(js "$v" '[d.payload.iss, d.payload.sub, d.payload.aud, d.payload.email, d.payload.email_verified, d.payload.exp - d.payload.iat, "nbf" in d.payload].join()')" \
  "$url,dev-subject,sigstore,dev@fulcrum.test,true,300,false"
check "iat is now" lt "$(js "$v" 'Math.abs(d.payload.iat - Date.now() / 1000)')" 5
# openssl against the key stored in --key-dir, on the exact signing input
printf '%s' "${rs%.*}" >"$work/input"
printf '%s' "${rs##*.}" | tr '_-' '/+' | awk '{ n = length($0) % 4; if (n) $0 = $0 substr("===", 1, 4 - n); print }' |
  openssl base64 -d -A >"$work/sig"
openssl pkey -in "$work/keys/rsa.pem" -pubout -out "$work/rsa.pub" 2>/dev/null
osslverify() { openssl dgst -sha256 -verify "$work/rsa.pub" -signature "$work/sig" "$work/input" >/dev/null; }
check "RS256 verifies (openssl dgst)" osslverify
check "token response has no trailing newline" [ -n "$(mint | tail -c 1)" ]
check "token Content-Type" eq "$(curl -fsS -o /dev/null -w '%{content_type}' "$url/token")" "text/plain; charset=utf-8"

es=$(mint 'alg=ES256&email=bob%40example.com&sub=bob&aud=sigstore,other&exp_in=3600&nbf_in=-5')
v=$(info "$es")
check "ES256 token verifies (node, r||s)" eq "$(js "$v" d.sig)" valid
check "ES256 signature is 64 bytes" eq "$(js "$v" d.sig_len)" 64
check "ES256 header kid" eq "$(js "$v" d.header.kid)" dev-ec-1
check "ES256 claims" eq "$(js "$v" '[d.payload.email, d.payload.sub, JSON.stringify(d.payload.aud), d.payload.exp - d.payload.iat, d.payload.nbf - d.payload.iat].join()')" \
  'bob@example.com,bob,["sigstore","other"],3600,-5'
v=$(info "$(mint 'email=a+b@example.com')")
check "'+' in a query string stays '+'" eq "$(js "$v" d.payload.email)" "a+b@example.com"

# ---- deliberately bad tokens ----------------------------------------------------------------
v=$(info "$(mint 'tamper=1')")
check "tamper=1: signature no longer matches" eq "$(js "$v" d.sig)" invalid
check "tamper=1: payload still JSON, sub changed" eq "$(js "$v" d.payload.sub)" "Dev-subject"
v=$(info "$(mint 'alg=ES256&tamper=1')")
check "tamper=1 ES256" eq "$(js "$v" d.sig)" invalid
v=$(info "$(mint 'key=other')")
check "key=other RS256: published kid, bad signature" eq "$(js "$v" 'd.header.kid + "/" + d.sig')" "dev-rsa-1/invalid"
v=$(info "$(mint 'key=other&alg=ES256')")
check "key=other ES256: published kid, bad signature" eq "$(js "$v" 'd.header.kid + "/" + d.sig')" "dev-ec-1/invalid"
v=$(info "$(mint 'alg=none')")
check "alg=none: RS256 signature, only the alg is wrong" eq "$(js "$v" 'd.header.alg + "/" + d.header.kid + "/" + d.sig')" "none/dev-rsa-1/none+rs256"
t=$(mint 'alg=none&sig=empty')
v=$(info "$t")
check "alg=none&sig=empty: empty signature" eq "$(js "$v" 'd.header.alg + "/" + d.sig')" "none/none"
check "alg=none&sig=empty token ends with '.'" eq "${t: -1}" "."
check "sig=empty on RS256" eq "$(mint 'sig=empty' | tr -dc . | wc -c)/$(mint 'sig=empty' | tail -c 1)" "2/."
v=$(info "$(mint 'alg=HS256-PEM')")
check "HS256-PEM: HMAC keyed with the RSA public PEM" eq "$(js "$v" 'd.header.alg + "/" + d.header.kid + "/" + d.sig')" "HS256/dev-rsa-1/hs256-pem"
v=$(info "$(mint 'kid=absent')")
check "kid=absent" eq "$(js "$v" '"kid" in d.header')" false
v=$(info "$(mint 'kid=no-such-kid')")
check "kid given" eq "$(js "$v" d.header.kid)" no-such-kid
v=$(info "$(mint 'exp_in=-60')")
check "exp_in=-60" eq "$(js "$v" 'd.payload.exp - d.payload.iat + "/" + d.sig')" "-60/valid"
v=$(info "$(mint 'iss=http://127.0.0.1:1&aud=not-sigstore')")
check "iss and aud overrides" eq "$(js "$v" 'd.payload.iss + " " + d.payload.aud')" "http://127.0.0.1:1 not-sigstore"
for ev in 'false:false' 'absent:undefined' 'True:"True"' 'yes:"yes"' 'true:true'; do
  v=$(info "$(mint "email_verified=${ev%%:*}")")
  check "email_verified=${ev%%:*}" eq "$(js "$v" 'JSON.stringify(d.payload.email_verified) ?? "undefined"')" "${ev#*:}"
done
v=$(info "$(mint 'omit=email,email_verified')")
check "omit removes claims" eq "$(js "$v" '"email" in d.payload || "email_verified" in d.payload')" false

# ---- POST -----------------------------------------------------------------------------------
t=$(curl -fsS -H 'Content-Type: application/json' \
  -d '{"email":"gh@example.com","email_verified":false,"aud":["x"],"exp_in":60,"claims":{"repository":"o/r","sub":"repo:o/r","nested":{"a":[1,2]}},"header":{"typ":"at+jwt"}}' \
  "$url/token")
v=$(info "$t")
check "POST JSON: signature" eq "$(js "$v" d.sig)" valid
check "POST JSON: claims merged over the defaults" eq "$(js "$v" '[d.payload.sub, d.payload.repository, JSON.stringify(d.payload.nested), JSON.stringify(d.payload.aud), d.payload.email_verified, d.payload.email].join()')" \
  'repo:o/r,o/r,{"a":[1,2]},["x"],false,gh@example.com'
check "POST JSON: header merged" eq "$(js "$v" 'd.header.typ + "/" + d.header.alg')" "at+jwt/RS256"
v=$(info "$(curl -fsS -d 'email=form+user%40example.com&alg=ES256' "$url/token")")
check "POST form body ('+' is a space)" eq "$(js "$v" 'd.payload.email + "/" + d.sig')" "form user@example.com/valid"
big=$(head -c 120000 /dev/zero | tr '\0' x)
t=$(printf '{"claims":{"padding":"%s"}}' "$big" | curl -fsS -H 'Content-Type: application/json' --data-binary @- "$url/token")
check "POST JSON: >100 KiB token" lt 120000 "${#t}"

# ---- bad requests ---------------------------------------------------------------------------
check "unknown parameter -> 400" eq "$(code "$url/token?emial=x")" 400
check "unknown alg -> 400" eq "$(code "$url/token?alg=PS256")" 400
check "bad sig -> 400" eq "$(code "$url/token?sig=x")" 400
check "bad exp_in -> 400" eq "$(code "$url/token?exp_in=soon")" 400
check "bad %-escape -> 400" eq "$(code "$url/token?email=%zz")" 400
check "bad JSON body -> 400" eq "$(code -H 'Content-Type: application/json' -d '{"email":' "$url/token")" 400
check "unknown path -> 404" eq "$(code "$url/nope")" 404
check "DELETE /token -> 405" eq "$(code -X DELETE "$url/token")" 405

# ---- stats and control ----------------------------------------------------------------------
stats=$(curl -fsS "$url/stats")
check "stats discovery/jwks counts" eq "$(js "$stats" 'd.discovery_fetches + "/" + d.jwks_fetches')" "1/2"
mint >/dev/null; mint 'alg=ES256' >/dev/null; code "$url/token?alg=bad" >/dev/null
check "stats: +2 tokens minted (not the refused one)" eq "$(js "$(curl -fsS "$url/stats")" 'd.tokens_minted - JSON.parse(process.argv[2]).tokens_minted' "$stats")" 2

check "control: jwks delay" eq "$(code -d '{"jwks_delay_ms":1500}' "$url/control")" 200
curl -s -o "$work/slow.json" -w '%{time_total}' "$url/jwks" >"$work/slow.time" &
slow=$!
sleep 0.2
fast=$(curl -s -o "$work/fast.tok" -w '%{time_total}' "$url/token")
check "other requests are served during a JWKS delay" lt "$fast" 0.5
check "  ... and the token is good" eq "$(js "$(info "$(cat "$work/fast.tok")")" d.sig)" valid
wait "$slow"
check "the delayed JWKS took >= 1.4 s" lt 1.4 "$(cat "$work/slow.time")"
check "the delayed JWKS is the JWKS" eq "$(cat "$work/slow.json")" "$jwks"

curl -fsS -o /dev/null -d '{"jwks_delay_ms":0,"jwks_status":503,"discovery_status":500}' "$url/control"
check "injected JWKS status" eq "$(code "$url/jwks")" 503
check "injected discovery status" eq "$(code "$url/.well-known/openid-configuration")" 500
check "control rejects unknown names" eq "$(code -d '{"jwks_stat":1}' "$url/control")" 400
check "control rejects a bad status" eq "$(code -d '{"jwks_status":42}' "$url/control")" 400
state=$(curl -fsS -d '{"reset":true}' "$url/control")
check "reset restores the defaults" eq "$(js "$state" '[d.jwks_delay_ms, d.discovery_delay_ms, d.jwks_status, d.discovery_status].join()')" "0,0,200,200"
check "after reset JWKS is 200" eq "$(code "$url/jwks")" 200

state=$(curl -fsS -d '{"rotate":true}' "$url/control")
check "rotate: new kids" eq "$(js "$state" 'd.kids.join()')" "dev-rsa-2,dev-ec-2"
rotated=$(curl -fsS "$url/jwks")
check "rotate: JWKS holds only the new keys" eq "$(js "$rotated" 'd.keys.map(k => k.kid).join()')" "dev-rsa-2,dev-ec-2"
v=$(info "$(mint)")
check "after rotation, old JWKS does not verify a new token" eq "$(js "$v" 'd.header.kid + "/" + d.sig')" "dev-rsa-2/no-key"
printf '%s' "$rotated" >"$work/jwks.json"
v=$(info "$(mint 'alg=ES256')")
check "after rotation, new JWKS verifies a new token" eq "$(js "$v" 'd.header.kid + "/" + d.sig')" "dev-ec-2/valid"
printf '%s' "$jwks" >"$work/jwks.json"

# ---- padding, redirects ---------------------------------------------------------------------
curl -fsS -o /dev/null -d '{"jwks_pad_bytes":200000}' "$url/control"
curl -fsS "$url/jwks" >"$work/padded.json"
check "jwks_pad_bytes: the JWKS is exactly that big" eq "$(wc -c <"$work/padded.json")" 200000
check "jwks_pad_bytes: still the same JSON" eq "$(node -p 'JSON.stringify(JSON.parse(require("fs").readFileSync(process.argv[1])))' "$work/padded.json")" "$(js "$rotated" 'JSON.stringify(d)')"
check "control rejects a bad pad" eq "$(code -d '{"jwks_pad_bytes":-1}' "$url/control")" 400
state=$(curl -fsS -d '{"jwks_pad_bytes":0,"jwks_redirect":"http://localhost:1/jwks","discovery_redirect":"http://localhost:1/d"}' "$url/control")
check "control state shows the redirects" eq "$(js "$state" 'd.jwks_redirect + " " + d.discovery_redirect')" "http://localhost:1/jwks http://localhost:1/d"
check "jwks_redirect: 302 with Location" eq "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$url/jwks")" "302 http://localhost:1/jwks"
check "discovery_redirect: 302 with Location" eq "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$url/.well-known/openid-configuration")" "302 http://localhost:1/d"
check "a request with a query string is never redirected" eq "$(code "$url/jwks?x")" 200
check "control rejects a redirect that is not a URL" eq "$(code -d '{"jwks_redirect":"ftp://x"}' "$url/control")" 400
check "control rejects a redirect with a space" eq "$(code -d '{"jwks_redirect":"http://x/ y"}' "$url/control")" 400
state=$(curl -fsS -d '{"jwks_redirect":""}' "$url/control")
check "\"\" clears one redirect" eq "$(js "$state" 'd.jwks_redirect + "|" + d.discovery_redirect')" "|http://localhost:1/d"
state=$(curl -fsS -d '{"jwks_pad_bytes":5000,"reset":true}' "$url/control")
check "reset clears redirects (a pad in the same request still applies)" eq "$(js "$state" 'd.discovery_redirect + "|" + d.jwks_pad_bytes')" "|5000"
curl -fsS -o /dev/null -d '{"reset":true}' "$url/control"
check "reset clears the pad" eq "$(curl -fsS "$url/jwks")" "$rotated"

# ---- tenants --------------------------------------------------------------------------------
before=$(curl -fsS "$url/stats")
disc=$(curl -fsS "$url/t/acme-1_x/.well-known/openid-configuration")
check "tenant discovery issuer" eq "$(js "$disc" 'd.issuer + " " + d.jwks_uri + " " + d.token_endpoint')" \
  "$url/t/acme-1_x $url/t/acme-1_x/jwks $url/t/acme-1_x/token"
check "tenant JWKS = the same keys" eq "$(curl -fsS "$url/t/acme-1_x/jwks")" "$rotated"
printf '%s' "$rotated" >"$work/jwks.json"
v=$(info "$(curl -fsS "$url/t/acme-1_x/token?alg=ES256")")
check "tenant token: iss is the tenant, signature good" eq "$(js "$v" 'd.payload.iss + " " + d.sig')" "$url/t/acme-1_x valid"
printf '%s' "$jwks" >"$work/jwks.json"
curl -fsS -o /dev/null "$url/t/other/jwks"
stats=$(curl -fsS "$url/stats")
check "stats per tenant" eq "$(js "$stats" 'JSON.stringify(d.tenants)')" \
  '{"acme-1_x":{"discovery_fetches":1,"jwks_fetches":1,"tokens_minted":1},"other":{"discovery_fetches":0,"jwks_fetches":1,"tokens_minted":0}}'
check "stats totals include the tenants" eq "$(js "$stats" '[d.discovery_fetches, d.jwks_fetches, d.tokens_minted].join()' )" \
  "$(js "$before" '[d.discovery_fetches + 1, d.jwks_fetches + 2, d.tokens_minted + 1].join()')"
for bad in /t/ /t/a.b/jwks /t/a/b/jwks /t/acme/stats "/t/$(head -c 65 /dev/zero | tr '\0' a)/jwks"; do
  check "tenant path $bad -> 404" eq "$(code "$url$bad")" 404
done

# ---- TLS ------------------------------------------------------------------------------------
tls=$work/tls
mkdir "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" \
  -subj /CN=smoke-ca -days 1 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls/srv.key" -out "$tls/srv.csr" \
  -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 1 \
  -extfile "$tls/ext" -out "$tls/srv.pem" 2>/dev/null
plain_pid=$pid plain_url=$url
start tls --port 0 --key-dir "$work/keys" --tls-cert "$tls/srv.pem" --tls-key "$tls/srv.key"
check "TLS: ready line is https" eq "${url%%:*}" https
disc=$(curl -fsS --cacert "$tls/ca.pem" "$url/t/x/.well-known/openid-configuration")
check "TLS: discovery over https with the private CA" eq "$(js "$disc" 'd.issuer + " " + d.jwks_uri')" "$url/t/x $url/t/x/jwks"
check "TLS: same keys from the key dir" eq "$(curl -fsS --cacert "$tls/ca.pem" "$url/jwks")" "$jwks"
v=$(info "$(curl -fsS --cacert "$tls/ca.pem" "$url/token")")
check "TLS: token iss is the https URL" eq "$(js "$v" 'd.payload.iss + " " + d.sig')" "$url valid"
status=0
curl -sS -o /dev/null "$url/jwks" 2>"$work/notrust.err" || status=$?
check "TLS: without the CA the handshake fails (curl 60)" eq "$status" 60
check "TLS: plain http to the TLS port fails" eq "$(code "http://${url#https://}/jwks")" 000
status=0
stop || status=$?
check "TLS: exit status 0 on SIGTERM" eq "$status" 0
pid=$plain_pid url=$plain_url
"$bin" --port 0 --tls-cert "$tls/srv.pem" >"$work/half.stdout" 2>"$work/half.err" </dev/null && status=0 || status=$?
check "--tls-cert without --tls-key is refused" eq "$status/$(cat "$work/half.stdout")" "2/"
"$bin" --port 0 --tls-cert "$tls/ca.pem" --tls-key "$tls/srv.key" >"$work/mismatch.stdout" 2>"$work/mismatch.err" </dev/null && status=0 || status=$?
check "a certificate that does not match the key is refused" eq "$status/$(cat "$work/mismatch.stdout")" "1/"

# ---- stop, restart with the same keys, no key dir, loopback only ----------------------------
status=0
stop || status=$?
check "exit status 0 on SIGTERM" eq "$status" 0
start issuer2 --port 0 --key-dir "$work/keys"
check "restart with --key-dir publishes the same keys" eq "$(curl -fsS "$url/jwks")" "$jwks"
curl -fsS -o /dev/null -d '{"jwks_delay_ms":5000}' "$url/control"
curl -s -o /dev/null "$url/jwks" &
held=$!
sleep 0.2
status=0
stop || status=$?
check "exit status 0 on SIGTERM while a delayed request is held" eq "$status" 0
wait "$held" || true
start issuer3 --port 0
v=$(js "$(curl -fsS "$url/jwks")" 'd.keys[0].n')
check "without --key-dir: fresh keys" [ "$v" != "$(js "$jwks" 'd.keys[0].n')" ]
kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=
check "exit status 0 on SIGINT" eq "$status" 0

for host in 0.0.0.0 192.0.2.1 example.com ::; do
  status=0
  "$bin" --host "$host" --port 0 >"$work/refuse.stdout" 2>"$work/refuse.err" </dev/null || status=$?
  check "refuses --host $host" eq "$status/$(cat "$work/refuse.stdout")" "2/"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
