#!/usr/bin/env bash
# `pj new SERVICE` end to end, in a scratch copy of the repository (the checkout's files,
# committed or not; builds share CARGO_TARGET_DIR): it refuses bad and taken names with the
# rule, creates a service under a unique name, which builds and passes its own tests (both
# tiers), whose database `manage` syncs and plans from models/, and whose binary, started
# against the shared broker as dev starts it (its own broker user), answers its route through
# rpc-call and stops on SIGTERM. On every path it stops what it started and removes the
# database, the broker user, the queues and the copy.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
cd "$ROOT"
export CARGO_TARGET_DIR="$TARGET_DIR"
command -v jq >/dev/null 2>&1 || apt_install jq

# A fixed place for the copy: cargo's fingerprints include a crate's path, so the kit's crates
# are rebuilt only when they change. One run at a time holds it.
scratch="$TARGET_DIR/new-service-test/repo"
mkdir -p "$(dirname "$scratch")"
exec {lock}>"$(dirname "$scratch")/lock"
flock -w 1800 "$lock" || {
    echo "FAIL another run of this test held $scratch for 30 minutes"
    exit 1
}
# Unique, so that its queues and database are this run's alone on the shared servers; t_ like
# the other tests' scratch databases, which `pj test` drops should this run be killed.
name="t_new_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
work="$(mktemp -d)"
pid=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local code=$? q shadow
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    # The service's database and the shadow `manage sync` keeps for it
    # (manage_shadow_models_<first 24 hex digits of sha256(database name)>).
    shadow="manage_shadow_models_$(printf '%s' "$name" | sha256sum | cut -c1-24)"
    psql -w -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true
    psql -w -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$shadow\" WITH (FORCE)" >/dev/null 2>&1 || true
    # The queues the binary declared on the shared broker (all named after the service).
    if command -v rabbitmqctl >/dev/null 2>&1; then
        for q in $(rabbitmqctl -q --no-table-headers list_queues name 2>/dev/null | grep "^$name\." || true); do
            rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true
        done
    fi
    # The broker user dev_broker_users made (when it did).
    if declare -F undo_stack_changes >/dev/null; then undo_stack_changes >/dev/null 2>&1 || true; fi
    if [ "$code" -ne 0 ] && [ -s "$work/log" ]; then
        echo "--- the last lines of the step that failed:"
        tail -40 "$work/log" || true
    fi
    rm -rf "$scratch" "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL $*"
    exit 1
}
pass() { echo "PASS $*"; }
# Runs "$@" with its output in $work/log (shown when the test fails).
step() { "$@" >"$work/log" 2>&1; }

rm -rf "$scratch"
mkdir -p "$scratch"
git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$scratch"
pj="$scratch/scripts/pj"

# Refusals: exit 2 with the rule (or the reason), nothing written.
refused() {
    local want="$1" code=0
    shift
    (cd "$scratch" && "$pj" new "$@") >"$work/out" 2>&1 || code=$?
    [ "$code" -eq 2 ] && grep -q "$want" "$work/out"
}
touch "$work/before-refusals"
for bad in My-Service 2fast with.dot with-dash "$(printf 'x%.0s' {1..41})"; do
    refused "a lowercase letter followed by lowercase letters, digits or '_'" "$bad" ||
        fail "'$bad' is refused with the rule: $(cat "$work/out")"
done
pass "invalid names are refused with the rule"
refused "is a Rust keyword" fn || fail "a keyword is refused: $(cat "$work/out")"
refused "is a reserved name" stubs || fail "a reserved name is refused: $(cat "$work/out")"
refused "exists already" example || fail "an existing service is refused: $(cat "$work/out")"
[ -z "$(find "$scratch" -newer "$work/before-refusals" -print -quit)" ] || fail "a refusal writes nothing"
pass "keywords, reserved names and existing services are refused"
"$pj" new -h | grep -q "^new: a new service in one command" || fail "pj new -h"
pass "pj new -h explains it"

(cd "$scratch" && "$pj" new "$name") >"$work/new.out" 2>&1 || fail "pj new $name: $(cat "$work/new.out")"
for f in "services/$name/Cargo.toml" "services/$name/src/lib.rs" "services/$name/src/main.rs" \
    "services/$name/tests/handlers.rs" "services/$name/tests/broker.rs" "stubs/src/$name.rs" \
    "models/$name/notes.sql" "migrations/$name/production.dump.sql"; do
    [ -f "$scratch/$f" ] || fail "pj new made $f"
done
grep -q "__SERVICE__" -r "$scratch/services/$name" "$scratch/stubs/src/$name.rs" "$scratch/models/$name" && fail "every placeholder is replaced"
grep -qx "    \"services/$name\"," "$scratch/Cargo.toml" || fail "the crate is a workspace member"
grep -qx "pub mod $name;" "$scratch/stubs/src/lib.rs" || fail "stubs/src/lib.rs has the module"
jq -e --arg u "$name" 'any(.permissions[]; .user == $u and .read == "^(" + $u + "\\..+)$")' \
    "$scratch/rabbitmq-configs/definitions.json" >/dev/null || fail "definitions.json has its broker user"
grep -q "^next:" "$work/new.out" || fail "pj new prints what to do next"
grep -qF "rpc-call $name.hello" "$work/new.out" || fail "... including how to call its route"
pass "pj new $name made the crate, its contracts, models and wiring, and says what next"
refused "exists already" "$name" || fail "a second pj new $name is refused: $(cat "$work/out")"
pass "the new service is refused the second time"
# What dev runs for it: the service list, and its broker user from the definitions.
(cd "$scratch" && bash -c '. scripts/lib/common.sh; service_names') | grep -qx "$name" || fail "dev's service list has $name"
pass "dev's service list has it"

# The shipping files pj new edited: the repository's own check of the manifests, in the copy,
# and the compose file with the new service's block and migration.
(cd "$scratch" && step bash tests/scripts/deploy.sh) || fail "tests/scripts/deploy.sh in the copy (its Deployment and PDB)"
pass "deploy/ with its Deployment and PodDisruptionBudget passes deploy.sh"
if command -v docker-compose >/dev/null 2>&1; then
    passwords=()
    for svc in $(cd "$scratch/services" && ls); do passwords+=("$(printf '%s' "$svc" | tr '[:lower:]' '[:upper:]')_AMQP_PASSWORD=pw-$svc"); done
    mkdir -p "$work/empty"
    env -i PATH="$PATH" "${passwords[@]}" docker-compose --project-directory "$work/empty" \
        -f "$scratch/dev.docker-compose.yml" config >"$work/log" 2>&1 || fail "docker-compose config of the copy's compose file"
    grep -q "^  $name:" "$work/log" || fail "compose defines $name"
    grep -q "manage sync --service $name --noprompt" "$scratch/dev.docker-compose.yml" || fail "compose's migrate syncs $name's database"
    grep -qF "amqp://$name:pw-$name@rabbitmq" "$work/log" || fail "$name connects as its own broker user in compose"
    pass "compose runs it as its own broker user and migrates its database"
else
    echo "SKIP the compose file: docker-compose is not installed (tests/scripts/compose.sh installs it)"
fi
grep -q -- "-p $name -p worker-kit-manage" "$scratch/Dockerfile" || fail "the Dockerfile builds its binary"
grep -q "target/release/$name " "$scratch/Dockerfile" || fail "the Dockerfile ships its binary"
pass "the Dockerfile builds and ships its binary"

# Its database from its models, as dev does (manage from this checkout, the copy's models).
step "$ROOT/scripts/manage" sync --service "$name" --noprompt --models-dir "$scratch/models" ||
    fail "manage sync --service $name creates its database"
pass "manage sync created its database from models/$name"
step "$ROOT/scripts/manage" pending --service "$name" --models-dir "$scratch/models" --migrations-dir "$scratch/migrations" ||
    fail "manage pending --service $name"
grep -q "CREATE TABLE" "$scratch/migrations/$name/pending.sql" || fail "pending.sql creates its table"
pass "manage pending plans its table against the empty production dump"

# Its own tests, both tiers (the broker tier on a vhost of its own).
(cd "$scratch" && step cargo test -p "$name" --features integration) || fail "cargo test -p $name --features integration"
for t in hello_greets_the_name_or_the_world a_blank_note_is_retried_then_parked answers_hello_and_stores_a_note_sent_through_the_broker; do
    grep -q "^test $t ... ok$" "$work/log" || fail "its test $t ran and passed"
done
pass "the new service builds and passes its in-process and real-broker tests"
(cd "$scratch" && step cargo clippy -p "$name" --all-targets --all-features -- -D warnings) || fail "clippy -D warnings on the new service"
(cd "$scratch" && step cargo fmt -p "$name" -p stubs --check) || fail "the new service is formatted"
(cd "$scratch" && RUSTDOCFLAGS="-D warnings" step cargo doc --no-deps -p "$name") || fail "cargo doc without warnings on the new service"
pass "it is clippy-clean, formatted and documented without warnings"

# Its binary against the shared broker and database, called with rpc-call as a developer would.
step cargo build -p e2e --bin rpc-call || fail "rpc-call builds"
bin="$TARGET_DIR/debug/$name"
"$bin" asyncapi | jq -e --arg r "$name.hello" '.channels[$r].address == $r' >/dev/null || fail "$name asyncapi has its route"
pass "$name asyncapi describes its route"
# As `dev` runs it: as its own broker user, with the permissions pj new wrote into the copy's
# definitions.json (when this machine lets dev make broker users: root and a local node).
# shellcheck source=scripts/lib/stack.sh
. "$scratch/scripts/lib/stack.sh"
dev_broker_users "$name" >"$work/log" 2>&1 || fail "dev's broker user for $name"
own_url="$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')_AMQP_URL"
if [ -n "${!own_url:-}" ]; then
    as_user="as its own broker user"
    service_url="${!own_url}"
else
    as_user="with AMQP_URL ($(tail -n 1 "$work/log"))"
    service_url="${AMQP_URL:-}"
fi
(
    cd "$scratch"
    if [ -n "$service_url" ]; then export AMQP_URL="$service_url"; fi
    exec "$bin"
) >"$work/service.log" 2>&1 &
pid=$!
answered() { "$TARGET_DIR/debug/rpc-call" --timeout 2 "$name.hello" '{"name": "script"}' 2>/dev/null >"$work/reply"; }
deadline=$((SECONDS + 60))
until answered; do
    kill -0 "$pid" 2>/dev/null || fail "the service exited: $(tail -20 "$work/service.log")"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name.hello answered within 60 s: $(tail -20 "$work/service.log")"
    sleep 0.5
done
grep -qF "Hello, script! ($name)" "$work/reply" || fail "the reply greets the caller: $(cat "$work/reply")"
pass "the running service, $as_user, answers $name.hello through rpc-call"
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
kill -0 "$pid" 2>/dev/null && fail "the service stops within 30 s of SIGTERM"
code=0
wait "$pid" || code=$?
pid=""
[ "$code" -eq 0 ] || fail "the service exits 0 on SIGTERM (got $code): $(tail -20 "$work/service.log")"
pass "it stops on SIGTERM with exit 0"
