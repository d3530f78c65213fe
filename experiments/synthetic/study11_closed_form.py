r"""Study 11: the OOD gap of setting S in closed form against Monte Carlo (docs/THEORY.md S1, S2).

Setting S (docs/THEORY.md section 3) with ``k`` factors, one task, equal residual means
(``mu_S = mu_T = 0``), a Haar mixing ``G`` and the encoder ``Zhat_s = [R(psi) G^T x]_s``. One seeded
draw fixes ``Sigma_s``, a residual shape ``A`` (``tr A = k``), ``beta`` and ``G``; the residual
variance ``v`` scales the source residual covariance, ``Sigma_S = v A``. A cell is
``(psi, v, delta, direction)``: the target covariance ``Sigma_T = Sigma_S + D`` with
``||D||_F = delta`` (:func:`scm.generate.shifted_covariance`) along

- ``random:r``: ``D = delta M_r / ||M_r||_F``, ``M_r = B_r B_r^T`` for Gaussian ``B_r`` (the same
  ``M_r`` for every ``psi``, ``v`` and ``delta``);
- ``worst``: ``D = delta w w^T / ||w||^2``, S2's maximiser for the cell's head ``w``;
- ``orthogonal``: ``D = delta u u^T`` with a unit ``u`` orthogonal to ``w`` (S2's shift that costs
  nothing; ``k >= 2``).

The head ``yhat = w^T Zhat_s + b`` is fixed before any sampling: the source-optimal head at each
``psi`` (:func:`scm.closed_form.optimal_heads`, S3) or the one given in the config. Per cell:

- S1's gap ``R_T - R_S = s^2 w^T D w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``
  (:func:`scm.closed_form.ood_gap_formula`) and S2's bound ``s^2 ||w||^2 delta``
  (:func:`scm.closed_form.worst_case_gap`), with ``s = sin psi``;
- the Monte Carlo gap: the mean of ``l_T(i) - l_S(i)`` over ``n`` pairs, where
  ``l_e = (Y - w^T Zhat_s - b)^2`` on observations ``x`` of environment ``e`` drawn by
  :func:`scm.sampling.sample`, encoded by :func:`scm.encoder.encode`. The pairs use common random
  numbers: source and target draws share the standard normals ``[u, xi, e]``, so ``Z_s`` and the
  noise are the same in both and only ``Z_r = L_e xi`` differs. Its standard error is
  ``sd(l_T - l_S) / sqrt(n)`` (paired); the standard error that independent samples of the same
  size would give, ``sqrt((var l_S + var l_T) / n)``, is recorded beside it.

Verdict rule, written into the result before any sampling (:func:`rule`): with ``N`` cells and
``z = Phi^{-1}(1 - 0.025 / N)`` (Bonferroni, two-sided 95% over the cells), *agrees* iff every cell
has ``|MC - S1| <= z SE + r``, every non-worst direction ``MC - bound <= z SE + r`` and every worst
direction ``|MC - bound| <= z SE + r``; *contradicts* otherwise. ``r = 1e-9 (R_S + R_T)``
(:data:`proofs.montecarlo.FLOAT64_ROUNDOFF`) covers float64 round-off, which decides only the
cells at ``psi = 0``, where both environments' losses agree to round-off. By the union bound a
run whose closed forms are right is called *contradicts* with probability at most 0.05.

``psi = pi/2`` is left out of the default grid: there ``Zhat_s = Z_r`` carries nothing about ``Y``,
the source-optimal head is 0, every gap is 0 and the worst direction is undefined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from experiments.synthetic.common import jsonable

NAME = "The OOD gap in closed form against Monte Carlo"
STATEMENTS = ("S1", "S2")
LEVEL = 0.05
PSIS = tuple(index * math.pi / 16 for index in range(8))


@dataclass(frozen=True)
class Config:
    """``head = None``: the source-optimal head at each psi; otherwise the fixed ``head``, ``bias``."""

    samples: int = 50_000
    psis: tuple[float, ...] = PSIS
    variances: tuple[float, ...] = (0.25, 1.0)
    shift_sizes: tuple[float, ...] = (0.5, 2.0)
    random_directions: int = 3
    orthogonal: bool = True
    k: int = 2
    noise_std: float = 0.1
    head: tuple[float, ...] | None = None
    bias: float = 0.0
    curve_points: int = 61


CONFIGS = {
    "smoke": Config(
        samples=4000,
        psis=(0.0, math.pi / 4, 7 * math.pi / 16),
        variances=(1.0,),
        shift_sizes=(1.0,),
        random_directions=1,
        curve_points=9,
    ),
    "fast": Config(),
    "full": Config(
        samples=200_000,
        variances=(0.1, 0.5, 2.0),
        shift_sizes=(0.25, 1.0, 4.0),
        random_directions=6,
    ),
}


def check_config(config: Config) -> None:
    """Raise :class:`~scm.validation.InvalidParameterError` naming the first bad field."""
    from scm.validation import (
        InvalidParameterError,
        check_angle,
        check_in_range,
        check_non_negative,
        check_positive_int,
    )

    check_positive_int(config.k, "k")
    if check_positive_int(config.samples, "samples") < 2:
        raise InvalidParameterError(f"samples: expected at least 2 draws, got {config.samples}")
    if not config.psis or not config.variances or not config.shift_sizes:
        raise InvalidParameterError("psis, variances, shift_sizes: expected non-empty grids")
    for psi in config.psis:
        check_angle(psi, "psis")
    for variance in config.variances:
        if check_non_negative(variance, "variances") == 0.0:
            raise InvalidParameterError("variances: expected positive residual variances, got 0")
    for size in config.shift_sizes:
        check_non_negative(size, "shift_sizes")
    if config.random_directions < 0 or isinstance(config.random_directions, bool):
        raise InvalidParameterError(
            f"random_directions: expected a non-negative integer, got {config.random_directions!r}"
        )
    if config.orthogonal and config.k < 2:
        raise InvalidParameterError(
            f"orthogonal: expected k >= 2 factors for an orthogonal shift, got k = {config.k}"
        )
    check_in_range(config.noise_std, "noise_std", 0.0, math.inf)
    check_in_range(config.bias, "bias", -math.inf, math.inf)
    if config.head is not None:
        head = np.asarray(config.head, dtype=float)
        if head.shape != (config.k,) or not np.all(np.isfinite(head)) or not np.any(head):
            raise InvalidParameterError(
                f"head: expected a finite non-zero vector of length k = {config.k}, got {config.head}"
            )
    check_positive_int(config.curve_points, "curve_points")


def directions(config: Config) -> tuple[str, ...]:
    """The direction labels of every ``(psi, v, delta)``: random ones, then orthogonal and worst."""
    labels = [f"random:{r}" for r in range(config.random_directions)]
    if config.orthogonal:
        labels.append("orthogonal")
    return (*labels, "worst")


def bonferroni_z(cells: int, level: float = LEVEL) -> float:
    """``Phi^{-1}(1 - level / (2 cells))``: the two-sided ``1 - level`` quantile over ``cells``
    comparisons (Bonferroni), so that all of them hold together with probability >= ``1 - level``."""
    from scipy.stats import norm

    from scm.validation import check_in_range, check_positive_int

    cells = check_positive_int(cells, "cells")
    level = check_in_range(level, "level", 0.0, 1.0)
    return float(norm.ppf(1.0 - level / (2.0 * cells)))


def rule(config: Config) -> dict:
    """The verdict rule, with its ``z`` and number of cells, fixed from the config alone."""
    from proofs.montecarlo import FLOAT64_ROUNDOFF

    cells = (
        len(config.psis) * len(config.variances) * len(config.shift_sizes) * len(directions(config))
    )
    z = bonferroni_z(cells)
    return {
        "cells": cells,
        "z": z,
        "level": LEVEL,
        "roundoff_relative": FLOAT64_ROUNDOFF,
        "standard_error": (
            "paired: source and target draws share the standard normals (common random numbers); "
            "SE = sd(l_T - l_S) / sqrt(n)"
        ),
        "text": (
            f"agrees iff in every one of the {cells} cells |MC - S1| <= z SE + r, every non-worst "
            f"direction has MC - S2 bound <= z SE + r and every worst direction "
            f"|MC - S2 bound| <= z SE + r, with z = Phi^-1(1 - 0.025 / {cells}) = {z:.3f} "
            f"(Bonferroni, two-sided 95% over the cells) and r = {FLOAT64_ROUNDOFF:g} (R_S + R_T) "
            "for float64 round-off; contradicts otherwise"
        ),
    }


def study_scms(config: Config, seed: int) -> dict[float, object]:
    """The unshifted SCM (``Sigma_T = Sigma_S = v A``) for each residual variance ``v``."""
    from scm.generate import haar_orthogonal, random_psd
    from scm.model import LinearGaussianSCM, ResidualLaw
    from scm.seeds import derive_seed

    rng = np.random.default_rng(derive_seed(seed, "study11", "scm"))
    sigma_s = random_psd(config.k, rng)
    shape = random_psd(config.k, rng)
    shape *= config.k / np.trace(shape)
    beta = rng.standard_normal((1, config.k))
    mixing = haar_orthogonal(2 * config.k, rng)
    zero = np.zeros(config.k)
    return {
        v: LinearGaussianSCM(
            sigma_s=sigma_s,
            source=ResidualLaw(zero, v * shape),
            target=ResidualLaw(zero, v * shape),
            beta=beta,
            noise_std=np.array([config.noise_std]),
            mixing=mixing,
        )
        for v in config.variances
    }


def head_at(scm, psi: float, config: Config) -> tuple[np.ndarray, float]:
    """The cell's head ``(w, b)``: the source-optimal one at ``psi`` or the config's."""
    from scm.closed_form import optimal_heads

    if config.head is not None:
        return np.asarray(config.head, dtype=float), float(config.bias)
    weights, bias = optimal_heads(scm, psi, "source")
    return weights[0], float(bias[0])


def shifted(scm, size: float, direction: str, head: np.ndarray, seed: int):
    """``scm`` with ``Sigma_T = Sigma_S + D``, ``||D||_F = size``, along ``direction``."""
    from scm.generate import shifted_covariance
    from scm.model import ResidualLaw
    from scm.seeds import derive_seed

    kind = direction.split(":")[0]
    rng = np.random.default_rng(derive_seed(seed, "study11", "direction", direction))
    cov = shifted_covariance(scm.source.cov, size, kind, rng, head)
    return replace(scm, target=ResidualLaw(scm.target.mean, cov))


def closed_form_gap(scm, psi: float, head: np.ndarray, bias: float) -> float:
    """S1's gap ``s^2 w^T (Sigma_T - Sigma_S) w + (s w^T mu_T + b)^2 - (s w^T mu_S + b)^2``."""
    from scm.closed_form import ood_gap_formula

    return float(ood_gap_formula(scm, psi, head[None, :], np.array([bias]))[0])


def worst_case_bound(psi: float, head: np.ndarray, size: float) -> float:
    """S2's ``sup_{||D||_F <= delta} (R_T - R_S) = s^2 ||w||^2 delta``."""
    from scm.closed_form import worst_case_gap

    return float(worst_case_gap(psi, head, size))


def monte_carlo_gap(scm, psi: float, head: np.ndarray, bias: float, samples: int, seed: int):
    """Paired Monte Carlo gap on ``samples`` source and target draws with common random numbers."""
    from proofs.montecarlo import mean_and_standard_error
    from scm.encoder import encode
    from scm.sampling import sample

    losses = {}
    for env in ("source", "target"):
        drawn = sample(scm, samples, env, seed)
        semantic, _ = encode(scm, psi, drawn.x)
        losses[env] = (drawn.y[:, 0] - semantic @ head - bias) ** 2
    gap, error = mean_and_standard_error(losses["target"] - losses["source"])
    independent = math.sqrt((losses["source"].var(ddof=1) + losses["target"].var(ddof=1)) / samples)
    return {
        "monte_carlo": gap,
        "standard_error": error,
        "independent_standard_error": independent,
        "source_risk": float(losses["source"].mean()),
        "target_risk": float(losses["target"].mean()),
    }


def judge(cells: list[dict], z: float) -> dict:
    """Apply :func:`rule` to measured cells: per-cell flags and the verdict."""
    flags, s1_failures, s2_failures = [], 0, 0
    for cell in cells:
        tolerance = z * cell["standard_error"] + cell["roundoff"]
        s1 = abs(cell["monte_carlo"] - cell["closed_form"]) <= tolerance
        excess = cell["monte_carlo"] - cell["bound"]
        s2 = abs(excess) <= tolerance if cell["direction"] == "worst" else excess <= tolerance
        s1_failures += not s1
        s2_failures += not s2
        flags.append({"s1_holds": bool(s1), "s2_holds": bool(s2)})
    verdict = "agrees" if s1_failures == 0 and s2_failures == 0 else "contradicts"
    return {
        "verdict": verdict,
        "flags": flags,
        "s1_failures": s1_failures,
        "s2_failures": s2_failures,
    }


def _standard_units(difference: float, cell: dict) -> float | None:
    """``difference / SE``, or None for a cell decided by round-off (SE below the round-off)."""
    if cell["standard_error"] <= cell["roundoff"]:
        return None
    return difference / cell["standard_error"]


def curves(config: Config, scms: dict, seed: int) -> dict:
    """S1's gap per random direction and S2's bound on a fine psi grid, per ``(v, delta)``."""
    grid = np.linspace(0.0, max(config.psis), config.curve_points)
    found: dict = {"psi": grid, "sin2": np.sin(grid) ** 2}
    for v, scm in scms.items():
        heads = [head_at(scm, psi, config) for psi in grid]
        for size in config.shift_sizes:
            entry = {
                "bound": [
                    worst_case_bound(psi, w, size) for psi, (w, _) in zip(grid, heads, strict=True)
                ]
            }
            for direction in directions(config):
                if direction.startswith("random"):
                    target = shifted(scm, size, direction, heads[0][0], seed)
                    entry[direction] = [
                        closed_form_gap(target, psi, w, b)
                        for psi, (w, b) in zip(grid, heads, strict=True)
                    ]
            found[f"{v}|{size}"] = entry
    return found


def run(config: Config, seed: int = 0, device: str = "cpu", progress: bool = False) -> dict:
    from tqdm import tqdm

    from proofs.montecarlo import FLOAT64_ROUNDOFF
    from scm.seeds import derive_seed

    check_config(config)
    registered = rule(config)
    scms = study_scms(config, seed)
    jobs = [
        (i, psi, j, v, m, size, direction)
        for i, psi in enumerate(config.psis)
        for j, v in enumerate(config.variances)
        for m, size in enumerate(config.shift_sizes)
        for direction in directions(config)
    ]
    cells = []
    for i, psi, j, v, m, size, direction in tqdm(
        jobs, desc="study 11 closed form vs MC", disable=not progress
    ):
        head, bias = head_at(scms[v], psi, config)
        scm = shifted(scms[v], size, direction, head, seed)
        draws = derive_seed(seed, "study11", "draws", i, j, m, direction)
        measured = monte_carlo_gap(scm, psi, head, bias, config.samples, draws)
        cells.append(
            {
                "psi": psi,
                "sin2": math.sin(psi) ** 2,
                "variance": v,
                "shift_size": size,
                "direction": direction,
                "head_norm_sq": float(head @ head),
                "closed_form": closed_form_gap(scm, psi, head, bias),
                "bound": worst_case_bound(psi, head, size),
                **measured,
                "roundoff": FLOAT64_ROUNDOFF * (measured["source_risk"] + measured["target_risk"]),
            }
        )
    judged = judge(cells, registered["z"])
    for cell, flags in zip(cells, judged["flags"], strict=True):
        cell.update(flags)
        cell["z_s1"] = _standard_units(cell["monte_carlo"] - cell["closed_form"], cell)
        cell["z_bound"] = _standard_units(cell["monte_carlo"] - cell["bound"], cell)
    summary = summarise(cells, registered, judged)
    return jsonable(
        {
            "config": config,
            "rule": registered,
            "cells": cells,
            "curves": curves(config, scms, seed),
            "summary": summary,
            "finding": finding(config, summary),
            "verdict": judged["verdict"],
        }
    )


def summarise(cells: list[dict], registered: dict, judged: dict) -> dict:
    """The numbers the finding reports."""
    scored = [c for c in cells if c["z_s1"] is not None]
    others = [c for c in cells if c["direction"] != "worst"]
    worst = [c for c in cells if c["direction"] == "worst"]
    positive = [c for c in others if c["bound"] > 0]
    orthogonal = [c for c in cells if c["direction"] == "orthogonal" and c["z_s1"] is not None]
    ratios = [c["independent_standard_error"] / c["standard_error"] for c in scored]
    worst_scored = [abs(c["z_bound"]) for c in worst if c["z_bound"] is not None]
    return {
        "cells": len(cells),
        "z": registered["z"],
        "s1_failures": judged["s1_failures"],
        "s2_failures": judged["s2_failures"],
        "largest_abs_z_s1": max((abs(c["z_s1"]) for c in scored), default=0.0),
        "roundoff_cells": len(cells) - len(scored),
        "roundoff_psis": sorted({c["psi"] for c in cells if c["z_s1"] is None}),
        "largest_roundoff_difference": max(
            (abs(c["monte_carlo"] - c["closed_form"]) for c in cells if c["z_s1"] is None),
            default=0.0,
        ),
        "largest_excess_over_bound_z": max(
            (c["z_bound"] for c in others if c["z_bound"] is not None), default=None
        ),
        "largest_closed_form_fraction_of_bound": max(
            (c["closed_form"] / c["bound"] for c in positive), default=None
        ),
        "largest_abs_z_worst_vs_bound": max(worst_scored, default=0.0),
        "largest_abs_z_orthogonal": max((abs(c["z_s1"]) for c in orthogonal), default=None),
        "median_independent_over_paired_se": float(np.median(ratios)) if ratios else None,
    }


def finding(config: Config, summary: dict) -> str:
    def number(value, digits: str = ".2f") -> str:
        return "n/a" if value is None else format(value, digits)

    return (
        f"{summary['cells']} cells (psi x v x ||dSigma||_F x direction), n = {config.samples} "
        "paired source/target draws each (common random numbers; the paired SE is "
        f"{number(summary['median_independent_over_paired_se'], '.1f')}x smaller than independent "
        f"samples' in the median cell): largest |MC - S1| = "
        f"{summary['largest_abs_z_s1']:.2f} SE against the Bonferroni z = {summary['z']:.2f} "
        f"(S1 outside: {summary['s1_failures']}; {summary['roundoff_cells']} cells, at psi in "
        f"{[round(psi, 3) for psi in summary['roundoff_psis']]}, have an SE below round-off and "
        f"agree to {summary['largest_roundoff_difference']:.1g}); "
        f"S2: the worst direction's MC gap is within "
        f"{summary['largest_abs_z_worst_vs_bound']:.2f} SE of s^2 ||w||^2 ||dSigma||_F, the "
        "random and orthogonal directions reach at most "
        f"{number(summary['largest_closed_form_fraction_of_bound'])} of it in closed form (largest "
        f"(MC - bound) / SE {number(summary['largest_excess_over_bound_z'])}; S2 outside: "
        f"{summary['s2_failures']}); orthogonal shifts cost 0 in closed form, MC within "
        f"{number(summary['largest_abs_z_orthogonal'])} SE"
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    config, cells, found = result["config"], result["cells"], result["curves"]
    variances, sizes = config["variances"], config["shift_sizes"]
    figure, axes = new_figure(len(variances) + 1, 1, width=4.0)
    palette = dict(zip(sizes, colours(len(sizes)), strict=True))
    grid = np.asarray(found["sin2"])
    for axis, v in zip(axes[0], variances, strict=False):
        for number, size in enumerate(sizes):
            colour = palette[size]
            entry = found[f"{v}|{size}"]
            axis.plot(
                grid, entry["bound"], "--", color=colour, lw=1.2, label=f"||dSigma||_F = {size}"
            )
            for key, values in entry.items():
                if key.startswith("random"):
                    axis.plot(grid, values, "-", color=colour, lw=0.7, alpha=0.5)
            chosen = [c for c in cells if c["variance"] == v and c["shift_size"] == size]
            for kind, marker, ms in (("random", ".", 3), ("orthogonal", "x", 4), ("worst", "o", 4)):
                points = [c for c in chosen if c["direction"].startswith(kind)]
                if points:
                    axis.errorbar(
                        [c["sin2"] for c in points],
                        [c["monte_carlo"] for c in points],
                        yerr=[2 * c["standard_error"] for c in points],
                        fmt=marker,
                        ms=ms,
                        color=colour,
                        alpha=0.8,
                        label=f"MC, {kind} direction" if number == 0 else None,
                    )
        low, high = axis.get_ylim()
        axis.set_ylim(low, high + 0.6 * (high - low))
        axis.set_title(f"gap vs sin^2(psi), Sigma_S = {v} A")
        axis.set_xlabel("sin^2(psi)")
        axis.set_ylabel("R_T - R_S")
        axis.legend(
            loc="upper left",
            fontsize=6,
            title="dashed: S2 bound; thin: S1, random dirs; points: MC +- 2 SE",
            title_fontsize=6,
        )
    axis = axes[0, -1]
    kinds = ("random", "orthogonal", "worst")
    for kind, colour in zip(kinds, colours(len(kinds)), strict=True):
        points = [c for c in cells if c["direction"].startswith(kind) and c["z_s1"] is not None]
        axis.scatter(
            [c["sin2"] for c in points], [c["z_s1"] for c in points], s=8, color=colour, label=kind
        )
    z = result["rule"]["z"]
    for level in (z, -z):
        axis.axhline(level, color="k", ls="--", lw=0.8)
    axis.set_title(f"(MC - S1) / SE, {len(cells)} cells; dashed: Bonferroni z = {z:.2f}")
    axis.set_xlabel("sin^2(psi)")
    axis.set_ylim(-z - 1.5, z + 1.5)
    axis.set_ylabel("standard errors")
    axis.legend(loc="lower center", ncol=3)
    return save_figure(figure, directory, "study11_closed_form")
