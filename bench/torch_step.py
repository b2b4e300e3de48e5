#!/usr/bin/python3
"""torch_step.py - the PyTorch column of the workloads table (see
workloads.c): the same training steps, on the same parameters and data,
read from the files `workloads --check DIR` writes.

  torch_step.py --check DIR
      loss and gradients of one step on batch 0 must match the generated
      step's (largest difference relative to each tensor's largest entry
      below 1e-4); exit status 1 otherwise.
  torch_step.py --data DIR --round R --threads T [--ms MS] --out FILE
      one round: a timed loop of about MS ms per workload (the median of 3
      after a warm-up), appending "name torch threads round us" to FILE.

One step is what a PyTorch user writes: zero_grad, forward through
nn.Linear layers, F.cross_entropy (mean over the batch), backward,
SGD(lr=0.01).step(). torch.set_num_threads(T) sets the threads.
"""
import argparse
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

NAMES = ["tanh_4-16-3_b1", "tanh_4-16-3_b32", "relu_784-128-10_b64",
         "relu_784-512-512-10_b128"]


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] != b"BPWL":
        sys.exit("torch_step: %s is not a workloads file" % path)
    head = struct.unpack("<10i", raw[4:44])
    layers, sizes, tanh, n, nbatches, nparams = (
        head[0], list(head[1:2 + head[0]]), head[5], head[6], head[7], head[8])
    off = 44

    def take(count):
        nonlocal off
        a = np.frombuffer(raw, dtype="<f4", count=count, offset=off)
        off += 4 * count
        return a.copy()

    theta = take(nparams)
    xs = take(n * nbatches * sizes[0]).reshape(nbatches, n, sizes[0])
    ys = take(n * nbatches * sizes[-1]).reshape(nbatches, n, sizes[-1])
    loss = float(take(1)[0])
    grad = take(nparams)
    return dict(layers=layers, sizes=sizes, tanh=tanh, n=n, theta=theta,
                xs=xs, ys=ys, loss=loss, grad=grad)


class MLP(torch.nn.Module):
    def __init__(self, sizes, tanh):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(sizes[i], sizes[i + 1])
            for i in range(len(sizes) - 1))
        self.act = torch.tanh if tanh else torch.relu

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def build(d):
    """The model with bpgen's parameters (W1, b1, W2, b2, ... row-major)."""
    model = MLP(d["sizes"], d["tanh"])
    off = 0
    with torch.no_grad():
        for layer in model.layers:
            for p in (layer.weight, layer.bias):
                count = p.numel()
                p.copy_(torch.from_numpy(d["theta"][off:off + count]).view_as(p))
                off += count
    return model


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1) for layer in model.layers
                      for p in (layer.weight, layer.bias)]).numpy()


def rel_diff(a, b, sizes):
    worst, off = 0.0, 0
    for i in range(len(sizes) - 1):
        for count in (sizes[i] * sizes[i + 1], sizes[i + 1]):
            x, y = a[off:off + count], b[off:off + count]
            scale = float(np.max(np.abs(y))) or 1.0
            worst = max(worst, float(np.max(np.abs(x - y))) / scale)
            off += count
    return worst


def check(directory):
    bad = 0
    for name in NAMES:
        d = load(os.path.join(directory, name + ".bin"))
        model = build(d)
        x = torch.from_numpy(d["xs"][0])
        labels = torch.from_numpy(d["ys"][0]).argmax(dim=1)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        dl = abs(loss.item() - d["loss"]) / max(abs(d["loss"]), 1e-30)
        dg = rel_diff(flat_grad(model), d["grad"], d["sizes"])
        ok = dl <= 1e-4 and dg <= 1e-4
        print("  %-26s PyTorch vs generated:   loss %.3g, gradients %.3g  %s"
              % (name, dl, dg, "ok" if ok else "MISMATCH"))
        if not ok:
            print("bench: MISMATCH %s: PyTorch and the generated step differ"
                  % name, file=sys.stderr)
            bad = 1
    return bad


def timed_round(directory, rnd, threads, ms, out):
    torch.set_num_threads(threads)
    with open(out, "a") as f:
        for name in NAMES:
            d = load(os.path.join(directory, name + ".bin"))
            model = build(d)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            xs = [torch.from_numpy(d["xs"][b]) for b in range(len(d["xs"]))]
            labels = [torch.from_numpy(d["ys"][b]).argmax(dim=1)
                      for b in range(len(d["ys"]))]

            def steps(count):
                for i in range(count):
                    b = i % len(xs)
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xs[b]), labels[b])
                    loss.backward()
                    opt.step()

            count = 1
            while True:
                t0 = time.perf_counter()
                steps(count)
                t = time.perf_counter() - t0
                if t >= 0.004:
                    break
                count *= 4
            count = max(1, int(ms * 1e-3 / (t / count)))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                steps(count)
                times.append((time.perf_counter() - t0) / count)
            times.sort()
            f.write("%s torch %d %d %.6g\n" % (name, threads, rnd,
                                                times[1] * 1e6))
            f.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    ap.add_argument("--data")
    ap.add_argument("--round", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ms", type=float, default=40)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.check:
        torch.set_num_threads(1)
        return check(a.check)
    if a.data is None or a.round is None or a.out is None:
        ap.error("--data, --round and --out are needed")
    timed_round(a.data, a.round, a.threads, a.ms, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
