#!/bin/sh
# demo.sh — what `make demo` shows, in a few seconds:
#   1. the chain rule done by bpgen: the derivation of the one-variable
#      example, step by step, as `bpgen --explain` prints it;
#   2. the iris classifier: bpgen compiles examples/iris/iris.net to C, the
#      C is built with examples/iris/train_iris.c and the runtime, and the
#      program trains it with a report per epoch, saves the weights, loads
#      them into a fresh parameter vector, reports the test accuracy and
#      checks the gradients against finite differences on a batch; the
#      training curves are written as CSV and SVG (the path is printed).
#
# Usage: sh scripts/demo.sh BUILD_DIR   (from the repository's root, after
#        `make`; generated files go to BUILD_DIR/examples/iris)
set -eu

build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac
bpgen=$build/bpgen
out=$build/examples/iris

if [ ! -x "$bpgen" ] || [ ! -f "$build/libbp.a" ]; then
    echo "demo: $bpgen or $build/libbp.a is missing; run 'make' first" >&2
    exit 2
fi

echo "== 1. The chain rule: S = L^2 + 2, P = sqrt(S)"
echo "\$ bpgen examples/chain/chain.net --explain"
"$bpgen" examples/chain/chain.net --explain
echo

echo "== 2. The iris classifier (examples/iris/iris.net, 4-16-3)"
echo "\$ bpgen examples/iris/iris.net -o $out/iris.c"
echo "\$ cc -O2 -Iruntime $out/iris.c examples/iris/train_iris.c $build/libbp.a -lm"
MAKEFLAGS= MAKELEVEL= make -s -C examples BUILD="$build" "$out/train_iris"
echo
cd examples/iris
"$out/train_iris" "$out/iris.weights"
