#!/usr/bin/env bash
# scripts/dev end to end: it brings the example service up, restarts it when its source
# changes (a new process answers), and Ctrl+C (SIGINT) leaves no process behind.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
root="$ROOT"
cd "$root"
cargo build -q -p e2e --bin rpc-call
call() { "$TARGET_DIR/debug/rpc-call" --timeout 2 hello_world >/dev/null 2>&1; }
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
ours_answers() { [ -n "$(example_pid)" ] && call; }

wait_until() {
    local what="$1" limit="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "FAIL $what (within ${limit}s)"
            tail -40 "$log" || true
            exit 1
        fi
        sleep 0.5
    done
}

log="$(mktemp)"
source_file="services/example/src/lib.rs"
backup="$(mktemp)"
cp "$source_file" "$backup"
set -m # job control: the background dev script gets its own process group and SIGINT
scripts/dev >"$log" 2>&1 &
dev_pid=$!
set +m
restore() {
    cp "$backup" "$source_file"
    kill -INT "$dev_pid" 2>/dev/null || true
    rm -f "$backup"
}
trap restore EXIT

wait_until "the example service answers" 300 ours_answers
first="$(example_pid)"
[ -n "$first" ] || {
    echo "FAIL no example process found"
    exit 1
}
echo "PASS example answers (pid $first)"

echo "// changed by tests/scripts/dev.sh" >>"$source_file"
new_process_answers() {
    local now
    now="$(example_pid)"
    [ -n "$now" ] && [ "$now" != "$first" ] && call
}
wait_until "a restarted example answers after a source change" 300 new_process_answers
echo "PASS restarted on change (pid $(example_pid))"
cp "$backup" "$source_file"

kill -INT "$dev_pid"
stopped() { ! kill -0 "$dev_pid" 2>/dev/null; }
wait_until "dev stops on SIGINT" 60 stopped
left="$(ours "/debug/(example|greeter)\$|entr -nr")"
if [ -n "$left" ]; then
    echo "FAIL processes left behind:"
    for pid in $left; do ps -o pid=,args= -p "$pid" || true; done
    exit 1
fi
echo "PASS nothing left running after SIGINT"
trap - EXIT
rm -f "$backup" "$log"
