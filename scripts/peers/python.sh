#!/usr/bin/env bash
# Create the Python venv for the interop tests and install tests/interop/requirements.txt
# (pyVmomi 9.1.1.0, vSphere Automation SDK 9.1.1.0, pytest, requests; all pinned).
#
#   VENV=$(scripts/peers/python.sh | tail -1)    # -> ${VSESS_VENV:-<repo>/.venv}
#
# Idempotent: the install is skipped when the venv holds a stamp matching the sha256 of
# requirements.txt (and of the interpreter version). Progress goes to stderr; the only line on
# stdout is the venv path.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VSESS_VENV:-$REPO/.venv}
REQ=$REPO/tests/interop/requirements.txt
PY=${VSESS_PYTHON:-python3}

log() { printf '[python.sh] %s\n' "$*" >&2; }

[[ -f $REQ ]] || { log "missing $REQ"; exit 1; }

# Fast path: stamp matches.
hash_now() {
  { sha256sum < "$REQ"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } 2>/dev/null \
    | sha256sum | cut -c1-64
}
stamp_ok() {
  [[ -x $VENV/bin/python ]] && [[ -f $VENV/.vsess-requirements.sha256 ]] &&
    [[ $(cat "$VENV/.vsess-requirements.sha256") == "$(hash_now)" ]]
}
if stamp_ok; then
  echo "$VENV"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"${TMPDIR:-/tmp}/vsess-venv-$(printf '%s' "$VENV" | sha256sum | cut -c1-16).lock"
flock 9
if stamp_ok; then
  echo "$VENV"
  exit 0
fi

{
  # A fresh Debian 12 has python3 but not always the venv/ensurepip module.
  if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    SUDO=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO=(sudo -E); fi
    log "installing python3-venv from apt"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends python3 python3-venv
  fi

  # (Re)create the venv if it is missing or its interpreter no longer runs.
  if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
  fi

  rm -f "$VENV/.vsess-requirements.sha256"
  log "installing $REQ"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ"
  hash_now > "$VENV/.vsess-requirements.sha256"
  log "installed: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
} 1>&2

echo "$VENV"
