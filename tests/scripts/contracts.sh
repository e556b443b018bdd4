#!/usr/bin/env bash
# pj contracts check: passes on the repository against its merge-base with main; then, in a
# scratch git repository holding the committed AsyncAPI documents, each kind of break is
# made the way a commit would make it and the checker must fail naming the route or event,
# the field path, the old and new shapes and the rule; additions pass, a retired route
# passes, the base defaults to the merge-base, and a checkout without main says so.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
fail=0
pass() { echo "PASS $*"; }
failed() {
    echo "FAIL $*"
    fail=1
}

if out="$(scripts/contracts check 2>&1)"; then
    pass "pj contracts check: the working tree is compatible with its merge-base with main"
else
    failed "pj contracts check on the repository: $out"
fi

# Committed documents that differ from what the services print fail the check (the next
# check would compare against them). The file is restored on every path.
doc="$root/docs/asyncapi/greeter.json"
backup="$(mktemp)"
cp "$doc" "$backup"
trap 'cp "$backup" "$doc"; rm -f "$backup"' EXIT
printf '\n' >>"$doc"
code=0
out="$(scripts/contracts check 2>&1)" || code=$?
cp "$backup" "$doc"
if [ "$code" -eq 1 ] && grep -qF "docs/asyncapi/greeter.json is not what the service prints now: run scripts/pj docs" <<<"$out"; then
    pass "stale committed documents fail the check"
else
    failed "stale documents: exit $code: $out"
fi

cargo build -q -p worker-kit-contracts
bin="$target/debug/contracts"
scratch="$(mktemp -d)"
trap 'cp "$backup" "$doc"; rm -f "$backup"; rm -rf "$scratch"' EXIT
cd "$scratch"
git init -q -b main
git config user.email gate@example.invalid
git config user.name gate
mkdir -p docs/asyncapi
cp "$root"/docs/asyncapi/*.json docs/asyncapi/
git add docs
git commit -q -m base

# change NAME FILE JQ: a branch NAME off main whose commit applies the jq program to
# docs/asyncapi/FILE.json.
change() {
    git checkout -q -B "$1" main
    jq "$3" "docs/asyncapi/$2.json" >"$scratch/edit.json"
    mv "$scratch/edit.json" "docs/asyncapi/$2.json"
    git commit -q -am "$1"
}

# expect_break WHAT NEEDLE...: the checker exits 1 and its report holds every needle.
expect_break() {
    local what="$1" code=0 n out
    shift
    out="$("$bin" check 2>&1)" || code=$?
    if [ "$code" -ne 1 ]; then
        failed "$what: exit $code, expected 1: $out"
        return
    fi
    for n in "$@"; do
        if ! grep -qF -- "$n" <<<"$out"; then
            failed "$what: the report lacks '$n': $out"
            return
        fi
    done
    pass "$what"
}

expect_pass() {
    local what="$1" out
    if out="$("$bin" check "${@:2}" 2>&1)"; then pass "$what"; else failed "$what: $out"; fi
}

S='.components.schemas'
change new-required example "$S.CreateItem.properties.currency = {\"type\": \"string\"} | $S.CreateItem.required += [\"currency\"]"
expect_break "request: a new required field" "route \`example.items.create\` request at currency" \
    "[rule request.new-required-field]" "old: absent" "new: required string"

change made-required example "$S.CreateItem.required += [\"price_cents\"]"
expect_break "request: a field made required" "example.items.create\` request at price_cents" \
    "[rule request.field-made-required]" "old: optional integer (int64)" "new: required integer (int64)"

change request-removed example "del($S.CreateItem.properties.tags)"
expect_break "request: a removed field" "example.items.create\` request at tags" \
    "[rule request.removed-field]" "old: array of string" "new: absent"

change narrowed-type example "$S.SearchItems.properties.text = {\"type\": \"integer\"}"
expect_break "request: a narrowed type" "example.items.search\` request at text" \
    "[rule request.narrowed-type]" "old: string" "new: integer"

change narrowed-range example "$S.ListItems.properties.limit.format = \"uint8\""
expect_break "request: a narrowed range" "example.items.list\` request at limit" \
    "[rule request.narrowed-range]" "old: integer (uint32) | null" "new: integer (uint8) | null"

# An enum needs a base that has one: a commit on main adds it, the branch removes a value.
git checkout -q main
jq "$S.SearchCatalog.properties.text.enum = [\"books\", \"music\"]" docs/asyncapi/catalog.json >"$scratch/edit.json"
mv "$scratch/edit.json" docs/asyncapi/catalog.json
git commit -q -am "an enum"
change removed-enum catalog "$S.SearchCatalog.properties.text.enum = [\"books\"]"
expect_break "request: a removed enum value" "catalog.items.search\` request at text" \
    "[rule request.removed-enum-value]" "old: one of [\"books\", \"music\"]" "new: one of [\"books\"]"
git checkout -q main
git reset -q --hard HEAD~1

change reply-removed example "del($S.Item.properties.tags)"
expect_break "reply and event: a removed field" "route \`example.items.get\` reply at tags" \
    "[rule reply.removed-field]" "published event \`example.item.created\` event at tags" "[rule event.removed-field]"

change reply-type example "$S.Item.properties.id = {\"type\": \"string\"}"
expect_break "reply: a changed type" "example.items.get\` reply at id" "[rule reply.changed-type]" \
    "old: integer (int64)" "new: string"

change reply-optional example "$S.Item.required -= [\"name\"]"
expect_break "reply: a required field made optional" "example.items.get\` reply at name" \
    "[rule reply.field-made-optional]" "old: required string" "new: optional string"

# Version 2 of a route changed in place breaks its old callers; served beside version 1 it
# passes (the base here is main without the v2 route).
# shellcheck disable=SC2016 # "$ref" is a JSON member for jq, not a shell variable
change in-place example '.components.messages["example.items.create.request"].payload.properties.data["$ref"] = "#/components/schemas/CreateItemV2" | .components.messages["example.items.create.reply"].payload.properties.data["$ref"] = "#/components/schemas/ItemV2"'
expect_break "a new version changed in place" "example.items.create\` request at price" \
    "[rule request.new-required-field]" "example.items.create\` reply at price_cents" "[rule reply.removed-field]" \
    "under a new route (e.g. \`example.items.create.v2\`)"
git checkout -q -B without-v2 main
jq 'del(.operations["example.items.create.v2"])' docs/asyncapi/example.json >"$scratch/edit.json"
mv "$scratch/edit.json" docs/asyncapi/example.json
git commit -q -am "before v2"
git checkout -q -B beside main
expect_pass "a new version served beside the old one passes" --base without-v2

change removed-route example 'del(.operations["example.items.search"])'
expect_break "a removed route" "route \`example.items.search\`" "[rule removed-route]" "Document::retired"
change retired-route example 'del(.operations["example.items.search"]) | .["x-retired"] = [{"name": "example.items.search", "reason": "callers moved"}]'
expect_pass "a retired route passes"

change removed-event example 'del(.operations["publish.example.item.deleted"])'
expect_break "a removed published event" "published event \`example.item.deleted\`" "[rule removed-event]"

change additions example "$S.CreateItem.properties.note = {\"type\": \"string\"} | $S.Item.properties.note = {\"type\": \"string\"} | $S.Item.required += [\"note\"]"
expect_pass "additions both sides tolerate pass"

# --json: one object for tools.
git checkout -q reply-type
code=0
json="$("$bin" check --json)" || code=$?
if [ "$code" -eq 1 ] && jq -e '.compatible == false and (.breaks | map(select(.name == "example.items.get" and .path == "id" and .rule == "reply.changed-type")) | length == 1)' <<<"$json" >/dev/null; then
    pass "--json reports the break"
else
    failed "--json: exit $code: $json"
fi

# The default base is the merge-base: a route main gained after the branch was made is not
# "removed" on the branch.
git checkout -q -B feature main
git checkout -q main
jq '.operations["example.items.later"] = (.operations["example.items.get"] | .channel["$ref"] = "#/channels/example.items.later") | .channels["example.items.later"] = (.channels["example.items.get"] | .address = "example.items.later")' \
    docs/asyncapi/example.json >"$scratch/edit.json"
mv "$scratch/edit.json" docs/asyncapi/example.json
git commit -q -am "a later route on main"
git checkout -q feature
expect_pass "the default base is the merge-base with main"
if "$bin" check --base main >/dev/null 2>&1; then
    failed "--base main: the route main gained counts as removed on the branch"
else
    pass "--base REF is honoured"
fi

code=0
out="$("$bin" check --base no-such-revision 2>&1)" || code=$?
if [ "$code" -eq 2 ] && grep -qF "\`no-such-revision\` is not a commit" <<<"$out"; then
    pass "an unknown --base is named"
else
    failed "unknown --base: exit $code: $out"
fi

# Without a main branch the default cannot be made: say what to pass.
git checkout -q -b trunk
git branch -q -D main
code=0
out="$("$bin" check 2>&1)" || code=$?
if [ "$code" -eq 2 ] && grep -qF "no branch \`main\`" <<<"$out" && grep -qF -- "--base" <<<"$out"; then
    pass "a checkout without main is told to pass --base"
else
    failed "without main: exit $code: $out"
fi

[ "$fail" -eq 0 ] && echo "PASS pj contracts check: every kind of break is caught and named"
exit "$fail"
