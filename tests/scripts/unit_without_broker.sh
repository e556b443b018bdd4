#!/usr/bin/env bash
# `test unit` needs no broker: it passes with AMQP_URL pointing at a closed port.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2f" PGPORT=1 "$root/scripts/pj" test unit >/tmp/unit-no-broker.$$ 2>&1; then
    echo "PASS test unit passes without RabbitMQ or PostgreSQL"
    rm -f /tmp/unit-no-broker.$$
else
    tail -30 /tmp/unit-no-broker.$$
    echo "FAIL test unit needed a service"
    rm -f /tmp/unit-no-broker.$$
    exit 1
fi
