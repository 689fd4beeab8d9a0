# Helpers shared by the deploy/local scripts; source it after setting
# LOG_PREFIX (the word each log line starts with).
# shellcheck shell=bash

export DEBIAN_FRONTEND=noninteractive

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
    printf '%s: ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
    exit 1
}

# Run a command as root (directly, or through sudo for a non-root developer).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (re-run this script as root)"
    fi
}

# apt-get install, running apt-get update once per script run first.
APT_UPDATED=0
apt_install() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    as_root apt-get install -y -q "$@"
}
