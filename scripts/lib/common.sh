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

# Runs apt-get install for the given Debian packages (as root). The package lists are
# refreshed (apt-get update, slow) only when the install fails without them: when they are
# missing, or too old to name or fetch the package. Without root, says exactly what to install
# and fails.
apt_install() {
    if ! is_root; then
        die "missing: $*. Install with: sudo apt-get install -y $*  (or run this script as root)"
    fi
    say "apt-get install $*"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; then
        return 0
    fi
    say "apt-get update (the package lists did not have $*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# Whether signal $1 (INT, TERM, ...) was ignored when this shell started: the kernel's
# SigIgn mask of this process (bash cannot trap such a signal, nor read it with `trap -p`).
signal_ignored_at_start() {
    local num mask
    num="$(kill -l "$1")" || return 1
    mask="$(awk '/^SigIgn:/ {print $2}' "/proc/$$/status" 2>/dev/null)" || return 1
    [ -n "$mask" ] && (((16#$mask >> (num - 1)) & 1))
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

# The settings the scripts take from .env: what worker-kit's configuration reads
# (worker-kit/src/config.rs, worker-kit/src/db/config.rs, worker-kit/src/outbox/settings.rs),
# the libpq variables and the scripts' own. Any other key in .env is ignored with a warning: .env is not a way to set PATH or
# LD_PRELOAD for scripts that may run as root.
DOTENV_KEYS=(
    AMQP_URL AMQP_TLS_CA_FILE AMQP_TLS_CERT_FILE AMQP_TLS_KEY_FILE AMQP_PREFETCH WORKER_CONCURRENCY AMQP_CONNECT_TIMEOUT_MS RPC_TIMEOUT_MS DRAIN_TIMEOUT_MS HANDLER_TIMEOUT_MS BROKER_CONSUMER_TIMEOUT_MS
    QUEUE_MAX_RETRIES QUEUE_RETRY_DELAY_MS QUEUE_RETRY_MAX_DELAY_MS RPC_MAX_REDELIVERIES EVENT_PUBLISHERS QUEUE_TYPE MAX_MESSAGE_BYTES MAX_DECODED_BYTES DECODE_BUDGET_BYTES PAUSE_ON_DB_OUTAGE
    DB_HEALTH_INTERVAL_MS MODE LOG_FORMAT RUST_LOG RUST_BACKTRACE DEADLINE_MAX_SKEW_MS
    RPC_QUEUE_DURABLE RPC_REPLY_TO RPC_ANONYMOUS ROUTE_ALLOW METRICS_ADDR
    EVENTS_EXCHANGE OUTBOX_BATCH_SIZE OUTBOX_POLL_INTERVAL_MS OUTBOX_CONFIRM_TIMEOUT_MS
    OUTBOX_RETENTION_SECS PROCESSED_EVENTS_RETENTION_SECS CATALOG_MAX_SEQ_JUMP
    PGHOST PGPORT PGUSER PGPASSWORD PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY DB_POOL_SIZE DB_CONNECT_TIMEOUT_MS DB_ACQUIRE_TIMEOUT_MS
    DB_STATEMENT_TIMEOUT_MS DB_STARTUP_TIMEOUT_MS
    DEV_PG_TRUST DEV_PASSWORD DEV_METRICS_PORT
)

dotenv_key_known() {
    local k
    case "$1" in
        # DB_<KIND>_DSN (DB_MAIN_DSN, DB_DWH_DSN, ...); a service's own broker URL in dev and
        # its broker password in dev.docker-compose.yml.
        DB_*_DSN | *_AMQP_URL | *_AMQP_PASSWORD) return 0 ;;
    esac
    for k in "${DOTENV_KEYS[@]}"; do [ "$k" = "$1" ] && return 0; done
    return 1
}

# Parses one .env value the way the services' parser (the dotenvy crate) does: 'single
# quotes' are literal, "double quotes" and bare values take the escapes \\ \' \" \$ \space and
# \n, a bare value ends at whitespace and may be followed by a # comment. dotenvy also
# substitutes $NAME; the scripts do not, so an unescaped $ outside single quotes is refused
# rather than read differently. Sets DOTENV_VALUE; returns 1 on a malformed value and 3 when a
# quote is still open at the end (the value continues on the next line).
dotenv_parse_value() {
    local in="$1" out="" c i n=${#1} strong="" weak="" escaped="" ending=""
    for ((i = 0; i < n; i++)); do
        c="${in:i:1}"
        if [ -n "$ending" ]; then
            case "$c" in
                ' ' | $'\t') continue ;;
                '#') break ;;
                *) return 1 ;;
            esac
        elif [ -n "$escaped" ]; then
            case "$c" in
                "\\" | "'" | '"' | '$' | ' ') out+="$c" ;;
                n) out+=$'\n' ;;
                *) return 1 ;;
            esac
            escaped=""
        elif [ -n "$strong" ]; then
            if [ "$c" = "'" ]; then strong=""; else out+="$c"; fi
        elif [ "$c" = '$' ]; then
            return 2
        elif [ -n "$weak" ]; then
            case "$c" in
                '"') weak="" ;;
                "\\") escaped=1 ;;
                *) out+="$c" ;;
            esac
        else
            case "$c" in
                "'") strong=1 ;;
                '"') weak=1 ;;
                "\\") escaped=1 ;;
                ' ' | $'\t') ending=1 ;;
                *) out+="$c" ;;
            esac
        fi
    done
    [ -z "$strong$weak" ] || return 3
    DOTENV_VALUE="$out"
}

# Loads the known settings from .env (or $DOTENV_FILE), without overriding variables already
# set, as the services do. A line the services' parser would reject stops the script.
load_dotenv() {
    local file="${DOTENV_FILE:-$ROOT/.env}" line key rest lineno=0 start=0 rc
    [ -f "$file" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        # A quoted value may span lines: keep reading until its quote closes.
        if [ "$start" -gt 0 ]; then
            rest+=$'\n'"$line"
        else
            line="${line#"${line%%[![:space:]]*}"}"
            case "$line" in '' | '#'*) continue ;; esac
            if [[ "$line" =~ ^(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_.]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
                key="${BASH_REMATCH[2]}"
                rest="${BASH_REMATCH[3]}"
                start=$lineno
            else
                die "$file:$lineno: expected KEY=VALUE"
            fi
        fi
        rest="${rest%"${rest##*[![:space:]]}"}"
        rc=0
        dotenv_parse_value "$rest" || rc=$?
        case "$rc" in
            0) ;;
            3) continue ;;
            2) die "$file:$start: $key: \$ substitution is not supported here; write the value out (or escape it as \\\$)" ;;
            *) die "$file:$start: $key: malformed value" ;;
        esac
        start=0
        if ! dotenv_key_known "$key"; then
            warn "$file:$lineno: ignored $key (not a worker-kit setting)"
        elif [ -z "${!key+x}" ]; then
            export "$key=$DOTENV_VALUE"
        fi
    done <"$file"
    [ "$start" -eq 0 ] || die "$file:$start: $key: a quote is not closed"
}

docker_engine_answers() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}
