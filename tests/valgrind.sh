#!/bin/sh
# valgrind.sh — memcheck over what users run: every example program (on
# small inputs, so the suite stays quick), the --main driver bpgen
# generates for every example model, and bpgen itself. Any memory error
# or leak fails it (valgrind --error-exitcode=99 --leak-check=full: 99, so
# that bpgen's own status 1 for a model with errors stays its own).
# Run by tests/test_valgrind.c; the last line says how many programs ran
# clean: "memcheck: N programs clean".
#
# Usage: sh tests/valgrind.sh OUT_DIR BPGEN [bpgen-too]
#   (from the repository root). The runtime and the programs are built
#   here without sanitizers (ASan and valgrind exclude each other), into
#   OUT_DIR; BPGEN generates the code; with `bpgen-too`, BPGEN itself runs
#   under valgrind as well (it must then be a build without sanitizers).
# Exit status: 0 clean, 1 an error, 77 valgrind is not installed.
set -u

out=$1
bpgen=$2
bpgen_too=${3:-}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "memcheck: valgrind is not installed, nothing ran" \
         "(sh scripts/install-deps.sh installs it)"
    exit 77
fi
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
case $bpgen in /*) ;; *) bpgen=$(pwd)/$bpgen ;; esac
rm -rf "$out"
mkdir -p "$out/data"

vg="valgrind -q --error-exitcode=99 --leak-check=full"
clean=0
failed=0

# check NAME COMMAND...: runs the command, counts it clean or failed
check() {
    name=$1
    shift
    if "$@" >"$out/$name.log" 2>&1; then
        clean=$((clean + 1))
    else
        failed=$((failed + 1))
        echo "memcheck: $name FAILED:"
        sed 's/^/    /' "$out/$name.log" | tail -n 40
    fi
}

MAKEFLAGS= MFLAGS= MAKELEVEL= make -s SANITIZE= BUILD="$out/build" \
    "$out/build/libbp.a" || exit 1
libbp=$out/build/libbp.a
MAKEFLAGS= MFLAGS= MAKELEVEL= make -s -C examples BPGEN="$bpgen" LIBBP="$libbp" \
    OUT="$out/examples" CFLAGS="-O1 -g" build || exit 1

# Small inputs: every third iris row, every ninth digit (with the header
# line iris.csv starts with).
awk 'NR == 1 || NR % 3 == 0' examples/iris/iris.csv >"$out/data/iris.csv"
awk 'NR % 9 == 1' examples/digits/digits.csv >"$out/data/digits.csv"

e=$out/examples
check chain sh -c "cd examples/chain && $vg $e/chain/chain_rule $e/chain/derivatives.txt"
for p in linreg logistic height xor; do
    check "$p" sh -c "cd examples/$p && $vg $e/$p/train_$p"
done
check iris sh -c "cd examples/iris && $vg $e/iris/train_iris $e/iris/small.weights $out/data/iris.csv"
check digits sh -c "cd examples/digits && $vg $e/digits/train_digits $e/digits/small.weights $out/data/digits.csv"
check classify_digit sh -c "cd examples/digits && $vg $e/digits/classify_digit $e/digits/small.weights"
check finetune sh -c "cd examples/finetune && $vg $e/finetune/finetune_digits $e/finetune/small.weights $out/data/digits.csv"

# The --main drivers, fed every parameter, n = 2 and two samples of every
# input (sizes from the generated header).
for net in examples/*/*.net; do
    m=$(basename "$net" .net)
    for prec in float double; do
        d=$out/main/$m-$prec
        mkdir -p "$d"
        "$bpgen" "$net" -o "$d/$m.c" --main --precision=$prec || { failed=$((failed + 1)); continue; }
        cc -std=c99 -O1 -g -Iruntime -I"$d" -o "$d/$m" "$d/$m.c" "$libbp" -lm ||
            { failed=$((failed + 1)); continue; }
        awk -v m="$m" '
            $1 == "#define" && $2 == m "_NUM_PARAMS" { params = $3 }
            $1 == "#define" && $2 ~ /_INDEX$/ { want[substr($2, 1, length($2) - 6) "_SIZE"] = 1 }
            $1 == "#define" && ($2 in want) { per_sample += $3 }
            END {
                for (i = 0; i < params; i++) printf "%g ", (i % 7 - 3) * 0.1
                print 2
                for (i = 0; i < 2 * per_sample; i++) printf "%g ", (i % 5) * 0.2 + 0.1
                print ""
            }' "$d/$m.h" >"$d/input.txt"
        check "main-$m-$prec" sh -c "$vg $d/$m < $d/input.txt"
    done
done

if [ "$bpgen_too" = bpgen-too ]; then
    check bpgen-iris $vg "$bpgen" examples/iris/iris.net -o "$out/bpgen_iris.c" --main
    check bpgen-derivatives $vg "$bpgen" examples/chain/chain.net --derivatives
    check bpgen-errors sh -c "$vg $bpgen tests/diag/shapes.net --check; [ \$? -eq 1 ]"
fi

echo "memcheck: $clean programs clean, $failed failed"
[ "$failed" -eq 0 ]
