# A local 3-node RabbitMQ cluster for the cluster test tier, beside the default broker.
#
# Each node is a separate Erlang VM with its own node name, AMQP and distribution ports,
# data and log directories and config file, all under CLUSTER_DIR. The nodes share an
# Erlang cookie of their own (not the default broker's), so nothing here can join or
# reach the broker on 5672, which stays untouched. cluster_stop stops and removes only
# what cluster_start started (it records the nodes it started in CLUSTER_DIR/started).
#
#   CLUSTER_DIR         where the nodes live (default /tmp/worker-kit-cluster)
#   CLUSTER_BASE_PORT   AMQP port of node 1; nodes 2 and 3 take the next two (default 5681)
#   CLUSTER_SIZE        number of nodes (default 3)
#
# After cluster_start, these are exported for the tests:
#   CLUSTER_NODES       node names, comma-separated (wkcluster1@localhost,...)
#   CLUSTER_AMQP_URLS   one AMQP URL per node, comma-separated (the AMQP_URL list form)
#   CLUSTER_HOME        the HOME that holds the cluster's cookie (for rabbitmqctl)
# shellcheck shell=bash
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CLUSTER_DIR="${CLUSTER_DIR:-/tmp/worker-kit-cluster}"
CLUSTER_BASE_PORT="${CLUSTER_BASE_PORT:-5681}"
CLUSTER_SIZE="${CLUSTER_SIZE:-3}"
CLUSTER_HOME="$CLUSTER_DIR/home"
RABBITMQ_SBIN="${RABBITMQ_SBIN:-/usr/lib/rabbitmq/bin}"

cluster_node_name() { echo "wkcluster$1@localhost"; }
cluster_node_port() { echo $((CLUSTER_BASE_PORT + $1 - 1)); }
# Distribution ports far from the AMQP ones (RabbitMQ's default is AMQP port + 20000).
cluster_dist_port() { echo $((CLUSTER_BASE_PORT + 20000 + $1 - 1)); }

# rabbitmqctl against node $1 (a number) with the cluster's cookie.
cluster_ctl() {
    local i="$1"
    shift
    HOME="$CLUSTER_HOME" "$RABBITMQ_SBIN/rabbitmqctl" -n "$(cluster_node_name "$i")" "$@"
}

cluster_node_answers() { tcp_open_port "$(cluster_node_port "$1")"; }

tcp_open_port() { timeout 1 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Starts node $1 (its directories and config are made by cluster_start).
cluster_start_node() {
    local i="$1" dir="$CLUSTER_DIR/node$1"
    HOME="$CLUSTER_HOME" \
        RABBITMQ_NODENAME="$(cluster_node_name "$i")" \
        RABBITMQ_NODE_PORT="$(cluster_node_port "$i")" \
        RABBITMQ_DIST_PORT="$(cluster_dist_port "$i")" \
        RABBITMQ_MNESIA_BASE="$dir/data" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_PID_FILE="$dir/pid" \
        "$RABBITMQ_SBIN/rabbitmq-server" -detached
}

# Waits until node $1's rabbit app runs and its AMQP port answers.
cluster_wait_node() {
    local i="$1"
    # -detached returns before the node has registered its name: ping until it has.
    WAIT_SECONDS=60 wait_for "cluster node $(cluster_node_name "$i") (ping)" cluster_ctl "$i" -q ping
    cluster_ctl "$i" -q await_startup --timeout 120 >/dev/null 2>&1 ||
        die "cluster node $(cluster_node_name "$i") did not start; see $CLUSTER_DIR/node$i/log"
    WAIT_SECONDS=60 wait_for "cluster node $i on port $(cluster_node_port "$i")" cluster_node_answers "$i"
}

cluster_write_node_files() {
    local i="$1" dir="$CLUSTER_DIR/node$1"
    mkdir -p "$dir/data" "$dir/log"
    cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$(cluster_node_port "$i")
loopback_users.guest = true
# Same cap as rabbitmq-configs/rabbitmq.conf.
max_message_size = 8388608
CONF
    echo '[].' >"$dir/enabled_plugins"
}

# Starts a fresh cluster of CLUSTER_SIZE nodes, joins them to node 1 and waits until every
# node reports all of them running. Refuses when a node of that name already answers.
cluster_start() {
    command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
    [ -x "$RABBITMQ_SBIN/rabbitmq-server" ] || die "no $RABBITMQ_SBIN/rabbitmq-server (set RABBITMQ_SBIN)"
    local i
    for i in $(seq 1 "$CLUSTER_SIZE"); do
        if cluster_node_answers "$i"; then
            die "port $(cluster_node_port "$i") is already taken; stop what runs there or set CLUSTER_BASE_PORT"
        fi
    done
    rm -rf "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_HOME"
    # A cookie of its own: the cluster can never join (or be joined by) the default broker.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CLUSTER_HOME/.erlang.cookie"
    chmod 400 "$CLUSTER_HOME/.erlang.cookie"
    : >"$CLUSTER_DIR/started"
    for i in $(seq 1 "$CLUSTER_SIZE"); do
        cluster_write_node_files "$i"
        say "starting cluster node $(cluster_node_name "$i") on 127.0.0.1:$(cluster_node_port "$i")"
        cluster_start_node "$i"
        echo "$i" >>"$CLUSTER_DIR/started"
    done
    for i in $(seq 1 "$CLUSTER_SIZE"); do
        cluster_wait_node "$i"
    done
    for i in $(seq 2 "$CLUSTER_SIZE"); do
        say "joining $(cluster_node_name "$i") to $(cluster_node_name 1)"
        cluster_ctl "$i" -q stop_app >/dev/null
        cluster_ctl "$i" -q join_cluster "$(cluster_node_name 1)" >/dev/null ||
            die "$(cluster_node_name "$i") could not join the cluster"
        cluster_ctl "$i" -q start_app >/dev/null
        cluster_wait_node "$i"
    done
    WAIT_SECONDS=60 wait_for "all $CLUSTER_SIZE cluster nodes running" cluster_all_running
    cluster_export
    say "cluster up: $CLUSTER_AMQP_URLS"
}

# Whether node 1 sees every node as running.
cluster_all_running() {
    local running
    running="$(cluster_ctl 1 -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))')"
    [ "$running" = "$CLUSTER_SIZE" ]
}

cluster_export() {
    local i nodes=() urls=()
    for i in $(seq 1 "$CLUSTER_SIZE"); do
        nodes+=("$(cluster_node_name "$i")")
        urls+=("amqp://guest:guest@127.0.0.1:$(cluster_node_port "$i")/%2f")
    done
    CLUSTER_NODES="$(
        IFS=,
        echo "${nodes[*]}"
    )"
    CLUSTER_AMQP_URLS="$(
        IFS=,
        echo "${urls[*]}"
    )"
    export CLUSTER_NODES CLUSTER_AMQP_URLS CLUSTER_HOME RABBITMQ_SBIN
}

# Stops the nodes cluster_start started and removes their directory. Leaves anything else
# (the default broker included) alone.
cluster_stop() {
    [ -f "$CLUSTER_DIR/started" ] || return 0
    local i nodes=()
    mapfile -t nodes <"$CLUSTER_DIR/started"
    for i in "${nodes[@]}"; do
        say "stopping cluster node $(cluster_node_name "$i")"
        # rabbitmqctl reads standard input: keep it off the caller's.
        cluster_ctl "$i" -q stop </dev/null >/dev/null 2>&1 || true
    done
    for i in "${nodes[@]}"; do
        WAIT_SECONDS=30 wait_for "cluster node $i to close its port" cluster_node_closed "$i"
    done
    rm -rf "$CLUSTER_DIR"
}

cluster_node_closed() { ! cluster_node_answers "$1"; }
