#!/usr/bin/env bash
# tests/pkcs11_fault/test_fault_module.sh: the fault-injecting PKCS#11 module on a SoftHSM2 token
# in a temp dir, driven by opensc's pkcs11-tool (every fault shows up as the expected CKR in its
# output, `clear` brings signing back, signatures checked by openssl), then by
# fulcrum-pkcs11-fault-check for what needs one process (counts, log-out state, threads).
#
# Environment (set by ctest): FULCRUM_PKCS11_FAULT_MODULE (the .so), FULCRUM_PKCS11_FAULT_CHECK
# (the checker), FULCRUM_SOFTHSM2_MODULE (real module; empty = the module's built-in default).
set -u

MODULE=${FULCRUM_PKCS11_FAULT_MODULE:?set FULCRUM_PKCS11_FAULT_MODULE (run through ctest)}
CHECKER=${FULCRUM_PKCS11_FAULT_CHECK:?set FULCRUM_PKCS11_FAULT_CHECK (run through ctest)}
for tool in softhsm2-util pkcs11-tool openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-pkcs11-fault-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$tmp" >"$tmp/softhsm2.conf"
export SOFTHSM2_CONF="$tmp/softhsm2.conf"
export FULCRUM_PKCS11_FAULT_CONTROL="$tmp/control"
export FULCRUM_PKCS11_FAULT_STATS="$tmp/stats"
if [ -n "${FULCRUM_SOFTHSM2_MODULE:-}" ]; then
  export FULCRUM_PKCS11_FAULT_TARGET="$FULCRUM_SOFTHSM2_MODULE"
fi
LABEL=fulcrum-fault PIN=1234

passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; [ -f "$tmp/out" ] && sed 's/^/    | /' "$tmp/out"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

# Replaces the control file by rename (a new inode, so the module always sees the change).
control() { printf '%s\n' "$1" >"$tmp/control.tmp" && mv "$tmp/control.tmp" "$tmp/control"; }
stat_of() { sed -n "s/^$1=//p" "$tmp/stats"; }
p11() { pkcs11-tool --module "$MODULE" --token-label "$LABEL" "$@"; }
sign() { p11 --login --pin "$PIN" --sign --mechanism ECDSA --id 01 -i "$tmp/data" -o "$tmp/sig" \
  --signature-format openssl >"$tmp/out" 2>&1; }
verify() { openssl pkeyutl -verify -pubin -inkey "$tmp/pub.der" -keyform DER -in "$tmp/data" \
  -sigfile "$tmp/sig" >/dev/null 2>&1; }
ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- token and key, made through the fault module ------------------------------------------
softhsm2-util --init-token --free --label "$LABEL" --pin "$PIN" --so-pin 5678 >"$tmp/out" 2>&1 ||
  { bad "softhsm2-util --init-token"; exit 1; }
p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01 --label fault-key \
  >"$tmp/out" 2>&1 || { bad "key pair generation through the module"; exit 1; }
p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 02 --label fault-rsa \
  >"$tmp/out" 2>&1 || { bad "RSA key pair generation through the module"; exit 1; }
p11 --read-object --type pubkey --id 01 -o "$tmp/pub.der" >"$tmp/out" 2>&1 ||
  { bad "public key export"; exit 1; }
printf 'fulcrum pkcs11 fault module test' | openssl dgst -sha256 -binary >"$tmp/data"

control "clear"
check "baseline sign" sign
check "baseline signature verifies" verify
check "stats: signs_ok=1 logins_ok=1" test "$(stat_of signs_ok)/$(stat_of logins_ok)" = 1/1

# ---- each fault: expected CKR in pkcs11-tool's output, then clear and sign again --------------
# control line | function named in the error | CKR
while IFS='|' read -r line fn ckr; do
  control "$line"
  rm -f "$tmp/sig"
  if sign; then
    bad "'$line': sign succeeded"
  elif grep -q "function $fn failed: rv = $ckr " "$tmp/out"; then
    ok
  else
    bad "'$line': want '$fn failed: rv = $ckr' in pkcs11-tool's output"
  fi
  control "clear"
  check "'$line' then clear: sign works" sign
  check "'$line' then clear: signature verifies" verify
done <<'EOF'
sign_error=session_lost at=init|C_SignInit|CKR_SESSION_HANDLE_INVALID
sign_error=session_lost at=sign,update|C_SignUpdate|CKR_SESSION_HANDLE_INVALID
sign_error=device_error until_cleared at=init|C_SignInit|CKR_DEVICE_ERROR
sign_error=not_logged_in at=init|C_SignInit|CKR_USER_NOT_LOGGED_IN
login_error=device_error|C_Login|CKR_DEVICE_ERROR
open_session_error=device_error|C_OpenSession|CKR_DEVICE_ERROR
find_error=device_error|C_FindObjectsInit|CKR_DEVICE_ERROR
find_error=session_lost at=find|C_FindObjects|CKR_SESSION_HANDLE_INVALID
EOF

# pkcs11-tool tries C_Sign first and falls back to C_SignUpdate, which the token refuses because
# the injected C_Sign failure ended the operation, as a real failure does.
control "sign_error=device_error count=1"
sign
check "C_Sign failure ends the real operation" grep -q "C_SignUpdate failed: rv = CKR_OPERATION_NOT_INITIALIZED" "$tmp/out"
check "stats: one injected sign failure" test "$(stat_of signs_injected)" = 1

# logout: pkcs11-tool logs in, which ends the logged-out state, so signing works.
control "logout"
check "logout then C_Login: sign works" sign
check "stats: logged in again" test "$(stat_of logged_out)/$(stat_of logins_ok)" = 0/1

# corrupted signature: success as far as PKCS#11 goes, rejected by openssl.
control "corrupt_signature count=1"
check "corrupt: pkcs11-tool reports success" sign
if verify; then bad "corrupted signature verified"; else ok; fi
check "stats: signs_corrupted=1" test "$(stat_of signs_corrupted)" = 1
control "clear"
check "after clear: sign" sign
check "after clear: signature verifies" verify

# delay
control "delay_ms=1500"
t0=$(ms); sign; rc=$?; t1=$(ms)
check "delay_ms=1500: sign works" test $rc -eq 0
check "delay_ms=1500: took $((t1 - t0)) ms" test $((t1 - t0)) -ge 1500
control "clear"
t0=$(ms); sign; t1=$(ms)
check "after clear: sign took $((t1 - t0)) ms (< 1000)" test $((t1 - t0)) -lt 1000

# a bad control line is reported and ignored; the good one next to it applies
control "$(printf 'no_such_command=1\nsign_error=device_error at=init')"
sign
check "bad control line ignored, good one applied" grep -q "C_SignInit failed: rv = CKR_DEVICE_ERROR" "$tmp/out"
check "bad control line reported" grep -q "control file line 1 ignored: unknown command 'no_such_command=1'" "$tmp/out"
control "clear"

rm -f "$tmp/out"
echo "pkcs11-tool checks: $passed passed, $failed failed"

# ---- in-process checks -----------------------------------------------------------------------
"$CHECKER" "$MODULE" "$LABEL" "$PIN"
crc=$?
[ $crc -eq 0 ] || failed=$((failed + 1))
[ $failed -eq 0 ]
