#!/usr/bin/env bash
# Provide the REAL GIMP 3 and Krita 5.2 for the editor tests (tests/editors.py).
#
# Debian 13 hosts get the editors from apt directly (root: /). Debian 12 has no
# GIMP 3, so there we build a Debian 13 (trixie) chroot once and cache it as a
# zstd tarball: dpkg, not downloading, is the slow part, so caching .debs would
# save nothing. Re-running is cheap (a key file short-circuits), a cached
# tarball is unpacked instead of rebuilt, and every build happens in a scratch
# folder that is renamed into place, so an interrupted run leaves nothing
# half-built behind.
#
# The wire libraries (python3-zmq, python3-msgpack) are deliberately NOT
# installed: the product's installer must vendor them into the plug-in folders,
# and the tests prove that by running against a root that lacks them.
#
# All progress goes to stderr; the last stdout line is the editors' root, which
# is also written to $BASE/ROOT for tests/editors.py.
set -euo pipefail

SCRIPT_VERSION=1
BASE=/var/tmp/portrait-style-editors
ROOT_DIR=$BASE/trixie
CACHE_DIR=/var/cache/portrait-style-ci
KEY_FILE=.portrait-style-editors-key
# What both editors need headless and under Xvfb. Fonts: so GUI screenshots
# show text. No python3-zmq / python3-msgpack (see above).
PACKAGES=(
    gimp gir1.2-gimp-3.0 python3-gi
    krita python3-pyqt5 python3-pyqt5.sip
    xvfb x11-apps xauth dbus fonts-dejavu-core
)
HOST_TOOLS=(debootstrap zstd bwrap)  # bwrap: Debian package bubblewrap (Flatpak-shaped tests)
DEFAULT_MIRROR=http://deb.debian.org/debian

log() { printf '[editors-chroot] %s\n' "$*" >&2; }

is_debian13() {
    local version
    version=$(cat /etc/debian_version 2>/dev/null || true)
    [[ $version == 13* || $version == trixie* ]]
}

# Install host packages only when a tool is missing: keeps re-runs offline.
ensure_host_tools() {
    local missing=() tool
    for tool in "${HOST_TOOLS[@]}"; do
        command -v "$tool" >/dev/null || missing+=("${tool/#bwrap/bubblewrap}")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing host tools: ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# The Debian mirror this host already uses (network here reaches only it).
host_mirror() {
    local uri
    uri=$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources \
        | awk '{print $2}' | grep -vE 'security|updates' | grep -E '/debian/?$' | head -n1 || true)
    if [[ -z $uri ]]; then
        uri=$(grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | grep -vE 'security' | grep -E '/debian/?$' | head -n1 || true)
    fi
    echo "${uri:-$DEFAULT_MIRROR}"
}

cache_key() {
    printf '%s\n' "version=$SCRIPT_VERSION" "${PACKAGES[@]}" | sha256sum | cut -c1-16
}

# Remove a folder, first detaching anything still mounted below it (a build
# killed before its mount namespace existed could leave such mounts).
safe_remove() {
    local dir=$1 target
    [[ -e $dir ]] || return 0
    while read -r target; do
        [[ -n $target ]] && umount -R -l "$target" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$dir/" | sort -r || true)
    rm -rf --one-file-system "$dir"
}

# Chroot helper for the build: /proc, /dev and DNS inside, in a private mount
# namespace so nothing outlives the command.
in_build_root() {
    local dir=$1
    shift
    unshare --mount --propagation private -- /bin/sh -ec '
        dir=$1; shift
        mount -t proc proc "$dir/proc"
        mount --rbind /dev "$dir/dev"
        exec chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
    ' sh "$dir" "$@"
}

build_root() {
    local dir=$1 mirror
    mirror=$(host_mirror)
    log "debootstrap trixie from $mirror"
    local t0=$SECONDS
    unshare --mount --propagation private -- \
        debootstrap --variant=minbase trixie "$dir" "$mirror" >&2
    log "debootstrap done in $((SECONDS - t0)) s"
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
    # Never start services (dbus) inside the chroot while installing.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    t0=$SECONDS
    in_build_root "$dir" apt-get update -qq >&2
    in_build_root "$dir" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
    log "editors installed in $((SECONDS - t0)) s"
    check_root "$dir"
    in_build_root "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/apt/*
}

# Refuse to cache a root that lacks the editors or has the wire libraries.
check_root() {
    local dir=$1
    test -x "$dir/usr/bin/gimp-console-3.0"
    test -x "$dir/usr/bin/kritarunner"
    if in_build_root "$dir" python3 -c 'import zmq' 2>/dev/null \
        || in_build_root "$dir" python3 -c 'import msgpack' 2>/dev/null; then
        log "ERROR: zmq or msgpack importable in the chroot; it must lack them"
        return 1
    fi
}

pack_root() {
    local dir=$1 tarball=$2 t0=$SECONDS
    mkdir -p "$CACHE_DIR"
    tar -C "$dir" --numeric-owner -I 'zstd -T0 -3 -q' -cf "$tarball.part" .
    mv -f "$tarball.part" "$tarball"
    find "$CACHE_DIR" -maxdepth 1 -name 'trixie-*.tar.zst' ! -path "$tarball" -delete
    log "packed $(du -h "$tarball" | cut -f1) into $tarball in $((SECONDS - t0)) s"
}

unpack_root() {
    local tarball=$1 dir=$2 t0=$SECONDS
    mkdir -p "$dir"
    tar -C "$dir" --numeric-owner -I 'zstd -T0 -q' -xpf "$tarball" || return 1
    log "restored from $tarball in $((SECONDS - t0)) s"
}

# Swap a finished scratch root into place; the old one is removed afterwards.
install_root() {
    local scratch=$1 key=$2
    echo "$key" >"$scratch/$KEY_FILE"
    if [[ -e $ROOT_DIR ]]; then
        mv "$ROOT_DIR" "$BASE/trixie.old.$$"
    fi
    mv "$scratch" "$ROOT_DIR"
    safe_remove "$BASE/trixie.old.$$"
}

prepare_chroot() {
    local key tarball scratch
    key=$(cache_key)
    tarball=$CACHE_DIR/trixie-$key.tar.zst
    if [[ -f $ROOT_DIR/$KEY_FILE && $(cat "$ROOT_DIR/$KEY_FILE") == "$key" ]]; then
        log "chroot $ROOT_DIR is current (key $key)"
        return 0
    fi
    ensure_host_tools
    # Leftovers of interrupted runs (this script holds the lock, so no other
    # run is using them).
    local stale
    for stale in "$BASE"/trixie.build.* "$BASE"/trixie.old.*; do
        [[ -e $stale ]] && { log "removing leftover $stale"; safe_remove "$stale"; }
    done
    scratch=$BASE/trixie.build.$$
    if [[ -f $tarball ]] && ! unpack_root "$tarball" "$scratch"; then
        log "cached $tarball is unusable; rebuilding"
        rm -f "$tarball"
        safe_remove "$scratch"
    fi
    if [[ ! -e $scratch ]]; then
        build_root "$scratch"
        pack_root "$scratch" "$tarball"
    fi
    install_root "$scratch" "$key"
}

prepare_host() {
    log "Debian 13 host: installing the editors with apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${PACKAGES[@]}" >&2
}

# Debian 12's own Krita 5.1 on the host as well: the plug-in's 5.1 code path (no
# createTransparencyMask) and its starting the daemon on demand are tested on it.
HOST_KRITA_PACKAGES=(krita python3-pyqt5)
ensure_host_krita() {
    [[ -x /usr/bin/kritarunner ]] && return 0
    log "installing the host's Krita 5.1: ${HOST_KRITA_PACKAGES[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${HOST_KRITA_PACKAGES[@]}" >&2
}

main() {
    local root
    mkdir -p "$BASE"
    exec 9>"$BASE/.lock"
    flock 9
    local t0=$SECONDS
    if is_debian13; then
        prepare_host
        root=/
    else
        prepare_chroot
        ensure_host_krita
        root=$ROOT_DIR
    fi
    echo "$root" >"$BASE/ROOT.part"
    mv -f "$BASE/ROOT.part" "$BASE/ROOT"
    log "ready in $((SECONDS - t0)) s"
    echo "$root"
}

main "$@"
