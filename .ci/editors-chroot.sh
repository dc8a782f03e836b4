#!/usr/bin/env bash
# Provide the REAL editors for the editor tests (tests/editors.py), in every
# version CI proves: GIMP 3.0 + Krita 5.2 (Debian 13 "trixie"), GIMP 3.2 +
# Krita 5.3 (Debian testing "forky"), and Debian 12's own Krita 5.1 on the host.
#
# Usage: editors-chroot.sh [RELEASE...]   (default: trixie forky)
#
# Each release is a chroot built once and cached as a zstd tarball keyed by its
# package list: dpkg, not downloading, is the slow part, so caching .debs would
# save nothing. Re-running is cheap (a key file short-circuits), a cached
# tarball is unpacked instead of rebuilt, and every build happens in a scratch
# folder that is renamed into place, so an interrupted run leaves nothing
# half-built behind. On a Debian 13 host trixie's editors come from apt directly
# (root: /). Each release has its own lock, so tests using one chroot are not
# held up while another is being built.
#
# The wire libraries (python3-zmq, python3-msgpack) are deliberately NOT
# installed: the product's installer must vendor them into the plug-in folders,
# and the tests prove that by running against roots that lack them.
#
# All progress goes to stderr; stdout gets one "RELEASE ROOT" line per release.
# The roots are also written to $BASE/ROOT.RELEASE (and trixie's to $BASE/ROOT,
# which older test code reads) for tests/editors.py.
set -euo pipefail

SCRIPT_VERSION=1
# Both can be moved (e.g. to try a build beside roots that tests are using);
# tests/editors.py reads the default BASE.
BASE=${PORTRAIT_STYLE_EDITORS_BASE:-/var/tmp/portrait-style-editors}
CACHE_DIR=${PORTRAIT_STYLE_CI_CACHE:-/var/cache/portrait-style-ci}
KEY_FILE=.portrait-style-editors-key
DEFAULT_RELEASES=(trixie forky)
# What both editors need headless and under Xvfb. Fonts: so GUI screenshots
# show text. No python3-zmq / python3-msgpack (see above).
TRIXIE_PACKAGES=(
    gimp gir1.2-gimp-3.0 python3-gi
    krita python3-pyqt5 python3-pyqt5.sip
    xvfb x11-apps xauth dbus fonts-dejavu-core
)
# Forky: the same, plus Debian's Qt6 bindings so the plug-in's PyQt6 path (the
# one Krita 6 needs) can be exercised without a Krita 6 package, and eatmydata:
# Krita 5.3's first start on an empty HOME builds its resource database with
# ~4000 separate fdatasync calls (130 s on a busy CI disk, 36 s without them);
# tests/editors.py preloads libeatmydata for forky's programs.
FORKY_PACKAGES=("${TRIXIE_PACKAGES[@]}" python3-pyqt6 eatmydata)
HOST_TOOLS=(debootstrap zstd bwrap)  # bwrap: Debian package bubblewrap (Flatpak-shaped tests)
DEFAULT_MIRROR=http://deb.debian.org/debian

log() { printf '[editors-chroot] %s\n' "$*" >&2; }

is_debian13() {
    local version
    version=$(cat /etc/debian_version 2>/dev/null || true)
    [[ $version == 13* || $version == trixie* ]]
}

# Per-release facts: package list, debootstrap script, the binaries a usable
# root must have.
release_packages() {
    case $1 in
        trixie) printf '%s\n' "${TRIXIE_PACKAGES[@]}" ;;
        forky) printf '%s\n' "${FORKY_PACKAGES[@]}" ;;
        *) log "unknown release $1"; return 1 ;;
    esac
}

# Debian 12's debootstrap has no forky script; testing bootstraps like sid.
debootstrap_script() {
    case $1 in
        forky) echo /usr/share/debootstrap/scripts/sid ;;
        *) echo "" ;;
    esac
}

release_binaries() {
    case $1 in
        trixie) echo usr/bin/gimp-console-3.0 usr/bin/kritarunner ;;
        forky) echo usr/bin/gimp-console-3.2 usr/bin/kritarunner ;;
    esac
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

# Trixie's key is computed exactly as before forky existed, so its cached
# tarball and built chroot stay valid.
cache_key() {
    local release=$1 lines=("version=$SCRIPT_VERSION")
    [[ $release != trixie ]] && lines+=("release=$release")
    mapfile -t -O "${#lines[@]}" lines < <(release_packages "$release")
    printf '%s\n' "${lines[@]}" | sha256sum | cut -c1-16
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
    local release=$1 dir=$2 mirror script packages
    mirror=$(host_mirror)
    script=$(debootstrap_script "$release")
    mapfile -t packages < <(release_packages "$release")
    log "debootstrap $release from $mirror"
    local t0=$SECONDS
    unshare --mount --propagation private -- \
        debootstrap --variant=minbase "$release" "$dir" "$mirror" ${script:+"$script"} >&2
    log "debootstrap $release done in $((SECONDS - t0)) s"
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
    # Testing's Release file can be past its Valid-Until on a machine whose
    # clock runs ahead of the mirror's last signing.
    printf 'Acquire::Check-Valid-Until "false";\n' >"$dir/etc/apt/apt.conf.d/99portrait-style-ci"
    # dpkg's own fsyncs are most of the install time on a busy disk; a root that
    # is cached only once it is complete does not need them.
    printf 'force-unsafe-io\n' >"$dir/etc/dpkg/dpkg.cfg.d/portrait-style-ci-unsafe-io"
    # Never start services (dbus) inside the chroot while installing.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    t0=$SECONDS
    in_build_root "$dir" apt-get update -qq >&2
    in_build_root "$dir" apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
    log "$release editors installed in $((SECONDS - t0)) s"
    check_root "$release" "$dir"
    in_build_root "$dir" apt-get clean
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/apt/*
}

# Refuse to cache a root that lacks the editors or has the wire libraries.
check_root() {
    local release=$1 dir=$2 binary
    for binary in $(release_binaries "$release"); do
        if [[ ! -x $dir/$binary ]]; then
            log "ERROR: $release root lacks /$binary"
            return 1
        fi
    done
    if in_build_root "$dir" python3 -c 'import zmq' 2>/dev/null \
        || in_build_root "$dir" python3 -c 'import msgpack' 2>/dev/null; then
        log "ERROR: zmq or msgpack importable in the $release chroot; it must lack them"
        return 1
    fi
}

pack_root() {
    local release=$1 dir=$2 tarball=$3 t0=$SECONDS
    mkdir -p "$CACHE_DIR"
    tar -C "$dir" --numeric-owner -I 'zstd -T0 -3 -q' -cf "$tarball.part" .
    mv -f "$tarball.part" "$tarball"
    find "$CACHE_DIR" -maxdepth 1 -name "$release-*.tar.zst" ! -path "$tarball" -delete
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
    local release=$1 scratch=$2 key=$3 root_dir=$BASE/$1
    echo "$key" >"$scratch/$KEY_FILE"
    if [[ -e $root_dir ]]; then
        mv "$root_dir" "$BASE/$release.old.$$"
    fi
    mv "$scratch" "$root_dir"
    safe_remove "$BASE/$release.old.$$"
}

prepare_chroot() {
    local release=$1 key tarball scratch root_dir=$BASE/$1
    key=$(cache_key "$release")
    tarball=$CACHE_DIR/$release-$key.tar.zst
    if [[ -f $root_dir/$KEY_FILE && $(cat "$root_dir/$KEY_FILE") == "$key" ]]; then
        log "chroot $root_dir is current (key $key)"
        return 0
    fi
    # Leftovers of interrupted runs (this script holds the release's lock, so
    # no other run is using them).
    local stale
    for stale in "$BASE/$release".build.* "$BASE/$release".old.*; do
        [[ -e $stale ]] && { log "removing leftover $stale"; safe_remove "$stale"; }
    done
    scratch=$BASE/$release.build.$$
    if [[ -f $tarball ]] && ! unpack_root "$tarball" "$scratch"; then
        log "cached $tarball is unusable; rebuilding"
        rm -f "$tarball"
        safe_remove "$scratch"
    fi
    if [[ ! -e $scratch ]]; then
        build_root "$release" "$scratch"
        pack_root "$release" "$scratch" "$tarball"
    fi
    install_root "$release" "$scratch" "$key"
}

prepare_host() {
    local packages
    mapfile -t packages < <(release_packages trixie)
    log "Debian 13 host: installing the editors with apt"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >&2
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

# Publish a release's root for tests/editors.py (atomically).
publish_root() {
    local release=$1 root=$2
    echo "$root" >"$BASE/ROOT.$release.part"
    mv -f "$BASE/ROOT.$release.part" "$BASE/ROOT.$release"
    if [[ $release == trixie ]]; then
        echo "$root" >"$BASE/ROOT.part"
        mv -f "$BASE/ROOT.part" "$BASE/ROOT"
    fi
}

prepare_release() {
    local release=$1 root t0=$SECONDS
    release_packages "$release" >/dev/null
    # One lock per release: building forky does not hold up trixie's users.
    # (trixie keeps the historical lock file name.)
    local lock=$BASE/.lock
    [[ $release != trixie ]] && lock=$BASE/.lock.$release
    exec 9>"$lock"
    flock 9
    if [[ $release == trixie ]] && is_debian13; then
        prepare_host
        root=/
    else
        prepare_chroot "$release"
        root=$BASE/$release
    fi
    publish_root "$release" "$root"
    exec 9>&-
    log "$release ready in $((SECONDS - t0)) s"
    echo "$release $root"
}

main() {
    local releases=("$@") release
    ((${#releases[@]} == 0)) && releases=("${DEFAULT_RELEASES[@]}")
    mkdir -p "$BASE"
    # Also when every root is current: other tests use these tools (bwrap) too.
    ensure_host_tools
    for release in "${releases[@]}"; do
        prepare_release "$release"
    done
    if ! is_debian13; then
        ensure_host_krita
    fi
}

main "$@"
