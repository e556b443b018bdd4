# shellcheck shell=bash
# Runs test groups to the end whatever fails, and closes with one table: each group (a cargo
# test binary, a crate's doc tests, a script test), what passed, failed and was skipped, and
# its time. Sourced by scripts/test.
#
# A test that cannot run here (the cluster tier without a cluster) appends a line to the file
# in PJ_SKIP_LOG (tests/src/skip.rs): `binary<TAB>test<TAB>reason`. libtest has no "skipped"
# of its own and captures what a passing test prints, so without this such a test would
# count as passed.

TESTRUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pj-test.XXXXXX")"
TESTRUN_ROWS="$TESTRUN_DIR/rows"
export PJ_SKIP_LOG="$TESTRUN_DIR/skipped"
: >"$TESTRUN_ROWS"
: >"$PJ_SKIP_LOG"
testrun_seq=0

# cargo_tests ARGS...: `cargo test --no-fail-fast ARGS`, its output shown as it comes and
# kept; one row per test binary that ran a test. Returns cargo's status.
cargo_tests() {
    testrun_seq=$((testrun_seq + 1))
    local log="$TESTRUN_DIR/cargo.$testrun_seq.log" status=0
    # No colour codes in a log that is not a terminal (trybuild's termcolor ignores isatty).
    [ -t 1 ] || export NO_COLOR=1
    cargo test --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
    parse_cargo_log "$log" >>"$TESTRUN_ROWS"
    if [ "$status" -ne 0 ] && ! grep -qE '^ +(Running|Doc-tests) ' "$log"; then
        printf '%s\t0\t1\t0\t-\tbuild failed\n' "cargo test $*" >>"$TESTRUN_ROWS"
    fi
    return "$status"
}

# Reads cargo test's output: a `Running SRC (target/.../deps/NAME-HASH)` or `Doc-tests CRATE`
# line opens a binary, its `test result:` line closes it. A binary that never closes died
# (a crash, an abort): a failed row. Prints `label<TAB>passed<TAB>failed<TAB>skipped<TAB>
# seconds<TAB>status`, skipped tests moved out of passed.
parse_cargo_log() {
    awk -F'\t' -v skips="$PJ_SKIP_LOG" '
        BEGIN {
            while ((getline line < skips) > 0) {
                split(line, f, "\t")
                skipped[f[1]]++
            }
            empty = 0
        }
        function close_open(   n) {
            if (label != "") {
                printf "%s\t0\t1\t0\t-\tdied before its summary\n", label
            }
            label = ""
        }
        /^ +Running / {
            close_open()
            src = $0
            sub(/^ +Running /, "", src)
            exe = src
            sub(/^.*\(/, "", exe); sub(/\)$/, "", exe); sub(/^.*\//, "", exe)
            sub(/ \(.*$/, "", src); sub(/^unittests /, "", src)
            name = exe; sub(/-[0-9a-f]+$/, "", name)
            label = name " " src
            key = exe
            next
        }
        /^ +Doc-tests / {
            close_open()
            crate = $0; sub(/^ +Doc-tests /, "", crate)
            label = crate " (doc tests)"
            key = ""
            next
        }
        /^test result: / && label != "" {
            passed = failed = ignored = 0; secs = "-"
            if (match($0, /[0-9]+ passed/)) passed = substr($0, RSTART, RLENGTH) + 0
            if (match($0, /[0-9]+ failed/)) failed = substr($0, RSTART, RLENGTH) + 0
            if (match($0, /[0-9]+ ignored/)) ignored = substr($0, RSTART, RLENGTH) + 0
            if (match($0, /finished in [0-9.]+s/)) secs = substr($0, RSTART + 12, RLENGTH - 13)
            skip = (key != "" && (key in skipped)) ? skipped[key] : 0
            if (skip > passed) skip = passed
            if (passed + failed + ignored == 0) {
                empty++
            } else {
                printf "%s\t%d\t%d\t%d\t%s\t%s\n", label, passed - skip, failed, skip + ignored, secs,
                    (failed > 0 ? "FAILED" : "ok")
            }
            label = ""
            next
        }
        END {
            close_open()
            if (empty > 0) printf "(%d targets without tests)\t0\t0\t0\t-\tok\n", empty
        }
    ' "$1"
}

# script_test FILE: runs one script test, a row for it. Returns its status.
script_test() {
    local t="$1" start=$SECONDS status=0
    say "script test $(basename "$t")"
    bash "$t" || status=$?
    local took=$((SECONDS - start))
    if [ "$status" -eq 0 ]; then
        printf 'script %s\t1\t0\t0\t%s\tok\n' "$(basename "$t")" "$took" >>"$TESTRUN_ROWS"
    else
        warn "$(basename "$t") failed (exit $status)"
        printf 'script %s\t0\t1\t0\t%s\tFAILED\n' "$(basename "$t")" "$took" >>"$TESTRUN_ROWS"
    fi
    return "$status"
}

# The table, the skipped tests by name, and a closing `total: N passed, N failed, N skipped`
# line. Returns 1 when anything failed.
print_summary() {
    local wall="$1"
    echo
    echo "==> summary"
    awk -F'\t' -v wall="$wall" '
        {
            rows[NR] = $0
            w = length($1); if (w > width) width = w
            p += $2; f += $3; s += $4
        }
        END {
            if (width < 5) width = 5
            printf "%-*s %7s %7s %8s %9s  %s\n", width, "group", "passed", "failed", "skipped", "time (s)", "result"
            for (i = 1; i <= NR; i++) {
                split(rows[i], c, "\t")
                printf "%-*s %7d %7d %8d %9s  %s\n", width, c[1], c[2], c[3], c[4], c[5], c[6]
            }
            printf "%-*s %7d %7d %8d %9s\n", width, "all", p, f, s, wall
            printf "total: %d passed, %d failed, %d skipped\n", p, f, s
        }
    ' "$TESTRUN_ROWS"
    if [ -s "$PJ_SKIP_LOG" ]; then
        echo "skipped:"
        awk -F'\t' '{ printf "  %s: %s\n", $2, $3 }' "$PJ_SKIP_LOG" | sort | uniq
    fi
    ! awk -F'\t' '$3 > 0 { bad = 1 } END { exit !bad }' "$TESTRUN_ROWS"
}

testrun_cleanup() {
    rm -rf "$TESTRUN_DIR"
}
