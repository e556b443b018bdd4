# Shared helpers for the scripts: repository root, messages, root checks.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT
# Where cargo puts binaries: CARGO_TARGET_DIR when set (relative to the root, where the
# scripts run cargo), target/ otherwise.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
export TARGET_DIR

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs apt-get install for the given Debian packages (as root), after one apt-get update
# per process. Without root, says exactly what to install and fails.
apt_install() {
    if ! is_root; then
        die "missing: $*. Install with: sudo apt-get install -y $*  (or run this script as root)"
    fi
    if [ -z "${_APT_UPDATED:-}" ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        _APT_UPDATED=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# Waits until "$@" succeeds, checking every 0.5 s, for at most $WAIT_SECONDS (default 60).
# Prints what it waited for when it gives up.
wait_for() {
    local what="$1"
    shift
    local limit="${WAIT_SECONDS:-60}"
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$what did not answer within ${limit}s"
        fi
        sleep 0.5
    done
}

# The service crates: every directory under services/ with a Cargo.toml.
service_names() {
    local d
    for d in "$ROOT"/services/*/; do
        [ -f "$d/Cargo.toml" ] && basename "$d"
    done
}

# Loads .env (if present) without overriding variables already set, like the services do.
load_dotenv() {
    local file="$ROOT/.env" line key
    [ -f "$file" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in '' | '#'*) continue ;; esac
        key="${line%%=*}"
        key="${key#export }"
        if [ -z "${!key+x}" ]; then
            export "${key}=${line#*=}"
        fi
    done <"$file"
}

docker_engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}
