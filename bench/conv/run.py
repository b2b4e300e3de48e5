"""run.py BUILD — times one convolution training step (forward, and the
gradients of input, kernel and bias) in the runtime (runtime/conv.c), in
hand C over OpenBLAS and in PyTorch, on the same data, single-threaded.

Checks first: PyTorch's results are written out and conv_bench compares the
other two with them (relative to each tensor's largest entry, 1e-4); a
mismatch fails the run. Then rounds interleave: PyTorch, then conv_bench
(which alternates runtime and OpenBLAS step by step). Each figure is the
median over the rounds of the mean time of a step."""
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
BUILD = sys.argv[1]
BENCH = os.path.join(BUILD, "bench", "conv_bench")
OUT = os.path.join(BUILD, "bench", "conv")
os.makedirs(OUT, exist_ok=True)
ROUNDS = 5
TARGET_MS = 150  # about this long per measurement

# name, n, c, h, w, o, kh, kw, stride, pad
LAYERS = [
    ("digits 1->8 3x3 p1, 8x8", 32, 1, 8, 8, 8, 3, 3, 1, 1),
    ("lenet 6->16 5x5, 14x14", 32, 6, 14, 14, 16, 5, 5, 1, 0),
    ("16->32 3x3 p1, 28x28", 32, 16, 28, 28, 32, 3, 3, 1, 1),
    ("32->64 3x3 s2 p1, 16x16", 32, 32, 16, 16, 64, 3, 3, 2, 1),
    ("64->64 1x1, 8x8", 32, 64, 8, 8, 64, 1, 1, 1, 0),
]


def torch_step(x, k, b, dy, stride, pad):
    y = F.conv2d(x, k, b, stride=stride, padding=pad)
    dx, dk, db = torch.autograd.grad(y, (x, k, b), dy)
    return y, dx, dk, db


def torch_ms(args, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        torch_step(*args)
    return (time.perf_counter() - t0) * 1e3 / reps


def c_ms(data, reps):
    out = subprocess.run([BENCH, "time", data, str(reps)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[1]), float(out[3])


def main():
    rng = np.random.default_rng(42)
    print("one step (forward + dx + dK + db), float, batch 32, 1 thread; ms per step, "
          "median of %d interleaved rounds" % ROUNDS)
    print("%-26s %9s %9s %9s %11s %11s %8s" % ("layer", "runtime", "openblas", "pytorch",
                                              "rt/openblas", "rt/pytorch", "check"))
    failed = False
    for name, n, c, h, w, o, kh, kw, s, p in LAYERS:
        oh, ow = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        k = rng.standard_normal((o, c, kh, kw), dtype=np.float32) / np.sqrt(c * kh * kw)
        b = rng.standard_normal(o, dtype=np.float32)
        dy = rng.standard_normal((n, o, oh, ow), dtype=np.float32)
        tag = "conv_%dx%dx%d_%d_%dx%d_s%d_p%d" % (c, h, w, o, kh, kw, s, p)
        data = os.path.join(OUT, tag + ".bin")
        ref = os.path.join(OUT, tag + ".ref")
        with open(data, "wb") as f:
            np.array([n, c, h, w, o, kh, kw, s, p], dtype=np.int32).tofile(f)
            for a in (x, k.astype(np.float32), b, dy):
                a.astype(np.float32).tofile(f)
        targs = (torch.from_numpy(x).requires_grad_(),
                 torch.from_numpy(k.astype(np.float32)).requires_grad_(),
                 torch.from_numpy(b).requires_grad_(), torch.from_numpy(dy), s, p)
        with open(ref, "wb") as f:
            for t in torch_step(*targs):
                t.detach().numpy().astype(np.float32).tofile(f)
        chk = subprocess.run([BENCH, "check", data, ref], capture_output=True, text=True)
        sys.stderr.write(chk.stderr)
        if chk.returncode != 0:
            print("%-26s MISMATCH with PyTorch: not timed" % name)
            failed = True
            continue
        # reps for about TARGET_MS per measurement, from one step of each
        one = max(torch_ms(targs, 1), c_ms(data, 1)[0], 1e-3)
        reps = max(1, int(TARGET_MS / one))
        tt, tb, th = [], [], []
        for _ in range(ROUNDS):
            tt.append(torch_ms(targs, reps))
            b_ms, h_ms = c_ms(data, reps)
            tb.append(b_ms)
            th.append(h_ms)
        mt, mb, mh = statistics.median(tt), statistics.median(tb), statistics.median(th)
        print("%-26s %9.3f %9.3f %9.3f %11.2f %11.2f %8s" % (name, mb, mh, mt, mb / mh, mb / mt,
                                                            chk.stdout.strip()))
    sys.exit(1 if failed else 0)


main()
