#!/usr/bin/env bash
# Install Debian packages that are missing (apt-get; as root, or through sudo).
#
#   scripts/peers/debian.sh redis-server nginx
#
# A package counts as present when `dpkg -s` says it is installed. `apt-get update` runs
# only if the first install attempt fails (a fresh machine's lists may be stale or empty).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
printf '[debian.sh] installing %s from Debian\n' "${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "[debian.sh] need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's packages start their services on install; nothing here needs them running
# (the tests start their own, on loopback ports), so policy-rc.d keeps them stopped.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod +x "$policy"
  added_policy=1
fi
trap '((added_policy)) && "${SUDO[@]}" rm -f "$policy"' EXIT
"${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
  || { "${SUDO[@]}" apt-get update -q >/dev/null && "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; }
