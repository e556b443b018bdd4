#!/usr/bin/env bash
# scripts/dev started with SIGINT ignored (as a shell starts a background job) says at once
# that Ctrl+C cannot stop it and how to stop it instead (its PID and kill -TERM); SIGTERM then
# stops it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
log="$(mktemp)"
dev_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$dev_pid" ] && kill -0 "$dev_pid" 2>/dev/null; then
        kill -TERM "$dev_pid" 2>/dev/null || true
        local deadline=$((SECONDS + 60))
        while kill -0 "$dev_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        kill -KILL -- "-$dev_pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT
set -m # its own process group, so the cleanup can take all of it
# `trap '' INT` before exec: dev starts with SIGINT ignored, exactly as a background job does.
bash -c 'trap "" INT; exec "$0/scripts/dev"' "$root" >"$log" 2>&1 &
dev_pid=$!
set +m
deadline=$((SECONDS + 30))
until grep -q "SIGINT is ignored" "$log" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
if ! grep -q "stop it with: kill -TERM $dev_pid" "$log"; then
    echo "FAIL dev does not say that Ctrl+C cannot stop it and how to stop it; it said:"
    head -20 "$log"
    exit 1
fi
echo "PASS dev started with SIGINT ignored says so and names kill -TERM $dev_pid"
kill -TERM "$dev_pid"
deadline=$((SECONDS + 60))
while kill -0 "$dev_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
if kill -0 "$dev_pid" 2>/dev/null; then
    echo "FAIL dev did not stop on SIGTERM within 60 s"
    exit 1
fi
dev_pid=""
echo "PASS dev stops on SIGTERM"
