#!/bin/sh
# fashion.sh — `make bench-fashion`: one epoch of the Fashion-MNIST MLP
# (784-256-10 relu, Adam 1e-3, batch 64, pixels / 255) with bpgen and with
# PyTorch on 1 and 2 threads (and on 1 thread with denormals flushed to
# zero), interleaved rounds, from the same initial
# parameters and the same IDX files; then the data loaders: the runtime's
# CSV reader against numpy.loadtxt, and the IDX reader. See README.md.
#
# Usage: sh bench/fashion.sh BUILD_DIR   (after `make`)
# Environment: CC (default cc), PYTHON (default /usr/bin/python3),
#   FASHION_ROUNDS (default 3), FASHION_CSV=0 skips the CSV comparison,
#   FASHION_DATA (default /usr/share/datasets/fashion-mnist).
set -eu

build=${1:-build}
case $build in
/*) ;;
*) build=$(pwd)/$build ;;
esac
out=$build/bench-fashion
cc=${CC:-cc}
py=${PYTHON:-/usr/bin/python3}
rounds=${FASHION_ROUNDS:-3}
data=${FASHION_DATA:-/usr/share/datasets/fashion-mnist}

if [ ! -d "$data" ]; then
    echo "bench-fashion: $data is missing (apt-get install dataset-fashion-mnist)" >&2
    exit 2
fi
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
    echo "bench-fashion: $py cannot import torch and numpy (apt-get install python3-torch)" >&2
    exit 2
fi
mkdir -p "$out"
"$build/bpgen" examples/fashion/fashion.net -o "$out/fashion.c"
$cc -std=c99 -Wall -Wextra -pedantic -O2 -D_POSIX_C_SOURCE=200809L -Iruntime -I"$out" \
    -o "$out/fashion" bench/fashion.c "$out/fashion.c" "$build/libbp.a" -lz -lm

# value KEY FILE: the value on FILE's line "KEY value".
value() { sed -n "s/^$1 //p" "$2"; }

echo "== machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "== one epoch of Fashion-MNIST (60000 images), 784-256-10 relu, Adam 1e-3, batch 64"
echo "   $rounds interleaved rounds: bpgen, PyTorch 1 thread, PyTorch 2 threads, PyTorch 1 thread FTZ"
printf '%-6s %-22s %9s %9s %11s %9s\n' round implementation "epoch s" "cpu s" "test loss" "test acc"
r=1
while [ "$r" -le "$rounds" ]; do
    "$out/fashion" "$data" epoch "$out/theta0.bin" > "$out/bp.$r"
    for t in 1 2; do
        OMP_NUM_THREADS=$t "$py" bench/fashion_torch.py "$data" epoch "$out/theta0.bin" "$t" \
            > "$out/torch$t.$r"
    done
    OMP_NUM_THREADS=1 "$py" bench/fashion_torch.py "$data" epoch "$out/theta0.bin" 1 ftz \
        > "$out/torch1ftz.$r"
    for impl in bp torch1 torch2 torch1ftz; do
        f=$out/$impl.$r
        case $impl in
        bp) name="bpgen (1 thread)" ;;
        torch1) name="PyTorch 1 thread" ;;
        torch2) name="PyTorch 2 threads" ;;
        torch1ftz) name="PyTorch 1 thread FTZ" ;;
        esac
        printf '%-6s %-22s %9s %9s %11s %9s\n' "$r" "$name" "$(value epoch_seconds "$f")" \
            "$(value epoch_cpu "$f")" "$(value test_loss "$f")" "$(value test_acc "$f")"
    done
    # The same initial parameters must give the same initial test loss;
    # after an epoch (different shuffles) accuracies must be close.
    "$py" - "$out/bp.$r" "$out/torch1.$r" "$out/torch2.$r" "$out/torch1ftz.$r" <<'PYEOF'
import sys
def read(p):
    return {k: float(v) for k, v in (l.split() for l in open(p))}
bp, t1, t2, t1f = (read(p) for p in sys.argv[1:])
bad = []
for name, t in (("1 thread", t1), ("2 threads", t2), ("1 thread FTZ", t1f)):
    if abs(bp["initial_test_loss"] - t["initial_test_loss"]) > 1e-4 * max(1, t["initial_test_loss"]):
        bad.append("initial test loss %.6f (bpgen) vs %.6f (PyTorch %s)"
                   % (bp["initial_test_loss"], t["initial_test_loss"], name))
    if abs(bp["test_acc"] - t["test_acc"]) > 0.02:
        bad.append("test accuracy %.4f (bpgen) vs %.4f (PyTorch %s)"
                   % (bp["test_acc"], t["test_acc"], name))
if bad:
    sys.stderr.write("bench-fashion: MISMATCH: " + "; ".join(bad) + "\n")
    sys.exit(1)
PYEOF
    r=$((r + 1))
done

"$py" - "$out" "$rounds" <<'PYEOF'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def col(impl, key):
    vals = []
    for r in range(1, rounds + 1):
        d = {k: float(v) for k, v in (l.split() for l in open("%s/%s.%d" % (out, impl, r)))}
        vals.append(d[key])
    return statistics.median(vals)
bp = col("bp", "epoch_seconds")
print()
print("median epoch: bpgen %.2f s, PyTorch 1 thread %.2f s, 2 threads %.2f s, "
      "1 thread FTZ %.2f s" % (bp, col("torch1", "epoch_seconds"), col("torch2", "epoch_seconds"),
                               col("torch1ftz", "epoch_seconds")))
for impl, name in (("torch1", "1 thread"), ("torch2", "2 threads"),
                   ("torch1ftz", "1 thread, denormals flushed")):
    ratio = col(impl, "epoch_seconds") / bp
    print("PyTorch %s / bpgen: %.2fx (above 1: bpgen is faster; goal on 1 thread: 3x)"
          % (name, ratio))
print("median test accuracy after the epoch: bpgen %.4f, PyTorch %.4f (1 thread), %.4f (2 threads)"
      % (col("bp", "test_acc"), col("torch1", "test_acc"), col("torch2", "test_acc")))
PYEOF

# ---------------------------------------------------------------- loaders
echo
echo "== loading the 60000 training images"
"$out/fashion" idx "$data" > "$out/idx"
echo "IDX reader (gzip): $(value idx_seconds "$out/idx") s ($(value idx_cpu "$out/idx") s cpu)"
if [ "${FASHION_CSV:-1}" != 0 ]; then
    csv=$out/fashion_train.csv
    if [ ! -f "$csv" ]; then
        "$py" - "$data" "$csv" <<'PYEOF'
import gzip, sys, numpy as np
d, path = sys.argv[1], sys.argv[2]
x = np.frombuffer(gzip.open(d + "/train-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
y = np.frombuffer(gzip.open(d + "/train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
np.savetxt(path, np.concatenate([x.reshape(-1, 784), y[:, None]], 1), fmt="%d", delimiter=",")
PYEOF
    fi
    echo "CSV of the same ($(du -m "$csv" | cut -f1) MB), $rounds interleaved rounds:"
    r=1
    while [ "$r" -le "$rounds" ]; do
        "$out/fashion" csv "$csv" > "$out/csv_bp.$r"
        "$py" bench/fashion_torch.py csv "$csv" > "$out/csv_np.$r"
        echo "  round $r: bp_data_load_csv $(value csv_seconds "$out/csv_bp.$r") s" \
             "($(value csv_cpu "$out/csv_bp.$r") cpu), numpy.loadtxt" \
             "$(value csv_seconds "$out/csv_np.$r") s ($(value csv_cpu "$out/csv_np.$r") cpu)"
        r=$((r + 1))
    done
    "$py" - "$out" "$rounds" <<'PYEOF'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(name, key):
    return statistics.median(
        float(l.split()[1]) for r in range(1, rounds + 1)
        for l in open("%s/%s.%d" % (out, name, r)) if l.startswith(key + " "))
bp, npy = med("csv_bp", "csv_seconds"), med("csv_np", "csv_seconds")
print("median: bp_data_load_csv %.2f s, numpy.loadtxt %.2f s: numpy / bpgen %.2fx (goal: at least 1)"
      % (bp, npy, npy / bp))
PYEOF
fi
