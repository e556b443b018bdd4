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

# What this process started or changed, so that `dev` undoes exactly that on exit:
# postgres:<version>:<cluster>, rabbitmq, hba:<version>:<cluster>, amqp-user:<name>.
STARTED_STACK=()

# A cluster the scripts created for development carries this file in its configuration
# directory; only such a cluster's authentication is ever changed without being asked.
DEV_CLUSTER_MARK="created-by-worker-kit-scripts"
# The cluster name the scripts use when they create one.
DEV_CLUSTER_NAME="worker_kit_dev"
# Lines the scripts add to a pg_hba.conf end with this comment.
HBA_TAG="# worker-kit dev (scripts/lib/stack.sh)"

# 36 hex digits: safe in a URL without escaping.
random_password() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

tcp_open() { timeout 1 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }

pg_answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2; }

pg_accepts_login() { psql -w -X -q -d postgres -c 'SELECT 1' >/dev/null 2>&1; }

pg_is_local() { [ "$PGHOST" = 127.0.0.1 ] || [ "$PGHOST" = localhost ] || [ "$PGHOST" = ::1 ]; }

# "<version> <name>" of the local cluster configured for PGPORT, or nothing.
pg_cluster_at_port() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk -v p="$PGPORT" '$3 == p { print $1, $2; exit }'
}

pg_cluster_is_ours() { [ -f "/etc/postgresql/$1/$2/$DEV_CLUSTER_MARK" ]; }

pg_mark_ours() {
    printf 'Created by worker-kit scripts/lib/stack.sh for development: its pg_hba.conf may be\nopened to passwordless loopback logins of %s.\n' "$PGUSER" >"/etc/postgresql/$1/$2/$DEV_CLUSTER_MARK"
}

ensure_postgres() {
    if pg_answers && pg_accepts_login; then
        return 0
    fi
    if ! pg_is_local; then
        wait_for "PostgreSQL at $PGHOST:$PGPORT" pg_answers
        return 0
    fi
    local installed_now="" cluster version name
    if ! command -v pg_lsclusters >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
        apt_install postgresql postgresql-client
        installed_now=1
    fi
    cluster="$(pg_cluster_at_port)"
    if [ -n "$cluster" ] && [ -n "$installed_now" ]; then
        # The package created it just now, for this script: a development cluster.
        pg_mark_ours "${cluster% *}" "${cluster#* }"
    fi
    if [ -z "$cluster" ]; then
        version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
        [ -n "$version" ] || die "no PostgreSQL server installed (apt-get install postgresql)"
        is_root || die "no local PostgreSQL cluster uses port $PGPORT; create one with: sudo pg_createcluster --start $version $DEV_CLUSTER_NAME -p $PGPORT"
        say "creating PostgreSQL $version cluster $DEV_CLUSTER_NAME on port $PGPORT for development (listens on localhost only)"
        pg_createcluster "$version" "$DEV_CLUSTER_NAME" -p "$PGPORT" >/dev/null
        pg_mark_ours "$version" "$DEV_CLUSTER_NAME"
        cluster="$version $DEV_CLUSTER_NAME"
    fi
    version="${cluster% *}"
    name="${cluster#* }"
    if ! pg_answers; then
        is_root || die "PostgreSQL $version/$name (port $PGPORT) is stopped; start it with: sudo pg_ctlcluster $version $name start"
        say "starting PostgreSQL $version/$name on port $PGPORT"
        pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start
        STARTED_STACK+=("postgres:$version:$name")
    fi
    WAIT_SECONDS=60 wait_for "PostgreSQL at $PGHOST:$PGPORT" pg_answers
    pg_accepts_login && return 0
    if pg_cluster_is_ours "$version" "$name"; then
        open_dev_logins "$version" "$name" kept
    elif [ "${DEV_PG_TRUST:-}" = 1 ]; then
        open_dev_logins "$version" "$name" undone
    else
        die "PostgreSQL $version/$name on port $PGPORT refuses $PGUSER without a password, and the scripts did not create that cluster, so they leave its authentication alone. Either set PGUSER/PGPASSWORD (in .env) to a role that may create databases, or point PGPORT at a free port and run as root (a development cluster is created there), or set DEV_PG_TRUST=1 to let this run allow passwordless loopback logins of $PGUSER until it exits."
    fi
}

# Lets PGUSER log in over loopback TCP without a password (the development settings have no
# password). How long: "kept" for a cluster the scripts created, "undone" (removed again by
# undo_stack_changes) otherwise.
open_dev_logins() {
    local version="$1" name="$2" how="$3"
    local hba="/etc/postgresql/$version/$name/pg_hba.conf"
    is_root || die "PostgreSQL $version/$name refuses $PGUSER without a password; as root the scripts would allow it ($how) in $hba"
    [[ "$PGUSER" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "PGUSER '$PGUSER' is not a plain role name"
    say "allowing passwordless loopback logins of $PGUSER in $hba ($([ "$how" = kept ] && echo "a cluster these scripts created" || echo "DEV_PG_TRUST=1: removed again on exit"))"
    sed -i "1i host all $PGUSER 127.0.0.1/32 trust $HBA_TAG\nhost all $PGUSER ::1/128 trust $HBA_TAG" "$hba"
    [ "$how" = kept ] || STARTED_STACK+=("hba:$version:$name")
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload
    WAIT_SECONDS=20 wait_for "PostgreSQL login as $PGUSER" pg_accepts_login
}

# The local node: RabbitMQ's own variables pick another one (RABBITMQ_NODENAME for rabbitmqctl,
# RABBITMQ_NODE_PORT for its port), as the scripts' tests do with a scratch node.
rabbit_port() { echo "${RABBITMQ_NODE_PORT:-5672}"; }
rabbit_answers() { tcp_open 127.0.0.1 "$(rabbit_port)"; }

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
    WAIT_SECONDS=90 wait_for "RabbitMQ on 127.0.0.1:$(rabbit_port)" rabbit_answers
    configure_rabbitmq
}

# On a node this script started: the vhost and the parking-queue policy of
# rabbitmq-configs/definitions.json. Not its users (development users are made by
# dev_broker_users for the time `dev` runs) and nothing else.
configure_rabbitmq() {
    command -v rabbitmqctl >/dev/null 2>&1 || return 0
    is_root || return 0
    command -v jq >/dev/null 2>&1 || apt_install jq
    local defs
    defs="$(mktemp)"
    jq '{vhosts, policies}' "$ROOT/rabbitmq-configs/definitions.json" >"$defs"
    rabbitmqctl -q import_definitions "$defs" >/dev/null 2>&1 ||
        warn "could not import the policies of rabbitmq-configs/definitions.json"
    rm -f "$defs"
}

# Clients connected to the local RabbitMQ node (any user).
rabbit_connections() { rabbitmqctl -q --no-table-headers list_connections user 2>/dev/null | grep -c . || true; }

# Client sessions on the cluster at PGPORT other than this query's own.
pg_other_sessions() {
    psql -w -X -tA -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || echo unknown
}

# Undoes what ensure_* and dev_broker_users did in this process, newest first: removes the
# broker users and pg_hba.conf lines it added, and stops the servers it started unless other
# clients use them by now.
undo_stack_changes() {
    local i item version name n
    for ((i = ${#STARTED_STACK[@]} - 1; i >= 0; i--)); do
        item="${STARTED_STACK[$i]}"
        case "$item" in
            amqp-user:*)
                rabbitmqctl -q delete_user "${item#amqp-user:}" >/dev/null 2>&1 ||
                    warn "could not delete the broker user ${item#amqp-user:}"
                ;;
            hba:*)
                IFS=: read -r _ version name <<<"$item"
                say "removing the development logins from PostgreSQL $version/$name's pg_hba.conf"
                sed -i "\\|$HBA_TAG\$|d" "/etc/postgresql/$version/$name/pg_hba.conf"
                pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload || true
                ;;
            postgres:*)
                IFS=: read -r _ version name <<<"$item"
                n="$(pg_other_sessions)"
                if [ "$n" = 0 ]; then
                    say "stopping PostgreSQL $version/$name"
                    # smart: waits for sessions that connect meanwhile instead of cutting them.
                    pg_ctlcluster --skip-systemctl-redirect -m smart "$version" "$name" stop || true
                else
                    say "leaving PostgreSQL $version/$name running: $n other sessions use it"
                fi
                ;;
            rabbitmq)
                n="$(rabbit_connections)"
                if [ "$n" = 0 ]; then
                    say "stopping RabbitMQ"
                    rabbitmqctl -q stop >/dev/null 2>&1 || true
                else
                    say "leaving RabbitMQ running: $n other connections use it"
                fi
                ;;
        esac
    done
    STARTED_STACK=()
}

# Development broker users: one per service with a user in rabbitmq-configs/definitions.json,
# with the permissions written there, a random password for this run, and the tag
# worker-kit-dev. Sets <SERVICE>_AMQP_URL for each (unless already set, e.g. in .env) so the
# service connects as itself. Users this run creates are deleted by undo_stack_changes; a user
# of that name that the scripts did not make is left alone (set <SERVICE>_AMQP_URL instead).
# Needs root and the local node; otherwise the services use AMQP_URL, and this says so.
dev_broker_users() {
    local defs="${BROKER_DEFINITIONS:-$ROOT/rabbitmq-configs/definitions.json}" svc var user perms users pw c w r
    # Only for the local broker's default vhost, which is where rabbitmqctl makes them.
    if [ -n "${AMQP_URL:-}" ] && ! [[ "$AMQP_URL" =~ ^amqp://([^@/]*@)?(127\.0\.0\.1|localhost)(:5672)?(/|/%2[fF])?(\?.*)?$ ]]; then
        say "AMQP_URL is not the local broker's /: the services connect with it, not as their own broker users"
        return 0
    fi
    if ! is_root || ! command -v rabbitmqctl >/dev/null 2>&1 || ! rabbitmqctl -q status >/dev/null 2>&1; then
        warn "no rabbitmqctl on a local node as root: the services connect with AMQP_URL, not as their own broker users"
        return 0
    fi
    command -v jq >/dev/null 2>&1 || apt_install jq
    for svc in "$@"; do
        var="$(printf '%s' "$svc" | tr 'a-z-' 'A-Z_')_AMQP_URL"
        [ -z "${!var:-}" ] || continue
        perms="$(jq -r --arg u "$svc" '.permissions[] | select(.user == $u and .vhost == "/") | "\(.configure)\t\(.write)\t\(.read)"' "$defs")"
        if [ -z "$perms" ]; then
            warn "$svc has no broker user in rabbitmq-configs/definitions.json: it connects with AMQP_URL"
            continue
        fi
        user="$svc"
        users="$(rabbitmqctl -q list_users --formatter json)"
        if jq -e --arg u "$user" 'any(.[]; .user == $u)' <<<"$users" >/dev/null; then
            jq -e --arg u "$user" 'any(.[]; .user == $u and (.tags | index("worker-kit-dev")))' <<<"$users" >/dev/null ||
                die "the broker already has a user '$user' that these scripts did not create; set $var (in .env) to its URL, or remove that user"
            # Tagged and connected: another dev run's (a new password would lock its services
            # out on their next reconnect). Tagged and idle: left by a killed run, ours to reuse.
            if rabbitmqctl -q --no-table-headers list_connections user 2>/dev/null | grep -qxF "$user"; then
                die "another scripts/dev runs as broker user '$user' on this broker; stop it first, or set $var (in .env)"
            fi
        else
            say "broker user $user for this run (permissions of rabbitmq-configs/definitions.json)"
        fi
        pw="$(random_password)"
        # The password goes through stdin, never an argument (arguments are visible in ps).
        if ! printf '%s' "$pw" | rabbitmqctl -q add_user "$user" >/dev/null 2>&1; then
            printf '%s' "$pw" | rabbitmqctl -q change_password "$user" >/dev/null
        fi
        STARTED_STACK+=("amqp-user:$user")
        rabbitmqctl -q set_user_tags "$user" worker-kit-dev >/dev/null
        IFS=$'\t' read -r c w r <<<"$perms"
        rabbitmqctl -q set_permissions -p / "$user" "$c" "$w" "$r" >/dev/null
        export "$var=amqp://$user:$pw@127.0.0.1:5672/%2f"
    done
}

# Brings RabbitMQ and PostgreSQL up from dev.docker-compose.yml. The services' broker users
# (rabbitmq-configs/definitions.json) get the passwords in <SERVICE>_AMQP_PASSWORD, random ones
# for this run when unset, and <SERVICE>_AMQP_URL points at them (unless set). guest only logs
# in from inside the container, so the developer's own tools and the tests (AMQP_URL, when
# unset) use the user `dev` that the container makes for DEV_PASSWORD (random when unset).
compose_up() {
    local svc up pw url
    for svc in $(service_names); do
        up="$(printf '%s' "$svc" | tr 'a-z-' 'A-Z_')"
        pw="${up}_AMQP_PASSWORD"
        url="${up}_AMQP_URL"
        if [ -z "${!pw:-}" ]; then export "$pw=$(random_password)"; fi
        if [ -z "${!url:-}" ]; then export "$url=amqp://$svc:${!pw}@127.0.0.1:5672/%2f"; fi
    done
    if [ -z "${DEV_PASSWORD:-}" ]; then
        DEV_PASSWORD="$(random_password)"
        export DEV_PASSWORD
    fi
    if [ -z "${AMQP_URL:-}" ]; then export AMQP_URL="amqp://dev:$DEV_PASSWORD@127.0.0.1:5672/%2f"; fi
    say "docker compose: rabbitmq and postgres (ports on 127.0.0.1 only)"
    docker compose -f "$ROOT/dev.docker-compose.yml" up -d --wait rabbitmq postgres
}

# Brings the stack up the local way (no Docker).
ensure_local_stack() {
    ensure_postgres
    ensure_rabbitmq
}

# The tests' scratch databases: tests/src/pg.rs (t_<name>_<hex>), manage's tests (t_mg_...),
# the example binary's (t_process_<pid>), and manage's shadows of those (t_...__manage_...).
SCRATCH_DATABASES='^t_[a-z0-9_]+$'
scratch_databases() {
    psql -w -X -tA -d postgres -c "SELECT datname FROM pg_database WHERE datname ~ '$SCRATCH_DATABASES'" 2>/dev/null | LC_ALL=C sort
}
# Drops the scratch databases that appeared during this run and nobody is connected to (a
# database in use, e.g. by another checkout's tests running now, refuses DROP and is kept).
# $1: a file listing the scratch databases there were before (scratch_databases' output).
drop_scratch_databases() {
    local before="$1" db dropped=0 kept=0
    [ -f "$before" ] || return 0
    for db in $(scratch_databases | comm -13 "$before" -); do
        if psql -w -X -q -d postgres -c "DROP DATABASE \"$db\"" >/dev/null 2>&1; then
            dropped=$((dropped + 1))
        else
            kept=$((kept + 1))
        fi
    done
    say "scratch databases left by the tests: $dropped dropped$([ "$kept" -eq 0 ] || echo ", $kept in use and kept")"
}

# manage binary: built once per script run.
manage_bin() {
    if [ -z "${_MANAGE_BUILT:-}" ]; then
        say "building manage (the first build of a checkout compiles every dependency: minutes)"
        (cd "$ROOT" && cargo build -p worker-kit-manage --bin manage) || return 1
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
