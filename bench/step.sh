#!/bin/sh
# step.sh — `make bench-step`: the fused training step M_step (bpgen
# --step) against M_forward + M_backward + bp_optim_step, memory and time
# (bench/step.c), at batch 64, on issue 7's 784-128-10 and 784-512-512-10
# relu MLPs, examples/fashion (784-256-10) and examples/fashion_cnn.
# Usage: sh bench/step.sh [BUILD]   (BENCH_MS: ms per timed loop)
set -eu
build=${1:-build}
out=$build/bench/step
mkdir -p "$out"
cc=${CC:-cc}
# issue 7's MLPs, as bench/run.sh writes them
mlp() {
    name=$1
    shift
    {
        echo "model $name"
        echo "input x[$1]"
        echo "input y[10]"
        l=0 prev=$1 h=x
        shift
        while [ $# -gt 0 ]; do
            l=$((l + 1))
            echo "param W$l[$1, $prev]"
            echo "param b$l[$1]"
            if [ $# -eq 1 ]; then
                echo "z = W$l · $h + b$l"
            else
                echo "h$l = relu(W$l · $h + b$l)"
                h=h$l
            fi
            prev=$1
            shift
        done
        echo "loss L = softmax_cross_entropy(z, y)"
    } > "$out/$name.net"
}
mlp wl_m128 784 128 10
mlp wl_m512 784 512 512 10
for pair in "wl_m128:$out/wl_m128.net" "wl_m512:$out/wl_m512.net" \
            "fashion:examples/fashion/fashion.net" \
            "fashion_cnn:examples/fashion_cnn/fashion_cnn.net"; do
    name=${pair%%:*}
    net=${pair#*:}
    "$build/bpgen" "$net" --step --precision=float -o "$out/$name.c"
    $cc -std=c99 -O2 -Iruntime -DM="$name" -DBATCH=64 -o "$out/step_$name" \
        "$out/$name.c" bench/step.c "$build/libbp.a" -lm -pthread
    "$out/step_$name"
    echo
done
