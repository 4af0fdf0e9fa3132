#!/usr/bin/env bash
# scripts/softhsm-ca.sh: a private SoftHSM2 token holding a Fulcrum CA, made once and reused.
# Sourced by scripts/run-dev and bench/run.sh:
#   softhsm_ca_setup DIR BUILD_DIR
# DIR gets softhsm2.conf (exported as SOFTHSM2_CONF), tokens/, random user and SO PINs (0600),
# crypto11.json and root.pem; on return p11_config and p11_pin name the files `fulcrum serve
# --ca pkcs11ca` needs (--pkcs11-config-path, --pkcs11-pin-file, --hsm-caroot-id fulcrum-root).
#   FULCRUM_PKCS11_MODULE  the PKCS#11 module (default: Debian's /usr/lib/softhsm/libsofthsm2.so,
#                          else wherever the libsofthsm2 package put it)
softhsm_ca_setup() {
  local dir=$1 build=$2
  local module=${FULCRUM_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
  if [[ ! -r $module && -z ${FULCRUM_PKCS11_MODULE:-} ]]; then
    module=$(dpkg -L libsofthsm2 2>/dev/null | grep '/libsofthsm2\.so$' | head -1 || true)
  fi
  if [[ -z $module || ! -r $module ]]; then
    echo "softhsm-ca: no SoftHSM2 module (install softhsm2, or set FULCRUM_PKCS11_MODULE)" >&2
    return 1
  fi
  mkdir -p "$dir/tokens"
  chmod 700 "$dir"
  export SOFTHSM2_CONF=$dir/softhsm2.conf
  cat > "$SOFTHSM2_CONF" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
  p11_config=$dir/crypto11.json
  p11_pin=$dir/user.pin
  printf '{"Path": "%s", "TokenLabel": "fulcrum"}\n' "$module" > "$p11_config"
  if [[ ! -s $p11_pin ]]; then
    (umask 077
     od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$p11_pin"
     od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$dir/so.pin")
  fi
  if ! softhsm2-util --show-slots 2>/dev/null | grep -q 'Label:[[:space:]]*fulcrum[[:space:]]*$'; then
    echo "softhsm-ca: creating the SoftHSM2 token \"fulcrum\" in $dir/tokens"
    softhsm2-util --init-token --free --label fulcrum --pin "$(cat "$p11_pin")" \
      --so-pin "$(cat "$dir/so.pin")" >/dev/null
    rm -f "$dir/root.pem"
  fi
  if [[ ! -s $dir/root.pem ]]; then
    echo "softhsm-ca: creating the CA in the token (fulcrum createca)"
    "$build/fulcrum" createca --pkcs11-config-path "$p11_config" --pkcs11-pin-file "$p11_pin" \
      --hsm-caroot-id fulcrum-root --org "Fulcrum Development" \
      --common-name "Fulcrum Development Root" --out "$dir/root.pem" \
      >/dev/null 2>"$dir/createca.log" || {
      echo "softhsm-ca: createca failed; see $dir/createca.log" >&2
      return 1
    }
  fi
}
