#!/usr/bin/env bash
# Every committed migrations/<service>/pending.sql is what `manage pending` makes now from the
# service's models and production.dump.sql: CI fails on a stale one (regenerate it with
# `scripts/pj manage pending --service <service>` and commit it). Needs PostgreSQL (shadow
# databases), so it runs with the stack up, under `scripts/pj test`.
set -euo pipefail
# shellcheck source=scripts/lib/stack.sh
. "$(dirname "$0")/../../scripts/lib/stack.sh"
cd "$ROOT"
load_dotenv
if ! pg_accepts_login; then
    echo "SKIP PostgreSQL does not answer at $PGHOST:$PGPORT"
    exit 0
fi
fail=0
for dump in migrations/*/production.dump.sql; do
    [ -e "$dump" ] || continue
    service="$(basename "$(dirname "$dump")")"
    if "$ROOT/scripts/manage" pending --service "$service" --check >/dev/null; then
        echo "PASS migrations/$service/pending.sql is up to date"
    else
        echo "FAIL migrations/$service/pending.sql is stale: run scripts/pj manage pending --service $service and commit it"
        fail=1
    fi
done
exit "$fail"
