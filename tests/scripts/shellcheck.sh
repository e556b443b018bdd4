#!/usr/bin/env bash
# Every shell script of the repository is shellcheck-clean (sources followed) and answers -h.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
cd "$ROOT"
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
mapfile -t files < <(git ls-files | while IFS= read -r f; do
    [ -f "$f" ] && head -n 1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && echo "$f"
    case "$f" in *.sh) [ -f "$f" ] && echo "$f" ;; esac
done | sort -u)
fail=0
if shellcheck -x "${files[@]}"; then
    echo "PASS shellcheck: ${#files[@]} scripts clean"
else
    echo "FAIL shellcheck"
    fail=1
fi
for s in scripts/*; do
    if [ ! -f "$s" ] || [ ! -x "$s" ]; then continue; fi
    if ! "$s" -h >/dev/null 2>&1; then
        echo "FAIL $s -h"
        fail=1
    fi
done
[ "$fail" -ne 0 ] || echo "PASS every script answers -h"
exit "$fail"
