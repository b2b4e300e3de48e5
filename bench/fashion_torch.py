"""fashion_torch.py: the PyTorch side of `make bench-fashion`.

  fashion_torch.py DATA_DIR epoch THETA_FILE THREADS [ftz]
      the same 784-256-10 relu MLP as bench/fashion.c, starting from the
      parameters bpgen's fashion_init wrote (float32, theta's order: W1, b1,
      W2, b2), the same data (pixels / 255, from the same IDX files), Adam
      1e-3, batch 64, shuffled, one epoch on THREADS threads. Prints the
      initial test loss, the epoch's time (the training loop only) and the
      test loss and accuracy. With `ftz`, denormal floats are flushed to
      zero (torch.set_flush_denormal): Adam's moving averages of gradients
      that stay zero (border pixels) decay into denormals, which this CPU
      computes on slowly; the default run is what a user gets.
  fashion_torch.py csv FILE
      times numpy.loadtxt on FILE.
"""
import gzip
import sys
import time

import numpy as np


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    if sys.argv[1] == "csv":
        t0, c0 = time.perf_counter(), time.process_time()
        a = np.loadtxt(sys.argv[2], delimiter=",")
        print("csv_seconds %.4f\ncsv_cpu %.4f\ncsv_rows %d" %
              (time.perf_counter() - t0, time.process_time() - c0, a.shape[0]))
        return
    import torch
    data, _, theta_file, threads = sys.argv[1:5]
    torch.set_num_threads(int(threads))
    if sys.argv[5:] == ["ftz"] and not torch.set_flush_denormal(True):
        sys.exit("fashion_torch.py: this CPU cannot flush denormals")
    torch.manual_seed(1)

    def load(kind):
        x = idx("%s/%s-images-idx3-ubyte.gz" % (data, kind), 16).reshape(-1, 784)
        y = idx("%s/%s-labels-idx1-ubyte.gz" % (data, kind), 8)
        return (torch.from_numpy(x.astype(np.float32) / 255.0),
                torch.from_numpy(y.astype(np.int64)))

    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    theta = torch.from_numpy(np.fromfile(theta_file, dtype="<f4"))
    with torch.no_grad():
        at = 0
        for p in (model[0].weight, model[0].bias, model[2].weight, model[2].bias):
            p.copy_(theta[at:at + p.numel()].view_as(p))
            at += p.numel()
    assert at == theta.numel()
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def evaluate():
        with torch.no_grad():
            z = model(xte)
            return loss_fn(z, yte).item(), (z.argmax(1) == yte).float().mean().item()

    loss0, _ = evaluate()
    t0, c0 = time.perf_counter(), time.process_time()
    order = torch.randperm(xtr.shape[0])
    for at in range(0, xtr.shape[0], 64):
        i = order[at:at + 64]
        opt.zero_grad()
        loss = loss_fn(model(xtr[i]), ytr[i])
        loss.backward()
        opt.step()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    loss, acc = evaluate()
    print("initial_test_loss %.6f\nepoch_seconds %.4f\nepoch_cpu %.4f\ntest_loss %.6f\n"
          "test_acc %.4f" % (loss0, seconds, cpu, loss, acc))


main()
