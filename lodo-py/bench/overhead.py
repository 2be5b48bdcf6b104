"""The binding's overhead per step: ``lodo.Lodo.step`` called from Python against the Rust
step alone (``Lodo._rust_steps``: the same optimizer stepping in a Rust loop, timed in Rust),
in one process, alternating A and B rounds; reports the ratio of the medians. Not a test.

    python lodo-py/bench/overhead.py [--n 1000 1000000] [--rounds 7] [--dtype float32]

The overhead is Python's call, the argument checks, the borrow of the two arrays, the scan of
the parameters for NaN/inf (which makes a refused step change nothing) and releasing and
retaking the GIL: O(n) work next to LODO's O(N h k) = O(128 n) step at the defaults.
"""

import argparse
import os
import statistics
import time

import numpy as np

import lodo


def measure(n, dtype, rounds):
    rng = np.random.default_rng(0)
    # A fixed gradient (the Rust loop cannot recompute one): with a tiny meta learning rate the
    # weights drift slowly instead of growing G without bound; the work per step is the same.
    opt = lodo.Lodo(n, dtype=dtype, seed=1, alpha0=1e-3, meta_lr=1e-7)
    x = rng.standard_normal(n).astype(dtype)
    g = (1e-3 * rng.standard_normal(n)).astype(dtype)
    # About 0.5 s of steps per round.
    t = opt._rust_steps(x, g, 1)
    reps = max(1, int(0.5 / max(t, 1e-7)))
    py_times, rust_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            opt.step(x, g)
        py_times.append((time.perf_counter() - start) / reps)
        rust_times.append(opt._rust_steps(x, g, reps) / reps)
    py_med, rust_med = statistics.median(py_times), statistics.median(rust_times)
    return reps, py_med, rust_med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 1000000])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(f"{'n':>9} {'reps/round':>10} {'python step':>12} {'rust step':>12} {'overhead':>9}")
    for n in args.n:
        reps, py, rust = measure(n, np.dtype(args.dtype), args.rounds)
        print(f"{n:>9} {reps:>10} {py * 1e6:>10.1f}us {rust * 1e6:>10.1f}us {100 * (py / rust - 1):>8.2f}%")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
