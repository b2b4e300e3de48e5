#!/bin/sh
# step.sh — `make bench-step`: the fused training step M_step (bpgen
# --step) against M_forward + M_backward + bp_optim_step, memory and time
# (bench/step.c), on issue 7's 784-128-10 relu workload at batch 64 and on
# examples/fashion (784-256-10) and examples/fashion_cnn at batch 64.
# Usage: sh bench/step.sh [BUILD]   (BENCH_MS: ms per timed loop)
set -eu
build=${1:-build}
out=$build/bench/step
mkdir -p "$out"
cc=${CC:-cc}
{
    echo "model wl_m128"
    echo "input x[784]"
    echo "input y[10]"
    echo "param W1[128, 784]"
    echo "param b1[128]"
    echo "param W2[10, 128]"
    echo "param b2[10]"
    echo "h1 = relu(W1 · x + b1)"
    echo "z = W2 · h1 + b2"
    echo "loss L = softmax_cross_entropy(z, y)"
} > "$out/wl_m128.net"
for pair in "wl_m128:$out/wl_m128.net" "fashion:examples/fashion/fashion.net" \
            "fashion_cnn:examples/fashion_cnn/fashion_cnn.net"; do
    name=${pair%%:*}
    net=${pair#*:}
    "$build/bpgen" "$net" --step --precision=float -o "$out/$name.c"
    $cc -std=c99 -O2 -Iruntime -DM="$name" -DBATCH=64 -o "$out/step_$name" \
        "$out/$name.c" bench/step.c "$build/libbp.a" -lm -pthread
    "$out/step_$name"
    echo
done
