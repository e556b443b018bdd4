#!/usr/bin/env bash
# scripts/dev end to end: it builds the services and rpc-call, runs each service as its own
# broker user (greeter calls example through them), restarts a service when its source changes
# and when a file is added (the new file is watched from then on), stops on SIGTERM (which works
# in any job-control state; a background job ignores SIGINT) with the services' shutdown lines
# in its output, and on SIGINT (Ctrl+C) pressed twice too, and leaves no process, broker user
# or pg_hba.conf change behind. On any failure the test stops what it started and restores the files it
# changed.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
root="$ROOT"
cd "$root"
rpc_call="$TARGET_DIR/debug/rpc-call"
call() { "$rpc_call" --timeout 2 "$@" >/dev/null 2>&1; }
# Only processes of this checkout count (another checkout may run its own example).
ours() {
    local pid
    for pid in $(pgrep -f "$1" || true); do
        if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$root" ]; then echo "$pid"; fi
    done
    return 0
}
example_pid() { ours "^(\S*/)?debug/example\$" | head -n 1; }
# Our example answers: its process runs and hello_world is answered.
ours_answers() { [ -n "$(example_pid)" ] && call hello_world; }
left_behind() { ours "/debug/(example|greeter|catalog)\$|entr -dnr|dev-watch"; }

log="$(mktemp)"
work="$(mktemp -d)"
source_file="services/example/src/lib.rs"
new_file="services/example/src/dev_test_new_file.rs"
cp "$source_file" "$work/lib.rs"

# What must be as it was afterwards: the broker's users, the local cluster's pg_hba.conf.
broker_users() { rabbitmqctl -q list_users 2>/dev/null | awk '{print $1}' | sort; }
# Idle users tagged worker-kit-dev are what a killed dev run left: dev reuses them and removes
# them at its end, so they are not part of what must be as it was.
broker_users_not_left_by_dev() { rabbitmqctl -q list_users 2>/dev/null | awk '!/worker-kit-dev/ {print $1}' | sort; }
can_list_users=""
if is_root && broker_users_not_left_by_dev >"$work/users.before" && [ -s "$work/users.before" ]; then can_list_users=1; fi
# Databases dev creates (a service's, manage's shadows) are dropped again if they were not there.
databases() { psql -w -X -tA -d postgres -c "SELECT datname FROM pg_database WHERE datname ~ '^(example|greeter)(__manage_.*)?\$'" 2>/dev/null | sort; }
databases >"$work/databases.before" || true
hba=""
cluster="$(pg_lsclusters -h 2>/dev/null | awk -v p="${PGPORT:-5432}" '$3 == p { print $1 "/" $2; exit }')"
if [ -n "$cluster" ] && [ -r "/etc/postgresql/$cluster/pg_hba.conf" ]; then
    hba="/etc/postgresql/$cluster/pg_hba.conf"
    cp "$hba" "$work/hba.before"
fi

dev_pid=""
dev_running() { [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; }
# Stops dev with SIGTERM and waits for it; whatever still runs after the deadline is killed.
stop_dev() {
    local deadline=$((SECONDS + 60)) pid
    dev_running && kill -TERM "$dev_pid" 2>/dev/null
    while dev_running && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if dev_running; then
        echo "dev did not stop within 60 s: killing it"
        kill -KILL -- "-$dev_pid" 2>/dev/null || kill -KILL "$dev_pid" 2>/dev/null || true
    fi
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local code=$? pid db
    stop_dev
    for pid in $(left_behind); do kill -KILL "$pid" 2>/dev/null || true; done
    cp "$work/lib.rs" "$source_file"
    rm -f "$new_file"
    for db in $(databases | comm -13 "$work/databases.before" -); do
        psql -w -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [ "$code" -ne 0 ]; then
        echo "--- the last lines of dev's output:"
        tail -40 "$log" || true
    fi
    rm -rf "$work" "$log"
}
trap cleanup EXIT

fail() {
    echo "FAIL $*"
    exit 1
}
wait_until() {
    local what="$1" limit="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what (within ${limit}s)"
        sleep 0.5
    done
}

set -m # its own process group, so a failure can take all of it
scripts/dev >"$log" 2>&1 &
dev_pid=$!
set +m

wait_until "the example service answers (rpc-call built by dev)" 600 ours_answers
first="$(example_pid)"
echo "PASS example answers through $rpc_call, built by dev (pid $first)"
grep -q "the first build compiles every dependency" "$log" || fail "dev says what it builds and that the first build is slow"
echo "PASS dev says what it builds"

# The README's first route example: a create, then a get of what was created (a name of this
# run's own: names are unique and the database outlives the run).
readme_create="$(grep -m1 -o "rpc-call example.items.create '.*'" README.md | sed "s/^rpc-call example.items.create '//; s/'\$//")"
[ -n "$readme_create" ] || fail "the README shows an example.items.create call"
name="readme-$RANDOM$RANDOM"
created="$("$rpc_call" --timeout 5 example.items.create "$(jq -c --arg n "$name" '.name = $n' <<<"$readme_create")")" || fail "the README's create example answers: $created"
id="$(jq -r .id <<<"$created")"
got="$("$rpc_call" --timeout 5 example.items.get "{\"id\": $id}")" || fail "the README's get example answers for id $id: $got"
[ "$(jq -r .name <<<"$got")" = "$name" ] || fail "get returns the created item: $got"
"$rpc_call" --timeout 5 example.items.delete "{\"id\": $id}" >/dev/null || true
echo "PASS the README's create-then-get example works on the running example"

greeted() { "$rpc_call" --timeout 5 greeter.greet '{"name": "dev test"}' 2>/dev/null | grep -q "dev test"; }
wait_until "greeter answers by calling example" 60 greeted
echo "PASS greeter calls example"
if grep -q "broker user example for this run" "$log"; then
    connected_as() { rabbitmqctl -q --no-table-headers list_connections user | grep -qx "$1"; }
    wait_until "example connected as broker user example" 10 connected_as example
    wait_until "greeter connected as broker user greeter" 10 connected_as greeter
    echo "PASS each service runs as its own broker user"
    # shellcheck disable=SC2016 # expanded by the child shell
    if env -u EXAMPLE_AMQP_URL bash -c '. scripts/lib/stack.sh; dev_broker_users example' >"$work/second" 2>&1; then
        fail "a second dev's broker users would take over the running one's"
    fi
    grep -q "another scripts/dev runs as broker user 'example'" "$work/second" || fail "a second dev says why it stops: $(cat "$work/second")"
    echo "PASS a second dev on the same broker stops instead of taking the users over"
else
    echo "SKIP own broker users (dev could not create them here: no root or no local rabbitmqctl)"
fi

# A restart counts when a new example process has said "ready" in dev's output since mark()
# and hello_world is answered (a call alone could be answered by another instance on the broker).
readies() { grep -cE '^\[example\] .*(INFO[^ ]* ready |"message":"ready")' "$log" || true; }
mark() {
    first="$(example_pid)"
    ready_mark="$(readies)"
}
new_process_answers() {
    local now
    now="$(example_pid)"
    [ -n "$now" ] && [ "$now" != "$first" ] && [ "$(readies)" -gt "$ready_mark" ] && call hello_world
}
mark
echo "// changed by tests/scripts/dev.sh" >>"$source_file"
wait_until "a restarted example answers after a source change" 300 new_process_answers
echo "PASS restarted on change (pid $(example_pid))"
mark
cp "$work/lib.rs" "$source_file"
wait_until "a restart after the source was restored" 300 new_process_answers

mark
echo "// a new file, added by tests/scripts/dev.sh" >"$new_file"
wait_until "a restart when a file is added" 300 new_process_answers
mark
echo "// changed" >>"$new_file"
wait_until "a restart when the added file changes (it is watched)" 300 new_process_answers
echo "PASS a new file restarts the service and is watched from then on"

kill -TERM "$dev_pid"
wait_until "dev stops on SIGTERM" 60 bash -c "! kill -0 $dev_pid 2>/dev/null"
dev_pid=""
echo "PASS dev stops on SIGTERM"
left="$(left_behind)"
if [ -n "$left" ]; then
    for pid in $left; do ps -o pid=,args= -p "$pid" || true; done
    fail "processes left behind"
fi
echo "PASS nothing left running"
sed -n '/==> stopping/,$p' "$log" | grep -q '^\[example\].*stopped' || fail "example's shutdown line in dev's output"
sed -n '/==> stopping/,$p' "$log" | grep -q '^\[greeter\].*stopped' || fail "greeter's shutdown line in dev's output"
echo "PASS the services' shutdown lines reach dev's output"
if [ -n "$can_list_users" ]; then
    broker_users >"$work/users.after"
    cmp -s "$work/users.before" "$work/users.after" || fail "the broker's users are as they were ($(diff "$work/users.before" "$work/users.after" | tr '\n' ' '))"
    echo "PASS the broker's users are as they were"
fi
if [ -n "$hba" ]; then
    cmp -s "$hba" "$work/hba.before" || fail "$hba is byte for byte as it was"
    echo "PASS $hba is byte for byte as it was"
fi

# Ctrl+C: SIGINT stops dev as well, when this shell can deliver it (a shell that started with
# SIGINT ignored, e.g. inside a background job, passes that on and no program can undo it);
# SIGTERM again otherwise. Either way pressed twice, as an impatient user does: the second
# signal comes while dev is stopping, and must hurry it, not cut it short with the services
# still running and the broker users left in place.
sigint_ignored() { (($(printf '%d' "0x$(awk '/^SigIgn:/ {print $2}' /proc/$$/status)") & 2)); }
signal=INT
if sigint_ignored; then
    echo "SKIP SIGINT: this test runs with SIGINT ignored (a background job); SIGTERM twice instead"
    signal=TERM
fi
set -m
scripts/dev >"$log" 2>&1 &
dev_pid=$!
set +m
wait_until "the example service answers again" 300 ours_answers
kill "-$signal" "$dev_pid"
# The second signal as soon as dev says it is stopping (polled finely: stopping takes well
# under a second); if dev is gone already, there is no one left to signal.
deadline=$((SECONDS + 30))
until grep -q '^==> stopping' "$log" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.02; done
kill "-$signal" "$dev_pid" 2>/dev/null || true
wait_until "dev stops on a second SIG$signal" 60 bash -c "! kill -0 $dev_pid 2>/dev/null"
dev_pid=""
[ -z "$(left_behind)" ] || fail "processes left behind after SIG$signal twice"
echo "PASS dev stops on SIG$signal pressed twice, leaving nothing running"
if [ -n "$can_list_users" ]; then
    broker_users >"$work/users.after"
    cmp -s "$work/users.before" "$work/users.after" || fail "the broker's users are as they were after SIG$signal twice"
    echo "PASS the broker's users are as they were after SIG$signal twice"
fi
