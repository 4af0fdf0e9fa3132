#!/usr/bin/env bash
# Checks the systemd units in systemd/ (and every example drop-in in systemd/examples/):
#  - `systemd-analyze verify` accepts them without a single warning (it exits 0 on unknown keys
#    and bad values, only printing them, so any output fails the check);
#  - `systemd-analyze security --offline=yes` rates each service 2.0 or lower ("OK" or better);
#  - every flag a unit or an example passes to fulcrum is one that `fulcrum ... --help` lists.
# verify needs the ExecStart= binary to exist: the units are checked as temporary copies whose
# /usr/local/bin/fulcrum is replaced by the binary under test.
# Usage: check_units.sh <source dir> <fulcrum binary>
set -euo pipefail

src=${1:?usage: check_units.sh <source dir> <fulcrum binary>}
bin=${2:?usage: check_units.sh <source dir> <fulcrum binary>}
max_exposure=2.0
units=(fulcrum.socket fulcrum.service fulcrum-ctlog.socket fulcrum-ctlog.service)
services=(fulcrum.service fulcrum-ctlog.service)

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "FAIL: systemd-analyze not found (Debian package systemd; scripts/install-deps installs it)"
  exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[[ -x "$bin" ]] || { echo "FAIL: $bin is not executable"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-units-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# A unit directory: the units with the binary under test, plus the given drop-ins.
make_dir() {
  local dir=$1; shift
  rm -rf "$dir"
  mkdir -p "$dir"
  for u in "${units[@]}"; do
    sed "s#/usr/local/bin/fulcrum#$bin#g" "$src/systemd/$u" > "$dir/$u"
  done
  for d in "$@"; do
    mkdir -p "$dir/fulcrum.service.d"
    cp "$d" "$dir/fulcrum.service.d/"
  done
}

verify() { # name dir
  local name=$1 dir=$2 out rc=0
  out=$(cd "$dir" && SYSTEMD_UNIT_PATH="$dir:" systemd-analyze verify --man=no "${units[@]/#/$dir/}" 2>&1) || rc=$?
  if [[ $rc -eq 0 && -z "$out" ]]; then
    pass "verify $name"
  else
    fail "verify $name (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

security() { # name dir service
  local name=$1 dir=$2 svc=$3 out score
  out=$(cd "$dir" && SYSTEMD_UNIT_PATH="$dir:" systemd-analyze security --offline=yes --no-pager "$dir/$svc" 2>&1) || true
  score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -1)
  if [[ -z "$score" ]]; then
    fail "security $svc ($name): no exposure level in the output:"
    printf '%s\n' "$out" | tail -5 | sed 's/^/    /'
  elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }'; then
    pass "security $svc ($name): exposure $score <= $max_exposure"
  else
    fail "security $svc ($name): exposure $score > $max_exposure"
    printf '%s\n' "$out" | grep '✗' | sed 's/^/    /'
  fi
}

# Flags (--name) on the ExecStart=/Environment= lines of a file must be in the command's --help.
flags_known() { # file help-text-file what
  local file=$1 help=$2 what=$3 missing=()
  while read -r f; do
    grep -q -- "^ *$f " "$help" || missing+=("$f")
  done < <(grep -E '^(ExecStart|Environment)=' "$file" | grep -oE -- '--[a-z0-9][a-z0-9.-]*' | sort -u)
  if ((${#missing[@]})); then
    fail "$what: flags unknown to fulcrum: ${missing[*]}"
  else
    pass "$what: every flag is one fulcrum knows"
  fi
}

"$bin" serve --help > "$tmp/serve.help"
"$bin" ctlog serve --help > "$tmp/ctlog.help"

make_dir "$tmp/base"
verify "units" "$tmp/base"
for s in "${services[@]}"; do security "units" "$tmp/base" "$s"; done
flags_known "$src/systemd/fulcrum.service" "$tmp/serve.help" "fulcrum.service"
flags_known "$src/systemd/fulcrum-ctlog.service" "$tmp/ctlog.help" "fulcrum-ctlog.service"

# Each example drop-in, and the combinations the guide describes, keep the units valid and safe.
ex=$src/systemd/examples/fulcrum.service.d
for combo in "pkcs11ca.conf softhsm2.conf" "fileca.conf" "pkcs11ca.conf external-ctlog.conf"; do
  files=()
  for f in $combo; do files+=("$ex/$f"); done
  make_dir "$tmp/combo" "${files[@]}"
  verify "with $combo" "$tmp/combo"
  security "with $combo" "$tmp/combo" fulcrum.service
done
for f in "$ex"/*.conf; do
  flags_known "$f" "$tmp/serve.help" "examples/$(basename "$f")"
done

# The check itself must be able to fail: a unit with a typo, and one without its sandbox.
make_dir "$tmp/bad"
sed -i 's/^NoNewPrivileges=yes/NoNewPrivilegez=yes/' "$tmp/bad/fulcrum.service"
out=$(cd "$tmp/bad" && SYSTEMD_UNIT_PATH="$tmp/bad:" systemd-analyze verify --man=no "$tmp/bad/fulcrum.service" 2>&1) || true
if [[ -n "$out" ]]; then pass "verify reports a misspelt key"; else fail "verify said nothing about a misspelt key"; fi
make_dir "$tmp/bare"
sed -i '/^# Sandbox/,/^\[Install\]/{/^\[Install\]/!d}; /^DynamicUser=/d; /^UMask=/d' "$tmp/bare/fulcrum.service"
score=$(cd "$tmp/bare" && systemd-analyze security --offline=yes --no-pager "$tmp/bare/fulcrum.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -1)
if [[ -n "$score" ]] && awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
  pass "an unsandboxed copy scores $score > $max_exposure"
else
  fail "an unsandboxed copy scored '${score}', expected > $max_exposure"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
