#!/bin/sh
# $cc may be a command with arguments (CC='ccache cc'): split on purpose.
# shellcheck disable=SC2086
# run.sh — `make bench-compile`: how bpgen's compile time, peak memory and
# output grow with the model (issue 12, item 2), and how long `cc -O2`
# takes on what it generates (issue 7, item 8). See bench/README.md.
#
# Usage: sh bench/compile/run.sh BUILD_DIR   (from the repository's root,
#        after `make`; models and outputs go to BUILD_DIR/bench/compile)
# Environment: CC (default cc); BENCH_COMPILE_SIZES (default
#        "10 100 1000 10000 100000") statements per model;
#        BENCH_COMPILE_TIMEOUT (default 300) seconds before one bpgen run
#        is stopped and reported as such; BENCH_CC_LAYERS (default
#        "10 100 1000") layers of the MLPs given to cc -O2, "" to skip.
set -eu

build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac
bpgen=$build/bpgen
out=$build/bench/compile
cc=${CC:-cc}
sizes=${BENCH_COMPILE_SIZES:-10 100 1000 10000 100000}
limit=${BENCH_COMPILE_TIMEOUT:-300}
cc_layers=${BENCH_CC_LAYERS-10 100 1000}

if [ ! -x "$bpgen" ]; then
    echo "bench-compile: $bpgen is missing; run 'make' first" >&2
    exit 2
fi
rm -rf "$out"
mkdir -p "$out"
$cc -std=c99 -Wall -Wextra -pedantic -Werror -O2 -o "$out/gen_model" bench/compile/gen_model.c

# statements in a .net file: lines that are neither blank nor comments
statements() {
    grep -cv '^[[:space:]]*\(#.*\)\{0,1\}$' "$1"
}

echo "== bpgen's compile time by model size ($(nproc) cores, load average" \
     "$(cut -d' ' -f1-3 /proc/loadavg) at the start)"
printf '%-6s %8s %8s %8s %9s %8s %8s %10s  %s\n' model stmts "wall s" "cpu s" \
    "cpu us/st" "peak MB" "KB/stmt" "out B/stmt" "slowest pass"
failed=0
for kind in chain mlp; do
    for n in $sizes; do
        net=$out/${kind}_$n.net
        "$out/gen_model" "$kind" "$n" > "$net"
        stmts=$(statements "$net")
        status=0
        # wall time from date (time's %e has 10 ms steps); from time, the
        # CPU time (user + system: what a loaded machine distorts least)
        # and the peak memory (maximum resident set)
        start=$(date +%s.%N)
        /usr/bin/time -f '%U %S %M' -o "$out/time.txt" timeout "$limit" \
            "$bpgen" "$net" -o "$out/${kind}_$n.c" --time-passes \
            2> "$out/${kind}_$n.passes" || status=$?
        end=$(date +%s.%N)
        if [ "$status" = 124 ]; then
            printf '%-6s %8s  stopped after %s s\n' "$kind" "$stmts" "$limit"
            continue
        elif [ "$status" != 0 ]; then
            echo "bench-compile: bpgen failed on $net (status $status):" >&2
            grep -v '^# time' "$out/${kind}_$n.passes" >&2 || true
            failed=1
            continue
        fi
        bytes=$(cat "$out/${kind}_$n.c" "$out/${kind}_$n.h" | wc -c)
        # the pass that took longest (its share of the passes' sum)
        slowest=$(awk '$1 == "#" && $2 == "time" { t[$3] += $4; sum += $4 }
            END { for (p in t) if (t[p] > best) { best = t[p]; name = p }
                  if (sum > 0) printf "%s %.0f%%", name, 100 * best / sum }' \
            "$out/${kind}_$n.passes")
        secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
        read -r user sys kb < "$out/time.txt"
        awk -v k="$kind" -v n="$stmts" -v s="$secs" -v u="$user" -v y="$sys" -v kb="$kb" \
            -v b="$bytes" -v slow="$slowest" 'BEGIN {
            printf "%-6s %8d %8.3f %8.2f %9.1f %8.1f %8.2f %10.0f  %s\n",
                   k, n, s, u + y, 1e6 * (u + y) / n, kb / 1024, kb / n, b / n, slow }'
        echo "$kind $stmts $secs $user $sys" >> "$out/results.txt"
    done
done

# The target: 100 000 statements in under 5 s.
if [ -f "$out/results.txt" ]; then
    awk '$2 >= 100000 { printf "target: %s, %d statements in %.2f s (%.2f s of CPU; under 5 s): %s\n",
                              $1, $2, $3, $4 + $5, $3 < 5 ? "met" : "MISSED" }' "$out/results.txt"
fi

if [ -n "$cc_layers" ]; then
    echo
    echo "== $cc -O2 on the generated code of width-4 MLPs (issue 7, item 8)"
    printf '%-8s %10s %10s %10s\n' layers "C bytes" "cpu s" "ms/layer"
    for layers in $cc_layers; do
        net=$out/cc_mlp_$layers.net
        "$out/gen_model" mlp --layers "$layers" > "$net"
        "$bpgen" "$net" -o "$out/cc_mlp_$layers.c"
        /usr/bin/time -f '%U %S' -o "$out/time.txt" \
            $cc -O2 -Iruntime -c -o "$out/cc_mlp_$layers.o" "$out/cc_mlp_$layers.c"
        secs=$(awk '{ print $1 + $2 }' "$out/time.txt")
        awk -v l="$layers" -v s="$secs" -v b="$(wc -c < "$out/cc_mlp_$layers.c")" \
            'BEGIN { printf "%-8d %10d %10.2f %10.2f\n", l, b, s, 1e3 * s / l }'
    done
fi
exit "$failed"
