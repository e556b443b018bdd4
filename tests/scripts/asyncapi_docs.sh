#!/usr/bin/env bash
# pj docs --check: each service's AsyncAPI document validates with @asyncapi/parser and its
# offline page, rendered by headless Chromium, shows every route (asserted on the rendered
# text). Then a page whose component cannot run must fail the check.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
DOCS_TIMEOUT="${DOCS_TIMEOUT:-120}" timeout 900 scripts/docs --check
for s in example greeter; do
    grep -q '"asyncapi": "3.0.0"' "docs/asyncapi/$s.json" ||
        { echo "FAIL docs/asyncapi/$s.json is not an AsyncAPI 3.0 document"; exit 1; }
done
# Events are described: what example publishes, what catalog subscribes to.
jq -e '.operations | keys | map(select(startswith("publish.example.item."))) | length == 3' docs/asyncapi/example.json >/dev/null ||
    { echo "FAIL docs/asyncapi/example.json does not describe the item events it publishes"; exit 1; }
jq -e '.operations | keys | map(select(startswith("subscribe.example.item."))) | length == 3' docs/asyncapi/catalog.json >/dev/null ||
    { echo "FAIL docs/asyncapi/catalog.json does not describe its subscriptions"; exit 1; }
echo "PASS pj docs --check: documents valid, pages render every route, events described"
