#!/usr/bin/env bash
# start.sh - run a real OpenStack Keystone (Identity v3) on 127.0.0.1 for
# integration tests: install into a venv if needed, write the config, create
# the sqlite DB + fernet/credential keys + admin bootstrap, start gunicorn in
# the background, wait until it issues a token, print URL and credentials.
#
# Idempotent: if an instance started by this script is already healthy with
# the same settings it only prints the details; if settings changed it
# restarts the server (data kept). Stop it with stop.sh (pid file based).
#
# Settings (environment):
#   KS_PORT              TCP port on 127.0.0.1                 (5000)
#   KS_STATE_DIR         db, keys, config, logs, pid file      (<peers>/keystone/state)
#   KS_VENV              virtualenv holding keystone+gunicorn  (<peers>/keystone/venv)
#                        <peers> is ${VSESS_PEERS_DIR:-$HOME/.cache/vsess-peers}
#   KS_ADMIN_PASSWORD    admin password (bootstrap re-run if it changes)
#                        (default: the one in $KS_STATE_DIR/admin-password,
#                         else "admin-secret")
#   KS_TOKEN_EXPIRATION  [token] expiration, seconds            (3600)
#   KS_CACHE             1 = in-process dogpile memory cache   (1)
#   KS_THREADS           gunicorn gthread threads, 1 worker    (4)
#   KS_REGION            region id of the catalog endpoints    (RegionOne)
#   KS_PYTHON            python >= 3.11 used to build the venv (python3)
#   KS_START_TIMEOUT     seconds to wait for health            (60)
#   KS_INSTALL_TIMEOUT   seconds allowed for the install       (600)
#   KS_UV_VERSION        uv from PyPI used to install the lock (0.13.8; "" = plain pip)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KS_HOST=127.0.0.1
KS_PORT="${KS_PORT:-5000}"
PEERS="${VSESS_PEERS_DIR:-$HOME/.cache/vsess-peers}"
KS_STATE_DIR="${KS_STATE_DIR:-$PEERS/keystone/state}"
KS_VENV="${KS_VENV:-$PEERS/keystone/venv}"
KS_TOKEN_EXPIRATION="${KS_TOKEN_EXPIRATION:-3600}"
KS_CACHE="${KS_CACHE:-1}"
KS_THREADS="${KS_THREADS:-4}"
KS_REGION="${KS_REGION:-RegionOne}"
KS_PYTHON="${KS_PYTHON:-python3}"
KS_START_TIMEOUT="${KS_START_TIMEOUT:-60}"
KS_INSTALL_TIMEOUT="${KS_INSTALL_TIMEOUT:-600}"
KS_UV_VERSION="${KS_UV_VERSION-0.13.8}"
LOCKFILE="$HERE/requirements.lock"

log() { echo "[keystone] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$KS_STATE_DIR"
KS_STATE_DIR="$(cd "$KS_STATE_DIR" && pwd)"
PIDFILE="$KS_STATE_DIR/gunicorn.pid"
URL="http://$KS_HOST:$KS_PORT"

# one start.sh/stop.sh at a time per state dir
exec 9>"$KS_STATE_DIR/.lock"
flock -w 300 9 || die "another start.sh/stop.sh holds $KS_STATE_DIR/.lock"

# ---------------------------------------------------------------- install
install_venv() {
  local want have=""
  want="$( { sha256sum < "$LOCKFILE"; echo "uv=$KS_UV_VERSION"; } | sha256sum | cut -d' ' -f1)"
  venv_ok() {
    [ -f "$KS_VENV/.ks-lock-sha256" ] && have="$(cat "$KS_VENV/.ks-lock-sha256")"
    [ "$want" = "$have" ] && "$KS_VENV/bin/python" -c 'import keystone, gunicorn' 2>/dev/null
  }
  venv_ok && return 0
  # one installer at a time per venv (main and short-expiry instances start in parallel)
  mkdir -p "$(dirname "$KS_VENV")"
  exec 8>"$KS_VENV.lock"
  flock -w "$KS_INSTALL_TIMEOUT" 8 || die "another start.sh holds $KS_VENV.lock"
  if venv_ok; then exec 8>&-; return 0; fi
  "$KS_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$KS_PYTHON is older than 3.11 (keystone 30 needs >= 3.11); set KS_PYTHON"
  log "installing keystone into $KS_VENV (pinned by requirements.lock) ..."
  local t0=$SECONDS uvdir="$(dirname "$KS_VENV")/uv-$KS_UV_VERSION"
  rm -rf "$KS_VENV"
  # uv installs the 96 pinned wheels in parallel: ~5 s instead of pip's 20-28 s.
  # It comes from PyPI too; plain pip is the fallback.
  if [ -n "$KS_UV_VERSION" ] && { [ -x "$uvdir/bin/uv" ] || timeout 120 "$KS_PYTHON" -m pip install \
         -q --disable-pip-version-check --no-input --root-user-action=ignore --target "$uvdir" "uv==$KS_UV_VERSION" >&2; } \
     && "$KS_PYTHON" -m venv --without-pip "$KS_VENV" \
     && timeout "$KS_INSTALL_TIMEOUT" "$uvdir/bin/uv" pip install -q --python "$KS_VENV/bin/python" \
          -r "$LOCKFILE" >&2; then
    :
  else
    log "uv unavailable or failed: installing with pip"
    rm -rf "$KS_VENV"
    "$KS_PYTHON" -m venv "$KS_VENV"
    timeout "$KS_INSTALL_TIMEOUT" "$KS_VENV/bin/pip" install -q --disable-pip-version-check \
      --no-input -r "$LOCKFILE" >&2 || die "pip install failed or took over ${KS_INSTALL_TIMEOUT}s"
  fi
  "$KS_VENV/bin/python" -c 'import keystone, gunicorn' || die "the venv $KS_VENV does not import keystone"
  echo "$want" > "$KS_VENV/.ks-lock-sha256"
  exec 8>&-
  log "installed in $((SECONDS - t0))s"
}
install_venv
export PATH="$KS_VENV/bin:$PATH" PYTHONWARNINGS=ignore
# stevedore caches entry points under $XDG_CACHE_HOME (~/.cache by default)
export XDG_CACHE_HOME="$KS_STATE_DIR/cache"

# ---------------------------------------------------------------- config
if [ -n "${KS_ADMIN_PASSWORD:-}" ]; then
  ADMIN_PW="$KS_ADMIN_PASSWORD"
elif [ -s "$KS_STATE_DIR/admin-password" ]; then
  ADMIN_PW="$(cat "$KS_STATE_DIR/admin-password")"
else
  ADMIN_PW="admin-secret"
fi

CACHE_SECTION="[cache]
enabled = false"
if [ "$KS_CACHE" = "1" ]; then
  # In-process cache: only coherent because there is exactly one worker
  # process (threads share it). Never run >1 worker with this backend.
  CACHE_SECTION="[cache]
enabled = true
backend = dogpile.cache.memory"
fi

CONF="$KS_STATE_DIR/keystone.conf"
cat > "$CONF.new" <<EOF
# generated by start.sh - edits are overwritten
[DEFAULT]
debug = false
log_file = $KS_STATE_DIR/keystone.log
# max page size a client may ask for with ?limit=
max_db_limit = 1000

[database]
connection = sqlite:///$KS_STATE_DIR/keystone.db

[token]
provider = fernet
expiration = $KS_TOKEN_EXPIRATION

[fernet_tokens]
key_repository = $KS_STATE_DIR/fernet-keys

[fernet_receipts]
# default is /etc/keystone/fernet-keys; keep everything in the state dir
key_repository = $KS_STATE_DIR/fernet-keys

[credential]
key_repository = $KS_STATE_DIR/credential-keys

[identity]
# bcrypt cost 4 (~1 ms) instead of 12 (~240 ms per password check here);
# applies to passwords set after this (bootstrap included)
password_hash_rounds = 4

$CACHE_SECTION
EOF

# ---------------------------------------------------------------- running?
our_pid() {  # prints the gunicorn master pid if it is ours and alive
  [ -s "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "keystone_wsgi:application.*$PIDFILE\|$PIDFILE.*keystone_wsgi:application" || return 1
  echo "$pid"
}
healthy() {
  curl -sf -m 3 -o /dev/null "$URL/v3" || return 1
  local code
  code="$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST "$URL/v3/auth/tokens?nocatalog" \
    -H 'Content-Type: application/json' --data @- <<EOF
{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":$(printf '%s' "$ADMIN_PW" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}
EOF
)"
  [ "$code" = "201" ]
}

RUNSIG="$(printf '%s\n' "port=$KS_PORT threads=$KS_THREADS" | cat - "$CONF.new" | sha256sum | cut -d' ' -f1)"
BOOTSIG="$(printf '%s\n' "$ADMIN_PW" "$URL/v3" "$KS_REGION" | sha256sum | cut -d' ' -f1)"

print_info() {
  local pid="$1" project_id
  project_id="$(cat "$KS_STATE_DIR/admin-project-id" 2>/dev/null || true)"
  cat > "$KS_STATE_DIR/openrc" <<EOF
# python-openstackclient / openstacksdk style
export OS_AUTH_URL=$URL/v3
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=$KS_REGION
export OS_USERNAME=admin
export OS_PASSWORD=$(printf '%q' "$ADMIN_PW")
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
EOF
  cat > "$KS_STATE_DIR/gophercloud.env" <<EOF
# gophercloud AuthOptionsFromEnv style (OS_DOMAIN_* = the user's domain)
export OS_AUTH_URL=$URL/v3
export OS_REGION_NAME=$KS_REGION
export OS_USERNAME=admin
export OS_PASSWORD=$(printf '%q' "$ADMIN_PW")
export OS_PROJECT_ID=$project_id
export OS_TENANT_ID=$project_id
export OS_DOMAIN_ID=default
EOF
  cat <<EOF
keystone is up (pid $pid)
  URL:                $URL  (identity v3: $URL/v3)
  admin user:         admin / $ADMIN_PW  (domain "default"/"Default")
  admin project:      admin  id=$project_id
  region:             $KS_REGION
  token expiration:   ${KS_TOKEN_EXPIRATION}s
  env files:          $KS_STATE_DIR/openrc  $KS_STATE_DIR/gophercloud.env
  logs:               $KS_STATE_DIR/{keystone,gunicorn,access}.log
  stop:               KS_STATE_DIR=$KS_STATE_DIR $HERE/stop.sh
EOF
}

if pid="$(our_pid)"; then
  if [ "$(cat "$KS_STATE_DIR/.running-sig" 2>/dev/null)" = "$RUNSIG" ] \
     && [ "$(cat "$KS_STATE_DIR/.bootstrap-sig" 2>/dev/null)" = "$BOOTSIG" ] && healthy; then
    rm -f "$CONF.new"
    print_info "$pid"
    exit 0
  fi
  log "settings changed or unhealthy: restarting pid $pid"
  flock -u 9
  KS_STATE_DIR="$KS_STATE_DIR" "$HERE/stop.sh" >&2
  flock -w 60 9 || die "could not re-take lock"
fi

if (exec 3<>"/dev/tcp/$KS_HOST/$KS_PORT") 2>/dev/null; then
  die "$KS_HOST:$KS_PORT is already in use by a process start.sh did not start"
fi

mv "$CONF.new" "$CONF"
km() { timeout 120 keystone-manage --config-file "$CONF" "$@" >>"$KS_STATE_DIR/manage.log" 2>&1 \
         || die "keystone-manage $1 failed, see $KS_STATE_DIR/manage.log"; }

# ---------------------------------------------------------------- bootstrap
if [ ! -f "$KS_STATE_DIR/.db-synced" ]; then
  log "db_sync + key setup ..."
  km db_sync
  km fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
  km credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
  # WAL: readers no longer block the writer (failed-login counters, revocation events), which
  # under concurrent requests otherwise ends in "database is locked" and HTTP 500.
  "$KS_VENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' \
    "$KS_STATE_DIR/keystone.db" || die "cannot switch $KS_STATE_DIR/keystone.db to WAL"
  touch "$KS_STATE_DIR/.db-synced"
fi
if [ "$(cat "$KS_STATE_DIR/.bootstrap-sig" 2>/dev/null)" != "$BOOTSIG" ]; then
  log "bootstrap (admin user/project/roles, identity endpoints in $KS_REGION) ..."
  km bootstrap --bootstrap-password "$ADMIN_PW" \
    --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone \
    --bootstrap-admin-url "$URL/v3" --bootstrap-internal-url "$URL/v3" \
    --bootstrap-public-url "$URL/v3" --bootstrap-region-id "$KS_REGION"
  printf '%s\n' "$ADMIN_PW" > "$KS_STATE_DIR/admin-password"
  chmod 600 "$KS_STATE_DIR/admin-password"
  echo "$BOOTSIG" > "$KS_STATE_DIR/.bootstrap-sig"
fi

# ---------------------------------------------------------------- start
log "starting gunicorn on $URL ..."
: > "$KS_STATE_DIR/stdout.log"
t0=$(date +%s.%N)
OS_KEYSTONE_CONFIG_DIR="$KS_STATE_DIR" setsid gunicorn \
  --bind "$KS_HOST:$KS_PORT" --workers 1 --worker-class gthread --threads "$KS_THREADS" \
  --timeout 60 --graceful-timeout 5 --no-control-socket \
  --pythonpath "$HERE" --pid "$PIDFILE" \
  --error-logfile "$KS_STATE_DIR/gunicorn.log" --access-logfile "$KS_STATE_DIR/access.log" \
  keystone_wsgi:application >>"$KS_STATE_DIR/stdout.log" 2>&1 </dev/null 9>&- &
spawned=$!
echo "$RUNSIG" > "$KS_STATE_DIR/.running-sig"

deadline=$((SECONDS + KS_START_TIMEOUT))
until healthy; do
  if ! kill -0 "$spawned" 2>/dev/null; then
    tail -n 30 "$KS_STATE_DIR/gunicorn.log" "$KS_STATE_DIR/stdout.log" >&2 || true
    die "gunicorn exited during startup"
  fi
  if [ $SECONDS -ge $deadline ]; then
    tail -n 30 "$KS_STATE_DIR/gunicorn.log" >&2 || true
    kill -TERM "$spawned" 2>/dev/null || true
    die "not healthy within ${KS_START_TIMEOUT}s (stopped it)"
  fi
  sleep 0.2
done
[ -s "$PIDFILE" ] || echo "$spawned" > "$PIDFILE"
log "healthy after $(python3 -c "import time; print(round(time.time() - $t0, 2))")s"

# admin project id (for OS_PROJECT_ID / OS_TENANT_ID style auth), then a warm-up
hdrs="$KS_STATE_DIR/.warmup-headers"
curl -s -m 10 -D "$hdrs" -X POST "$URL/v3/auth/tokens?nocatalog" -H 'Content-Type: application/json' --data @- <<EOF \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["project"]["id"])' > "$KS_STATE_DIR/admin-project-id"
{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":$(printf '%s' "$ADMIN_PW" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}
EOF
# keystone 30 loads its policy rules lazily and not thread-safely: when the first
# policy-checked requests of a fresh worker arrive together, some get 403 ForbiddenAction or a
# 500 (AttributeError: 'Enforcer' object has no attribute '_warning_emitted'). So one request
# at a time first, before start.sh hands the server out.
token="$(tr -d '\r' < "$hdrs" | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p')"
rm -f "$hdrs"
for path in "projects/$(cat "$KS_STATE_DIR/admin-project-id")" "users?limit=1" auth/catalog; do
  code="$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "$URL/v3/$path")"
  [ "$code" = 200 ] || die "warm-up GET /v3/$path answered $code, see $KS_STATE_DIR/keystone.log"
done
print_info "$(cat "$PIDFILE")"
