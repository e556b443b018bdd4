#!/usr/bin/env bash
# Every relative link in the Markdown files resolves inside the clone, and nothing refers to
# files outside it (a `shared/` directory beside the repository, its PROTOCOL.md, are not part
# of a clone; the protocol is docs/protocol.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
fail=0
while IFS= read -r md; do
    dir="$(dirname "$md")"
    # [text](target) links; anchors and URLs with a scheme are not files.
    while IFS= read -r target; do
        target="${target%%#*}"
        [ -n "$target" ] || continue
        case "$target" in *://* | mailto:*) continue ;; esac
        if [ ! -e "$dir/$target" ]; then
            echo "FAIL $md links to $target, which is not in the repository"
            fail=1
        fi
    done < <(grep -oE '\]\([^) ]+\)' "$md" | sed -E 's/^\]\((.*)\)$/\1/')
done < <(git ls-files '*.md')
if out="$(git grep -nE '(\.\./|/work/)shared/|PROTOCOL\.md' -- . ':!tests/scripts/docs_links.sh')"; then
    echo "FAIL references to a shared/ directory outside the repository:"
    echo "$out"
    fail=1
fi
[ "$fail" -eq 0 ] && echo "PASS every Markdown link resolves inside the repository"
exit "$fail"
