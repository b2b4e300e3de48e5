#!/bin/sh
# fuzz.sh — what `make fuzz` does: builds every fuzz target with clang and
# libFuzzer (build/fuzz/), then runs each for SECONDS seconds, one at a
# time, and prints one line per target: executions, coverage (libFuzzer's
# cov: edges and ft: features reached) and the corpus size.
#
# Usage: sh scripts/fuzz.sh SECONDS TARGET...   (from the repository root)
#
# Seeds come from tests/fuzz/corpus/TARGET (read only); what the fuzzer
# finds new goes to build/fuzz/corpus/TARGET, kept between runs so long
# runs add up. A crash leaves its input in build/fuzz/crashes/TARGET/ and
# makes the script fail; to keep it as a regression test, copy it to
# tests/fuzz/regressions/TARGET/ once fixed (make test feeds it to the
# target ever after). Extra libFuzzer flags: FUZZ_FLAGS="-jobs=2 ...".
set -eu

seconds=${1:?usage: fuzz.sh SECONDS TARGET...}
shift
build=build/fuzz

# clang and its libFuzzer runtime are installed on first use
sh scripts/install-deps.sh fuzz >/dev/null
${MAKE:-make} -s SANITIZE=fuzz fuzz-targets

status=0
summary=""
for t in "$@"; do
    mkdir -p "$build/corpus/$t" "$build/crashes/$t"
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    log="$build/fuzz_$t.log"
    echo "fuzz: $t for ${seconds}s (log: $log)"
    # shellcheck disable=SC2086
    if "$build/fuzz_$t" "$build/corpus/$t" "tests/fuzz/corpus/$t" $dict \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/crashes/$t/" \
        ${FUZZ_FLAGS:-} >"$log" 2>&1; then
        result=ok
    else
        result="FAILED: see $log and $build/crashes/$t/"
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1 || true)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
    line=$(printf '%-8s %10s execs  cov %5s  ft %6s  corpus %-12s %s' "$t" \
           "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")
    echo "$line"
    summary="$summary$line
"
done
echo
echo "fuzz summary (${seconds}s per target):"
printf '%s' "$summary"
exit $status
