#!/usr/bin/env bash
# The compose file is valid (docker-compose validates without an engine).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
out="$(cd "$root" && docker-compose -f dev.docker-compose.yml config)"
for svc in rabbitmq postgres migrate example greeter; do
    if ! grep -q "^  $svc:" <<<"$out"; then
        echo "FAIL compose defines $svc"
        exit 1
    fi
done
echo "PASS dev.docker-compose.yml validates and defines every service"
