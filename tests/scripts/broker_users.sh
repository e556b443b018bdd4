#!/usr/bin/env bash
# dev's broker users (dev_broker_users in scripts/lib/stack.sh): each gets exactly the
# permissions of the definitions, a password that works (handed to rabbitmqctl on stdin) and
# that dev does not print, the tag worker-kit-dev, and is deleted by undo_stack_changes, leaving the broker's
# users as they were; a user of that name the scripts did not create is refused and left alone;
# a remote AMQP_URL makes none. Uses a user name of its own, not the services'.
set -euo pipefail
# shellcheck source=scripts/lib/stack.sh
. "$(dirname "$0")/../../scripts/lib/stack.sh"
if ! is_root || ! rabbitmqctl -q status >/dev/null 2>&1; then
    echo "SKIP needs root and a local RabbitMQ node"
    exit 0
fi
command -v jq >/dev/null 2>&1 || apt_install jq
fail=0
check() {
    local what="$1"
    shift
    if "$@" >/dev/null 2>&1; then echo "PASS $what"; else
        echo "FAIL $what"
        fail=1
    fi
}
user="wk_users_test_$$"
work="$(mktemp -d)"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    rabbitmqctl -q delete_user "$user" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
users() { rabbitmqctl -q list_users | awk '{print $1}' | sort; }
users >"$work/before"
jq --arg u "$user" '.permissions[0].user = $u | .permissions |= [.[0]]' \
    "$ROOT/rabbitmq-configs/definitions.json" >"$work/defs.json"
export BROKER_DEFINITIONS="$work/defs.json"
var="$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')_AMQP_URL"

# shellcheck disable=SC2016 # expanded by the child shell
AMQP_URL="amqp://u:p@rabbit.elsewhere:5672/%2f" bash -c '. "$ROOT/scripts/lib/stack.sh"; dev_broker_users "$1"; echo "url=${!2:-}"' _ "$user" "$var" >"$work/out" 2>&1
check "a remote AMQP_URL makes no user" bash -c "! rabbitmqctl -q list_users | grep -q '^$user\\b' && grep -qx 'url=' '$work/out'"

dev_broker_users "$user" 2>"$work/err"
url="${!var:-}"
check "the user is created and its URL set" test -n "$url"
pw="${url#amqp://"$user":}"
pw="${pw%%@*}"
check "its password works" bash -c "printf '%s' '$pw' | rabbitmqctl -q authenticate_user '$user'"
got="$(rabbitmqctl -q list_user_permissions "$user" | awk -F'\t' '$1 == "/" {print $2 "\t" $3 "\t" $4}')"
want="$(jq -r '.permissions[0] | "\(.configure)\t\(.write)\t\(.read)"' "$work/defs.json")"
check "its permissions are exactly the definitions'" test "$got" = "$want"
check "it is tagged worker-kit-dev, and nothing more" \
    bash -c "rabbitmqctl -q list_users --formatter json | jq -e --arg u '$user' 'any(.[]; .user == \$u and .tags == [\"worker-kit-dev\"])'"
check "the password is not in dev's messages" bash -c "! grep -qF '$pw' '$work/err'"
undo_stack_changes 2>/dev/null
check "undo deletes it: the broker's users are as they were" bash -c "users() { rabbitmqctl -q list_users | awk '{print \$1}' | sort; }; diff <(users) '$work/before'"

unset "$var"
printf 'x' | rabbitmqctl -q add_user "$user" >/dev/null
# shellcheck disable=SC2016 # expanded by the child shell
if bash -c '. "$ROOT/scripts/lib/stack.sh"; dev_broker_users "$1"; undo_stack_changes' _ "$user" >"$work/out" 2>&1; then
    echo "FAIL a user of that name that the scripts did not create is refused"
    fail=1
else
    check "a user of that name that the scripts did not create is refused" grep -q "these scripts did not create" "$work/out"
fi
check "... and left alone (its password unchanged)" bash -c "printf x | rabbitmqctl -q authenticate_user '$user'"
exit "$fail"
