#!/usr/bin/env bash
# Make sure Debian's redis-server (7.0, for the distributed-mode tests) and nginx (the load
# balancer in front of replicas in the interop run) are installed. Prints, as its last line,
# the path of redis-server. The tests start their own instances on free loopback ports and
# stop them afterwards; nothing is left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
./debian.sh redis-server redis-tools nginx-light
# Debian starts redis-server on 127.0.0.1:6379 when it installs it without policy-rc.d;
# the tests never use that port, so such an instance is harmless.
command -v redis-server
