#!/usr/bin/python3
"""report.py - the workloads table of `make bench` from the lines
`workloads --round` and `torch_step.py` append ("name impl threads round
microseconds"): medians over the rounds of the times and of the ratios,
each ratio formed within its round, then issue 7's targets with the
figures reached.

Usage: report.py RESULTS
"""
import statistics
import sys
from collections import defaultdict

ORDER = ["tanh_4-16-3_b1", "tanh_4-16-3_b32", "relu_784-128-10_b64",
         "relu_784-512-512-10_b128"]
LABEL = {"tanh_4-16-3_b1": "4-16-3 tanh, batch 1",
         "tanh_4-16-3_b32": "4-16-3 tanh, batch 32",
         "relu_784-128-10_b64": "784-128-10 relu, batch 64",
         "relu_784-512-512-10_b128": "784-512-512-10 relu, batch 128"}


def main(path):
    t = defaultdict(dict)          # (name, impl, threads) -> {round: us}
    with open(path) as f:
        for line in f:
            name, impl, threads, rnd, us = line.split()
            t[(name, impl, int(threads))][int(rnd)] = float(us)
    threads_seen = sorted({k[2] for k in t})

    def med(name, impl, th):
        v = t.get((name, impl, th), {})
        return statistics.median(v.values()) if v else float("nan")

    def ratio(name, a, b, th_a, th_b=None):
        th_b = th_a if th_b is None else th_b
        ra, rb = t.get((name, a, th_a), {}), t.get((name, b, th_b), {})
        rs = [ra[r] / rb[r] for r in ra if r in rb]
        return statistics.median(rs) if rs else float("nan")

    rounds = max((len(v) for v in t.values()), default=0)
    for th in threads_seen:
        print("\n%d thread%s: microseconds per training step (forward, loss, "
              "backward, SGD), medians of %d interleaved rounds; ratios "
              "formed within each round" % (th, "s" if th > 1 else "", rounds))
        print("| workload | bpgen | hand C + OpenBLAS | PyTorch | bpgen / "
              "OpenBLAS | PyTorch / bpgen |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name in ORDER:
            print("| %s | %.3f | %.3f | %.1f | %.2f | %.2f |" % (
                LABEL[name], med(name, "bpgen", th), med(name, "openblas", th),
                med(name, "torch", th), ratio(name, "bpgen", "openblas", th),
                ratio(name, "torch", "bpgen", th)))
        for impl, what in (("handC99", "written by hand in C99 for this net "
                             "(tiny.c), then bp_optim_step"),
                            ("handC99_sgd", "the same with SGD folded into "
                             "backward")):
            name = "tanh_4-16-3_b1"
            print("| 4-16-3 tanh, batch 1, %s | %.3f | | | bpgen / hand %.2f "
                  "| |" % (what, med(name, impl, th),
                          ratio(name, "bpgen", impl, th)))
        # the chain's builds, each against the plain loop at the target's
        # flags or built as it is (bench/workloads.c, chain_run)
        native = "-O3 -march=native -fno-math-errno"
        for label, impl, base in (
                ("scalar chain, 10M doubles (vs plain C %s)" % native,
                 "bpgen", "plainC"),
                ("chain, both built with cc -O2", "bpgen", "plainC_O2"),
                ("chain, both built with %s" % native, "bpgen_native",
                 "plainC"),
                ("chain by M_forward_backward (vs plain C %s)" % native,
                 "bpgen_fb", "plainC"),
                ("chain by M_forward_backward, both built with cc -O2",
                 "bpgen_fb", "plainC_O2"),
                ("chain by M_forward_backward, both built with %s" % native,
                 "bpgen_fb_native", "plainC")):
            print("| %s | %.0f | plain C %.0f | | %.2f | |" % (
                label, med("chain_10M", impl, th), med("chain_10M", base, th),
                ratio("chain_10M", impl, base, th)))

    print("\ntargets (issue 7)")

    def target(text, value, ok):
        print("  %-62s %8s  %s" % (text, value,
                                   "met" if ok else "MISSED"))

    for name in ORDER[2:]:
        r = ratio(name, "bpgen", "openblas", 1)
        target("%s: bpgen / OpenBLAS <= 1.0 (1 thread)" % LABEL[name],
               "%.2f" % r, r <= 1.0)
    b1 = med("tanh_4-16-3_b1", "bpgen", 1)
    target("4-16-3 batch 1: <= 0.15 us per step", "%.3f" % b1, b1 <= 0.15)
    print("  (yardsticks, not targets: batch 1 written by hand in C99 %.3f "
          "us, with SGD folded in %.3f)" % (med("tanh_4-16-3_b1", "handC99", 1),
                                             med("tanh_4-16-3_b1",
                                                 "handC99_sgd", 1)))
    r = ratio("tanh_4-16-3_b1", "torch", "bpgen", 1)
    target("4-16-3 batch 1: PyTorch / bpgen >= 650", "%.0f" % r, r >= 650)
    r = ratio("tanh_4-16-3_b32", "bpgen", "openblas", 1)
    target("4-16-3 batch 32: bpgen / OpenBLAS <= 0.6", "%.2f" % r, r <= 0.6)
    if 2 in threads_seen:
        for name in ORDER[2:]:
            r = ratio(name, "bpgen", "bpgen", 1, 2)
            target("%s: 2 threads >= 1.8x faster" % LABEL[name],
                   "%.2fx" % r, r >= 1.8)
    r = ratio("chain_10M", "bpgen_fb", "plainC", 1)
    target("scalar chain: bpgen / plain C <= 1.2", "%.2f" % r, r <= 1.2)
    print("  (bpgen's value and derivative by M_forward_backward, built with "
          "cc -O2;\n   by M_forward + M_backward %.2f)" % (
              ratio("chain_10M", "bpgen", "plainC", 1)))
    print("  (like against like, not targets: M_forward_backward at -O2 both "
          "%.2f, at\n   the plain loop's flags both %.2f; M_forward + "
          "M_backward %.2f and %.2f)" % (
              ratio("chain_10M", "bpgen_fb", "plainC_O2", 1),
              ratio("chain_10M", "bpgen_fb_native", "plainC", 1),
              ratio("chain_10M", "bpgen", "plainC_O2", 1),
              ratio("chain_10M", "bpgen_native", "plainC", 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
