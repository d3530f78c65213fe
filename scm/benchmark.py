"""Sampling throughput of ``scm.sample`` as a ratio to drawing the same normals with numpy alone."""

from __future__ import annotations

import time
from functools import partial

import numpy as np

from scm.generate import random_scm
from scm.sampling import sample


def _best_time(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _draw_normals(n: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, width))


def main(args) -> dict:
    """Time ``n = 10^6`` draws (``10^5`` with ``--quick``) of the SCM against the ``n x (2k + K)``
    standard normals they consume; print the throughput ratio (target >= 0.5)."""
    n = 100_000 if args.quick else 1_000_000
    rows = []
    for k, num_tasks in ((2, 2), (8, 10)):
        scm = random_scm(k=k, num_tasks=num_tasks, seed=0, mixing="haar")
        numpy_time = _best_time(partial(_draw_normals, n, 2 * k + num_tasks), args.repeats)
        scm_time = _best_time(partial(sample, scm, n, "target", seed=1), args.repeats)
        ratio = numpy_time / scm_time
        rows.append(
            {
                "k": k,
                "tasks": num_tasks,
                "n": n,
                "numpy_s": numpy_time,
                "scm_s": scm_time,
                "throughput_ratio": ratio,
            }
        )
        print(
            f"k={k:2d} K={num_tasks:2d} n={n}: numpy normals {numpy_time * 1e3:7.1f} ms, "
            f"scm.sample {scm_time * 1e3:7.1f} ms, throughput ratio {ratio:.2f} (target >= 0.5)"
        )
    return {"rows": rows}
