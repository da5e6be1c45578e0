#!/usr/bin/env bash
# stop.sh - stop the keystone that start.sh started (and nothing else).
# It only signals the pid in $KS_STATE_DIR/gunicorn.pid, and only if that
# process's command line is start.sh's gunicorn for this state dir; its
# workers are in the process group start.sh created with setsid.
#   ./stop.sh           stop, keep db/keys/config (next start is fast)
#   ./stop.sh --purge   stop and delete the state dir (fresh db next start)
# Idempotent: exits 0 when nothing is running. Bounded: TERM, 10 s, KILL.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KS_STATE_DIR="${KS_STATE_DIR:-${VSESS_PEERS_DIR:-$HOME/.cache/vsess-peers}/keystone/state}"
PURGE=0; [ "${1:-}" = "--purge" ] && PURGE=1
log() { echo "[keystone] $*" >&2; }

[ -d "$KS_STATE_DIR" ] || { log "not running (no $KS_STATE_DIR)"; exit 0; }
KS_STATE_DIR="$(cd "$KS_STATE_DIR" && pwd)"
PIDFILE="$KS_STATE_DIR/gunicorn.pid"

exec 9>"$KS_STATE_DIR/.lock"
flock -w 120 9 || { log "ERROR: $KS_STATE_DIR/.lock is held too long"; exit 1; }

is_ours() {
  [ -r "/proc/$1/cmdline" ] || return 1
  local cmd; cmd="$(tr '\0' ' ' < "/proc/$1/cmdline")"
  [[ "$cmd" == *keystone_wsgi:application* && "$cmd" == *"$PIDFILE"* ]]
}

if [ -s "$PIDFILE" ]; then
  pid="$(cat "$PIDFILE")"
  if is_ours "$pid"; then
    pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
    log "stopping gunicorn master $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do is_ours "$pid" || break; sleep 0.1; done
    if is_ours "$pid"; then
      log "still alive after 10s: KILL"
      if [ "$pgid" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || true
      else kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    # workers of that master (same process group) that outlived it
    if [ "$pgid" = "$pid" ]; then
      for _ in $(seq 1 50); do
        pgrep -g "$pid" >/dev/null 2>&1 || break; sleep 0.1
      done
      pgrep -g "$pid" >/dev/null 2>&1 && kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    log "stopped"
  else
    log "pid file names $pid, which is not our gunicorn: leaving it alone"
  fi
  rm -f "$PIDFILE"
else
  log "not running (no pid file)"
fi
rm -f "$KS_STATE_DIR/.running-sig"

if [ "$PURGE" = 1 ]; then
  flock -u 9
  rm -rf "$KS_STATE_DIR"
  log "purged $KS_STATE_DIR"
fi
