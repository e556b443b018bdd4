#!/usr/bin/env bash
# pj dispatches to the scripts, knows its aliases, and refuses unknown names with exit 2.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pj="$root/scripts/pj"
fail=0
check() {
    local what="$1"
    shift
    if "$@"; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
check "help lists the scripts" bash -c "'$pj' -h | grep -q 'typecheck'"
check "t is test" bash -c "'$pj' t -h | grep -q '^test: run the tests'"
check "d is dev" bash -c "'$pj' d -h | grep -q '^dev: the development stack'"
check "every script has -h" bash -c "for s in dev test lint autofix typecheck build manage parked docs contracts new; do '$pj' \$s -h >/dev/null || exit 1; done"
set +e
"$pj" no-such-script >/dev/null 2>/tmp/pj-unknown.$$
code=$?
set -e
check "unknown script exits 2" test "$code" -eq 2
check "unknown script lists the scripts" grep -q "typecheck" /tmp/pj-unknown.$$
rm -f /tmp/pj-unknown.$$
# A symlink on PATH works from anywhere.
dir="$(mktemp -d)"
ln -s "$pj" "$dir/pj"
check "works through a symlink" bash -c "cd / && '$dir/pj' t -h >/dev/null"
rm -rf "$dir"
exit "$fail"
