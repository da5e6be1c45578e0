#!/usr/bin/env bash
# The web page (/ui) in a real browser: headless Debian Chromium, driven by playwright-core
# (npm), against a real `vsess serve` with sessions made by real pyVmomi.
#
#   tests/browser/run.sh
#
# Installs what it needs when missing (idempotent):
#   - Debian's chromium (apt-get; needs root, as CI is)
#   - playwright-core, pinned in package-lock.json (npm ci; the registry's package only, it
#     downloads no browser: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)
#   - the Python venv with pyVmomi (scripts/peers/python.sh), unless $VSESS_VENV exists
#
# Environment:
#   VSESS_BIN        the server binary (default <repo>/target/debug/vsess; build it first)
#   VSESS_VENV       the Python venv with pyVmomi (default <repo>/.venv)
#   VSESS_ARTIFACTS  where screenshots go (default <repo>/target/artifacts): ui.png
#                    (the administrator's view), ui-reader.png, ui-sign-in.png, and
#                    ui-failure.png when a step fails
#   CHROMIUM         the browser binary (default Debian's /usr/lib/chromium/chromium)
#
# The last line is `browser: N passed, N failed[, N skipped]`; the exit code is non-zero on
# any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
VSESS_BIN=${VSESS_BIN:-$repo/target/debug/vsess}
VSESS_ARTIFACTS=${VSESS_ARTIFACTS:-$repo/target/artifacts}
t_start=$SECONDS

log() { printf '[browser] %s\n' "$*"; }
fail() {
  printf '[browser] %s\n' "$*" >&2
  echo "browser: 0 passed, 1 failed"
  exit 1
}
timed() { # timed LABEL CMD...: runs CMD and logs how long it took
  local label=$1 t=$SECONDS
  shift
  "$@"
  log "$label: $((SECONDS - t)) s"
}

[[ -x $VSESS_BIN ]] || fail "no server binary at $VSESS_BIN (cargo build -p vsess-cli, or set VSESS_BIN)"
command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are needed"

# ---- Chromium from Debian -----------------------------------------------------------------
find_chromium() {
  if [[ -n ${CHROMIUM:-} ]]; then
    echo "$CHROMIUM"
  elif [[ -x /usr/lib/chromium/chromium ]]; then
    echo /usr/lib/chromium/chromium # the binary itself, without the wrapper's extra flags
  else
    command -v chromium || true
  fi
}
chromium_bin=$(find_chromium)
if [[ -z $chromium_bin || ! -x $chromium_bin ]]; then
  [[ $(id -u) -eq 0 ]] || fail "Chromium is missing; run as root, or: sudo apt-get install chromium"
  log "installing Debian's chromium"
  apt_log=$(mktemp "${TMPDIR:-/tmp}/vsess-apt.XXXXXX")
  install_chromium() {
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium; } >"$apt_log" 2>&1 ||
      { cat "$apt_log" >&2; fail "apt-get install chromium failed"; }
  }
  timed "apt-get update + install chromium" install_chromium
  rm -f "$apt_log"
  chromium_bin=$(find_chromium)
  [[ -n $chromium_bin && -x $chromium_bin ]] || fail "chromium did not install"
fi
log "using $("$chromium_bin" --version 2>/dev/null || echo "$chromium_bin")"

# ---- playwright-core ------------------------------------------------------------------------
want=$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' "$here/package-lock.json")
have=$(node -p 'try { require(process.argv[1]).version } catch { "" }' "$here/node_modules/playwright-core/package.json" 2>/dev/null || true)
if [[ $have != "$want" ]]; then
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  timed "npm ci (playwright-core $want)" npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >/dev/null
fi

# ---- pyVmomi ------------------------------------------------------------------------------
venv=${VSESS_VENV:-$repo/.venv}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import pyVmomi' 2>/dev/null; then
  t=$SECONDS
  venv=$("$repo/scripts/peers/python.sh" | tail -n 1)
  log "Python venv: $((SECONDS - t)) s"
fi
"$venv/bin/python" -c 'import pyVmomi' || fail "no pyVmomi in $venv"
unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE SSL_CERT_FILE

# ---- a server with two users ----------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/vsess-browser.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }
export VSESS_READER=reader@vsphere.local VSESS_ADMIN=admin@vsphere.local
VSESS_READER_PW=$(rand) VSESS_ADMIN_PW=$(rand)
export VSESS_READER_PW VSESS_ADMIN_PW
mkdir -p "$work/data"
add_user() { # add_user NAME ROLE PASSWORD
  local out
  out=$(printf '%s\n' "$3" | "$VSESS_BIN" user add "$1" --role "$2" --password-stdin --data-dir "$work/data" 2>&1) ||
    fail "vsess user add $1 failed: $out"
}
add_user "$VSESS_READER" ReadOnly "$VSESS_READER_PW"
add_user "$VSESS_ADMIN" Admin "$VSESS_ADMIN_PW"

"$VSESS_BIN" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
url=""
for _ in $(seq 1 300); do
  url=$(grep -o 'https://127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 || true)
  [[ -n $url ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $url ]]; then
  cat "$work/server.log" >&2
  fail "the server did not start"
fi
log "server at $url"

# ---- the test -----------------------------------------------------------------------------
mkdir -p "$VSESS_ARTIFACTS"
rm -f "$VSESS_ARTIFACTS/ui-failure.png" # from an earlier run
rc=0
VSESS_URL=$url VSESS_PYTHON=$venv/bin/python CHROMIUM=$chromium_bin VSESS_ARTIFACTS=$VSESS_ARTIFACTS \
  node "$here/ui_test.mjs" >"$work/test.out" 2>&1 || rc=$?
# The verdict line goes last, after the timing.
grep -v '^browser: ' "$work/test.out" || true
if [[ $rc -ne 0 ]]; then
  log "server log (last 40 lines):"
  tail -n 40 "$work/server.log" | sed 's/^/  /'
fi
log "total: $((SECONDS - t_start)) s"
verdict=$(grep '^browser: ' "$work/test.out" | tail -n 1 || true)
echo "${verdict:-browser: 0 passed, 1 failed}"
exit "$rc"
