"""Study 7: does the counterfactual swap give a gradient on psi in setting S? (docs/THEORY.md, open question)

Scalar setting S (``k = 1``, ``Sigma_s = 1``, ``Z_r ~ N(mu, v)``, ``Y = beta Z_s + eps``), encoder
``F = R(psi) G^T x``, head ``yhat = w Zhat_s + b``, exact linear decoder ``G R(psi)^T``. The orthogonal
``G`` cancels between encoder and decoder, so the derivation takes ``G = I``. For a pair ``(i, j)``
with ``j = pi(i)`` from a derangement, the swapped semantic coordinate that the head reads is

- ``task`` (no swap, the reference): ``u = Zhat_s(i)``;
- ``tied`` (decoder differentiated): ``R(psi) R(psi)^T = I`` so ``u = Zhat_s(i)`` again;
- ``input`` (the method's input-level CFA, decoder output detached; ``phi`` a frozen copy of
  ``psi``): ``u = cos(psi - phi) Zhat_s(i; phi) + sin(psi - phi) Zhat_r(j; phi)``;
- ``feature`` (the method's feature-level CFA): the edited features are detached, ``u`` is a
  constant, so the gradient on psi is identically 0;

and the swap loss is ``(Y_i - w u - b)^2``. sympy differentiates it in ``psi`` (then ``phi = psi``)
and takes the Gaussian expectation. Autograd through :class:`coremtl.objective.CoreMTLObjective`
on a :func:`experiments.synthetic.angle_model.angle_model` measures the same gradient on samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from experiments.stats import bonferroni_z, estimate
from experiments.study import (
    FAILS,
    HOLDS,
    Context,
    Finding,
    Outcome,
    Prediction,
    Study,
    Table,
    held_text,
)
from experiments.synthetic.common import seeds_for
from proofs.headline import Headline

VARIANTS = ("task", "tied", "input", "feature")


@dataclass(frozen=True)
class Config:
    seeds: int = 3
    batch: int = 2048
    psis: tuple[float, ...] = (0.2, 0.5, 0.9, 1.3)
    variances: tuple[float, ...] = (0.0, 0.25, 1.0)
    means: tuple[float, ...] = (0.0, 0.5)
    beta: float = 1.0
    noise_std: float = 0.1
    head: tuple[float, float] = (0.7, 0.2)


CONFIGS = {
    "smoke": Config(seeds=3, batch=256, psis=(0.3, 1.0), variances=(0.0, 1.0), means=(0.0, 0.5)),
    "fast": Config(),
    "full": Config(seeds=10, batch=8192, psis=(0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)),
}


@cache
def derivation() -> dict:
    """Per-sample and expected gradients on psi of each variant, as sympy expressions."""
    import sympy as sp

    psi, phi, w, b = sp.symbols("psi phi w b", real=True)
    beta, mu = sp.symbols("beta mu", real=True)
    v, sigma = sp.symbols("v sigma", nonnegative=True)
    zs_i, rr_i, zs_j, rr_j, eps = sp.symbols("zs_i rr_i zs_j rr_j eps", real=True)
    zr_i, zr_j = mu + rr_i, mu + rr_j
    y_i = beta * zs_i + eps

    def streams(angle, zs, zr):
        return sp.cos(angle) * zs + sp.sin(angle) * zr, -sp.sin(angle) * zs + sp.cos(angle) * zr

    semantic_i, _ = streams(psi, zs_i, zr_i)
    frozen_s_i, _ = streams(phi, zs_i, zr_i)
    _, frozen_r_j = streams(phi, zs_j, zr_j)
    _, residual_j = streams(psi, zs_j, zr_j)
    encoder = sp.Matrix([[sp.cos(psi), sp.sin(psi)], [-sp.sin(psi), sp.cos(psi)]])
    re_encoded = encoder * encoder.T * sp.Matrix([semantic_i, residual_j])
    read = {
        "task": semantic_i,
        "tied": sp.simplify(re_encoded[0]),
        "input": sp.cos(psi - phi) * frozen_s_i + sp.sin(psi - phi) * frozen_r_j,
        "feature": frozen_s_i,
    }
    variances = {zs_i: 1, zs_j: 1, rr_i: v, rr_j: v, eps: sigma**2}
    per_sample, expected = {}, {}
    for variant, u in read.items():
        loss = (y_i - w * u - b) ** 2
        gradient = sp.expand(sp.diff(loss, psi).subs(phi, psi))
        per_sample[variant] = gradient
        expected[variant] = sp.simplify(gaussian_expectation(gradient, variances))
    profile = {"beta": beta, "v": v, "psi": psi}
    return {
        "symbols": {"psi": psi, "w": w, "b": b, "beta": beta, "mu": mu, "v": v, "sigma": sigma},
        "samples": (zs_i, rr_i, zs_j, rr_j, eps),
        "per_sample": per_sample,
        "expected": expected,
        "profile": profile,
    }


def gaussian_expectation(expression, variances: dict):
    """``E[expression]`` for independent centred Gaussians with the given variances.

    The polynomial is expanded in the Gaussian variables and each monomial ``prod z^n`` replaced by
    ``prod E[z^n]`` with ``E[z^n] = var^(n/2) (n - 1)!!`` for even ``n`` and 0 for odd ``n``.
    """
    import sympy as sp

    variables = list(variances)
    polynomial = sp.Poly(sp.expand(expression), *variables)
    total = sp.Integer(0)
    for powers, coefficient in polynomial.terms():
        term = coefficient
        for variable, power in zip(variables, powers, strict=True):
            if power % 2:
                term = 0
                break
            term *= variances[variable] ** sp.Rational(power, 2) * sp.factorial2(power - 1)
        total += term
    return total


def derived_statements() -> dict[str, str]:
    """The expected gradients as strings, and whether each equals the task gradient."""
    import sympy as sp

    derived = derivation()
    task = derived["expected"]["task"]
    return {
        variant: {
            "expected_gradient": str(sp.factor(expression)),
            "equals_task_gradient": bool(sp.simplify(expression - task) == 0),
            "is_zero": bool(sp.simplify(expression) == 0),
        }
        for variant, expression in derived["expected"].items()
    }


@cache
def _numeric(variant: str, with_samples: bool):
    """The per-sample (``with_samples``) or expected gradient of ``variant`` as a numpy function."""
    import sympy as sp

    derived = derivation()
    expression = derived["per_sample" if with_samples else "expected"][variant]
    symbols = derived["symbols"]
    arguments = [symbols[name] for name in ("psi", "w", "b", "beta", "mu", "v", "sigma")]
    if with_samples:
        arguments += list(derived["samples"])
    return sp.lambdify(arguments, expression, "numpy")


def expected_gradient(variant: str, psi, w, b, beta, mu, v, sigma):
    """The derived ``E[d L_swap / d psi]`` of ``variant`` (numpy-evaluable)."""
    function = _numeric(variant, with_samples=False)
    return np.broadcast_to(function(psi, w, b, beta, mu, v, sigma), np.shape(psi)).astype(float)


def measured_and_derived(
    variant: str,
    psi: float,
    head: tuple[float, float],
    v: float,
    mu: float,
    config: Config,
    seed: int,
) -> dict[str, float]:
    """Autograd gradient on psi of the variant's loss on one batch, and the derived per-sample
    gradient averaged over the same batch and the same derangement."""
    import torch

    from coremtl.counterfactual import derangement
    from coremtl.objective import CoreMTLObjective
    from experiments.synthetic.angle_model import angle_model, set_heads, squared_losses
    from scm.generate import scalar_scm
    from scm.model import ResidualLaw
    from scm.sampling import sample

    scm = scalar_scm(v, beta=config.beta, noise_std=config.noise_std)
    scm = replace(scm, source=ResidualLaw(np.array([mu]), scm.source.cov))
    drawn = sample(scm, config.batch, "source", seed)
    batch = {
        key: torch.as_tensor(value, dtype=torch.float64)
        for key, value in (("x", drawn.x), ("y", drawn.y))
    }
    model = angle_model(scm, psi, ["y"], tied_decoder=True)
    set_heads(model, np.array([[head[0]]]), np.array([head[1]]))
    generator = torch.Generator().manual_seed(seed)
    mirror = torch.Generator().manual_seed(seed)
    torch.rand((), generator=mirror)
    permutation = derangement(config.batch, mirror).numpy()
    forward = model(batch["x"])
    if variant == "task":
        loss = squared_losses(forward.predictions, batch)["y"]
    elif variant == "tied":
        z_s_cf, _ = model.encode(model.decode(forward.z_s, forward.z_r[permutation]))
        loss = squared_losses(model.predict(z_s_cf), batch)["y"]
    else:
        objective = CoreMTLObjective(
            cka_weight=0.0,
            cfa_weight=1.0,
            cfa_probability=1.0,
            reconstruction_weight=0.0,
            cfa_mode=variant,
        )
        loss = objective.terms(model, batch, forward, 0, squared_losses, generator)["cfa"]
    (gradient,) = torch.autograd.grad(loss, model.encoder.psi, allow_unused=True)
    measured = 0.0 if gradient is None else float(gradient)
    per_sample = _numeric(variant, with_samples=True)
    z_s, z_r = drawn.z_s[:, 0], drawn.z_r[:, 0] - mu
    eps = drawn.y[:, 0] - config.beta * drawn.z_s[:, 0]
    values = per_sample(
        psi,
        head[0],
        head[1],
        config.beta,
        mu,
        v,
        config.noise_std,
        z_s,
        z_r,
        z_s[permutation],
        z_r[permutation],
        eps,
    )
    values = np.broadcast_to(values, z_s.shape).astype(float)
    derived = estimate(values)
    return {
        "measured": measured,
        "derived_on_batch": derived.mean,
        "standard_error": derived.se,
        "mean_abs_per_sample": float(np.abs(values).mean()),
        "expected": float(
            expected_gradient(variant, psi, head[0], head[1], config.beta, mu, v, config.noise_std)
        ),
    }


def measure(context: Context) -> dict:
    """Autograd against the derivation on every (variant, psi, v, mu, seed) batch, and the expected
    gradient curves of the figure."""
    from tqdm import tqdm

    config = context.config
    cases = [
        (variant, psi, v, mu)
        for variant in VARIANTS
        for psi in config.psis
        for v in config.variances
        for mu in config.means
    ]
    rows = []
    rounding = 64 * np.finfo(np.float64).eps * config.batch
    for variant, psi, v, mu in tqdm(cases, desc="study 7 swaps", disable=not context.progress):
        for run_seed in seeds_for(context.seed, config.seeds):
            numbers = measured_and_derived(variant, psi, config.head, v, mu, config, run_seed)
            difference = abs(numbers["measured"] - numbers["derived_on_batch"])
            numbers.update(
                variant=variant,
                psi=psi,
                v=v,
                mu=mu,
                seed=run_seed,
                agrees_exactly=bool(
                    difference <= rounding * max(numbers["mean_abs_per_sample"], 1e-300)
                ),
                z_expected=(numbers["derived_on_batch"] - numbers["expected"])
                / max(numbers["standard_error"], 1e-300),
            )
            rows.append(numbers)
    curves = {}
    grid = np.linspace(0.0, math.pi / 2, 61)
    w, b = config.head
    for v in config.variances:
        for variant in ("task", "input"):
            curves[f"{variant}|v={v}|fixed"] = expected_gradient(
                variant, grid, w, b, config.beta, 0.0, v, config.noise_std
            ).tolist()
            optimal_w = np.cos(grid) / (np.cos(grid) ** 2 + v * np.sin(grid) ** 2) * config.beta
            curves[f"{variant}|v={v}|optimal"] = expected_gradient(
                variant, grid, optimal_w, 0.0, config.beta, 0.0, v, config.noise_std
            ).tolist()
    return {"derived": derived_statements(), "rows": rows, "grid": grid, "curves": curves}


def summarise(config: Config, measurements: dict) -> dict:
    rows = measurements["rows"]
    scored = [row for row in rows if row["standard_error"] > 0]
    centred = [row for row in rows if row["variant"] == "input" and row["mu"] == 0.0]
    return {
        "derived": measurements["derived"],
        "batches": len(rows),
        "exact": sum(row["agrees_exactly"] for row in rows),
        "largest_z": max(abs(row["z_expected"]) for row in scored),
        "tests": len(scored),
        "bonferroni_z": bonferroni_z(len(scored)),
        "input_at_zero_mean": max((abs(row["expected"]) for row in centred), default=0.0),
        "task_at_zero_mean": max(
            (abs(row["expected"]) for row in rows if row["variant"] == "task" and row["mu"] == 0),
            default=0.0,
        ),
    }


def predictions(config: Config) -> list[Prediction]:
    def autograd(summary: dict) -> Outcome:
        text = f"{summary['exact']}/{summary['batches']} batches equal to round-off"
        return Outcome(summary["exact"] == summary["batches"], text)

    def derived(variant: str, key: str):
        def score(summary: dict) -> Outcome:
            entry = summary["derived"][variant]
            return Outcome(bool(entry[key]), f"E[dL/dpsi] = {entry['expected_gradient']}")

        return score

    def no_pull(summary: dict) -> Outcome:
        z, limit = summary["largest_z"], summary["bonferroni_z"]
        held = summary["input_at_zero_mean"] == 0.0 and z <= limit
        return Outcome(
            held,
            f"max |E| at mu = 0: {summary['input_at_zero_mean']:.2g}; largest |z| of batch means "
            f"{z:.2f} (Bonferroni z {limit:.2f} over {summary['tests']} batches)",
        )

    return [
        Prediction(
            "P1",
            "autograd through CoreMTLObjective equals the derived per-sample gradient on every "
            "batch, to float64 round-off",
            "the derivation is exact for the scalar setting S",
            autograd,
        ),
        Prediction(
            "P2",
            "with the decoder tied to the encoder, the swap's expected gradient on psi equals "
            "the task loss's",
            "S9: R(psi) R(psi)^T = I, so the re-encoded swap reads the factual Zhat_s",
            derived("tied", "equals_task_gradient"),
        ),
        Prediction(
            "P3",
            "feature-level CFA gives psi no gradient",
            "the edited features are detached",
            derived("feature", "is_zero"),
        ),
        Prediction(
            "P4",
            "input-level CFA's expected gradient on psi is 0 at mu = 0, and every batch mean is "
            "within the Bonferroni z of its expectation",
            "S9: the swap adds -2 w^T E[r_i] E[Zhat_r(j)], zero at mu = 0 or the optimal bias",
            no_pull,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """The claim holds if the input-level swap pulls psi where the derivation says it cannot
    (P4 not held); it fails, as registered, if the swap's expected gradient is 0 at mu = 0."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    verdict = FAILS if held["P4"] else HOLDS
    headline = Headline(
        "input swap, largest |z| of batch means against the derivation (no pull at mu = 0)",
        summary["largest_z"],
        threshold=f"<= {summary['bonferroni_z']:.2f} Bonferroni: "
        + ("the claimed pull is absent" if held["P4"] else "not met, a pull the derivation lacks"),
    )
    result = (
        "The input-level swap's expected gradient on psi is "
        + (
            "zero at mu = 0, so the swap adds no pull of psi towards 0 beyond the task loss; "
            if held["P4"]
            else "not zero at mu = 0; "
        )
        + f"autograd equals the derivation on {summary['exact']} of {summary['batches']} batches."
    )
    table = Table(
        ("swap", "expected gradient on psi"),
        tuple(
            (variant, entry["expected_gradient"]) for variant, entry in summary["derived"].items()
        ),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(f"Predictions: {held_text(outcomes)}.",),
        captions={
            "study7_swap_gradient": "Expected gradient on psi of the task loss and of the "
            "input-level swap, with fixed and with optimal heads; points: batch means +- 2 SE."
        },
    )


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    figure, axes = new_figure(2, 1, width=4.4)
    grid = np.asarray(result["measurements"]["grid"])
    variances = result["config"]["variances"]
    palette = colours(len(variances))
    for column, heads in enumerate(("fixed", "optimal")):
        axis = axes[0, column]
        for colour, v in zip(palette, variances, strict=True):
            for variant, style in (("task", "-"), ("input", "--")):
                axis.plot(
                    grid,
                    result["measurements"]["curves"][f"{variant}|v={v}|{heads}"],
                    style,
                    color=colour,
                    label=f"{variant} (= tied), v={v}"
                    if variant == "task"
                    else f"input-level swap, v={v}",
                )
        if heads == "fixed":
            for colour, v in zip(palette, variances, strict=True):
                points = [
                    r for r in result["measurements"]["rows"] if r["v"] == v and r["mu"] == 0.0
                ]
                for variant, marker in (("tied", "o"), ("input", "x"), ("feature", "s")):
                    chosen = [r for r in points if r["variant"] == variant]
                    axis.errorbar(
                        [r["psi"] for r in chosen],
                        [r["derived_on_batch"] for r in chosen],
                        yerr=[2 * r["standard_error"] for r in chosen],
                        fmt=marker,
                        color=colour,
                        ms=4,
                        alpha=0.7,
                    )
        w, b = result["config"]["head"]
        axis.set_title(
            "Open question (S4): swap gradient on psi, "
            + (f"head w={w}, b={b}" if heads == "fixed" else "optimal heads")
        )
        axis.set_xlabel("psi (rad)")
        axis.set_ylabel("E[dL/dpsi] (squared-error units per rad)")
        axis.legend(ncol=1)
    return save_figure(figure, directory, "study7_swap_gradient")


STUDY = Study(
    number=7,
    name="Counterfactual swap gradient on psi",
    statements=("S9",),
    claim="the counterfactual swap of residuals pulls the encoder's angle psi towards 0 beyond "
    "what the task loss does",
    expected=FAILS,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)
