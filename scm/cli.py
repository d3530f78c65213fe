"""``coremtl scm``: build an SCM of setting S and print its closed-form quantities."""

from __future__ import annotations

import argparse
import json
import math


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=2, help="semantic (and residual) dimension k")
    parser.add_argument("--tasks", type=int, default=2, help="number of tasks K")
    parser.add_argument("--psi", type=float, default=math.pi / 6, help="mixing angle in [0, pi/2]")
    parser.add_argument("--shift", type=float, default=1.0, help="||Sigma_T - Sigma_S||_F")
    parser.add_argument(
        "--direction",
        default="random",
        choices=["random", "worst", "orthogonal", "shrink"],
        help="direction of the residual covariance shift",
    )
    parser.add_argument("--mean-shift", type=float, default=0.0, help="||mu_T - mu_S||")
    parser.add_argument("--mixing", default="identity", choices=["identity", "haar"])
    parser.add_argument("--rho", type=float, default=0.0, help="source-only corr(Z_s, Z_r)")
    parser.add_argument("--noise", type=float, default=0.1, help="task noise standard deviation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


PEAK_ARRAYS = 20
"""Peak memory of :func:`summary` in ``k x k`` float64 arrays (measured at k = 200 and 400)."""


def check_memory(k: object, name: str = "--k") -> None:
    """Refuse a ``k`` whose SCM would need more memory than this machine has available (about
    :data:`PEAK_ARRAYS` ``k x k`` float64 arrays); no check where the OS does not say."""
    import os

    from scm.validation import InvalidParameterError, check_positive_int

    k = check_positive_int(k, name)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    needed = PEAK_ARRAYS * 8 * k * k
    if needed > available:
        raise InvalidParameterError(
            f"{name}: k = {k} needs about {needed / 2**30:.1f} GiB ({PEAK_ARRAYS} k x k float64 "
            f"arrays), more than the {available / 2**30:.1f} GiB available"
        )


def summary(args: argparse.Namespace) -> dict:
    """Every closed-form quantity of the SCM at angle ``args.psi`` with source-optimal heads."""
    import numpy as np

    from scm import closed_form as cf
    from scm.generate import random_scm
    from scm.validation import check_angle, check_seed

    psi = check_angle(args.psi, "--psi")
    check_seed(args.seed, "--seed")
    check_memory(args.k)
    scm = random_scm(
        k=args.k,
        num_tasks=args.tasks,
        seed=args.seed,
        shift_size=args.shift,
        shift_direction=args.direction,
        mean_shift=args.mean_shift,
        mixing=args.mixing,
        rho=args.rho,
        noise_std=args.noise,
    )
    weights, bias = cf.optimal_heads(scm, psi)
    source_risk = cf.risks(scm, psi, weights, bias, "source")
    target_risk = cf.risks(scm, psi, weights, bias, "target")
    shift = scm.residual_shift_frobenius()
    return {
        "seed": args.seed,
        "k": scm.k,
        "tasks": scm.num_tasks,
        "psi": psi,
        "sin2_psi_times_shift": math.sin(psi) ** 2 * shift,
        "residual_shift_frobenius": shift,
        "source_risk": source_risk.tolist(),
        "target_risk": target_risk.tolist(),
        "ood_gap": (target_risk - source_risk).tolist(),
        "worst_case_gap_at_this_shift": [cf.worst_case_gap(psi, w, shift) for w in weights],
        "head_norm_squared": np.sum(weights**2, axis=1).tolist(),
        "population_cka_source": cf.population_cka(scm, psi, "source"),
        "population_cka_target": cf.population_cka(scm, psi, "target"),
        "gaussian_w2_residual": cf.gaussian_w2(scm.source, scm.target),
        "leakage_coefficient": cf.leakage_coefficient(psi),
    }


def run(args: argparse.Namespace) -> int:
    result = summary(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"SCM of setting S: k={result['k']}, K={result['tasks']}, seed={result['seed']}")
    for key, value in result.items():
        if key in ("k", "tasks", "seed"):
            continue
        if isinstance(value, list):
            text = ", ".join(f"{v:.6g}" for v in value)
        else:
            text = f"{value:.6g}"
        print(f"  {key:<30} {text}")
    return 0
