#!/usr/bin/env bash
# The Docker side of the development stack: the compose file is valid (docker-compose validates
# without an engine) and defines every service; every published port listens on 127.0.0.1 only;
# base images are pinned; guest stays loopback-only and no service is an administrator; each
# service connects as its own broker user; the build context is an allow-list of tracked files.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "$0")/../../scripts/lib/common.sh"
root="$ROOT"
cd "$root"
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
command -v jq >/dev/null 2>&1 || apt_install jq
fail=0
check() {
    local what="$1"
    shift
    if "$@" >/dev/null; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
# No .env of the checkout: the file must stand on what it says.
empty="$(mktemp -d)"
stray=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    rm -rf "$empty"
    [ -z "$stray" ] || rm -f "$root/$stray"
}
trap cleanup EXIT
config() { env -i PATH="$PATH" "$@" docker-compose --project-directory "$empty" -f "$root/dev.docker-compose.yml" config 2>&1; }
# Every service's broker password (compose requires each one), pw-<service>.
passwords=()
for svc in $(cd services && ls); do passwords+=("$(printf '%s' "$svc" | tr '[:lower:]-' '[:upper:]_')_AMQP_PASSWORD=pw-$svc"); done
out="$(config "${passwords[@]}")"
for svc in rabbitmq postgres migrate $(cd services && ls); do
    check "compose defines $svc" grep -q "^  $svc:" <<<"$out"
done
check "without the services' broker passwords compose refuses to start" \
    bash -c "! (env -i PATH=\"\$PATH\" docker-compose --project-directory '$empty' -f '$root/dev.docker-compose.yml' config >/dev/null 2>&1)"
ports="$(grep -A3 '^    ports:' dev.docker-compose.yml | grep -E '^\s+- ' || true)"
check "every published port listens on 127.0.0.1" bash -c "[ -n '$ports' ] && ! grep -vq '\"127\.0\.0\.1:' <<<'$ports'"
check "compose images are pinned to exact versions" \
    bash -c "! grep -E '^\s+image:' dev.docker-compose.yml | grep -vE 'image: ([a-z/]+:[0-9]+\.[0-9]+\.[0-9]+[a-z0-9.-]*|postgres:[0-9]+\.[0-9]+[a-z0-9.-]*|[a-z/]+@sha256:[0-9a-f]{64})\$'"
check "Dockerfile base images are pinned to exact versions" \
    bash -c "! grep -E '^FROM ' Dockerfile | grep -vE '^FROM [a-z/]+(:[0-9]+\.[0-9]+(\.[0-9]+)?[a-z0-9.-]*|@sha256:[0-9a-f]{64})( AS [a-z]+)?\$'"
check "example connects as its own broker user" grep -q 'AMQP_URL: amqp://example:pw-example@rabbitmq' <<<"$out"
check "greeter connects as its own broker user" grep -q 'AMQP_URL: amqp://greeter:pw-greeter@rabbitmq' <<<"$out"
check "catalog connects as its own broker user" grep -q 'AMQP_URL: amqp://catalog:pw-catalog@rabbitmq' <<<"$out"
check "no service uses guest" bash -c "! grep -q 'amqp://guest' dev.docker-compose.yml"
check "guest stays loopback-only" \
    bash -c "! grep -qE '^\s*loopback_users\s*=\s*none' rabbitmq-configs/rabbitmq.conf && ! grep -qE 'loopback_users\.guest\s*=\s*false' rabbitmq-configs/rabbitmq.conf"
defs=rabbitmq-configs/definitions.json
check "the definitions create no guest and no administrator" \
    jq -e '[.users[] | select(.name == "guest" or (.tags | index("administrator")))] | length == 0' "$defs"
check "no broker password is in the repository (definitions users have none)" \
    jq -e 'all(.users[]; (.password // "") == "" and (.password_hash // "") == "")' "$defs"
check "every service has a broker user whose permissions are anchored" \
    bash -c "for s in \$(cd services && ls); do jq -e --arg u \"\$s\" 'any(.permissions[]; .user == \$u and all(.configure, .write, .read; startswith(\"^\") and endswith(\"\$\")))' '$defs' >/dev/null || exit 1; done"
# write: the default exchange (calls, replies, retries), rpc.dlx (named by RPC queues), events
# for a publisher, and a subscriber's own queues (bindings); never everything.
writes_ok=1
for u in $(jq -r '.permissions[].user' "$defs"); do
    w="$(jq -r --arg u "$u" '.permissions[] | select(.user == $u and .vhost == "/") | .write' "$defs")"
    grep -qE "$w" <<<"amq.default" || writes_ok=""
    for other in some.other.queue amq.gen-x $(jq -r --arg u "$u" '.users[].name | select(. != $u)' "$defs"); do
        grep -qE "$w" <<<"$other.x" && writes_ok=""
    done
done
check "services write to the default exchange, and not to everything or another service's queues" test -n "$writes_ok"
check ".dockerignore is an allow-list (everything excluded first)" bash -c "grep -v '^#' .dockerignore | grep -v '^\$' | head -n 1 | grep -qx '\*'"
# Each route of stubs/ (stubs/src/<service>...) can be declared by its service and read (consumed)
# by its service alone; RabbitMQ's patterns are regular expressions that ERE reads alike here.
perm() { jq -r --arg u "$1" --arg k "$2" '.permissions[] | select(.user == $u and .vhost == "/") | .[$k]' "$defs"; }
users="$(jq -r '.permissions[].user' "$defs")"
routes_ok=1
while IFS=: read -r file route; do
    owner="${file#stubs/src/}"
    owner="${owner%%/*}"
    owner="${owner%.rs}"
    grep -qE "$(perm "$owner" configure)" <<<"$route" || {
        echo "  $owner may not declare its route $route"
        routes_ok=""
    }
    for u in $users; do
        if grep -qE "$(perm "$u" read)" <<<"$route"; then
            [ "$u" = "$owner" ] || {
                echo "  $u may consume $owner's route $route"
                routes_ok=""
            }
        elif [ "$u" = "$owner" ]; then
            echo "  $owner may not consume its route $route"
            routes_ok=""
        fi
    done
done < <(grep -roE "const ROUTE: &'static str = \"[^\"]+\"" stubs/src | sed -E "s/:.*\"([^\"]+)\"$/:\1/")
check "every route in stubs/ is declared and consumed by its own service only" test -n "$routes_ok"

# scripts/build sends docker the tracked files only: an untracked dump never reaches the image.
stray="services/example/stray-$$.dump.sql"
echo "-- an untracked dump" >"$stray"
context="$(scripts/build --context)"
check "the image's build context holds the Dockerfile and the sources" \
    bash -c "grep -qx Dockerfile <<<'$context' && grep -qx services/example/src/lib.rs <<<'$context'"
check "... and no untracked file" bash -c "! grep -qF 'stray-$$' <<<'$context'"
exit "$fail"
