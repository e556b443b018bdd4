#!/usr/bin/env bash
# scripts/lib/stack.sh and PostgreSQL authentication: a failed login never changes a cluster
# the scripts did not create (the machine's pg_hba.conf stays byte for byte as it was),
# DEV_PG_TRUST=1 opens one only until the run undoes its changes, the cluster started is the one
# at PGPORT and is stopped again only while nobody else uses it, and a cluster the scripts
# create gets loopback logins of PGUSER alone. Scratch clusters on free ports, dropped at the end.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
root="$ROOT"
if ! is_root || ! command -v pg_createcluster >/dev/null 2>&1; then
    echo "SKIP needs root and the PostgreSQL server packages"
    exit 0
fi
version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)"
fail=0
check() {
    local what="$1"
    shift
    if "$@"; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
work="$(mktemp -d)"
made=()
sleeper=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local c
    [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
    for c in "${made[@]+"${made[@]}"}"; do pg_dropcluster --stop "$version" "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local p
    for p in $(shuf -i 40000-60000 -n 50); do
        if ! pg_lsclusters -h | awk '{print $3}' | grep -qx "$p" && ! timeout 1 bash -c "</dev/tcp/127.0.0.1/$p" 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Runs stack.sh functions in a child shell with the settings given: stack VAR=value... -- code
stack() {
    local vars=()
    while [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    shift
    env -u DEV_PG_TRUST -u PGPASSWORD "${vars[@]}" bash -c ". '$root/scripts/lib/stack.sh'; $1"
}

# 1. The machine's own cluster, a login that fails (an unknown role, a wrong password).
machine="$(pg_lsclusters -h | awk '$3 == 5432 { print $1 "/" $2; exit }')"
if [ -n "$machine" ]; then
    hba="/etc/postgresql/$machine/pg_hba.conf"
    cp "$hba" "$work/machine.hba"
    set +e
    stack PGPORT=5432 PGUSER=wk_nobody PGPASSWORD=wrong -- ensure_postgres >"$work/out" 2>&1
    code=$?
    set -e
    check "a refused login on the machine's cluster stops the script" test "$code" -ne 0
    check "it says why instead of changing authentication" grep -q "leave its authentication alone" "$work/out"
    check "the machine's pg_hba.conf is byte for byte unchanged" cmp -s "$hba" "$work/machine.hba"
fi

# 2. A cluster the scripts did not create, with Debian's password authentication on TCP.
port="$(free_port)"
name="wk_test_$$"
pg_createcluster "$version" "$name" -p "$port" >/dev/null
made+=("$name")
hba="/etc/postgresql/$version/$name/pg_hba.conf"
cp "$hba" "$work/other.hba"
set +e
stack PGPORT="$port" -- ensure_postgres >"$work/out" 2>&1
code=$?
set -e
check "the cluster at PGPORT is started, not the newest one" grep -q "starting PostgreSQL $version/$name on port $port" "$work/out"
check "its refused login stops the script without touching pg_hba.conf" \
    bash -c "[ $code -ne 0 ] && cmp -s '$hba' '$work/other.hba'"
stack PGPORT="$port" DEV_PG_TRUST=1 -- '
    ensure_postgres
    psql -w -X -tA -d postgres -c "SELECT 1" >/dev/null && echo "login works"
    grep -c "worker-kit dev" "/etc/postgresql/'"$version/$name"'/pg_hba.conf"
    undo_stack_changes' >"$work/out" 2>&1 || true
check "DEV_PG_TRUST=1 lets PGUSER in during the run" grep -q "^login works" "$work/out"
check "... with two loopback lines scoped to PGUSER" \
    bash -c "grep -qx 2 '$work/out' && grep -q 'allowing passwordless loopback logins of postgres' '$work/out'"
check "... which the run removes again (pg_hba.conf byte for byte as found)" cmp -s "$hba" "$work/other.hba"

# 3. Stopping: only what the run started, and not while others use it.
pg_ctlcluster "$version" "$name" stop
printf 'host all postgres 127.0.0.1/32 trust\n' | cat - "$work/other.hba" >"$hba"
stack PGPORT="$port" -- '
    ensure_postgres
    undo_stack_changes' >"$work/out" 2>&1
check "a cluster the run started is stopped at the end" \
    bash -c "pg_lsclusters -h | awk '\$2 == \"$name\" {print \$4}' | grep -qx down"
psql -h 127.0.0.1 -p "$port" -U postgres -w -X -q -c "SELECT 1" >/dev/null 2>&1 && echo "FAIL cluster still answers"
# shellcheck disable=SC2016 # expanded by the child shell
stack PGPORT="$port" -- '
    ensure_postgres
    psql -h 127.0.0.1 -p '"$port"' -U postgres -w -X -q -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
    echo "sleeper $!"
    deadline=$((SECONDS + 20))
    until [ "$(pg_other_sessions)" = 1 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
    undo_stack_changes' >"$work/out" 2>&1
sleeper="$(awk '/^sleeper/ {print $2}' "$work/out")"
check "a cluster another session uses by now is left running" \
    bash -c "grep -q 'leaving PostgreSQL $version/$name running: 1 other sessions use it' '$work/out' && pg_lsclusters -h | awk '\$2 == \"$name\" {print \$4}' | grep -qx online"
kill "$sleeper" 2>/dev/null || true
sleeper=""
check "a machine cluster the run did not start is never stopped" \
    bash -c "[ -z '$machine' ] || pg_lsclusters -h | awk '\$3 == 5432 {print \$4}' | grep -qx online"

# 4. No cluster at PGPORT: the scripts create one, and open it to PGUSER alone.
port="$(free_port)"
created="wk_created_$$"
made+=("$created")
stack PGPORT="$port" -- "
    DEV_CLUSTER_NAME=$created
    ensure_postgres
    psql -w -X -tA -d postgres -c 'SELECT 1' >/dev/null && echo 'login works'" >"$work/out" 2>&1 || true
hba="/etc/postgresql/$version/$created/pg_hba.conf"
check "with no cluster at PGPORT one is created there, and says so" \
    grep -q "creating PostgreSQL $version cluster $created on port $port for development" "$work/out"
check "it is marked as made by the scripts" test -f "/etc/postgresql/$version/$created/created-by-worker-kit-scripts"
check "PGUSER logs in over loopback" grep -q "^login works" "$work/out"
check "the lines added name PGUSER and loopback addresses only" \
    bash -c "[ \"\$(grep -c 'worker-kit dev' '$hba')\" = 2 ] && ! grep 'worker-kit dev' '$hba' | grep -qv '^host all postgres \(127.0.0.1/32\|::1/128\) trust'"
exit "$fail"
