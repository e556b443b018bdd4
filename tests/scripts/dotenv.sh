#!/usr/bin/env bash
# load_dotenv exports only worker-kit's settings, reads values as the services' parser
# (dotenvy) does, lets the environment win, and stops at a line dotenvy would reject.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail=0
check() {
    local what="$1"
    shift
    if "$@"; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
# Loads $dir/env in a clean environment (plus the variables given) and prints NAME=<%q value>
# for each name listed after --.
load() {
    local vars=()
    while [ "$1" != -- ]; do
        vars+=("$1")
        shift
    done
    shift
    # shellcheck disable=SC2016 # expanded by the inner bash
    env -i PATH="/usr/bin:/bin" HOME="$dir" "${vars[@]+"${vars[@]}"}" bash -c '
        . "$1/scripts/lib/common.sh"
        DOTENV_FILE="$2" load_dotenv
        shift 2
        for k in "$@"; do
            if [ -n "${!k+x}" ]; then printf "%s=%q\n" "$k" "${!k}"; else printf "%s unset\n" "$k"; fi
        done
    ' _ "$root" "$dir/env" "$@"
}

cat >"$dir/env" <<'ENV'
# values as dotenvy 0.15 reads them (checked against it)
AMQP_URL="amqp://svc:p#ss word@127.0.0.1:5672/%2f"
MODE=development # a comment
LOG_FORMAT='json'
RUST_LOG=  info,worker_kit=debug  
export PGUSER=app
PGPASSWORD="a\"b\\c"
DB_MAIN_DSN='postgres://x@h/db?options=-c statement_timeout=$T'
PGHOST=a\ b
DB_DWH_DSN="two
lines"
PATH=/tmp/evil
LD_PRELOAD=/tmp/evil.so
PGPORT=5433
ENV
out="$(load PGPORT=6000 -- AMQP_URL MODE LOG_FORMAT RUST_LOG PGUSER PGPASSWORD DB_MAIN_DSN PGHOST DB_DWH_DSN PATH LD_PRELOAD PGPORT 2>"$dir/err")"
expect="$(
    cat <<'OUT'
AMQP_URL=amqp://svc:p#ss\ word@127.0.0.1:5672/%2f
MODE=development
LOG_FORMAT=json
RUST_LOG=info\,worker_kit=debug
PGUSER=app
PGPASSWORD=a\"b\\c
DB_MAIN_DSN=postgres://x@h/db\?options=-c\ statement_timeout=\$T
PGHOST=a\ b
DB_DWH_DSN=$'two\nlines'
PATH=/usr/bin:/bin
LD_PRELOAD unset
PGPORT=6000
OUT
)"
check "quotes, escapes, comments and multi-line values read as dotenvy reads them; the environment wins" \
    test "$out" = "$expect"
[ "$out" = "$expect" ] || diff <(echo "$expect") <(echo "$out") || true
check "PATH and LD_PRELOAD are ignored with a warning" \
    bash -c "grep -q 'ignored PATH' '$dir/err' && grep -q 'ignored LD_PRELOAD' '$dir/err'"

printf 'MODE=dev elopment\n' >"$dir/env"
check "a bare value with a space is refused (dotenvy refuses it)" \
    bash -c "! (load -- MODE) >/dev/null 2>&1" 2>/dev/null
# shellcheck disable=SC2016 # a literal $ in the file
printf 'AMQP_URL=amqp://u:pa$word@h\n' >"$dir/env"
check "an unescaped \$ (dotenvy would substitute it) is refused, naming the key" \
    bash -c "$(declare -f load); root='$root' dir='$dir'; load -- AMQP_URL 2>&1 | grep -q 'AMQP_URL: \\\$ substitution'"
printf 'MODE="development\n' >"$dir/env"
check "an unclosed quote is refused" bash -c "$(declare -f load); root='$root' dir='$dir'; ! load -- MODE >/dev/null 2>&1"
# Every setting the kit reads is one the scripts pass on: the names in worker-kit's tables of
# settings (one row per variable, `name: "..."`: the kit's, the databases' and the outbox's)
# and the libpq variables the database settings read (LIBPQ_VARS).
missing=""
for name in $(
    grep -ohE '^ *name: "[A-Z][A-Z0-9_]+"' "$root/worker-kit/src/config/vars.rs" "$root/worker-kit/src/db/config.rs" "$root/worker-kit/src/outbox/settings.rs" | grep -oE '[A-Z][A-Z0-9_]+'
    sed -n '/LIBPQ_VARS: &\[&str\] = &\[/,/^\];/p' "$root/worker-kit/src/db/config.rs" | grep -oE '"PG[A-Z0-9_]+"' | tr -d '"'
); do
    # shellcheck disable=SC2016 # expanded by the inner bash
    bash -c '. "$1/scripts/lib/common.sh"; dotenv_key_known "$2"' _ "$root" "$name" || missing+=" $name"
done
check "every setting worker-kit reads is passed on from .env${missing:+ (missing:$missing)}" test -z "$missing"
exit "$fail"
