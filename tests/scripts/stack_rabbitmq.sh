#!/usr/bin/env bash
# scripts/lib/stack.sh and RabbitMQ: a node the run started is stopped again at the end, but
# not while other clients are connected to it, and a node the run did not start is never
# stopped. On a scratch node (own name, ports, data, cookie), removed at the end; the machine's
# broker is only checked to be still running.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
sbin=/usr/lib/rabbitmq/bin
if ! is_root || [ ! -x "$sbin/rabbitmq-server" ]; then
    echo "SKIP needs root and the rabbitmq-server package"
    exit 0
fi
fail=0
check() {
    local what="$1"
    shift
    if "$@" >/dev/null 2>&1; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
port=""
for p in $(shuf -i 30000-39000 -n 50); do
    if ! timeout 1 bash -c "</dev/tcp/127.0.0.1/$p" 2>/dev/null && ! timeout 1 bash -c "</dev/tcp/127.0.0.1/$((p + 20000))" 2>/dev/null; then
        port="$p"
        break
    fi
done
[ -n "$port" ] || {
    echo "FAIL no free port"
    exit 1
}
# A client that stays connected without a database.
echo "building greeter (already built when the dev test ran first)"
if ! (cd "$ROOT" && cargo build -q -p greeter); then
    echo "FAIL greeter did not build"
    exit 1
fi
dir="$(mktemp -d)"
node="wkstack$$@localhost"
mkdir -p "$dir/home" "$dir/data" "$dir/log"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
chmod 400 "$dir/home/.erlang.cookie"
printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$port" >"$dir/rabbitmq.conf"
echo '[].' >"$dir/enabled_plugins"
# Everything that makes rabbitmq-server and rabbitmqctl use the scratch node.
export HOME="$dir/home" RABBITMQ_NODENAME="$node" RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT="$((port + 20000))" RABBITMQ_MNESIA_BASE="$dir/data" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PID_FILE="$dir/pid" \
    PATH="$sbin:$PATH"
client=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    [ -z "$client" ] || kill "$client" 2>/dev/null || true
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck disable=SC2317 # called through wait_for and check
running() { rabbitmqctl -q ping >/dev/null 2>&1; }
# shellcheck disable=SC2317 # called through wait_for and check
stopped() { ! running && ! timeout 1 bash -c "</dev/tcp/127.0.0.1/$port" 2>/dev/null; }

# shellcheck disable=SC2016 # expanded by the child shell
bash -c '. "$ROOT/scripts/lib/stack.sh"; ensure_rabbitmq; echo "started: ${STARTED_STACK[*]}"; undo_stack_changes' >"$dir/out" 2>&1 || true
check "a stopped node is started" grep -q "^started: rabbitmq" "$dir/out"
WAIT_SECONDS=60 wait_for "the scratch node to stop" stopped
check "and stopped again at the end of the run that started it" stopped

# The run starts the node; a client connects meanwhile; the node is left running for it.
mkfifo "$dir/go"
# shellcheck disable=SC2016 # expanded by the child shell
bash -c '. "$ROOT/scripts/lib/stack.sh"; ensure_rabbitmq; read -r _ <"$1"; undo_stack_changes' _ "$dir/go" >"$dir/out" 2>&1 &
runner=$!
WAIT_SECONDS=90 wait_for "the scratch node" running
# greeter needs no database: a client that stays connected.
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f" "${TARGET_DIR}/debug/greeter" >"$dir/greeter.log" 2>&1 &
client=$!
# shellcheck disable=SC2317 # called through wait_for
connected() { [ "$(rabbitmqctl -q --no-table-headers list_connections user 2>/dev/null | grep -c .)" -gt 0 ]; }
WAIT_SECONDS=60 wait_for "greeter connected to the scratch node" connected
echo go >"$dir/go"
wait "$runner" || true
check "a node another client uses by then is left running" bash -c "grep -q 'leaving RabbitMQ running: 1 other connections use it' '$dir/out'"
check "... and runs" running
kill "$client" 2>/dev/null || true
client=""

# A node the run did not start: undo leaves it alone.
# shellcheck disable=SC2016 # expanded by the child shell
bash -c '. "$ROOT/scripts/lib/stack.sh"; ensure_rabbitmq; echo "started: ${STARTED_STACK[*]}"; undo_stack_changes' >"$dir/out" 2>&1 || true
check "a node that already runs is not recorded as started" grep -qx "started: " "$dir/out"
check "... and is not stopped" running
exit "$fail"
