# Brings up RabbitMQ and PostgreSQL: with Docker Compose when an engine answers, otherwise
# the local Debian packages (installed when missing and running as root), then waits until
# both answer. Idempotent and quick when everything is already up.
# shellcheck shell=bash
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
export PGHOST PGPORT PGUSER

# What this process started, so that `dev` can stop exactly that on exit.
STARTED_STACK=()

tcp_open() { timeout 1 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }

pg_answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2; }

pg_accepts_login() { psql -w -X -q -d postgres -c 'SELECT 1' >/dev/null 2>&1; }

pg_cluster_version() {
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
    if pg_answers && pg_accepts_login; then
        return 0
    fi
    if [ "$PGHOST" != 127.0.0.1 ] && [ "$PGHOST" != localhost ]; then
        wait_for "PostgreSQL at $PGHOST:$PGPORT" pg_answers
        return 0
    fi
    if ! command -v pg_isready >/dev/null 2>&1 || [ -z "$(pg_cluster_version)" ]; then
        apt_install postgresql postgresql-client
    fi
    local version
    version="$(pg_cluster_version)"
    [ -n "$version" ] || die "no PostgreSQL cluster under /etc/postgresql after installing; create one with pg_createcluster"
    if ! pg_answers; then
        is_root || die "PostgreSQL $version is stopped; start it with: sudo pg_ctlcluster $version main start"
        say "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        STARTED_STACK+=("postgres:$version")
    fi
    WAIT_SECONDS=60 wait_for "PostgreSQL at $PGHOST:$PGPORT" pg_answers
    if ! pg_accepts_login; then
        # A fresh Debian cluster wants a password on TCP; development uses trust on loopback.
        is_root || die "PostgreSQL refuses $PGUSER on $PGHOST without a password: set PGPASSWORD, or allow trust for 127.0.0.1 in pg_hba.conf"
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        say "allowing passwordless loopback logins for development in $hba"
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        WAIT_SECONDS=20 wait_for "PostgreSQL login as $PGUSER" pg_accepts_login
    fi
}

rabbit_answers() { tcp_open 127.0.0.1 5672; }

ensure_rabbitmq() {
    if rabbit_answers; then
        return 0
    fi
    command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
    is_root || die "RabbitMQ is stopped; start it with: sudo rabbitmq-server -detached"
    say "starting RabbitMQ"
    # -detached returns at once; the node takes a few seconds to open its port.
    rabbitmq-server -detached
    STARTED_STACK+=("rabbitmq")
    WAIT_SECONDS=90 wait_for "RabbitMQ on 127.0.0.1:5672" rabbit_answers
    configure_rabbitmq
}

# Applies rabbitmq-configs/definitions.json (the dev vhost, user and the parking-queue
# policy) to the local node. Additive: the guest account stays.
configure_rabbitmq() {
    command -v rabbitmqctl >/dev/null 2>&1 || return 0
    is_root || return 0
    rabbitmqctl -q import_definitions "$ROOT/rabbitmq-configs/definitions.json" >/dev/null 2>&1 ||
        warn "could not import rabbitmq-configs/definitions.json (the guest account still works)"
}

# Stops what ensure_* started in this process (used by `dev` on exit).
stop_started_stack() {
    local item
    for item in "${STARTED_STACK[@]+"${STARTED_STACK[@]}"}"; do
        case "$item" in
            postgres:*)
                say "stopping PostgreSQL ${item#postgres:}"
                pg_ctlcluster --skip-systemctl-redirect "${item#postgres:}" main stop -m fast || true
                ;;
            rabbitmq)
                say "stopping RabbitMQ"
                rabbitmqctl -q stop >/dev/null 2>&1 || true
                ;;
        esac
    done
    STARTED_STACK=()
}

# Brings the stack up the local way (no Docker).
ensure_local_stack() {
    ensure_postgres
    ensure_rabbitmq
}

# manage binary: built once per script run.
manage_bin() {
    if [ -z "${_MANAGE_BUILT:-}" ]; then
        (cd "$ROOT" && cargo build -q -p worker-kit-manage --bin manage) || return 1
        _MANAGE_BUILT=1
    fi
    echo "$TARGET_DIR/debug/manage"
}

# Brings every service's database in line with models/<service>/ (creating it when
# missing) with `manage sync --noprompt`.
sync_schemas() {
    local svc manage
    manage="$(manage_bin)" || die "could not build manage"
    for svc in $(service_names); do
        [ -d "$ROOT/models/$svc" ] || continue
        if "$manage" --help 2>/dev/null | grep -q sync; then
            say "manage sync --service $svc"
            (cd "$ROOT" && "$manage" sync --service "$svc" --noprompt) || die "manage sync failed for $svc"
        else
            create_from_models "$svc"
        fi
    done
}

# Without a working `manage`: create the service's database from its model files when it
# does not exist yet (an existing one is left alone).
create_from_models() {
    local svc="$1" f
    if [ -n "$(psql -w -X -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$svc'")" ]; then
        warn "manage is not available: database $svc exists and its schema was not checked"
        return 0
    fi
    say "creating database $svc from models/$svc"
    psql -w -X -q -d postgres -c "CREATE DATABASE \"$svc\"" >/dev/null
    for f in "$ROOT"/models/"$svc"/*.sql; do
        case "$(basename "$f")" in queries.sql | *.queries.sql) continue ;; esac
        psql -w -X -q -v ON_ERROR_STOP=1 -d "$svc" -f "$f" >/dev/null || die "$f failed"
    done
}
