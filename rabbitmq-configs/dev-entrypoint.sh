#!/bin/sh
# Development only (dev.docker-compose.yml): runs RabbitMQ, then gives each service's user from
# definitions.json (which have no password there) the password in <SERVICE>_AMQP_PASSWORD, and
# creates the developer's user `dev` (all permissions on the vhost, the management UI, not an
# administrator) only when DEV_PASSWORD is set. Passwords go to
# rabbitmqctl on stdin, never as arguments. The healthcheck passes once this is done.
set -eu
rm -f /tmp/dev-users-set
docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit 0' TERM INT
rabbitmqctl -q await_startup --timeout 120
for user in ${DEV_SERVICE_USERS:-example greeter catalog}; do
    var="$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')_AMQP_PASSWORD"
    eval "password=\${$var:-}"
    # shellcheck disable=SC2154 # set by the eval
    if [ -z "$password" ]; then
        echo "dev-entrypoint: $var is not set: $user cannot log in" >&2
        continue
    fi
    printf '%s' "$password" | rabbitmqctl -q change_password "$user" >/dev/null
done
if [ -n "${DEV_PASSWORD:-}" ]; then
    printf '%s' "$DEV_PASSWORD" | rabbitmqctl -q add_user dev >/dev/null 2>&1 ||
        printf '%s' "$DEV_PASSWORD" | rabbitmqctl -q change_password dev >/dev/null
    rabbitmqctl -q set_user_tags dev management
    rabbitmqctl -q set_permissions -p / dev '.*' '.*' '.*'
fi
touch /tmp/dev-users-set
wait "$server"
