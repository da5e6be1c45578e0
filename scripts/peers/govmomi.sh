#!/usr/bin/env bash
# Build govmomi 0.24.2's `govc` (CLI) and `vcsim` (simulator) from Debian bookworm's source
# package, using Debian's apt repositories only (no Go module proxy, no other network).
#
#   BIN=$(scripts/peers/govmomi.sh | tail -1)    # -> <peers>/govmomi/bin (govc, vcsim)
#
# Output directory: ${VSESS_PEERS_DIR:-$HOME/.cache/vsess-peers}/govmomi
#   bin/     govc, vcsim
#   gopath/  GOPATH; gopath/src/github.com/vmware/govmomi is the patched 0.24.2 source tree
#   src/     downloaded .orig.tar.xz and .debian.tar.xz
#   apt/     private apt state for the deb-src list (the system's apt sources are not modified)
#
# Why the source package: the binary package golang-github-vmware-govmomi-dev excludes govc/ and
# vcsim/ (DH_GOLANG_EXCLUDES), but the source package 0.24.2-3 contains them. We apply Debian's
# quilt patches (one of them fixes x509.UnknownAuthorityError detection on Go >= 1.18) and build
# in GOPATH mode with Debian's golang-go (1.19) against the Debian -dev packages.
#
# Idempotent: a fast no-op when both binaries exist; otherwise each step that is already done is
# skipped. Needs root (or sudo) only when apt packages are missing. Progress goes to stderr; the
# only line on stdout is the bin directory.
set -euo pipefail

VER=0.24.2
DEBREV=0.24.2-3
SRCPKG=golang-github-vmware-govmomi

ROOT=${VSESS_PEERS_DIR:-$HOME/.cache/vsess-peers}/govmomi
BIN=$ROOT/bin
GP=$ROOT/gopath
SRC=$GP/src/github.com/vmware/govmomi
APTDIR=$ROOT/apt
DL=$ROOT/src

log() { printf '[govmomi.sh] %s\n' "$*" >&2; }

have_bins() { [[ -x $BIN/govc && -x $BIN/vcsim ]]; }

# Fast path.
if have_bins; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$ROOT"
# Serialise concurrent runs (e.g. two test runners starting at once).
exec 9>"$ROOT/.lock"
flock 9
if have_bins; then
  echo "$BIN"
  exit 0
fi

{
  export DEBIAN_FRONTEND=noninteractive
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then SUDO=(sudo -E); fi
  fi

  # 1. Binary packages. golang-github-vmware-govmomi-dev pulls in the library deps (uuid, ...);
  #    kr-pretty is needed by govc/flags; patch/xz-utils/keyring for unpacking and apt-get source.
  PKGS=(golang-go golang-github-vmware-govmomi-dev golang-github-google-uuid-dev
        golang-github-kr-pretty-dev patch xz-utils debian-archive-keyring ca-certificates)
  need=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  if ((${#need[@]})); then
    log "installing apt packages: ${need[*]}"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${need[@]}"
  fi

  # 2. The Debian source package, through a private deb-src list pointing at the same Debian
  #    mirror the system already uses for bookworm (fallback: deb.debian.org).
  ORIG=$DL/${SRCPKG}_${VER}.orig.tar.xz
  DEBTAR=$DL/${SRCPKG}_${DEBREV}.debian.tar.xz
  if [[ ! -s $ORIG || ! -s $DEBTAR ]]; then
    MIRROR=${VSESS_DEBIAN_MIRROR:-}
    if [[ -z $MIRROR ]]; then
      MIRROR=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
                 | awk '$2 == "bookworm" { print $1; exit }' || true)
    fi
    MIRROR=${MIRROR:-http://deb.debian.org/debian/}
    log "fetching source package $SRCPKG=$DEBREV from $MIRROR"
    mkdir -p "$APTDIR/lists/partial" "$DL"
    cat > "$APTDIR/src.sources" <<EOF
Types: deb-src
URIs: $MIRROR
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    APTOPTS=(-o "Dir::Etc::sourcelist=$APTDIR/src.sources" -o "Dir::Etc::sourceparts=/nonexistent"
             -o "Dir::State::Lists=$APTDIR/lists" -o "APT::Sandbox::User=root")
    "${SUDO[@]}" apt-get "${APTOPTS[@]}" update
    (cd "$DL" && "${SUDO[@]}" apt-get "${APTOPTS[@]}" source --download-only "$SRCPKG=$DEBREV")
    [[ -s $ORIG && -s $DEBTAR ]] || { log "source download failed"; exit 1; }
  fi

  # 3. Unpack and apply Debian's patches (once; the marker is written last).
  if [[ ! -f $SRC/.debian-patched ]]; then
    log "unpacking and patching source"
    rm -rf "$SRC" "$DL/deb" "$(dirname "$SRC")/govmomi-$VER"
    mkdir -p "$(dirname "$SRC")" "$DL/deb"
    tar -xJf "$ORIG" -C "$(dirname "$SRC")"
    mv "$(dirname "$SRC")/govmomi-$VER" "$SRC"
    tar -xJf "$DEBTAR" -C "$DL/deb"
    while read -r p; do
      [[ -z $p || $p == \#* ]] && continue
      patch -d "$SRC" -p1 --forward --quiet < "$DL/deb/debian/patches/$p"
    done < "$DL/deb/debian/patches/series"
    touch "$SRC/.debian-patched"
  fi

  # 4. Build in GOPATH mode: our tree shadows /usr/share/gocode's govmomi; deps come from
  #    /usr/share/gocode. Build to temp names, then rename, so a partial build never counts.
  export GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
  export GOPATH=$GP:/usr/share/gocode
  export GOCACHE=$ROOT/.gocache
  export CGO_ENABLED=0
  mkdir -p "$BIN"
  cd "$SRC"
  log "building with $(go version)"
  go build -tags netgo -ldflags "-w -X github.com/vmware/govmomi/govc/flags.GitVersion=$VER" \
    -o "$BIN/.govc.tmp" ./govc
  go build -tags netgo -ldflags "-w" -o "$BIN/.vcsim.tmp" ./vcsim
  mv -f "$BIN/.govc.tmp" "$BIN/govc"
  mv -f "$BIN/.vcsim.tmp" "$BIN/vcsim"
  log "built: $("$BIN/govc" version)"
} 1>&2

echo "$BIN"
