#!/usr/bin/env bash
# scripts/test's clean-up of scratch databases: it drops those matching the tests' pattern that
# appeared during the run, keeps one still in use (another checkout's tests may be running),
# and never touches a database outside the pattern or one that was there before.
set -euo pipefail
# shellcheck source=scripts/lib/stack.sh
. "$(dirname "$0")/../../scripts/lib/stack.sh"
if ! pg_accepts_login; then
    echo "SKIP PostgreSQL does not answer at $PGHOST:$PGPORT"
    exit 0
fi
fail=0
check() {
    local what="$1"
    shift
    if "$@"; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
sql() { psql -w -X -q -d postgres -c "$1" >/dev/null; }
# shellcheck disable=SC2317 # called through check
exists() { [ -n "$(psql -w -X -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$1'")" ]; }
tag="$$_$RANDOM"
old="t_scratchtest_old_$tag"
new="t_scratchtest_new_$tag"
busy="t_scratchtest_busy_$tag"
other="wk_scratchtest_keep_$tag"
before="$(mktemp)"
holder=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
    for db in "$old" "$new" "$busy" "$other"; do
        psql -w -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -f "$before"
}
trap cleanup EXIT

# The real pattern names every helper's databases and nothing else.
for name in t_items_0123456789 t_mg_fresh_4242_7 t_process_4242 t_mg_x_1_2__manage_models; do
    check "the pattern matches $name" bash -c "psql -w -X -tA -d postgres -c \"SELECT '$name' ~ '$SCRATCH_DATABASES'\" | grep -qx t"
done
for name in example example__manage_models postgres test greeter; do
    check "the pattern leaves $name alone" bash -c "psql -w -X -tA -d postgres -c \"SELECT '$name' ~ '$SCRATCH_DATABASES'\" | grep -qx f"
done
# Below, only this test's databases count: other tests on this server may be making theirs now.
SCRATCH_DATABASES="^t_scratchtest_[a-z]+_$tag\$"

sql "CREATE DATABASE \"$old\""
scratch_databases >"$before"
sql "CREATE DATABASE \"$new\""
sql "CREATE DATABASE \"$busy\""
sql "CREATE DATABASE \"$other\""
psql -w -X -q -d "$busy" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
# shellcheck disable=SC2317 # called by wait_for
in_use() { [ "$(psql -w -X -tA -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$busy'")" -gt 0 ]; }
WAIT_SECONDS=20 wait_for "a session on $busy" in_use
out="$(drop_scratch_databases "$before" 2>&1)"
# shellcheck disable=SC2317 # called through check
absent() { ! exists "$1"; }
check "a scratch database made during the run is dropped" absent "$new"
check "one in use is kept" exists "$busy"
check "... and counted" grep -q 'in use and kept' <<<"$out"
check "one that was there before is kept" exists "$old"
check "a database outside the pattern is never dropped" exists "$other"
exit "$fail"
